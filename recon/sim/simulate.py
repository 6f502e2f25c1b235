"""Simulated structured-illumination experiments: patterns, XRF signals and complete datasets.

Signals are computed with :class:`PatternPhysics`, the operator the solvers use, so a reconstruction of a
noiseless simulation sees exactly the model it inverts. Two pattern families are provided:

* :func:`speckle_patterns` - statistically ideal, independent speckle of a chosen feature size (the paper's
  Fig. S7 study of feature size vs sample detail);
* :class:`TwoDiffuserModel` - a physically motivated model of the beamline (two sandpaper diffusers of
  different grit, optics blur, beam envelope and a static beam structure) whose patterns are strongly
  correlated like recorded ones (mean dependence ~0.4) and depend continuously on the diffuser positions,
  so that the devices layer can drive it like motors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from ..data.dataset import Dataset
from ..physics.forward import PatternPhysics
from .phantoms import NATURAL_IMAGES, Phantom, battery_phantom, natural_phantom

__all__ = [
    "PATTERN_MODELS",
    "PHANTOMS",
    "MAX_SAMPLING",
    "speckle_patterns",
    "TwoDiffuserModel",
    "shift_patterns",
    "signal_scale",
    "simulate_signals",
    "simulate_dataset",
    "simulate_case",
]

#: pattern models understood by :func:`simulate_case`
PATTERN_MODELS: tuple[str, ...] = ("two-diffuser", "speckle", "random")
#: phantom names understood by :func:`simulate_case`
PHANTOMS: tuple[str, ...] = ("battery", *NATURAL_IMAGES)
#: largest N / M accepted by :func:`simulate_case` (over-determined systems are allowed, up to 4x)
MAX_SAMPLING = 4.0
#: refuse simulations whose pattern stack alone would exceed this (float32 bytes)
MAX_PATTERN_BYTES = 8 * 1024**3

SeedLike = int | np.random.SeedSequence | np.random.Generator


def _shape2(shape: Sequence[int]) -> tuple[int, int]:
    s = tuple(int(v) for v in shape)
    if len(s) != 2 or min(s) < 1:
        raise ValueError(f"shape must be (height, width) with positive sizes, got {shape!r}")
    return s  # type: ignore[return-value]


def _int_seed(seq: np.random.SeedSequence) -> int:
    return int(seq.generate_state(1)[0])


# -- ideal speckle -----------------------------------------------------------------------------------


def speckle_patterns(n: int, shape: Sequence[int], feature_size: float, *, seed: SeedLike = 0) -> np.ndarray:
    """``n`` independent fully developed speckle patterns ``(n, H, W)``, float32, >= 0, mean ~1.

    Each is ``|g * (a + i b)|^2`` with ``a, b`` white Gaussian noise and ``g`` a Gaussian kernel of standard
    deviation ``feature_size`` px; the intensity autocorrelation is then a Gaussian of the same standard
    deviation, so ``feature_size`` is the speckle grain size. ``feature_size = 0`` gives independent
    exponential (white) pixels. Normalised by the exact expectation (not the sample mean), so pattern ``i``
    does not depend on ``n``; fields are generated with a margin so edges behave like the interior.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"number of patterns must be >= 1, got {n}")
    h, w = _shape2(shape)
    fs = float(feature_size)
    if not math.isfinite(fs) or fs < 0:
        raise ValueError(f"feature_size must be a finite number >= 0, got {feature_size!r}")
    rng = np.random.default_rng(seed)
    out = np.empty((n, h, w), dtype=np.float32)
    if fs == 0.0:
        for i in range(n):
            out[i] = rng.exponential(1.0, (h, w))
        return out
    pad = int(math.ceil(4.0 * fs)) + 1
    delta = np.zeros((2 * pad + 1, 2 * pad + 1))
    delta[pad, pad] = 1.0
    norm = 2.0 * float(np.sum(ndimage.gaussian_filter(delta, fs, mode="constant") ** 2))
    chunk = max(1, int(2**24 // ((h + 2 * pad) * (w + 2 * pad))))
    for i0 in range(0, n, chunk):
        m = min(chunk, n - i0)
        z = rng.standard_normal((m, 2, h + 2 * pad, w + 2 * pad))
        f = ndimage.gaussian_filter(z, (0, 0, fs, fs), mode="constant")[:, :, pad:pad + h, pad:pad + w]
        out[i0:i0 + m] = (f[:, 0] ** 2 + f[:, 1] ** 2) / norm
    return out


# -- the two-diffuser beamline model -----------------------------------------------------------------


def _bspline_weights(t: float) -> np.ndarray:
    """Cubic B-spline weights of the 4 coefficients around a sample at fractional offset ``t`` in [0, 1)."""
    return np.array([(1 - t) ** 3, 3 * t**3 - 6 * t**2 + 4, -3 * t**3 + 3 * t**2 + 3 * t + 1, t**3]) / 6.0


def _lognormal_screen(rng: np.random.Generator, shape: tuple[int, int], corr_px: float, contrast: float,
                      *, periodic: bool) -> np.ndarray:
    """Mean-1 intensity screen ``exp(c g - c^2/2)``, ``g`` a unit-variance field of correlation ``corr_px``."""
    g = ndimage.gaussian_filter(rng.standard_normal(shape), corr_px, mode="wrap" if periodic else "reflect")
    g = (g - g.mean()) / (g.std() + 1e-12)
    return np.exp(contrast * g - 0.5 * contrast**2)


class TwoDiffuserModel:
    """Illumination patterns from two sandpaper diffusers of different grit moving in the beam.

    Each diffuser is a large fixed random intensity screen (lognormal), periodic so that any position is
    valid. For diffuser positions ``pos1, pos2`` (``(y, x)`` in screen pixels, i.e. field pixels) the
    light reaching the sample is::

        pattern(r) = envelope(r) * blur[(1 - b) S1(r + pos1) S2(r + pos2) + b B(r)]

    ``B`` is a static beam structure (monochromator/condenser imperfections that do not move with the
    diffusers); it is what makes recorded pattern sets strongly correlated. Screens are sampled with cubic
    B-splines, so a pattern is an exact, continuous function of both positions: sub-pixel moves
    interpolate smoothly and returning to a position reproduces the pattern bit for bit.

    Args:
        shape: field (H, W) in pixels.
        seed: fixes both screens and the static structure.
        grit_px: correlation length (Gaussian sigma, px) of the fine and the coarse sandpaper.
        contrast: standard deviation of the log-intensity of each screen.
        static_fraction: share of the across-field variance common to all patterns (envelope, static
            structure); the weight ``b`` of ``B`` is solved for at construction (:attr:`static_weight`).
            This share is close to the mean dependence of a random pattern set: the default 0.4 gives
            ~0.41 (recorded sets in the paper: 0.44).
        static_feature_px: correlation length of ``B``.
        envelope_sigma: width of the Gaussian beam envelope in units of the field half-size (``None`` =
            flat); normalised to mean 1. A condenser/pinhole setting maps onto this.
        envelope_center: envelope centre offset (y, x) in units of the field half-size.
        blur_px: Gaussian blur (sigma, px) of the optics, e.g. the zone plate's resolution.
        screen_shape: size (= period) of the diffuser screens; default 4x the field.
    """

    def __init__(self, shape: Sequence[int], *, seed: int = 0, grit_px: tuple[float, float] = (1.5, 4.0),
                 contrast: tuple[float, float] = (0.5, 0.5), static_fraction: float = 0.4,
                 static_feature_px: float = 3.0, envelope_sigma: float | None = 1.2,
                 envelope_center: tuple[float, float] = (0.1, -0.15), blur_px: float = 0.7,
                 screen_shape: Sequence[int] | None = None) -> None:
        self.shape = _shape2(shape)
        h, w = self.shape
        self.seed = int(seed)
        self.grit_px = (float(grit_px[0]), float(grit_px[1]))
        self.contrast = (float(contrast[0]), float(contrast[1]))
        if min(self.grit_px) <= 0:
            raise ValueError(f"grit_px must be positive, got {grit_px!r}")
        if min(self.contrast) < 0:
            raise ValueError(f"contrast must be >= 0, got {contrast!r}")
        if not 0.0 <= static_fraction < 1.0:
            raise ValueError(f"static_fraction must be in [0, 1), got {static_fraction}")
        if blur_px < 0:
            raise ValueError(f"blur_px must be >= 0, got {blur_px}")
        if envelope_sigma is not None and envelope_sigma <= 0:
            raise ValueError(f"envelope_sigma must be positive or None, got {envelope_sigma}")
        self.static_fraction = float(static_fraction)
        self.static_feature_px = float(static_feature_px)
        self.envelope_sigma = None if envelope_sigma is None else float(envelope_sigma)
        self.envelope_center = (float(envelope_center[0]), float(envelope_center[1]))
        self.blur_px = float(blur_px)
        self.margin = int(math.ceil(4.0 * self.blur_px)) + 1 if self.blur_px > 0 else 0
        m = self.margin
        self.screen_shape = _shape2(screen_shape) if screen_shape is not None else (
            max(4 * h, h + 2 * m + 64), max(4 * w, w + 2 * m + 64))
        if self.screen_shape[0] < h + 2 * m + 4 or self.screen_shape[1] < w + 2 * m + 4:
            raise ValueError(f"screen_shape {self.screen_shape} is too small for a {self.shape} field")

        ss = np.random.SeedSequence(self.seed)
        r1, r2, rb = (np.random.default_rng(c) for c in ss.spawn(3))
        # B-spline coefficients of the two periodic screens (float64: exact reproducibility)
        self._coeffs = tuple(
            ndimage.spline_filter(_lognormal_screen(r, self.screen_shape, g, c, periodic=True), order=3,
                                  mode="grid-wrap")
            for r, g, c in ((r1, self.grit_px[0], self.contrast[0]), (r2, self.grit_px[1], self.contrast[1])))
        self.envelope = self._make_envelope()
        self.static, self.static_weight = self._make_static(rb)

    def _blur_crop(self, raw: np.ndarray) -> np.ndarray:
        if self.blur_px <= 0:
            return raw
        m = self.margin
        return ndimage.gaussian_filter(raw, self.blur_px, mode="nearest")[m:-m, m:-m]

    def _make_static(self, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """The static beam structure ``B`` (mean 1) and its weight ``b`` (the diffuser product gets ``1 - b``).

        ``b`` is solved for so that the share of the across-field variance that is common to all patterns
        (envelope x (static part + mean of the moving part)) equals ``static_fraction``. That share is, to a
        good approximation, the mean Pearson correlation between patterns, so the knob sets the dependence
        of a pattern set directly instead of leaving it to the luck of one random field.
        """
        m = self.margin
        base = _lognormal_screen(rng, (self.shape[0] + 2 * m, self.shape[1] + 2 * m), self.static_feature_px,
                                 math.hypot(*self.contrast), periodic=False)
        env = self.envelope
        calib = np.random.default_rng(np.random.SeedSequence([self.seed, 7]))
        spans = np.asarray(self.screen_shape, dtype=np.float64)
        moving_var = float(np.mean([
            np.var(env * (self._blur_crop(self._screen_window(0, tuple(calib.uniform(0, 1, 2) * spans))
                                          * self._screen_window(1, tuple(calib.uniform(0, 1, 2) * spans))) - 1.0))
            for _ in range(32)]))
        dev = env * (self._blur_crop(base) - 1.0)
        c0, c1, c2 = float(np.var(env)), 2.0 * float(np.cov(env.ravel(), dev.ravel())[0, 1]), float(np.var(dev))

        def share(b: float) -> float:
            common = max(c0 + c1 * b + c2 * b * b, 0.0)
            return common / (common + (1.0 - b) ** 2 * moving_var + 1e-300)

        phi = self.static_fraction
        if phi <= share(0.0):  # the envelope alone already correlates the patterns this much
            return base, 0.0
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if share(mid) < phi else (lo, mid)
        return base, 0.5 * (lo + hi)

    def _make_envelope(self) -> np.ndarray:
        h, w = self.shape
        if self.envelope_sigma is None:
            return np.ones(self.shape)
        y = (np.arange(h) - (h - 1) / 2) / (h / 2) - self.envelope_center[0]
        x = (np.arange(w) - (w - 1) / 2) / (w / 2) - self.envelope_center[1]
        env = np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2) / self.envelope_sigma**2)
        return env / env.mean()

    def _screen_window(self, k: int, pos: tuple[float, float]) -> np.ndarray:
        """Screen ``k`` seen through the (margin-padded) field at position ``pos``: exact cubic B-spline."""
        py, px = float(pos[0]), float(pos[1])
        if not (math.isfinite(py) and math.isfinite(px)):
            raise ValueError(f"diffuser position must be finite, got {pos!r}")
        m = self.margin
        hh, ww = self.shape[0] + 2 * m, self.shape[1] + 2 * m
        sy, sx = self.screen_shape
        iy, ix = math.floor(py), math.floor(px)
        wy, wx = _bspline_weights(py - iy), _bspline_weights(px - ix)
        rows = np.arange(iy - m - 1, iy - m + hh + 3) % sy
        cols = np.arange(ix - m - 1, ix - m + ww + 3) % sx
        crop = self._coeffs[k][np.ix_(rows, cols)]
        rows_done = sum(wy[a] * crop[a:a + hh] for a in range(4))  # separable: rows, then columns
        return sum(wx[b] * rows_done[:, b:b + ww] for b in range(4))

    def pattern(self, pos1: Sequence[float], pos2: Sequence[float]) -> np.ndarray:
        """The (H, W) float32 pattern for diffuser 1 at ``pos1`` and diffuser 2 at ``pos2`` ((y, x), px)."""
        f = self.static_weight
        raw = (1.0 - f) * self._screen_window(0, (pos1[0], pos1[1])) * self._screen_window(1, (pos2[0], pos2[1]))
        raw += f * self.static
        return np.clip(self._blur_crop(raw) * self.envelope, 0.0, None).astype(np.float32)

    def random_schedule(self, n: int, *, seed: SeedLike = 0) -> np.ndarray:
        """``(n, 2, 2)`` positions ``[pattern, diffuser, (y, x)]`` drawn uniformly over each screen's period,
        so distinct patterns see unrelated parts of both screens."""
        n = int(n)
        if n < 1:
            raise ValueError(f"number of patterns must be >= 1, got {n}")
        rng = np.random.default_rng(seed)
        return rng.uniform(0.0, 1.0, (n, 2, 2)) * np.asarray(self.screen_shape, dtype=np.float64)

    def patterns(self, schedule: np.ndarray) -> np.ndarray:
        """Patterns ``(N, H, W)`` for a schedule ``(N, 2, 2)`` of diffuser positions."""
        sched = np.asarray(schedule, dtype=np.float64)
        if sched.ndim != 3 or sched.shape[1:] != (2, 2):
            raise ValueError(f"schedule must have shape (N, 2, 2) [pattern, diffuser, (y, x)], got {sched.shape}")
        out = np.empty((sched.shape[0], *self.shape), dtype=np.float32)
        for i, (p1, p2) in enumerate(sched):
            out[i] = self.pattern(p1, p2)
        return out


# -- signals -----------------------------------------------------------------------------------------


def shift_patterns(patterns: np.ndarray, shifts: np.ndarray | None) -> np.ndarray:
    """Patterns as seen in the sample frame when the sample is displaced by ``shifts[i]`` = (dy, dx) px
    for pattern ``i``: ``pattern_i(r + s_i)`` (cubic spline, edge values extended). ``None`` = no shift."""
    p = np.asarray(patterns, dtype=np.float64)
    if p.ndim != 3:
        raise ValueError(f"patterns must have shape (N, H, W), got {p.shape}")
    if shifts is None:
        return p
    s = np.asarray(shifts, dtype=np.float64)
    if s.shape != (p.shape[0], 2):
        raise ValueError(f"shifts must have shape (N, 2) = {(p.shape[0], 2)}, got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("shifts contain NaN or infinite values")
    out = np.empty_like(p)
    for i in range(p.shape[0]):
        out[i] = ndimage.shift(p[i], -s[i], order=3, mode="nearest")
    return out


def signal_scale(noiseless: np.ndarray, photons: float) -> float:
    """Counts per unit of ``A x``: chosen so the strongest element (largest mean over patterns) averages
    ``photons`` expected counts per pattern. One factor for all elements, so the relative concentrations
    (and hence the element ratios of the maps) are preserved in the signals."""
    y = np.asarray(noiseless, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    strongest = float(np.max(np.mean(y, axis=0)))
    if not strongest > 0:
        raise ValueError("the maps give no signal with these patterns (all-zero maps or patterns)")
    return float(photons) / strongest


def _simulate_signals(maps: np.ndarray, patterns: np.ndarray, *, photons: float, background: float,
                      seed: SeedLike, shifts: np.ndarray | None,
                      noise: bool) -> tuple[np.ndarray, np.ndarray, float]:
    x = np.asarray(maps, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    p = np.asarray(patterns)
    if x.ndim != 3 or p.ndim != 3 or x.shape[1:] != p.shape[1:]:
        raise ValueError(f"maps {x.shape} and patterns {p.shape} must be (E, H, W) and (N, H, W) of one image shape")
    if not (math.isfinite(photons) and photons > 0):
        raise ValueError(f"photons must be a finite positive number of counts per pattern, got {photons!r}")
    if not (math.isfinite(background) and background >= 0):
        raise ValueError(f"background must be a finite number of counts >= 0, got {background!r}")
    eff = shift_patterns(p, shifts)
    noiseless = PatternPhysics(eff, dtype=torch.float64).A(x).T  # (N, E)
    scale = signal_scale(noiseless, photons)
    expected = scale * noiseless + background
    if noise:
        counts = np.random.default_rng(seed).poisson(np.clip(expected, 0.0, None)).astype(np.float64)
    else:
        counts = expected
    sigma = np.sqrt(np.maximum(expected, 1.0))
    return counts - background, sigma, scale


def simulate_signals(maps: np.ndarray, patterns: np.ndarray, *, photons: float = 1e5, background: float = 0.0,
                     seed: SeedLike = 0, shifts: np.ndarray | None = None,
                     noise: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """XRF signals ``(N, E)`` and their 1-sigma uncertainties for maps ``(E, H, W)`` (or one ``(H, W)``).

    Expected counts = ``scale * A(map) + background`` with ``A`` the :class:`PatternPhysics` of the patterns
    in the sample frame (shifted by ``shifts`` (N, 2) when given, see :func:`shift_patterns`) and ``scale``
    from :func:`signal_scale` (strongest element averages ``photons`` counts per pattern; same factor for
    all elements). Counts are Poisson draws (``noise=False``: the expectation); the known mean background
    is subtracted, as a spectrum fit does. ``sigma = sqrt(expected counts)``, floored at 1 count so that no
    weight is infinite.
    """
    signals, sigma, _ = _simulate_signals(maps, patterns, photons=float(photons), background=float(background),
                                          seed=seed, shifts=shifts, noise=noise)
    return signals, sigma


# -- datasets ----------------------------------------------------------------------------------------


def _poisson_frames(rng: np.random.Generator, frames: np.ndarray, frame_photons: float | None) -> np.ndarray:
    if frame_photons is None or math.isinf(frame_photons):
        return frames.astype(np.float32)
    out = np.empty(frames.shape, dtype=np.float32)
    for i in range(frames.shape[0]):  # per frame: bounded temporaries
        out[i] = rng.poisson(np.clip(frame_photons * frames[i], 0.0, None)) / frame_photons
    return out


def simulate_dataset(phantom: Phantom, patterns: np.ndarray, *, photons: float = 1e5, background: float = 0.0,
                     seed: int = 0, shift_sigma: float = 0.0, frame_photons: float | None = 1000.0,
                     sample_in: bool | None = None, metadata: Mapping[str, np.ndarray] | None = None,
                     attrs: Mapping[str, Any] | None = None) -> Dataset:
    """A complete simulated :class:`Dataset` of ``phantom`` lit by the true ``patterns`` (N, H, W).

    Signals come from :func:`simulate_signals` with the true patterns; the stored patterns are the recorded
    sample-out frames, Poisson-noisy at ``frame_photons`` counts per unit intensity (``None``/inf:
    noiseless). ``shift_sigma > 0`` draws stage errors ``s_i ~ N(0, shift_sigma)`` px per axis (stored as
    ``truth_shifts``; zeros otherwise). Sample-in frames ``pattern_i(r) * transmission(r - s_i)`` (same
    noise) are included when ``sample_in`` is true (default: only when there are shifts to register).
    Independent random streams for shifts, signals and frames are derived from ``seed``.
    ``truth_maps`` are in signal units (phantom maps times ``signal_scale``), so that
    ``signals = A truth + noise`` and a reconstruction can be scored against them directly.
    """
    p = np.asarray(patterns, dtype=np.float64)
    if p.ndim != 3 or p.shape[1:] != phantom.shape:
        raise ValueError(f"patterns {p.shape} must be (N, H, W) with (H, W) = phantom shape {phantom.shape}")
    if not (math.isfinite(shift_sigma) and shift_sigma >= 0):
        raise ValueError(f"shift_sigma must be a finite number >= 0, got {shift_sigma!r}")
    if frame_photons is not None and not (frame_photons > 0):
        raise ValueError(f"frame_photons must be positive (or None/inf for noiseless frames), got {frame_photons!r}")
    n = p.shape[0]
    s_shift, s_signal, s_frames = np.random.SeedSequence(int(seed)).spawn(3)
    shifts = (np.random.default_rng(s_shift).normal(0.0, shift_sigma, (n, 2)) if shift_sigma > 0
              else np.zeros((n, 2)))
    signals, sigma, scale = _simulate_signals(phantom.maps, p, photons=float(photons),
                                              background=float(background), seed=s_signal,
                                              shifts=shifts if shift_sigma > 0 else None, noise=True)
    frame_rng = np.random.default_rng(s_frames)
    recorded = _poisson_frames(frame_rng, p, frame_photons)
    want_in = shift_sigma > 0 if sample_in is None else bool(sample_in)
    frames_in = None
    if want_in:
        trans = phantom.transmission.astype(np.float64)
        lit = np.empty_like(p)
        for i in range(n):
            moved = ndimage.shift(trans, shifts[i], order=3, mode="nearest") if shift_sigma > 0 else trans
            lit[i] = p[i] * moved
        frames_in = _poisson_frames(frame_rng, lit, frame_photons)
    meta = {"pattern_index": np.arange(n)}
    meta.update({k: np.asarray(v) for k, v in (metadata or {}).items()})
    info: dict[str, Any] = {
        "simulated": 1,
        "phantom": phantom.name,
        "photons": float(photons),
        "background": float(background),
        "seed": int(seed),
        "shift_sigma": float(shift_sigma),
        "frame_photons": float("inf") if frame_photons is None else float(frame_photons),
        "signal_scale": float(scale),
    }
    info.update(dict(attrs or {}))
    return Dataset(patterns=recorded, signals=signals, elements=list(phantom.elements), txm=phantom.txm,
                   signals_sigma=sigma, sample_in=frames_in, metadata=meta, truth_maps=phantom.maps * scale,
                   truth_shifts=shifts, attrs=info)


def simulate_case(*, phantom: str = "battery", size: int = 64, sampling: float = 0.1,
                  pattern_model: str = "two-diffuser", feature_size: float = 2.0, photons: float = 1e5,
                  seed: int = 0, shift_sigma: float = 0.0, background: float = 0.0,
                  frame_photons: float | None = 1000.0) -> Dataset:
    """One simulated experiment by name (tests, benchmarks, ``nxsci simulate``).

    ``sampling`` = N / M (number of patterns over pixels, in (0, MAX_SAMPLING]). Pattern models:
    ``"speckle"`` (ideal speckle of grain ``feature_size`` px), ``"random"`` (white, feature size 0) and
    ``"two-diffuser"`` (:class:`TwoDiffuserModel` with grits ``(0.75, 2.0) x feature_size``, i.e. its
    defaults (1.5, 4.0) px at the default feature size 2; positions stored as metadata
    ``diffuser_positions`` (N, 2, 2)). The phantom uses ``seed`` itself (``battery_phantom(size, seed)``);
    patterns and noise use streams derived from it.
    """
    if phantom not in PHANTOMS:
        raise ValueError(f"unknown phantom '{phantom}'; choose one of {', '.join(PHANTOMS)}")
    if pattern_model not in PATTERN_MODELS:
        raise ValueError(f"unknown pattern model '{pattern_model}'; choose one of {', '.join(PATTERN_MODELS)}")
    size = int(size)
    if size < 16:
        raise ValueError(f"size must be at least 16 px, got {size}")
    if not (math.isfinite(sampling) and 0 < sampling <= MAX_SAMPLING):
        raise ValueError(f"sampling (patterns / pixels) must be in (0, {MAX_SAMPLING}], got {sampling!r}")
    fs = float(feature_size)
    if not (math.isfinite(fs) and fs >= 0):
        raise ValueError(f"feature_size must be a finite number >= 0, got {feature_size!r}")
    if pattern_model == "two-diffuser" and fs <= 0:
        raise ValueError("the two-diffuser model needs feature_size > 0 (it sets the diffuser grit)")
    m = size * size
    n = max(1, int(round(sampling * m)))
    if n * m * 4 > MAX_PATTERN_BYTES:
        raise ValueError(f"{n} patterns of {size}x{size} would need {n * m * 4 / 1024**3:.1f} GiB; "
                         f"lower the size or the sampling")

    ph = battery_phantom(size, seed) if phantom == "battery" else natural_phantom(phantom, size)
    s_pat, s_data = np.random.SeedSequence([int(seed), 1]).spawn(2)
    metadata: dict[str, np.ndarray] = {}
    attrs: dict[str, Any] = {"pattern_model": pattern_model, "feature_size": 0.0 if pattern_model == "random" else fs,
                             "sampling": float(sampling), "size": size, "seed": int(seed)}
    if pattern_model == "two-diffuser":
        grit = (0.75 * fs, 2.0 * fs)
        model = TwoDiffuserModel((size, size), seed=_int_seed(s_pat), grit_px=grit)
        schedule = model.random_schedule(n, seed=_int_seed(s_pat.spawn(1)[0]))
        pats = model.patterns(schedule)
        metadata["diffuser_positions"] = schedule
        attrs["grit_px"] = np.asarray(grit)
    else:
        pats = speckle_patterns(n, (size, size), 0.0 if pattern_model == "random" else fs, seed=s_pat)
    return simulate_dataset(ph, pats, photons=photons, background=background, seed=_int_seed(s_data),
                            shift_sigma=shift_sigma, frame_photons=frame_photons, metadata=metadata, attrs=attrs)
