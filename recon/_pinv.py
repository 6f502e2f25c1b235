"""Truncated-SVD pseudo-inverse, the paper's "direct inversion" baseline.

The cut-off is chosen by generalised cross-validation (GCV), which needs no ground truth and has a
closed form for truncated SVD, so choosing it costs nothing beyond the SVD itself.
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
from pydantic import Field

from ._physics import PatternPhysics
from ._solver_base import ProgressCallback, Solver, SolverParams, SolverResult, register_solver

__all__ = ["PseudoInverse", "PseudoInverseParams", "gcv_truncation"]


class PseudoInverseParams(SolverParams):
    rank: int | Literal["auto", "full"] = Field(
        "auto", description="number of singular values kept; 'auto' picks it by GCV, 'full' keeps all above rcond")
    rcond: float = Field(1e-6, gt=0, lt=1, description="relative singular-value floor for 'full'")


def gcv_truncation(s: np.ndarray, uty: np.ndarray, residual0: float, n: int) -> tuple[int, np.ndarray]:
    """GCV(k) = n ||y - U_k U_k^T y||^2 / (n - k)^2; returns the minimising k and the curve."""
    energy = np.cumsum(uty**2)
    res = np.maximum(residual0 - energy, 0.0)
    k = np.arange(1, s.size + 1)
    denom = (n - k).astype(np.float64) ** 2
    valid = denom > 0
    gcv = np.full(s.size, np.inf)
    gcv[valid] = n * res[valid] / denom[valid]
    return int(np.argmin(gcv)) + 1, gcv


@register_solver
class PseudoInverse(Solver):
    """Moore-Penrose pseudo-inverse with a truncated SVD."""

    name = "pinv"
    Params = PseudoInverseParams
    description = "Truncated-SVD pseudo-inverse (cut-off by generalised cross-validation)."

    def solve(self, y: np.ndarray, physics: PatternPhysics, *, guide: np.ndarray | None,
              progress: ProgressCallback | None) -> SolverResult:
        t0 = time.perf_counter()
        a = physics.numpy_matrix().astype(np.float64)
        u, s, vt = np.linalg.svd(a, full_matrices=False)
        keep = s > s[0] * self.params.rcond
        u, s, vt = u[:, keep], s[keep], vt[keep]
        uty = u.T @ y
        if self.params.rank == "auto":
            k, _ = gcv_truncation(s, uty, float(y @ y), y.size)
        elif self.params.rank == "full":
            k = s.size
        else:
            k = max(1, min(int(self.params.rank), s.size))
        x = vt[:k].T @ (uty[:k] / s[:k])
        if progress:
            progress(1.0, f"rank {k}")
        resid = float(np.linalg.norm(a @ x - y) / max(np.linalg.norm(y), 1e-300))
        return SolverResult(x=x.reshape(physics.img_shape).astype(np.float32),
                            info={"rank": k, "max_rank": int(s.size), "relative_residual": resid,
                                  "seconds": time.perf_counter() - t0})
