"""Comparing two models by their held-out residuals of the same measurements (cross-validation folds shared)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["compare_heldout"]


def compare_heldout(plain: np.ndarray, guided: np.ndarray, sigma: np.ndarray | None) -> dict[str, float]:
    """Paired comparison of two models' held-out residuals of the same measurements: the mean of
    ``plain^2 - guided^2`` (chi^2 units with sigma), its standard error, and each model's mean."""
    w = 1.0 if sigma is None else 1.0 / np.square(np.asarray(sigma, dtype=np.float64))
    a = np.square(plain) * w
    b = np.square(guided) * w
    d = a - b
    n = d.size
    se = float(np.std(d, ddof=1) / math.sqrt(n)) if n > 1 else float("inf")
    gain = float(d.mean())
    significance = gain / se if se > 0 else math.copysign(math.inf, gain) if gain else 0.0
    return {"plain_heldout": float(a.mean()), "guided_heldout": float(b.mean()), "gain": gain,
            "standard_error": se, "significance": float(significance)}
