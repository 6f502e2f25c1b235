"""Total-variation baselines (TVAL3's class of method) behind our solver interface.

Two backends: a converged exact-x-update ADMM (``tv_admm``, default) and corrct's preconditioned PDHG
(the library reference; fixed iteration count, 2000 by default, which is not always converged on the
strongly correlated recorded-like patterns).

``tv``: isotropic TV + non-negativity. ``guided-tv``: the TV weight is lowered where the TXM image has
edges, so edges the TXM shows are cheap; where it shows none, smoothing stays strong. The weight is
given relative to ``||A||^2`` on a problem normalised to unit map scale, so one number means the same
thing at any count level. Choosing it without ground truth: K-fold cross-validation (``"cv"``) or the
discrepancy principle (``"discrepancy"``, chi^2/N = 1 with the measurements' uncertainties from the spectrum
fit). Each errs towards weak weights in its own situation: CV because held-out prediction error cannot see
errors in the patterns' null space, the discrepancy principle when the model error (noisy recorded patterns)
adds to the counting noise. ``"auto"`` is the rule measured best for each method: for composition TV the
larger of the two when uncertainties are given (CV alone otherwise; benchmarks/weight_rules.py); for plain and
guided TV, CV alone, because there the discrepancy weight over-regularises: measured on 64x64 battery, graded
and real-map (HXN XRF, EELS) cases at 10 %, the discrepancy weight was 2-6x the ground-truth-best one and lost
0.65 dB on average (up to 2.1 dB) against TV-oracle, CV with the 0.5-standard-error rule 0.20 dB (up to 0.8).

All elements are solved together (same patterns, so shared factorisations and batched ADMM iterations).
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Literal

import numpy as np
import torch
from pydantic import Field, field_validator
from scipy import ndimage

from .._errors import SolverError
from ..physics.forward import PatternPhysics, single_threaded_blas
from .tv_admm import ADMMPool, ADMMState, TVBasis, TVSystem
from .tv_progress import Search, TVSolveProgress
from .base import ProgressCallback, Solver, SolverParams, SolverResult
from .weight_selection import (CrossValidationResult, DiscrepancyResult, discrepancy_search, drive, nearest_state,
                                planned_steps, start_cross_validation)

__all__ = ["TV", "TVParams", "GuidedTV", "GuidedTVParams", "CompositionTV", "CompositionTVParams", "txm_edge_weights",
           "map_scale"]


#: the 'auto' rule when uncertainties are given
AUTO_BOTH = "larger of cv and discrepancy"
#: about how many steps a discrepancy search takes (decades to bracket, then a few regula-falsi steps)
DISCREPANCY_PLANNED_STEPS = 6


class TVParams(SolverParams):
    weight: float | Literal["auto", "cv", "discrepancy"] = Field(
        "auto", description="TV weight relative to ||A||^2 (unit-scale problem), or how to choose it: 'discrepancy' "
                            "(Morozov: chi^2/N = discrepancy_target; needs the measurements' uncertainties), "
                            "'cv' (K-fold cross-validation), 'auto' (the rule measured best for the method: cv for "
                            "tv and guided-tv; for composition-tv the larger of the two weights when uncertainties "
                            "are given, else cv)")
    discrepancy_target: float = Field(1.0, gt=0, le=100, description="chi^2 per measurement the 'discrepancy' "
                                                                     "rule aims for (1 = the noise level)")
    backend: Literal["admm", "pdhg"] = Field(
        "admm", description="'admm': exact-x-update ADMM run to tolerance (converged, default); "
                            "'pdhg': corrct's preconditioned PDHG for a fixed number of iterations")
    iterations: int = Field(2000, ge=10, le=100_000, description="PDHG iterations, or ADMM's iteration cap")
    tolerance: float = Field(1e-4, gt=0, lt=1, description="ADMM relative primal/dual residual tolerance")
    cv_iterations: int = Field(400, ge=10, le=100_000, description="iteration cap of each (warm-started) "
                                                                   "cross-validation fit")
    cv_tolerance: float = Field(3e-4, gt=0, lt=1, description="ADMM tolerance of cross-validation fits")
    cv_folds: int = Field(5, ge=2, le=20, description="folds for the automatic weight")
    cv_rule: Literal["se", "min"] = Field(
        "se", description="'se': largest weight within cv_se_factor standard errors of the CV minimum "
                          "(corrects CV's measured under-regularisation); 'min': the CV minimum")
    cv_se_factor: float = Field(0.5, ge=0, le=3, description="width of the 'se' rule's band, in standard errors")
    weight_range: tuple[float, float] = Field((1e-5, 1e-2), description="search range of 'auto' (decades, then "
                                                                       "half-decades around the best; extended by "
                                                                       "up to 3 decades when the best is on an edge)")
    nonnegative: bool = Field(True, description="constrain the map to be >= 0")
    seed: int = Field(0, description="seed of the fold assignment")
    threads: int | None = Field(None, ge=1, le=256, description="threads sharing each pass over the patterns "
                                                                "(None: one per CPU core)")

    @field_validator("weight")
    @classmethod
    def _positive_weight(cls, v: float | str) -> float | str:
        if not isinstance(v, str) and not v >= 0:
            raise ValueError("weight must be >= 0, 'auto', 'cv' or 'discrepancy'")
        return v

    @field_validator("weight_range")
    @classmethod
    def _ordered_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not (0 < v[0] < v[1]):
            raise ValueError("weight_range must be (low, high) with 0 < low < high")
        return v


class GuidedTVParams(TVParams):
    edge_threshold: float = Field(0.15, gt=0, description="TXM gradient (relative to its 99th percentile) "
                                                          "at which the TV weight is halved")
    min_weight: float | Literal["auto"] = Field(
        "auto", description="relative TV weight left on the strongest TXM edges (1 = plain TV); 'auto' = by CV "
                            "(with a fixed weight: the first of auto_min_weights)")
    auto_min_weights: tuple[float, ...] = Field((0.05, 1.0), min_length=1,
                                                description="guidance strengths compared when min_weight='auto'")
    edge_sigma: float = Field(0.7, ge=0, description="Gaussian scale (px) of the TXM gradient")


def map_scale(a: np.ndarray, y: np.ndarray) -> float:
    """Least-squares constant map level c with A(c 1) ~ y: divides y so weights are count-invariant."""
    rows = a.sum(axis=1, dtype=np.float64)
    c = float(rows @ y) / max(float(rows @ rows), 1e-300)
    if not np.isfinite(c) or c <= 0:
        c = float(np.abs(y).mean()) / max(float(np.abs(rows).mean()), 1e-300)
    return c if c > 0 else 1.0


def txm_edge_weights(txm: np.ndarray, *, edge_threshold: float, min_weight: float, sigma: float) -> np.ndarray:
    """Per-pixel TV weight in [min_weight, 1]: ~1 in flat TXM regions, small on TXM edges."""
    img = np.asarray(txm, dtype=np.float64)
    g = ndimage.gaussian_gradient_magnitude(img, sigma) if sigma > 0 else np.hypot(*np.gradient(img))
    ref = float(np.percentile(g, 99))
    if ref <= 0:
        return np.ones_like(img, dtype=np.float32)
    w = 1.0 / (1.0 + (g / (edge_threshold * ref)) ** 2)
    return np.clip(w, min_weight, 1.0).astype(np.float32)


class TV(Solver):
    """Isotropic TV + non-negativity, solved with corrct's preconditioned PDHG."""

    name = "tv"
    Params = TVParams
    uses_sigma = True
    description = "Total variation + non-negativity (converged ADMM), weight by K-fold cross-validation."
    #: whether weight='auto' also runs the discrepancy principle and takes the larger weight (measured per method)
    auto_uses_discrepancy: bool = False

    def _guidance_candidates(self, guide: np.ndarray | None) -> list[tuple[float, np.ndarray | float]]:
        """(label, per-pixel weight map) pairs to choose from; plain TV has one, uniform."""
        return [(1.0, 1.0)]

    def solve(self, y: np.ndarray, physics: PatternPhysics, *, guide: np.ndarray | None,
              progress: ProgressCallback | None) -> SolverResult:
        return self.solve_many(np.asarray(y)[None], physics, guide=guide, progress=progress)[0]

    def solve_many(self, ys: np.ndarray, physics: PatternPhysics, *, guide: np.ndarray | None,
                   progress: ProgressCallback | None, sigma: np.ndarray | None = None) -> list[SolverResult]:
        """All elements together. They share the patterns, so they share every factorisation, and each ADMM
        iteration serves all of them, on every CV fold, in one pass over the patterns (the solve is
        memory-bound, so many problems cost little more than one); each pass is split over the CPU cores
        (BLAS single-threaded, row blocks in threads: numpy, scipy.fft and BLAS release the GIL)."""
        with single_threaded_blas():
            return self._solve_many(np.asarray(ys, dtype=np.float64), physics, guide=guide, progress=progress,
                                    sigma=sigma)

    def _weight_rule(self, sigma: np.ndarray | None, n_candidates: int) -> str:
        w = self.params.weight
        if not isinstance(w, str):
            return "fixed"
        if w == "discrepancy":
            if sigma is None:
                raise SolverError("weight='discrepancy' needs the measurements' uncertainties (the dataset's "
                                  "signals_sigma); use weight='cv' or a number")
            if n_candidates > 1:
                raise SolverError("weight='discrepancy' cannot choose the TXM guidance strength; give "
                                  "min_weight a number or use weight='cv'")
            return "discrepancy"
        both = w == "auto" and sigma is not None and n_candidates == 1 and self.auto_uses_discrepancy
        return AUTO_BOTH if both else "cv"

    def _solve_many(self, ys: np.ndarray, physics: PatternPhysics, *, guide: np.ndarray | None,
                    progress: ProgressCallback | None, sigma: np.ndarray | None = None) -> list[SolverResult]:
        t0 = time.perf_counter()
        p = self.params
        a = physics.numpy_matrix().astype(np.float64)
        scales = np.array([map_scale(a, y) for y in ys])
        yn = ys / scales[:, None]
        norm2 = physics.compute_norm() ** 2
        candidates = self._guidance_candidates(guide)
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if progress:
            progress(0.0, "factorising the patterns")
        with ThreadPoolExecutor(max_workers=p.threads or usable) as passes:
            fit = (_ADMMFitter if p.backend == "admm" else _PDHGFitter)(a, physics.img_shape, yn, p, passes,
                                                                        p.threads or usable)
            return self._search_and_solve(fit, a, yn, scales, norm2, candidates, t0, progress=progress,
                                          sigma=sigma)

    def _search_and_solve(self, fit: _ADMMFitter | _PDHGFitter, a: np.ndarray, yn: np.ndarray,
                          scales: np.ndarray, norm2: float, candidates: list[tuple[float, np.ndarray | float]],
                          t0: float, *, progress: ProgressCallback | None,
                          sigma: np.ndarray | None) -> list[SolverResult]:
        """Every element's weight searches (CV per guidance candidate, discrepancy) and final fit run side by
        side in one pool of fits, sharing its passes over the patterns; an element's final fit starts as soon
        as its own searches are done."""
        p = self.params
        n_sets = yn.shape[0]
        rule = self._weight_rule(sigma, len(candidates))
        both = rule == AUTO_BOTH
        use_cv, use_disc = rule == "cv" or both, rule == "discrepancy" or both
        infos: list[dict[str, object]] = [{"backend": p.backend} for _ in range(n_sets)]
        rules = [rule] * n_sets
        weights = [float(p.weight) if rule == "fixed" else float("nan")] * n_sets  # fixed: strongest guidance
        choice = [0] * n_sets  # index of each set's guidance candidate
        cv_found: list[dict[int, CrossValidationResult]] = [{} for _ in range(n_sets)]
        disc_found: list[DiscrepancyResult | None] = [None] * n_sets
        disc_states: list[dict[float, object]] = [{} for _ in range(n_sets)]  # full-data fits: warm the final
        maps: list[np.ndarray | None] = [None] * n_sets
        iterations: list[object] = [p.iterations] * n_sets
        plans: dict[Search, int] = {}
        if use_cv:
            plans["cv"] = planned_steps(p.weight_range) * len(candidates)
        if use_disc:
            plans["discrepancy"] = DISCREPANCY_PLANNED_STEPS
        track = TVSolveProgress(progress, n_sets, plans, "final fit" if rule == "fixed" else "weight search")
        track.prepared()

        def finalize(e: int) -> None:
            """Both searches of element ``e`` are done: decide its weight and start its final fit."""
            if use_cv:
                losses = [cv_found[e][i].min_loss for i in range(len(candidates))]
                choice[e] = int(np.argmin(losses))
                weights[e] = cv_found[e][choice[e]].weight
                infos[e]["cross_validation"] = cv_found[e][choice[e]].as_dict()
                if len(candidates) > 1:
                    infos[e]["guidance_cv_loss"] = {str(c[0]): loss for c, loss in zip(candidates, losses)}
            found = disc_found[e]
            if found is not None:
                infos[e]["discrepancy"] = found.as_dict()
                if both and found.bracketed:  # each rule errs towards weak weights: take the stronger
                    weights[e] = max(weights[e], found.weight)
                elif both:  # the noise level is out of reach: the model or the uncertainties are off
                    rules[e] = "cv"
                elif found.bracketed:
                    weights[e] = found.weight
                else:
                    raise SolverError(f"the discrepancy principle found no weight near {p.weight_range} "
                                      f"(chi^2/N {min(found.chi2):.3g}..{max(found.chi2):.3g} for target "
                                      f"{found.target}); the uncertainties may be wrong: use weight='cv' or a number")

            def done(x: np.ndarray, state: object) -> None:
                maps[e] = x
                iterations[e] = getattr(state, "iterations", p.iterations)
                track.element_done(e)

            # the final fit starts from the discrepancy search's nearest full-data solution when there is one
            fit.submit(e, _FULL, weights[e] * norm2, candidates[choice[e]][1],
                       nearest_state(disc_states[e], weights[e]), "final", done)

        def searched(e: int) -> None:
            if (not use_cv or len(cv_found[e]) == len(candidates)) and (not use_disc or disc_found[e] is not None):
                finalize(e)

        for e in range(n_sets):
            if use_cv:
                for i, (_, pw) in enumerate(candidates):
                    def cv_fit(weight: float, k: int, train: np.ndarray, warm: object,
                               on_done: Callable[[np.ndarray, object], None], e: int = e, pw: object = pw) -> None:
                        fit.submit(e, (k, train), weight * norm2, pw, warm, "cv", on_done)

                    def cv_finished(result: CrossValidationResult, e: int = e, i: int = i) -> None:
                        cv_found[e][i] = result
                        if len(cv_found[e]) == len(candidates):
                            track.search_done(e, "cv")
                        searched(e)

                    start_cross_validation(cv_fit, yn[e], a, p.weight_range, finish=cv_finished, folds=p.cv_folds,
                                           seed=p.seed, rule=p.cv_rule, se_factor=p.cv_se_factor,
                                           on_step=lambda e=e: track.step(e, "cv"))
            if use_disc:
                assert sigma is not None
                sn = sigma[e] / scales[e]

                def disc_request(weight: float, reply: Callable[[float], None], e: int = e,
                                 sn: np.ndarray = sn) -> None:
                    def done(x: np.ndarray, state: object) -> None:
                        disc_states[e][weight] = state
                        r = (a @ x.ravel() - yn[e]) / sn
                        track.step(e, "discrepancy")
                        reply(float(r @ r) / r.size)

                    # uncapped fits: chi^2 of a weak-weight fit stopped early is too high (and not monotone)
                    fit.submit(e, _FULL, weight * norm2, candidates[0][1], nearest_state(disc_states[e], weight),
                               "search", done)

                def disc_finished(result: DiscrepancyResult, e: int = e) -> None:
                    disc_found[e] = result
                    track.search_done(e, "discrepancy")
                    searched(e)

                drive(discrepancy_search(p.weight_range, target=p.discrepancy_target), disc_request, disc_finished)
            if rule == "fixed":
                finalize(e)
        fit.run(track.heartbeat)
        seconds = time.perf_counter() - t0
        results = []
        for e in range(n_sets):
            x = maps[e]
            assert x is not None
            resid = a @ x.ravel() - yn[e]
            infos[e].update(weight=weights[e], weight_absolute=weights[e] * norm2, map_scale=float(scales[e]),
                            iterations=iterations[e],
                            relative_residual=float(np.linalg.norm(resid) / max(np.linalg.norm(yn[e]), 1e-300)),
                            weight_rule=rules[e], batch_seconds=seconds, batch_size=n_sets)
            label = candidates[choice[e]][0]
            if len(candidates) > 1 or label != 1.0:
                infos[e]["min_weight"] = label
            cv = cv_found[e].get(choice[e])
            heldout = None if cv is None or cv.heldout_residuals is None else cv.heldout_residuals * scales[e]
            results.append(SolverResult(x=(x * scales[e]).astype(np.float32), info=infos[e], heldout=heldout))
        if progress:
            progress(1.0, "weights " + ", ".join(f"{w:.2e}" for w in weights))
        return results


#: a row set of A: (key, training-row mask), key -1 with mask None being the full data
RowSet = tuple[int, "np.ndarray | None"]
_FULL: RowSet = (-1, None)
#: what a fit is for: a CV fold (capped, looser tolerance), a weight search on the full data (uncapped, looser
#: tolerance) or the final fit
FitKind = Literal["cv", "search", "final"]


class _ADMMFitter:
    """Converged weighted-TV fits in one continuously batched ADMM pool: one exact factorisation per row set
    (full data or a CV fold), all on one shared basis, so every fit in flight shares each pass."""

    def __init__(self, a: np.ndarray, shape: tuple[int, int], y: np.ndarray, params: TVParams,
                 executor: Executor | None = None, threads: int = 1) -> None:
        self.y, self.p = y, params  # y: (E, N)
        self.basis = TVBasis(a, shape, executor=executor, blocks=threads)
        self.systems: dict[int, TVSystem] = {}
        self.pool = ADMMPool(nonnegative=params.nonnegative)

    def submit(self, e: int, row_set: RowSet, lam: float, pixel_w: np.ndarray | float, warm: object,
               kind: FitKind, on_done: Callable[[np.ndarray, object], None]) -> None:
        key, rows = row_set
        if key not in self.systems:
            self.systems[key] = TVSystem(self.basis, rows=rows)
        nonneg = self.p.nonnegative
        self.pool.submit(self.systems[key], self.y[e] if rows is None else self.y[e][rows], lam,
                         pixel_weights=pixel_w, warm=warm if isinstance(warm, ADMMState) else None,
                         max_iter=self.p.cv_iterations if kind == "cv" else self.p.iterations,
                         tol=self.p.tolerance if kind == "final" else self.p.cv_tolerance,
                         on_done=lambda st: on_done(st.z2 if nonneg else st.x, st))

    def run(self, on_pass: Callable[[int], None] | None = None) -> None:
        self.pool.run(on_pass)


class _PDHGFitter:
    """corrct's preconditioned PDHG for a fixed iteration count (the library reference implementation); fits
    run one after another in submission order."""

    def __init__(self, a: np.ndarray, shape: tuple[int, int], y: np.ndarray, params: TVParams,
                 executor: Executor | None = None, threads: int = 1) -> None:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # corrct prints an ASTRA notice on import
            import corrct as cct
        self.cct = cct
        self.projector = cct.struct_illum.ProjectorGhostImaging(a.reshape(-1, *shape).astype(np.float32),
                                                                backend="numpy")
        self.y, self.p = y.astype(np.float32), params
        self.queue: collections.deque[tuple[int, np.ndarray | None, float, np.ndarray | float, object,
                                            Callable[[np.ndarray, object], None]]] = collections.deque()

    def submit(self, e: int, row_set: RowSet, lam: float, pixel_w: np.ndarray | float, warm: object,
               kind: FitKind, on_done: Callable[[np.ndarray, object], None]) -> None:
        self.queue.append((e, row_set[1], lam, pixel_w, warm, on_done))

    def run(self, on_pass: Callable[[int], None] | None = None) -> None:
        fits = 0
        while self.queue:
            e, rows, lam, pixel_w, warm, on_done = self.queue.popleft()
            reg = self.cct.regularizers.Regularizer_TV2D(lam * pixel_w)
            solver = self.cct.solvers.PDHG(regularizer=reg, leave_progress=False)
            x0 = warm if isinstance(warm, np.ndarray) else None
            x, _ = solver(self.projector, self.y[e], iterations=self.p.iterations,
                          lower_limit=0.0 if self.p.nonnegative else None,
                          b_mask=None if rows is None else rows.astype(np.float32), x0=x0)
            x = np.asarray(x, dtype=np.float64)
            on_done(x, x)
            fits += 1
            if on_pass is not None:
                on_pass(20 * fits)  # each PDHG fit is long: every one is a heartbeat


class GuidedTV(TV):
    """TV whose per-pixel weight drops on the TXM image's edges (structure-guided TV).

    How much the TXM is trusted (``min_weight``: the relative TV weight left on its strongest edges) is
    chosen by the same cross-validation as the weight when ``"auto"``: when the TXM shows edges the
    element map does not have (other species, binder), CV falls back towards plain TV (``1.0``).
    """

    name = "guided-tv"
    Params = GuidedTVParams
    uses_guide = True
    description = "TV with per-pixel weights lowered on TXM edges (strength chosen by CV); needs the TXM image."

    def _guidance_candidates(self, guide: np.ndarray | None) -> list[tuple[float, np.ndarray | float]]:
        if guide is None:
            raise SolverError("method 'guided-tv' needs a TXM image ('txm' in the dataset)")
        p = self.params
        strengths = p.auto_min_weights if p.min_weight == "auto" else (float(p.min_weight),)
        return [(float(m), 1.0 if m >= 1.0 else txm_edge_weights(guide, edge_threshold=p.edge_threshold,
                                                                  min_weight=float(m), sigma=p.edge_sigma))
                for m in strengths]


class CompositionTVParams(TVParams):
    # cheaper cross-validation than plain TV's: measured the same PSNR (+-0.1 dB, 64x64 at 5-25 %) at ~40 % of the time
    cv_folds: int = Field(3, ge=2, le=20, description="folds for the automatic weight")
    cv_iterations: int = Field(200, ge=10, le=100_000, description="iteration cap of each (warm-started) "
                                                                   "cross-validation fit")
    weight_range: tuple[float, float] = Field((1e-5, 1e-2), description="search range of 'auto' (best weights "
                                                                       "measured 1e-4..1e-3 on 64x64 battery cases)")
    background_percentile: float = Field(5.0, ge=0, lt=100, description="TXM percentile taken as background "
                                                                        "(support, offset) and removed")
    floor: float = Field(1e-2, ge=0, description="thickness floor (relative to the mean) so no pixel is "
                                                 "forced to exactly zero")
    txm_denoise: float = Field(1.0, ge=0, le=10, description="edge-preserving TV denoising of the TXM at this "
                                                             "multiple of its noise level (estimated from the image); "
                                                             "0: the TXM as given")


class CompositionTV(TV):
    """TV on the composition r = map / TXM thickness; the map is r x thickness (see ``txm_prior``).

    Particles are compositionally homogeneous while their thickness varies, so r is piecewise constant
    (TV's ideal) and the map inherits the TXM's sharp particle outlines; binder and other TXM-only
    particles get r = 0 from the data, so they are not painted into the map.
    """

    name = "composition-tv"
    Params = CompositionTVParams
    uses_guide = True
    auto_uses_discrepancy = True  # measured: benchmarks/weight_rules.py
    description = ("TV on element / TXM thickness (composition), weight by K-fold CV; sharp TXM particle shapes "
                   "without painting TXM-only particles. Needs the TXM image.")

    def solve_many(self, ys: np.ndarray, physics: PatternPhysics, *, guide: np.ndarray | None,
                   progress: ProgressCallback | None, sigma: np.ndarray | None = None) -> list[SolverResult]:
        if guide is None:
            raise SolverError("method 'composition-tv' needs a TXM image ('txm' in the dataset)")
        from .txm_prior import denoise_txm, txm_thickness

        p = self.params
        guide, noise = denoise_txm(guide, p.txm_denoise)
        thickness = txm_thickness(guide, background_percentile=p.background_percentile, floor=p.floor)
        h, w = physics.img_shape
        t = torch.as_tensor(thickness.reshape(1, -1), dtype=physics.dtype, device=physics.device)
        modulated = PatternPhysics((physics.matrix * t).reshape(-1, h, w), device=physics.device)
        results = super().solve_many(ys, modulated, guide=None, progress=progress, sigma=sigma)
        for res in results:
            res.x = (res.x * thickness).astype(np.float32)
            res.info.update(output="composition", txm_noise=round(noise, 4), txm_denoise=p.txm_denoise)
        return results
