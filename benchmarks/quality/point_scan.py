"""Raster point scanning at the same N and dose as a structured-illumination run (the paper's comparison).

Dose rule: the structured-illumination run delivers the incident dose F = sum_i sum_r P_i(r); the raster scan
spends the same F on its n points (D = F / n per point, all on one pixel), records Poisson counts and
interpolates back to the grid. See recon_quality.py's docstring for the full rule.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["scan_grid", "point_scan"]


def scan_grid(n: int, h: int, w: int, max_aspect: float = 1.25) -> tuple[int, int]:
    """Rows x columns of a raster with at most ``n`` points, as many as possible, near the field's aspect."""
    best: tuple[int, float, int, int] | None = None
    for ny in range(1, h + 1):
        nx = min(w, n // ny)
        if nx < 1:
            break
        dev = abs(math.log((ny / nx) / (h / w)))
        if dev > math.log(max_aspect) + 1e-12:
            continue
        key = (ny * nx, -dev, ny, nx)
        if best is None or key[:2] > best[:2]:
            best = key
    if best is None:  # tiny n: give up the aspect constraint
        side = max(1, int(math.isqrt(n)))
        return min(side, h), min(max(1, n // side), w)
    return best[2], best[3]


def point_scan(truth: np.ndarray, n: int, total_dose: float, rng: np.random.Generator,
               interp: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Simulated raster XRF scan of ``truth`` (signal units) with ``n`` points sharing ``total_dose``."""
    from scipy.interpolate import RegularGridInterpolator

    h, w = truth.shape
    ny, nx = scan_grid(n, h, w)
    ys = np.round((np.arange(ny) + 0.5) * h / ny - 0.5).astype(int)
    xs = np.round((np.arange(nx) + 0.5) * w / nx - 0.5).astype(int)
    n_pts = ny * nx
    dose = total_dose / n_pts  # incident units per point, all on one pixel
    expected = dose * np.clip(truth[np.ix_(ys, xs)].astype(np.float64), 0.0, None)
    counts = rng.poisson(expected)
    values = counts / dose
    if ny == h and nx == w:
        img = values
    else:
        method = interp if min(ny, nx) >= 4 else "linear"
        if min(ny, nx) < 2:
            img = np.full((h, w), values.mean())
        else:
            f = RegularGridInterpolator((ys.astype(float), xs.astype(float)), values, method=method)
            qy = np.clip(np.arange(h, dtype=float), ys[0], ys[-1])
            qx = np.clip(np.arange(w, dtype=float), xs[0], xs[-1])
            gy, gx = np.meshgrid(qy, qx, indexing="ij")
            img = f(np.stack([gy.ravel(), gx.ravel()], axis=-1)).reshape(h, w)
    info = {"grid": [int(ny), int(nx)], "points": int(n_pts), "dose_per_point": float(dose),
            "mean_counts_per_point": float(counts.mean()), "interp": interp}
    return np.clip(img, 0.0, None).astype(np.float32), info
