"""Choosing a regularisation weight without ground truth: K-fold cross-validation on the patterns.

Every pattern is held out exactly once, so the prediction error is summed over all N measurements,
which is much less noisy than one random 10 % hold-out. The search is coarse-to-fine (decades, then
half-decades around the best, then the vertex of a parabola in log(weight), the shape corrct's
``fit_func_min`` also assumes), and every fit warm-starts from the nearest weight already solved.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from ._solver_base import ProgressCallback

__all__ = ["CrossValidationResult", "kfold_masks", "cross_validate_weight", "refine_log_minimum"]

#: solve(weight, train_mask, warm_start) -> map (H, W)
TrainFunction = Callable[[float, np.ndarray, np.ndarray | None], np.ndarray]


@dataclasses.dataclass
class CrossValidationResult:
    """The chosen weight and the whole curve, reported with the result so a user can check the choice."""

    weight: float
    grid: list[float]
    loss: list[float]
    folds: int

    def as_dict(self) -> dict[str, object]:
        return {"weight": self.weight, "grid": self.grid, "cv_loss": self.loss, "folds": self.folds}


def kfold_masks(n: int, folds: int, seed: int = 0) -> list[np.ndarray]:
    """Boolean hold-out masks, one per fold, covering each measurement exactly once."""
    order = np.random.default_rng(seed).permutation(n)
    assign = np.empty(n, dtype=np.int64)
    assign[order] = np.arange(n) % folds
    return [assign == k for k in range(folds)]


def refine_log_minimum(grid: Sequence[float], loss: Sequence[float]) -> float:
    """Vertex of the parabola through the grid minimum and its neighbours, in log(weight)."""
    order = np.argsort(grid)
    g = np.log(np.asarray(grid, dtype=np.float64)[order])
    f = np.asarray(loss, dtype=np.float64)[order]
    i = int(np.argmin(f))
    if i == 0 or i == f.size - 1:
        return float(np.exp(g[i]))
    x0, x1, x2 = g[i - 1:i + 2]
    y0, y1, y2 = f[i - 1:i + 2]
    denom = (x0 - x1) * (x0 - x2) * (x1 - x2)
    a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denom
    b = (x2**2 * (y0 - y1) + x1**2 * (y2 - y0) + x0**2 * (y1 - y2)) / denom
    if a <= 0:
        return float(np.exp(g[i]))
    return float(np.exp(np.clip(-b / (2 * a), x0, x2)))


class _FoldCache:
    """Loss per weight summed over folds, with each fold's solutions kept for warm starts."""

    def __init__(self, train: TrainFunction, y: np.ndarray, a: np.ndarray, masks: list[np.ndarray],
                 progress: ProgressCallback | None, span: tuple[float, float], planned: int) -> None:
        self.train, self.y, self.a, self.masks = train, y, a, masks
        self.solutions: list[dict[float, np.ndarray]] = [{} for _ in masks]
        self.loss: dict[float, float] = {}
        self.progress, self.span, self.planned, self.done = progress, span, planned, 0

    def evaluate(self, weight: float) -> float:
        if weight in self.loss:
            return self.loss[weight]
        total = 0.0
        for k, held in enumerate(self.masks):
            known = self.solutions[k]
            warm = known[min(known, key=lambda w: abs(math.log(w / weight)))] if known else None
            x = self.train(weight, (~held).astype(np.float32), warm)
            known[weight] = x
            r = self.a[held] @ x.ravel().astype(np.float64) - self.y[held]
            total += float(r @ r)
            self.done += 1
            if self.progress:
                lo, hi = self.span
                frac = min(self.done / max(self.planned, 1), 1.0)
                self.progress(lo + (hi - lo) * frac, f"cross-validation fit {self.done}/{self.planned}")
        self.loss[weight] = total
        return total


def cross_validate_weight(train: TrainFunction, y: np.ndarray, a: np.ndarray, weight_range: tuple[float, float], *,
                          folds: int = 5, seed: int = 0, coarse_step: float = 10.0,
                          progress: ProgressCallback | None = None,
                          progress_span: tuple[float, float] = (0.0, 1.0)) -> CrossValidationResult:
    """K-fold prediction error, searched coarse-to-fine over ``weight_range`` (log scale)."""
    lo, hi = sorted(float(v) for v in weight_range)
    n_coarse = max(2, int(round(math.log(hi / lo) / math.log(coarse_step))) + 1)
    coarse = list(np.geomspace(lo, hi, n_coarse))
    masks = kfold_masks(y.size, folds, seed)
    cache = _FoldCache(train, y, a, masks, progress, progress_span, planned=(n_coarse + 2) * folds)
    for w in reversed(coarse):  # strong -> weak: smooth solutions warm-start the detailed ones
        cache.evaluate(float(w))
    best = min(cache.loss, key=cache.loss.__getitem__)
    half = math.sqrt(coarse[1] / coarse[0]) if n_coarse > 1 else math.sqrt(coarse_step)
    for w in (best / half, best * half):
        if lo / half * 1.0001 <= w <= hi * half * 0.9999:
            cache.evaluate(float(w))
    grid = sorted(cache.loss)
    loss = [cache.loss[w] for w in grid]
    # refine on the locally uniform half-decade triple around the minimum
    best = min(cache.loss, key=cache.loss.__getitem__)
    triple = [w for w in grid if abs(math.log(w / best)) <= math.log(half) * 1.01]
    weight = refine_log_minimum(triple, [cache.loss[w] for w in triple]) if len(triple) == 3 else best
    return CrossValidationResult(weight=weight, grid=grid, loss=loss, folds=folds)
