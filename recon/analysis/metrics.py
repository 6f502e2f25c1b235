"""Image-quality metrics: PSNR, SSIM and Fourier ring correlation (FRC).

PSNR here is the standard ``10 log10(range^2 / MSE)`` with ``range = max(ref) - min(ref)``. The paper's
reference code computed ``10 log10(max / MSE)`` (no square), which is not comparable across scales; our
numbers therefore differ from the paper's figure values by construction.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from skimage.metrics import structural_similarity

__all__ = ["psnr", "ssim", "frc", "frc_resolution", "FRCResult"]


def _pair(x: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(ref, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs reference {b.shape}")
    return a, b


def psnr(x: np.ndarray, ref: np.ndarray, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(range^2 / MSE)``; range defaults to the reference's span."""
    a, b = _pair(x, ref)
    rng = float(b.max() - b.min()) if data_range is None else float(data_range)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return float("inf")
    return 10.0 * np.log10(rng**2 / mse)


def ssim(x: np.ndarray, ref: np.ndarray, data_range: float | None = None) -> float:
    """Structural similarity (Wang et al. 2004, Gaussian window) with the reference's span as range."""
    a, b = _pair(x, ref)
    rng = float(b.max() - b.min()) if data_range is None else float(data_range)
    return float(structural_similarity(a, b, data_range=rng if rng > 0 else 1.0, gaussian_weights=True,
                                       sigma=1.5, use_sample_covariance=False))


@dataclasses.dataclass
class FRCResult:
    """FRC curve: ``frequency`` in cycles/pixel (0..0.5) and the correlation per ring."""

    frequency: np.ndarray
    correlation: np.ndarray
    threshold: float
    resolution_px: float  # smallest resolved period in pixels (1 / crossing frequency); 2.0 = Nyquist


def frc(a: np.ndarray, b: np.ndarray, *, threshold: float = 1.0 / 7.0, apodize: bool = True) -> FRCResult:
    """Fourier ring correlation between two images (split-half reconstructions, or a result vs a reference).

    The resolution is the period at the first frequency where the curve falls below ``threshold``
    (fixed 1/7, as in the paper); ``2.0`` means resolved up to Nyquist.
    """
    x, y = _pair(a, b)
    if x.ndim != 2:
        raise ValueError(f"FRC needs 2-D images, got shape {x.shape}")
    h, w = x.shape
    x = x - x.mean()
    y = y - y.mean()
    if apodize:  # a Hann window suppresses the edge cross artefact of the FFT
        win = np.outer(np.hanning(h), np.hanning(w))
        x, y = x * win, y * win
    fx, fy = np.fft.fft2(x), np.fft.fft2(y)
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.fftfreq(w)[None, :]
    r = np.sqrt(ky**2 + kx**2)
    nbins = min(h, w) // 2
    edges = np.linspace(0.0, 0.5, nbins + 1)
    idx = np.digitize(r.ravel(), edges) - 1
    valid = (idx >= 0) & (idx < nbins)
    num = np.bincount(idx[valid], (fx * np.conj(fy)).real.ravel()[valid], nbins)
    d1 = np.bincount(idx[valid], (np.abs(fx) ** 2).ravel()[valid], nbins)
    d2 = np.bincount(idx[valid], (np.abs(fy) ** 2).ravel()[valid], nbins)
    corr = num / np.sqrt(np.maximum(d1 * d2, 1e-300))
    freq = 0.5 * (edges[:-1] + edges[1:])
    res = 2.0
    below = np.nonzero(corr[1:] < threshold)[0]
    if below.size:
        k = int(below[0]) + 1
        # linear interpolation of the crossing between ring k-1 and k
        c0, c1 = corr[k - 1], corr[k]
        t = 0.0 if c0 == c1 else (c0 - threshold) / (c0 - c1)
        f_cross = freq[k - 1] + t * (freq[k] - freq[k - 1])
        res = float(1.0 / max(f_cross, 1e-9))
    return FRCResult(frequency=freq, correlation=corr, threshold=threshold, resolution_px=res)


def frc_resolution(a: np.ndarray, b: np.ndarray, threshold: float = 1.0 / 7.0) -> float:
    """Resolution in pixels at the 1/7 FRC threshold (see :func:`frc`)."""
    return frc(a, b, threshold=threshold).resolution_px
