"""Choosing a regularisation weight without ground truth: K-fold cross-validation on the patterns.

Every pattern is held out exactly once and the prediction error is summed over all N measurements.
Prediction error in measurement space cannot see errors in the null space of the (smooth, strongly
correlated) patterns, so its minimum systematically under-regularises: measured on 64x64 battery
cases, the CV minimum lost up to 1.2 dB against the ground-truth-best weight. The standard-error rule
(the largest weight whose CV loss is within ``se_factor`` standard errors of the minimum; with factor 1
this is the one-standard-error rule of Breiman et al. 1984 / Hastie et al. ESL 7.10) removes that bias.
Measured on 12 random 64x64 battery cases (5-25 % sampling, Mn/Co/Ni, Poisson noise), the gap to the
ground-truth-best weight was: CV minimum mean 0.60 / max 1.17 dB; factor 0.5 mean 0.10 / max 0.33 dB;
factor 1 mean 0.13 / max 0.62 dB. The default is 0.5.

Search: decades over the range (stepping outwards, up to 3 decades, when the best is on its edge),
the half- and quarter-decade neighbours of the best (fitted side by side), then quarter-decade steps
upwards (two at a time) until the loss leaves the band; the crossing is interpolated in log(weight). Every fit
warm-starts from the nearest weight already solved in the same fold.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Generator, Sequence
from typing import Any, Literal

import numpy as np

__all__ = ["CrossValidationResult", "kfold_masks", "start_cross_validation", "weight_search", "refine_log_minimum",
           "DiscrepancyResult", "discrepancy_search", "drive", "nearest_state", "planned_steps"]

Rule = Literal["se", "min"]


@dataclasses.dataclass
class CrossValidationResult:
    """The chosen weight and the whole curve, reported with the result so a user can check the choice."""

    weight: float
    grid: list[float]
    loss: list[float]
    folds: int
    rule: str
    se_factor: float
    min_weight: float
    standard_error: float
    #: seed of the fold assignment (:func:`kfold_masks`), so the folds can be rebuilt (e.g. to score a
    #: uniform map on the same folds)
    seed: int = 0
    #: held-out residual of every measurement (prediction - y) at ``min_weight``: what compares two models
    #: measurement by measurement on the same folds (not reported: N numbers)
    heldout_residuals: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def min_loss(self) -> float:
        return min(self.loss)

    def as_dict(self) -> dict[str, object]:
        return {"weight": self.weight, "rule": self.rule, "se_factor": self.se_factor,
                "cv_min_weight": self.min_weight,
                "standard_error": self.standard_error, "grid": self.grid, "cv_loss": self.loss,
                "folds": self.folds, "seed": self.seed}


def kfold_masks(n: int, folds: int, seed: int = 0) -> list[np.ndarray]:
    """Boolean hold-out masks, one per fold, covering each measurement exactly once."""
    if n < folds:
        raise ValueError(f"{n} measurements cannot be split into {folds} cross-validation folds")
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


#: a weight search: yields the weights it needs, is sent each one's per-fold losses, returns the result
WeightSearch = Generator[tuple[float, ...], list[np.ndarray], CrossValidationResult]
#: request(weight, reply): start evaluating ``weight``; ``reply(value)`` is called once it is known
Request = Callable[[float, Callable[[Any], None]], None]
#: fit(weight, fold, train_mask, warm_state, on_done): start one fold's fit; on_done(map (H, W), state)
FoldFit = Callable[[float, int, np.ndarray, Any, Callable[[np.ndarray, Any], None]], None]


def _key(weight: float) -> float:
    return float(f"{weight:.9e}")  # grid points reached by different paths coincide


def _coarse_count(lo: float, hi: float) -> int:
    """Decades in the search range, ends included: the first grid of :func:`weight_search`."""
    return max(2, int(round(math.log10(hi / lo))) + 1)


def planned_steps(weight_range: tuple[float, float]) -> int:
    """About how many weights :func:`weight_search` evaluates (for progress reports)."""
    return _coarse_count(*sorted(float(v) for v in weight_range)) + 3  # + neighbours and ~2 band steps (measured)


def nearest_state(known: dict[float, Any], weight: float) -> Any:
    """The solver state of the already-solved weight nearest ``weight`` in log scale (None when none):
    what a search warm-starts its next fit from."""
    return known[min(known, key=lambda v: abs(math.log(v / weight)))] if known else None


def weight_search(weight_range: tuple[float, float], *, folds: int, rule: Rule = "se",
                  se_factor: float = 0.5) -> WeightSearch:
    """The coarse-to-fine search of the module docstring, written as a coroutine (yields the weights of its
    next step, is sent their per-fold losses) so that the fits of several searches, and of the weights of one
    step, can run side by side and be batched."""
    fold_loss: dict[float, np.ndarray] = {}

    def evaluate(*weights: float) -> Generator[tuple[float, ...], list[np.ndarray], np.ndarray]:
        """The per-fold losses of ``weights`` (the last one's returned); the unknown ones are asked for in
        one step, so their fits run side by side."""
        todo = tuple(dict.fromkeys(w for w in map(_key, weights) if w not in fold_loss))
        if todo:
            for w, loss in zip(todo, (yield todo)):
                fold_loss[w] = np.asarray(loss, dtype=np.float64)
        return fold_loss[_key(weights[-1])]

    def total(weight: float) -> float:
        return float(fold_loss[_key(weight)].sum())

    lo, hi = sorted(float(v) for v in weight_range)
    coarse = np.geomspace(lo, hi, _coarse_count(lo, hi))
    for w in coarse[::-1]:  # strong -> weak: smooth solutions warm-start the detailed ones
        yield from evaluate(w)
    half = math.sqrt(coarse[1] / coarse[0])
    best = min(fold_loss, key=total)
    # a minimum on the edge of the range: the range was a guess, so step outwards (at most 3 decades)
    decade = coarse[1] / coarse[0]
    for _ in range(3):
        if best <= lo * 1.0001:
            lo = lo / decade
        elif best >= hi / 1.0001:
            hi = hi * decade
        else:
            break
        yield from evaluate(lo if best <= lo * decade * 1.0001 else hi)
        best = min(fold_loss, key=total)
    # half- and quarter-decade neighbours of the best, so the minimum is located at the resolution of the
    # rule's steps; all four in one step (each warm-starts from the best)
    near = [w for w in (best / half, best * half, best / math.sqrt(half), best * math.sqrt(half))
            if lo <= w * 1.0001 and w <= hi * 1.0001]
    if near:
        yield from evaluate(*near)
    best = min(fold_loss, key=total)
    se = float(math.sqrt(folds) * np.std(fold_loss[_key(best)]))
    if rule == "min":
        grid = sorted(fold_loss)
        near = [w for w in grid if abs(math.log(w / best)) <= math.log(half) * 1.01]
        chosen = refine_log_minimum(near, [total(w) for w in near]) if len(near) == 3 else best
    else:
        # the largest weight above the minimum whose loss stays within min + band (log-interpolated crossing)
        # two quarter-decade steps per search step: the second is wasted when the first leaves the band, but
        # fits side by side cost little more than one, and the search is a step shorter when it does not
        limit = total(best) + se_factor * se
        step = math.sqrt(half)
        chosen = w = best
        crossed = False
        while not crossed and w * step <= hi * 1.0001:
            ahead = [v for v in (w * step, w * step * step) if v <= hi * 1.0001]
            if _key(ahead[0]) in fold_loss:  # known already: decide on it before asking for more
                ahead = ahead[:1]
            yield from evaluate(*ahead)
            for w in ahead:
                loss = total(w)
                if loss > limit:
                    lp = total(chosen)
                    t = (limit - lp) / (loss - lp) if loss > lp else 0.0
                    chosen = float(math.exp(math.log(chosen) + t * (math.log(w) - math.log(chosen))))
                    crossed = True
                    break
                chosen = w
    grid = sorted(fold_loss)
    return CrossValidationResult(weight=chosen, grid=grid, loss=[total(w) for w in grid], folds=folds,
                                 rule=rule, se_factor=se_factor, min_weight=best, standard_error=se)


def drive(search: Generator[float, Any, Any], request: Request, finish: Callable[[Any], None]) -> None:
    """Run a search coroutine against asynchronous evaluations: each weight it yields is requested, the reply
    is sent back in, and ``finish`` gets its result. Evaluations run in whatever loop serves ``request``
    (e.g. an ADMM pool), so several searches proceed side by side and share its work."""
    def advance(value: Any) -> None:
        try:
            weight = search.send(value)
        except StopIteration as stop:
            finish(stop.value)
            return
        request(weight, advance)

    advance(None)


def start_cross_validation(fit: FoldFit, y: np.ndarray, a: np.ndarray, weight_range: tuple[float, float], *,
                           finish: Callable[[CrossValidationResult], None], folds: int = 5, seed: int = 0,
                           rule: Rule = "se", se_factor: float = 0.5,
                           on_step: Callable[[], None] | None = None) -> None:
    """Start the K-fold search of the module docstring for one measurement set ``y``: each weight's folds are
    fitted through ``fit`` (warm-started from the nearest weight already solved in the same fold), and the
    held-out prediction errors go back to the search; ``finish`` gets the result."""
    masks = kfold_masks(y.size, folds, seed)
    states: list[dict[float, Any]] = [{} for _ in masks]
    residuals: dict[float, np.ndarray] = {}

    def request(weights: tuple[float, ...], reply: Callable[[list[np.ndarray]], None]) -> None:
        maps: dict[tuple[int, int], np.ndarray] = {}
        warms = [[nearest_state(states[k], w) for k in range(folds)] for w in weights]  # before any lands

        def done(j: int, k: int, x: np.ndarray, state: Any) -> None:
            states[k][weights[j]] = state
            maps[j, k] = x
            if len(maps) == folds * len(weights):  # all in: one pass over A predicts every held-out set
                pred = np.stack([np.asarray(maps[j, k], dtype=np.float64).ravel()
                                 for j in range(len(weights)) for k in range(folds)]) @ a.T
                pred = pred.reshape(len(weights), folds, -1)
                for j, weight in enumerate(weights):
                    r = np.empty(y.size)
                    for k, held in enumerate(masks):
                        r[held] = pred[j, k, held] - y[held]
                    residuals[weight] = r
                if on_step is not None:
                    on_step()
                reply([np.array([float((residuals[weights[j]][held] ** 2).sum()) for held in masks])
                       for j in range(len(weights))])

        for j, weight in enumerate(weights):
            for k, held in enumerate(masks):
                fit(weight, k, ~held, warms[j][k], lambda x, st, j=j, k=k: done(j, k, x, st))

    drive(weight_search(weight_range, folds=folds, rule=rule, se_factor=se_factor), request,
          lambda result: finish(dataclasses.replace(result, seed=seed,
                                                    heldout_residuals=residuals.get(_key(result.min_weight)))))


@dataclasses.dataclass
class DiscrepancyResult:
    """Morozov's discrepancy principle: the weight whose fit leaves chi^2 / N = ``target`` (reported with
    the whole curve, so a user can see how well the noise model fits)."""

    weight: float
    target: float
    grid: list[float]
    chi2: list[float]
    bracketed: bool

    def as_dict(self) -> dict[str, object]:
        return {"weight": self.weight, "rule": "discrepancy", "target_chi2": self.target, "grid": self.grid,
                "chi2_per_measurement": self.chi2, "bracketed": self.bracketed}


def discrepancy_search(weight_range: tuple[float, float], *, target: float = 1.0, rel_tol: float = 0.03,
                       max_refine: int = 8) -> Generator[float, float, DiscrepancyResult]:
    """Coroutine: yields weights, is sent chi^2/N of the fit at each (increasing with the weight).

    Decades from strong to weak until the target is bracketed (stepping up to 3 decades past the range) or a
    weight lands within ``rel_tol`` of it (then that weight is the answer), then regula falsi (Illinois) in log(weight) vs log(chi^2) until chi^2 is within ``rel_tol`` of the
    target or the bracket is narrower than 1/16 decade; the answer is log-interpolated in the bracket.
    """
    chi: dict[float, float] = {}

    def evaluate(weight: float) -> Generator[float, float, float]:
        w = _key(weight)
        if w not in chi:
            chi[w] = max(float((yield w)), 1e-300)
        return chi[w]

    def result(weight: float, bracketed: bool) -> DiscrepancyResult:
        grid = sorted(chi)
        return DiscrepancyResult(weight=float(weight), target=target, grid=grid, chi2=[chi[g] for g in grid],
                                 bracketed=bracketed)

    def on_target(c: float) -> bool:  # within rel_tol: the answer, whether or not it is bracketed yet
        return abs(math.log(c / target)) < math.log1p(rel_tol)

    lo, hi = sorted(float(v) for v in weight_range)
    strong, c_strong = hi, (yield from evaluate(hi))
    for _ in range(3):  # even the strongest weight fits the data within the noise: look further up
        if c_strong >= target or on_target(c_strong):
            break
        strong = strong * 10.0
        c_strong = yield from evaluate(strong)
    if on_target(c_strong):
        return result(strong, True)
    if c_strong < target:
        return result(strong, False)
    weak, c_weak = strong, c_strong
    floor = lo / 1000.0
    while c_weak >= target:
        if on_target(c_weak):  # no need to bracket: a weaker fit would only take longer (weak fits are slow)
            return result(weak, True)
        if weak / 10.0 < floor * 0.999:
            return result(weak, False)  # the data cannot be fitted down to the noise level in the range
        strong, c_strong = weak, c_weak
        weak = weak / 10.0
        c_weak = yield from evaluate(weak)
    if on_target(c_weak):
        return result(weak, True)
    # bracket: weak (chi2 < target) < strong (chi2 >= target); Illinois in log-log
    lw, lcw = math.log(weak), math.log(c_weak) - math.log(target)
    ls, lcs = math.log(strong), math.log(c_strong) - math.log(target)
    side = 0
    for _ in range(max_refine):
        if ls - lw < math.log(10.0) / 16 or min(abs(lcw), abs(lcs)) < math.log1p(rel_tol):
            break
        lm = lw - lcw * (ls - lw) / (lcs - lcw) if lcs != lcw else 0.5 * (lw + ls)
        lm = min(max(lm, lw + 0.02 * (ls - lw)), ls - 0.02 * (ls - lw))
        lcm = math.log((yield from evaluate(math.exp(lm)))) - math.log(target)
        if lcm < 0:
            lw, lcw = lm, lcm
            if side == -1:
                lcs *= 0.5
            side = -1
        else:
            ls, lcs = lm, lcm
            if side == 1:
                lcw *= 0.5
            side = 1
    if abs(lcw) <= abs(lcs) and abs(lcw) < math.log1p(rel_tol):
        return result(math.exp(lw), True)
    if abs(lcs) < math.log1p(rel_tol):
        return result(math.exp(ls), True)
    cw, cs = math.log(chi[_key(math.exp(lw))] / target), math.log(chi[_key(math.exp(ls))] / target)
    t = -cw / (cs - cw) if cs != cw else 0.5
    return result(math.exp(lw + t * (ls - lw)), True)
