"""Ground-truth phantoms for simulations: element maps plus the matching TXM image.

The battery phantom mimics the paper's cathode mixture (LCO, NMC 712, LNO particles) so that simulated
benchmarks have the same kind of structure as the experiment: round secondary particles of varied size,
soft edges, a dome-like projected thickness and a little internal texture. It also contains inert binder
that shows in the TXM image but carries no fluorescence, so that a reconstruction guided by the TXM image
can be checked for painting TXM-only structure into the element maps.

Natural images (bundled with scikit-image, no network) give generic test scenes with one element "X".
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from scipy import ndimage
from skimage import color, data, transform

__all__ = [
    "Phantom",
    "SPECIES",
    "SPECIES_ABSORPTION",
    "LABELS",
    "NATURAL_IMAGES",
    "battery_phantom",
    "natural_image",
    "natural_phantom",
    "default_reference",
]

#: element mass fractions (per metal site) of the three cathode species; NMC 712 = LiNi0.7Mn0.2Co0.1O2
SPECIES: dict[str, dict[str, float]] = {
    "LCO": {"Co": 1.0},
    "NMC": {"Ni": 0.7, "Mn": 0.2, "Co": 0.1},
    "LNO": {"Ni": 1.0},
}

#: TXM optical density per unit thickness (arbitrary units; different per species so the TXM image is not
#: proportional to any single element map). Binder (carbon + PVDF) absorbs far less at 9 keV.
SPECIES_ABSORPTION: dict[str, float] = {"LCO": 0.9, "NMC": 0.75, "LNO": 0.6, "binder": 0.18}

#: meaning of the values of :attr:`Phantom.labels`
LABELS: tuple[str, ...] = ("background", "LCO", "NMC", "LNO", "binder", "mixed")

_BATTERY_ELEMENTS = ["Mn", "Co", "Ni"]
_SPECIES_ORDER = ("LCO", "NMC", "LNO")


@dataclasses.dataclass
class Phantom:
    """A simulated sample: true element maps and its TXM (absorption-contrast) image.

    ``txm`` is the optical density ``-log(transmission)``: positive and larger where there is more material,
    which is the contrast a TXM prior expects. ``transmission`` (in (0, 1]) is what multiplies the beam in
    simulated sample-in frames. ``labels`` (optional) says which species fills each pixel (see :data:`LABELS`).
    """

    maps: np.ndarray
    elements: list[str]
    txm: np.ndarray
    transmission: np.ndarray
    name: str
    binder_mask: np.ndarray | None = None
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.maps = np.asarray(self.maps, dtype=np.float32)
        self.txm = np.asarray(self.txm, dtype=np.float32)
        self.transmission = np.asarray(self.transmission, dtype=np.float32)
        self.elements = [str(e) for e in self.elements]
        if self.maps.ndim != 3 or self.maps.shape[0] != len(self.elements):
            raise ValueError(f"maps must be (E, H, W) with E = {len(self.elements)}, got {self.maps.shape}")
        if self.txm.shape != self.maps.shape[1:] or self.transmission.shape != self.txm.shape:
            raise ValueError("txm, transmission and the maps must share one image shape")
        if self.binder_mask is not None:
            self.binder_mask = np.asarray(self.binder_mask, dtype=bool)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.maps.shape[1]), int(self.maps.shape[2]))

    def map(self, element: str) -> np.ndarray:
        return self.maps[self.elements.index(element)]


# -- shapes ------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Blob:
    """A roughly elliptical particle; ``harmonics`` are (order, amplitude, phase) boundary ripples."""

    cy: float
    cx: float
    a: float
    b: float
    theta: float
    harmonics: tuple[tuple[int, float, float], ...]

    @property
    def extent(self) -> float:
        """Radius of a circle that contains the whole blob including its 1 px soft edge."""
        return max(self.a, self.b) * (1.0 + sum(abs(h[1]) for h in self.harmonics)) + 1.0

    def raster(self, shape: tuple[int, int]) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
        """Coverage in [0, 1] (anti-aliased ~1 px edge) and normalised radius rho on the bounding box."""
        r = self.extent + 1.0
        y0, y1 = max(0, int(np.floor(self.cy - r))), min(shape[0], int(np.ceil(self.cy + r)) + 1)
        x0, x1 = max(0, int(np.floor(self.cx - r))), min(shape[1], int(np.ceil(self.cx + r)) + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        dy, dx = yy - self.cy, xx - self.cx
        c, s = np.cos(self.theta), np.sin(self.theta)
        u, v = c * dx + s * dy, -s * dx + c * dy
        dist = np.hypot(u, v)
        psi = np.arctan2(v, u)
        radius = self.a * self.b / np.sqrt((self.b * np.cos(psi)) ** 2 + (self.a * np.sin(psi)) ** 2)
        ripple = np.ones_like(psi)
        for order, amp, phase in self.harmonics:
            ripple += amp * np.cos(order * psi + phase)
        radius *= ripple
        coverage = np.clip(radius - dist + 0.5, 0.0, 1.0)
        rho = np.clip(dist / radius, 0.0, 1.0)
        return (slice(y0, y1), slice(x0, x1)), coverage, rho


def _random_blob(rng: np.random.Generator, cy: float, cx: float, r: float, *, elong: float,
                 ripple: float) -> _Blob:
    e = rng.uniform(0.0, elong)
    harmonics = tuple((k, float(rng.uniform(0.0, ripple)), float(rng.uniform(0, 2 * np.pi))) for k in (2, 3, 4, 5))
    return _Blob(cy, cx, r * (1 + e), r / (1 + e), float(rng.uniform(0, np.pi)), harmonics)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Unit-variance Gaussian-correlated random field (texture and background)."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (f - f.mean()) / (f.std() + 1e-12)


def _place(rng: np.random.Generator, size: int, blob_r: float, placed: list[tuple[float, float, float, bool]],
           *, binder: bool, tries: int = 300, elong: float, ripple: float) -> _Blob | None:
    """Rejection-sample a position whose blob stays inside the field and (mostly) clear of the others.

    Particles may touch each other slightly (0.85 x the sum of their extents), but never the binder: binder
    must stay free of fluorescence so that a test can demand exactly zero maps under it.
    """
    for _ in range(tries):
        blob = _random_blob(rng, 0.0, 0.0, blob_r, elong=elong, ripple=ripple)
        ext = blob.extent
        lo, hi = ext + 1.0, size - ext - 2.0
        if hi <= lo:
            return None
        cy, cx = rng.uniform(lo, hi, size=2)
        ok = True
        for py, px, pext, pbinder in placed:
            d = float(np.hypot(cy - py, cx - px))
            need = ext + pext + 1.0 if (binder or pbinder) else 0.85 * (ext + pext)
            if d < need:
                ok = False
                break
        if ok:
            blob.cy, blob.cx = float(cy), float(cx)
            return blob
    return None


def _fill(rng: np.random.Generator, size: int, placed: list[tuple[float, float, float, bool]], r_min: float,
          r_max: float, count: int | None) -> list[_Blob]:
    """Particles with log-uniform radii until ~45 % of the field is covered (or ``count`` are placed)."""
    particles: list[_Blob] = []
    target_area = 0.45 * size * size
    area = 0.0
    failures = 0
    while failures <= 60:
        if count is not None and len(particles) >= count:
            break
        if count is None and area >= target_area and len(particles) >= 3:
            break
        # shrink the draw after failures so that the gaps get filled by small particles
        hi = r_max if failures < 20 else max(r_min, r_max * 0.5 ** (failures / 20))
        r = float(np.exp(rng.uniform(np.log(r_min), np.log(max(hi, r_min + 1e-6)))))
        blob = _place(rng, size, r, placed, binder=False, tries=100, elong=0.3, ripple=0.035)
        if blob is None:
            failures += 1
            continue
        particles.append(blob)
        placed.append((blob.cy, blob.cx, blob.extent, False))
        area += np.pi * blob.a * blob.b
    return particles


# -- battery phantom ---------------------------------------------------------------------------------


def battery_phantom(size: int = 64, seed: int = 0, *, num_particles: int | None = None,
                    binder: bool = True) -> Phantom:
    """A cathode-mixture phantom with Mn, Co, Ni maps (LCO, NMC 712 and LNO particles) and its TXM image.

    Particles have radii from ~3 px to ~size/4, soft ~1 px edges, a dome-like projected thickness
    (flat-ish rim plus a spherical cap, larger particles thicker) and a few-% density texture; some large
    ones have a crack. Every species is present. ``binder=True`` adds inert binder blobs (at least one)
    that appear only in the TXM image. The TXM optical density is the sum over particles of
    thickness x species absorption, plus binder, plus a faint smooth background.
    Deterministic for a seed; ``num_particles`` fixes the count instead of filling ~45 % of the field.
    """
    size = int(size)
    if size < 24:
        raise ValueError(f"battery phantom size must be at least 24 px, got {size}")
    if num_particles is not None and num_particles < 3:
        raise ValueError(f"num_particles must be at least 3 (one per species), got {num_particles}")
    rng = np.random.default_rng(seed)
    shape = (size, size)
    r_min, r_max = min(3.0, size / 10.0), max(4.0, size / 4.0)

    # crowded (small) fields: redo the layout with smaller particles until the binder and all species fit
    for attempt in range(20):
        placed: list[tuple[float, float, float, bool]] = []
        binders: list[_Blob] = []
        if binder:  # placed first, so there is room for at least one
            for _ in range(max(1, round(size / 40))):
                rb = float(rng.uniform(r_min, max(r_min + 1.0, size / 12.0)))
                blob = _place(rng, size, rb, placed, binder=True, elong=0.4, ripple=0.12)
                if blob is not None:
                    binders.append(blob)
                    placed.append((blob.cy, blob.cx, blob.extent, True))
        particles = _fill(rng, size, placed, r_min, max(r_min, r_max * 0.75**attempt), num_particles)
        if len(particles) >= 3 and (binders or not binder):
            break
    else:  # pragma: no cover - guarded by size >= 24
        raise RuntimeError(f"could not lay out binder and three particle species in a {size} px field")

    # species: one of each first (in random order), the rest at random
    species = list(rng.permutation(_SPECIES_ORDER))
    species += [str(s) for s in rng.choice(_SPECIES_ORDER, size=len(particles) - 3)]
    order = rng.permutation(len(particles))
    species_of = {int(i): species[k] for k, i in enumerate(order)}

    texture = 1.0 + 0.04 * _smooth_field(rng, shape, 1.5)
    maps = np.zeros((3, size, size))
    od = np.zeros(shape)
    occupancy = np.zeros(shape, dtype=np.int16)
    labels = np.zeros(shape, dtype=np.int8)
    for i, blob in enumerate(particles):
        sp = species_of[i]
        sl, cov, rho = blob.raster(shape)
        r_eq = np.sqrt(blob.a * blob.b)
        peak = 0.5 + 0.5 * np.sqrt(min(1.0, r_eq / r_max))
        thick = peak * (0.35 + 0.65 * np.sqrt(1.0 - rho**2)) * cov * texture[sl]
        if r_eq >= 6.0 and rng.random() < 0.35:  # a crack: a thin line of missing material
            yy, xx = np.mgrid[sl]
            ang = rng.uniform(0, np.pi)
            oy, ox = blob.cy + rng.normal(0, 0.2 * r_eq), blob.cx + rng.normal(0, 0.2 * r_eq)
            d = np.abs(-(yy - oy) * np.cos(ang) + (xx - ox) * np.sin(ang))
            thick *= 1.0 - 0.7 * np.exp(-0.5 * (d / 0.6) ** 2)
        for e, el in enumerate(_BATTERY_ELEMENTS):
            frac = SPECIES[sp].get(el, 0.0)
            if frac:
                maps[e][sl] += frac * thick
        od[sl] += SPECIES_ABSORPTION[sp] * thick
        inside = cov > 0
        occupancy[sl] += inside
        lab = labels[sl]
        lab[inside & (cov > 0.5)] = 1 + _SPECIES_ORDER.index(sp)

    binder_mask = np.zeros(shape, dtype=bool)
    for blob in binders:
        sl, cov, rho = blob.raster(shape)
        od[sl] += SPECIES_ABSORPTION["binder"] * (0.5 + 0.5 * np.sqrt(1.0 - rho**2)) * cov * texture[sl]
        binder_mask[sl] |= cov > 0.5
        labels[sl][cov > 0.5] = LABELS.index("binder")
    labels[occupancy > 1] = LABELS.index("mixed")

    od += np.clip(0.03 + 0.01 * _smooth_field(rng, shape, max(2.0, size / 8.0)), 0.0, None)
    return Phantom(maps=np.clip(maps, 0.0, None), elements=list(_BATTERY_ELEMENTS), txm=od,
                   transmission=np.exp(-od), name="battery", binder_mask=binder_mask if binder else None,
                   labels=labels)


# -- natural images ----------------------------------------------------------------------------------

#: images shipped inside scikit-image's package (loaded without network access)
NATURAL_IMAGES: tuple[str, ...] = ("camera", "moon", "coins", "text", "astronaut", "brick", "grass", "gravel",
                                   "cell", "clock", "page", "chelsea", "coffee", "shepp_logan_phantom")


def _as_shape(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        shape = (int(size), int(size))
    else:
        shape = tuple(int(s) for s in size)  # type: ignore[assignment]
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"image size must be a positive int or (height, width), got {size!r}")
    return shape  # type: ignore[return-value]


@functools.lru_cache(maxsize=16)
def _load_natural(name: str) -> np.ndarray:
    img = getattr(data, name)()
    img = np.asarray(img)
    if img.ndim == 3:
        img = color.rgb2gray(img[..., :3])
    img = img.astype(np.float64)
    return img


def natural_image(name: str, size: int | tuple[int, int]) -> np.ndarray:
    """A scikit-image sample image as float64 in [0, 1], centre-cropped to the aspect ratio and resized
    with anti-aliasing to ``size`` (an int for square, or (height, width))."""
    if name not in NATURAL_IMAGES:
        raise ValueError(f"unknown natural image '{name}'; choose one of {', '.join(NATURAL_IMAGES)}")
    h, w = _as_shape(size)
    img = _load_natural(name)
    ih, iw = img.shape
    if ih * w > iw * h:  # too tall: crop rows
        ch = max(1, round(iw * h / w))
        y0 = (ih - ch) // 2
        img = img[y0:y0 + ch]
    else:
        cw = max(1, round(ih * w / h))
        x0 = (iw - cw) // 2
        img = img[:, x0:x0 + cw]
    out = transform.resize(img, (h, w), order=1, anti_aliasing=True, preserve_range=True, mode="reflect")
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / (hi - lo) if hi > lo else np.zeros((h, w))


def natural_phantom(name: str, size: int | tuple[int, int]) -> Phantom:
    """One element "X" distributed like a natural image; its TXM image is a monotone (not linear) function
    of the same image plus a faint smooth background, so it shares the edges without being a copy."""
    img = natural_image(name, size)
    rng = np.random.default_rng(1234)
    od = 0.05 + 0.6 * img**1.3 + np.clip(0.01 * _smooth_field(rng, img.shape, max(2.0, min(img.shape) / 8.0)),
                                          -0.04, None)
    return Phantom(maps=img[None], elements=["X"], txm=od, transmission=np.exp(-od), name=name, binder_mask=None)


# -- a reference image for invertibility -------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _reference_base(size: int) -> np.ndarray:
    ph = battery_phantom(size=size, seed=2023)
    total = ph.maps.sum(axis=0).astype(np.float64)
    return total / total.max()


def default_reference(shape: tuple[int, int]) -> np.ndarray:
    """A fixed battery-like image in [0, 1] of any shape, used to score pattern invertibility
    (SSIM of ``pinv(A) A x_ref`` vs ``x_ref``) when no ground truth exists."""
    h, w = _as_shape(shape)
    base = _reference_base(int(np.clip(max(h, w), 32, 512)))
    out = transform.resize(base, (h, w), order=1, anti_aliasing=True, preserve_range=True, mode="reflect")
    out = np.clip(out, 0.0, None)
    m = float(out.max())
    return out / m if m > 0 else out
