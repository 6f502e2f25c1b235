"""Scores of a map against its truth: PSNR, SSIM, FRC resolution, MSE and binder painting."""

from __future__ import annotations

import numpy as np

__all__ = ["PARTICLE_FRACTION", "binder_ratio", "score"]

#: particle mask of the binder check: truth > this fraction of the element's maximum
PARTICLE_FRACTION = 0.1


def binder_ratio(x: np.ndarray, truth: np.ndarray, binder: np.ndarray) -> float:
    """Mean of ``x`` over the binder mask / its mean over the element's particles (truth > 10 % of its max).

    Binder carries no element (truth: 0), but the TXM shows it: a TXM-driven method that paints TXM edges or
    thickness into the map raises this ratio. NaN when either mask is empty or the particle mean is <= 0.
    """
    x = np.asarray(x, dtype=np.float64)
    particles = truth > PARTICLE_FRACTION * float(truth.max())
    if not binder.any() or not particles.any():
        return float("nan")
    den = float(np.mean(x[particles]))
    return float(np.mean(x[binder])) / den if den > 0 else float("nan")


def score(x: np.ndarray, truth: np.ndarray, binder: np.ndarray | None = None, *,
          frc: bool = True) -> dict[str, float]:
    """PSNR (standard, truth's range), SSIM, MSE, FRC resolution (px; skipped when ``frc`` is false) and, with a
    binder mask, the binder ratio."""
    from nxsci.recon import frc_resolution, psnr, ssim

    truth = np.asarray(truth, dtype=np.float64)
    out = {"psnr": float(psnr(x, truth)), "ssim": float(ssim(x, truth))}
    if frc:
        out["frc_px"] = float(frc_resolution(x, truth))
    out["mse"] = float(np.mean((np.asarray(x, dtype=np.float64) - truth) ** 2))
    if binder is not None:
        out["binder_ratio"] = binder_ratio(x, truth, binder)
    return out
