"""What the TXM image tells a reconstruction: thickness (for the composition model) and edges.

The TXM optical density of a particle is (absorption of its material) x (projected thickness), and an
element map is (element fraction) x (the same thickness). So element map / TXM thickness is the
particle's *composition*: piecewise constant where particles are homogeneous, zero on binder. Solving for
that ratio instead of the map uses the TXM's sharp particle shapes without painting TXM-only particles
(the data set their composition to zero). The TXM background (support film, offset) is removed first.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .._errors import DatasetError

__all__ = ["txm_thickness", "txm_gradient", "denoise_txm"]


def _checked_txm(txm: np.ndarray) -> np.ndarray:
    """The TXM as a float64 image, or a clear error naming what is wrong with it."""
    t = np.asarray(txm, dtype=np.float64)
    if t.ndim != 2:
        raise DatasetError(f"TXM image must be 2-D, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise DatasetError("TXM image contains NaN or infinite values")
    return t


def txm_thickness(txm: np.ndarray, *, background_percentile: float = 5.0, floor: float = 1e-2,
                  denoise_sigma: float = 0.0) -> np.ndarray:
    """Background-free TXM optical density scaled to mean 1, floored at ``floor`` (never exactly 0).

    The floor keeps the composition model able to put a little signal anywhere (a particle the TXM barely
    shows, a registration error at an edge) instead of forcing exact zeros off the TXM's particles.
    """
    t = _checked_txm(txm)
    if denoise_sigma > 0:
        t = ndimage.gaussian_filter(t, denoise_sigma)
    t = np.clip(t - np.percentile(t, background_percentile), 0.0, None)
    mean = float(t.mean())
    if mean <= 0:
        return np.ones_like(t)
    return t / mean + floor


def denoise_txm(txm: np.ndarray, strength: float = 1.0) -> tuple[np.ndarray, float]:
    """``(denoised, noise)``: the TXM after edge-preserving TV denoising (Chambolle) at ``strength`` x its white-noise
    level, and that level as a fraction of the image's range, estimated from the image itself (wavelet median
    absolute deviation, scikit-image's ``estimate_sigma``).

    Why: the composition model multiplies every map by the TXM thickness, so the TXM's noise goes into every map.
    Measured (64x64 battery, 10 %, white noise of 7.5 % of the TXM's range): composition TV's margin over plain TV
    fell from +4.5..+8.4 dB to +0.3..+2.7; denoised at strength 1 it is +1.8..+3.7. A clean TXM reads ~0.2 % noise
    and is left practically unchanged (maps within 0.02 dB).
    """
    from skimage.restoration import denoise_tv_chambolle, estimate_sigma

    t = _checked_txm(txm)
    spread = float(np.ptp(t))
    if spread <= 0:
        return t, 0.0
    sigma = float(estimate_sigma(t))
    if strength <= 0 or sigma <= 0:
        return t, sigma / spread
    return denoise_tv_chambolle(t, weight=strength * sigma), sigma / spread


def txm_gradient(txm: np.ndarray, *, threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Forward differences of the mean-1 TXM thickness (last row/column zero, as the paper's code).

    ``threshold`` (fraction of the largest gradient magnitude) zeroes the weak gradients that are mostly
    noise, as the paper suggests for noisy TXM images.
    """
    t = txm_thickness(txm, floor=0.0)
    gy = np.zeros_like(t)
    gx = np.zeros_like(t)
    gy[:-1, :] = t[1:, :] - t[:-1, :]
    gx[:, :-1] = t[:, 1:] - t[:, :-1]
    if threshold > 0:
        mag = np.hypot(gy, gx)
        weak = mag < threshold * float(mag.max())
        gy[weak] = 0.0
        gx[weak] = 0.0
    return gy, gx
