"""TV-oracle: nxsci's own converged ``tv`` at the weight that is best against the ground truth.

What it is: ``get_solver("tv", {"weight": w, **ORACLE_PARAMS})`` (the library's default TV, exact-x-update ADMM
run to its tolerance; the iteration cap raised so that weak weights converge too), one cold public call per
weight, so the oracle is exactly what a user of ``tv`` at that weight gets. The public solver offers no warm
start across weights, and one 64x64 fit takes a fraction of a second, so cold calls cost little.

How the weight is found (a bracketed search, per element): the grid is w = 10^(k/4) (quarter decades); a
hill-climb in half-decade steps from a start weight (the element's automatic-weight TV choice, when known)
until the best is bracketed by two worse neighbours, then the two quarter-decade neighbours of the best.
It assumes PSNR is unimodal in log(w). Typically 5-7 fits; at most ``ORACLE_MAX_FITS``.
``dense_sweep`` (eighth decades, for checks) measures what the coarser search leaves.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .scoring import score

__all__ = ["ORACLE_K_RANGE", "ORACLE_MAX_FITS", "ORACLE_DEFAULT_START", "ORACLE_PARAMS", "oracle_search",
           "TVFitter", "OracleResult", "find_oracle", "dense_sweep", "grid_k"]

#: quarter-decade log grid of the search: w = 10 ** (k / 4)
ORACLE_K_RANGE = (-36, -4)  # 1e-9 .. 1e-1
ORACLE_MAX_FITS = 14
ORACLE_DEFAULT_START = 1e-5
#: the library's ``tv`` parameters besides the weight: ADMM to its default tolerance, cap raised (default 2000)
ORACLE_PARAMS: dict[str, Any] = {"iterations": 10_000}


def grid_k(weight: float, step: int = 1) -> int:
    """The grid index nearest to ``weight``, a multiple of ``step``."""
    return step * round(4 * math.log10(weight) / step)


def oracle_search(fit: Callable[[float], dict[str, Any]], k_start: int, step: int = 2, *,
                  max_fits: int = ORACLE_MAX_FITS,
                  k_range: tuple[int, int] = ORACLE_K_RANGE) -> tuple[int, dict[int, dict[str, Any]]]:
    """Best-MSE weight on the grid 10^(k/4): hill-climb from ``k_start`` in steps of ``step`` quarter decades
    (2 = half-decades, for a rough start; 1 when the start is already a good guess), then, after half-decade
    steps, the two quarter-decade neighbours of the best. Assumes PSNR is unimodal in log(weight).
    ``fit(w)`` returns a dict with at least ``mse``."""
    lo, hi = k_range
    k_start = int(min(max(k_start, lo), hi))
    runs: dict[int, dict[str, Any]] = {}

    def ev(k: int) -> None:
        if lo <= k <= hi and k not in runs and len(runs) < max_fits:
            runs[k] = fit(10.0 ** (k / 4.0))

    def best() -> int:  # ties go to the stronger weight (the flatter map)
        return min(runs, key=lambda k: (runs[k]["mse"], -k))

    for k in (k_start, k_start + step, k_start - step):
        ev(k)
    while True:
        b = best()
        d = step if b == max(runs) else -step if b == min(runs) else 0
        if d == 0 or b + d in runs or not lo <= b + d <= hi or len(runs) >= max_fits:
            break
        ev(b + d)
        if best() == b:
            break
    if step > 1:
        b = best()
        ev(b - 1)
        ev(b + 1)
    return best(), runs


class TVFitter:
    """The library's converged ``tv`` at any weight, one cold public solver call per weight."""

    mode = "public solver calls (library tv, cold, one per weight)"

    def __init__(self, patterns: np.ndarray, y: np.ndarray, params: dict[str, Any] | None = None) -> None:
        self.patterns, self.y = patterns, y
        self.params = dict(ORACLE_PARAMS if params is None else params)

    def __call__(self, weight: float) -> tuple[np.ndarray, dict[str, Any]]:
        from nxsci.recon import PatternPhysics, get_solver

        solver = get_solver("tv", {**self.params, "weight": weight})
        res = solver(self.y, PatternPhysics(self.patterns))
        its = res.info.get("iterations")
        return res.x, {"iterations": its, "capped": its is not None and its >= solver.params.iterations}


@dataclasses.dataclass
class OracleResult:
    """The oracle of one element: its best weight, that fit's map and scores, and the whole search."""

    weight: float
    k: int
    x: np.ndarray
    scores: dict[str, float]
    grid: list[dict[str, Any]]
    start_weight: float
    seconds: float
    mode: str

    @property
    def at_grid_edge(self) -> bool:
        return self.k in ORACLE_K_RANGE

    def as_dict(self) -> dict[str, Any]:
        """JSON record (no map)."""
        return {"weight": self.weight, "k": self.k, **self.scores, "fits": len(self.grid),
                "start_weight": self.start_weight, "search_seconds": self.seconds, "mode": self.mode,
                "at_grid_edge": self.at_grid_edge, "any_fit_capped": any(g.get("capped") for g in self.grid),
                "grid": self.grid}


def find_oracle(patterns: np.ndarray, y: np.ndarray, truth: np.ndarray, *, start_weight: float | None = None,
                step: int = 2, max_fits: int = ORACLE_MAX_FITS, params: dict[str, Any] | None = None,
                log: Callable[[str], None] | None = None) -> OracleResult:
    """Search the TV-oracle of one element (see the module docstring); the map is the search's own fit at the
    best weight (a cold library call, so identical to a fresh solve)."""
    t0 = time.perf_counter()
    fitter = TVFitter(patterns, y, params)
    maps: dict[float, np.ndarray] = {}

    def fit(weight: float) -> dict[str, Any]:
        t1 = time.perf_counter()
        x, info = fitter(weight)
        maps[weight] = x
        got = {**score(x, truth, frc=False), **info, "weight": weight, "seconds": time.perf_counter() - t1}
        if log is not None:
            log(f"      oracle w={weight:.2e}: PSNR {got['psnr']:.2f} dB, {info['iterations']} it, "
                f"{got['seconds']:.1f} s")
        return got

    start = start_weight if start_weight and start_weight > 0 else ORACLE_DEFAULT_START
    kb, runs = oracle_search(fit, grid_k(start, step), step=step, max_fits=max_fits)
    best = runs[kb]
    grid = [{k: runs[i][k] for k in ("weight", "psnr", "ssim", "iterations", "capped")} for i in sorted(runs)]
    return OracleResult(weight=best["weight"], k=kb, x=maps[best["weight"]],
                        scores={"psnr": best["psnr"], "ssim": best["ssim"], "mse": best["mse"]}, grid=grid,
                        start_weight=10.0 ** (next(iter(runs)) / 4.0), seconds=time.perf_counter() - t0,
                        mode=fitter.mode)


def dense_sweep(patterns: np.ndarray, y: np.ndarray, truth: np.ndarray, center: float, *, decades: float = 1.5,
                per_decade: int = 8, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """PSNR of the same library ``tv`` on a finer grid (``per_decade`` weights a decade, ``decades`` either side
    of ``center``): a check of how much the quarter-decade search leaves on the table."""
    fitter = TVFitter(patterns, y, params)
    n = int(round(decades * per_decade))
    out = []
    for j in range(-n, n + 1):
        w = center * 10.0 ** (j / per_decade)
        x, info = fitter(w)
        out.append({"weight": w, **score(x, truth, frc=False), **info})
    return out
