"""TXM images the simulator does not make: misaligned, blurred and noisy, another modality's contrast.

Each function takes the true TXM (optical density) or the phantom and returns the image a reconstruction
would be given instead; the measurement itself is never touched.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["SHIFT_DIRECTION", "shifted", "blurred_noisy", "natural_image_txm", "wrong_species", "zernike_halo",
           "battery_species_thickness"]

#: unit direction (dy, dx) of the TXM offsets: an oblique shift, so both axes are off
SHIFT_DIRECTION = (0.6, -0.8)


def shifted(txm: np.ndarray, px: float) -> np.ndarray:
    """The TXM offset by ``px`` pixels from the patterns' frame (linear interpolation, edges extended)."""
    dy, dx = px * SHIFT_DIRECTION[0], px * SHIFT_DIRECTION[1]
    return ndimage.shift(np.asarray(txm, dtype=np.float64), (dy, dx), order=1, mode="nearest")


def blurred_noisy(txm: np.ndarray, *, sigma: float = 2.0, noise: float = 0.075, seed: int = 0) -> np.ndarray:
    """Gaussian blur (``sigma`` px) plus white Gaussian noise of ``noise`` x the TXM's range (a poor focus and a
    short exposure)."""
    t = np.asarray(txm, dtype=np.float64)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 16]))
    return ndimage.gaussian_filter(t, sigma) + rng.normal(0.0, noise * float(np.ptp(t)), t.shape)


def natural_image_txm(size: int, name: str = "camera") -> np.ndarray:
    """An unrelated structural image (a scikit-image test picture, as an optical density)."""
    from nxsci.recon import natural_phantom

    return np.asarray(natural_phantom(name, size).txm, dtype=np.float64)


def battery_species_thickness(maps: np.ndarray) -> dict[str, np.ndarray]:
    """Projected thickness of each battery species from the Mn, Co, Ni maps (``SPECIES``: LCO = Co, NMC 712 =
    Ni 0.7 Mn 0.2 Co 0.1, LNO = Ni): NMC = Mn / 0.2, LCO = Co - 0.1 NMC, LNO = Ni - 0.7 NMC (exact, linear)."""
    mn, co, ni = (np.asarray(m, dtype=np.float64) for m in maps)
    nmc = mn / 0.2
    return {"NMC": nmc, "LCO": np.clip(co - 0.1 * nmc, 0.0, None), "LNO": np.clip(ni - 0.7 * nmc, 0.0, None)}


def _foreign_particles(occupied: np.ndarray, count: int, max_radius: float) -> np.ndarray:
    """Dome-shaped particles (thickness up to 1) placed where the field is emptiest, one after another."""
    h, w = occupied.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros((h, w))
    free = ~occupied
    for _ in range(count):
        dist = ndimage.distance_transform_edt(np.pad(free, 1, constant_values=False))[1:-1, 1:-1]
        cy, cx = np.unravel_index(int(np.argmax(dist)), dist.shape)
        r = min(max_radius, float(dist[cy, cx]) - 1.5)
        if r < 1.5:
            break
        rho = np.hypot(yy - cy, xx - cx) / r
        cov = np.clip(r * (1.0 - rho) + 0.5, 0.0, 1.0)
        out += cov * (0.5 + 0.5 * np.sqrt(np.clip(1.0 - rho**2, 0.0, 1.0)))
        free &= rho > 1.3
    return out


def wrong_species(phantom: object, *, faint: str = "LCO", faint_factor: float = 0.05, foreign: int = 3,
                  foreign_absorption: float = 1.5) -> np.ndarray:
    """The battery TXM with one species almost invisible (``faint``: its absorption x ``faint_factor``; LCO =
    the Co particles) and ``foreign`` strongly absorbing particles of a species no map contains (placed in the
    emptiest places): a structural image of another contrast."""
    from nxsci.recon import SPECIES_ABSORPTION

    maps = np.asarray(phantom.maps, dtype=np.float64)  # type: ignore[attr-defined]
    thick = battery_species_thickness(maps)
    od = np.asarray(phantom.txm, dtype=np.float64) - (1.0 - faint_factor) * SPECIES_ABSORPTION[faint] * thick[faint]  # type: ignore[attr-defined]
    occupied = maps.sum(axis=0) > 0.02 * float(maps.sum(axis=0).max())
    binder = getattr(phantom, "binder_mask", None)
    if binder is not None:
        occupied |= ndimage.binary_dilation(binder, iterations=2)
    size = min(maps.shape[1:])
    return od + foreign_absorption * _foreign_particles(occupied, foreign, max(3.0, size / 12.0))


def zernike_halo(txm: np.ndarray, *, sigma: float = 3.0, strength: float = 0.7) -> np.ndarray:
    """Zernike phase-contrast-like image: the optical density minus ``strength`` x a blurred copy (sigma px),
    i.e. edges enhanced with a bright rim inside and a dark halo outside, flat interiors lowered."""
    t = np.asarray(txm, dtype=np.float64)
    return t - strength * ndimage.gaussian_filter(t, sigma)
