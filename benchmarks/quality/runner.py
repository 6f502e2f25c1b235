"""recon_quality's rows of one case: every method's timed library call, scored against the truth.

The TV-oracle rows use the shared harness oracle (``harness.oracle``): the same grid search, the same library
``tv`` (cold public calls); the reported row is a fresh timed solve at the chosen weight.
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from harness.measure import Probe
from harness.oracle import ORACLE_DEFAULT_START, ORACLE_K_RANGE, ORACLE_PARAMS, TVFitter, grid_k, oracle_search
from harness.scoring import score

from .config import ALL_ELEMENT_ROWS, CV_METHODS, PAPER_PROBE_STEPS, PINV_CAPPED_FOLDS
from .point_scan import point_scan

__all__ = ["Runner", "accepts", "info_weight"]


def accepts(method: str, key: str) -> bool:
    """Whether the library method has parameter ``key`` (so --cv-folds is passed only where it means something)."""
    from nxsci.recon import get_solver

    return key in get_solver(method).params.model_dump()


class Runner:
    """Runs the rows of one case after another; every library call timed by one ``Probe``."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.probe = Probe(args.memory)
        self.done = 0
        self.total = 0
        self.specs: dict[str, tuple[str, dict[str, Any]]] = dict(ALL_ELEMENT_ROWS)

    def log(self, msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def solve(self, method: str, params: dict[str, Any], sub: Any, y: np.ndarray) -> tuple[np.ndarray, dict]:
        """One timed library solve; params not given are the library's defaults (recorded in the result)."""
        from nxsci.recon import PatternPhysics, get_solver

        solver = get_solver(method, params)
        physics = PatternPhysics(sub.patterns)
        with self.probe.measure() as rec:
            res = solver(y, physics, guide=sub.txm)
        rec["info"] = {**res.info, "params": solver.params.model_dump()}
        return res.x, rec

    def solve_all(self, method: str, params: dict[str, Any], sub: Any) -> tuple[list[np.ndarray], dict]:
        """One timed ``reconstruct_all`` call for every element of ``sub`` (joint methods train once)."""
        from nxsci.recon import PatternPhysics, get_solver

        solver = get_solver(method, params)
        physics = PatternPhysics(sub.patterns)
        ys = np.stack([sub.signal(e) for e in sub.elements])
        sigma = None if sub.signals_sigma is None else np.stack([sub.sigma(e) for e in sub.elements])
        with self.probe.measure() as rec:  # with the uncertainties a spectrum fit gives, as `reconstruct` passes
            results = solver.reconstruct_all(ys, physics, guide=sub.txm, sigma=sigma)
        rec["info"] = {"params": solver.params.model_dump(),
                       "per_element": {e: r.info for e, r in zip(sub.elements, results)}}
        return [np.asarray(r.x) for r in results], rec

    def row_params(self, key: str) -> tuple[str, dict[str, Any]]:
        """Library method and the parameters this row passes (ablation overrides only, plus --cv-folds)."""
        method, over = self.specs[key]
        params = dict(over)
        if method == "siren":
            params = {**self.args.siren_set, **params}
        if self.args.cv_folds is not None and accepts(method, "cv_folds"):
            params["cv_folds"] = self.args.cv_folds
        return method, params

    def add_default(self, name: str) -> str:
        """The row key of the library's default method (an every-element row; added when not listed)."""
        for key, (method, over) in self.specs.items():
            if method == name and not over:
                return key
        key = f"default:{name}"
        self.specs[key] = (name, {})
        return key

    def warm_up(self) -> None:
        """First calls pay imports (corrct), allocator and torch start-up: keep them out of the timings."""
        from nxsci.recon import simulate_case

        ds = simulate_case(phantom="battery", size=24, sampling=0.25, seed=123)
        y = ds.signal(ds.elements[-1])
        self.solve("pinv", {"rank": self.args.pinv_rank}, ds, y)
        self.solve("tv", {"weight": 1e-5}, ds, y)
        self.solve("tv", {"weight": 1e-5, "backend": "pdhg", "iterations": 20}, ds, y)
        self.solve("guided-tv", {"weight": 1e-5}, ds, y)
        self.solve("tv", {"cv_folds": 2, "weight_range": (1e-5, 1e-4)}, ds, y)
        self.solve_all("composition-tv", {"cv_folds": 2, "weight_range": (1e-5, 1e-4)}, ds)
        self.solve_all("siren", {"steps": 3, "warm_steps": 3, "warm_start": "none"}, ds)
        self.solve_all("siren-paper", {"steps": 2}, ds.subset(np.arange(ds.num_patterns)))
        score(ds.truth(ds.elements[-1]), ds.truth(ds.elements[-1]))

    def _oracle_fitter(self, sub: Any, y: np.ndarray) -> TVFitter:
        return TVFitter(sub.patterns, y)

    def run_case(self, image: str, element: str, seed: int, pct: float, sub: Any, prev_oracle: dict[str, float],
                 methods: Sequence[str], oracle_elements: Sequence[str],
                 binder: np.ndarray | None) -> tuple[list[dict], list[dict]]:
        """Every requested row of one case. ``element`` is Table A's; ``oracle_elements`` get a TV-oracle
        (the headline needs every element's); every-element rows score every element."""
        a = self.args
        n = sub.num_patterns
        h, w = sub.image_shape
        m = h * w
        truth = sub.truth(element).astype(np.float64)
        y = sub.signal(element)
        rows: list[dict] = []
        oracle_records: list[dict] = []
        oracle_weight: dict[str, float] = {}
        cv_weight: float | None = None

        def emit(method: str, status: str, *, el: str = element, x: np.ndarray | None = None,
                 rec: dict | None = None, reason: str = "", weight: float | None = None,
                 extra: dict | None = None) -> None:
            row = {"image": image, "element": el, "seed": seed, "sampling_pct": pct, "n": n, "m": m,
                   "method": method, "status": status, "reason": reason}
            if x is not None:
                row.update(score(x, sub.truth(el).astype(np.float64), binder))
            if rec is not None:
                row.update(seconds=rec["seconds"], cpu_seconds=rec["cpu_seconds"], peak_mb=rec["peak_mb"])
                row["info"] = rec.get("info", {})
            row["weight"] = weight
            row.update(extra or {})
            rows.append(row)
            self.done += 1
            if status == "ok":
                msg = (f"PSNR {row['psnr']:6.2f} dB  SSIM {row['ssim']:.3f}  {row['seconds']:7.1f} s "
                       f"(cpu {row['cpu_seconds']:6.1f})  {row['peak_mb']:7.1f} MB"
                       + (f"  w={weight:.2e}" if weight is not None else "")
                       + (f"  binder {100 * row['binder_ratio']:.1f} %" if "binder_ratio" in row else ""))
            else:
                msg = f"{status} ({reason})"
            self.log(f"[{self.done}/{self.total}] {image}/{el} {pct:g}% (N={n}) seed {seed} {method:<17} {msg}")

        def guarded(method: str, fn: Callable[[], None], els: Sequence[str] = (element,)) -> None:
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - a failing method is reported, never dropped
                for el in els:
                    emit(method, "failed", el=el, reason=f"{type(exc).__name__}: {exc}")

        cv_params: dict[str, Any] = {"seed": seed}
        if a.cv_folds is not None:
            cv_params["cv_folds"] = a.cv_folds

        def run_point() -> None:
            total_dose = float(sub.patterns.sum(dtype=np.float64))
            rng = np.random.default_rng(np.random.SeedSequence([seed, 7, zlib.crc32(image.encode()), n]))
            with self.probe.measure() as rec:
                x, info = point_scan(truth, n, total_dose, rng, a.point_interp)
            rec["info"] = {**info, "si_mean_counts_per_pattern": float(np.mean(y))}
            emit("point", "ok", x=x, rec=rec)

        def run_pinv() -> None:
            from nxsci.recon import get_solver

            params: dict[str, Any] = {"rank": a.pinv_rank}
            cap = ""
            has_folds = "cv_folds" in get_solver("pinv").params.model_dump()
            if has_folds and a.pinv_rank == "cv":
                folds = a.cv_folds if a.cv_folds is not None else get_solver("pinv").params.cv_folds
                if n * m > a.cv_max_entries and folds > PINV_CAPPED_FOLDS:
                    folds = PINV_CAPPED_FOLDS
                    cap = (f"cost cap: rank by {folds}-fold CV (one SVD per fold) because N*M = {n * m:.2e} > "
                           f"--cv-max-entries {a.cv_max_entries:.2e}")
                params["cv_folds"] = folds
            x, rec = self.solve("pinv", params, sub, y)
            emit("pinv", "ok", x=x, rec=rec, extra={"capped": cap} if cap else None)

        def run_cv(method: str) -> None:
            nonlocal cv_weight
            x, rec = self.solve(method, cv_params, sub, y)
            wgt = float(rec["info"]["weight"])
            if method == "tv":
                cv_weight = wgt
            emit(method, "ok", x=x, rec=rec, weight=wgt)

        def run_oracle(el: str) -> None:
            t0 = time.perf_counter()
            y_el = sub.signal(el)
            truth_el = sub.truth(el).astype(np.float64)
            fitter = self._oracle_fitter(sub, y_el)

            def fit(wgt: float) -> dict[str, Any]:
                t1 = time.perf_counter()
                x, info = fitter(wgt)
                met = score(x, truth_el)
                self.log(f"      oracle {el} w={wgt:.2e}: PSNR {met['psnr']:.2f} dB, "
                         f"{info.get('iterations')} it, {time.perf_counter() - t1:.1f} s")
                return {**met, **info, "weight": wgt}

            if el in prev_oracle:  # the previous sampling's oracle weight: a close guess, quarter steps
                kb, runs = oracle_search(fit, grid_k(prev_oracle[el], 1), step=1)
            else:  # this case's CV weight or Table A element's oracle (often several-fold off): half-decades
                start = (cv_weight if el == element else None) or oracle_weight.get(element) or ORACLE_DEFAULT_START
                kb, runs = oracle_search(fit, grid_k(start, 2), step=2)
            k0 = next(iter(runs))  # the first grid point evaluated is the start
            record = {
                "image": image, "element": el, "seed": seed, "sampling_pct": pct, "n": n, "m": m,
                "weight": runs[kb]["weight"], "k": kb, "mode": fitter.mode, "fits": len(runs),
                "start_weight": 10.0 ** (k0 / 4.0), "at_grid_edge": kb in ORACLE_K_RANGE,
                "psnr_search_at_best": runs[kb]["psnr"],
                "grid": [{key: runs[k][key] for key in ("weight", "psnr", "ssim", "iterations")} for k in sorted(runs)]}
            search_s = time.perf_counter() - t0
            record["search_seconds"] = search_s
            oracle_records.append(record)
            oracle_weight[el] = record["weight"]
            if "tv-oracle" in methods:  # the reported result: a fresh, cold library solve at that weight
                x, rec = self.solve("tv", {**ORACLE_PARAMS, "weight": record["weight"]}, sub, y_el)
                emit("tv-oracle", "ok", el=el, x=x, rec=rec, weight=record["weight"],
                     extra={"search_seconds": search_s, "search_fits": len(runs), "search_mode": fitter.mode})

        def run_pdhg(method: str, iterations: int) -> None:
            if element not in oracle_weight:
                emit(method, "skipped", reason="no oracle weight: the oracle search failed")
                return
            wgt = oracle_weight[element]
            x, rec = self.solve("tv", {"weight": wgt, "backend": "pdhg", "iterations": iterations}, sub, y)
            emit(method, "ok", x=x, rec=rec, weight=wgt)

        def run_all(key: str) -> None:
            method, params = self.row_params(key)
            extra: dict[str, Any] = {"all_elements": len(sub.elements), "library_method": method,
                                     "overrides": params}
            if method == "siren-paper":
                steps, probe = self._paper_steps(method, params, sub)
                params = {**params, "steps": steps}
                extra.update(paper_steps=steps, paper_probe=probe, cell_note=f"[{steps} st]", overrides=params)
            maps, rec = self.solve_all(method, params, sub)
            for el, x in zip(sub.elements, maps):
                emit(key, "ok", el=el, x=x, rec=rec, weight=info_weight(rec["info"]["per_element"][el]),
                     extra=extra)

        oracle_tried = False
        for method in methods:
            if method == "point":
                guarded(method, run_point)
            elif method == "pinv":
                guarded(method, run_pinv)
            elif method in CV_METHODS:
                if n * m > a.cv_max_entries:
                    emit(method, "skipped",
                         reason=f"CV cost: N*M = {n * m:.2e} > --cv-max-entries {a.cv_max_entries:.2e}; K-fold "
                                f"cross-validation multiplies a solve by folds x weights (see the script docstring)")
                    continue
                guarded(method, lambda method=method: run_cv(method))
            elif method in ("tv-oracle", "tv-pdhg", "tv-under"):  # one oracle search per element serves all
                if not oracle_tried:
                    oracle_tried = True
                    for el in oracle_elements:
                        guarded("tv-oracle", lambda el=el: run_oracle(el), els=(el,))
                if method == "tv-pdhg":
                    guarded(method, lambda: run_pdhg("tv-pdhg", a.pdhg_iterations))
                elif method == "tv-under":
                    guarded(method, lambda: run_pdhg("tv-under", a.under_iterations))
            elif method in self.specs:
                guarded(method, lambda method=method: run_all(method), els=sub.elements)
            else:
                raise ValueError(f"unknown benchmark row {method!r}")
        return rows, oracle_records

    def _paper_steps(self, method: str, params: dict[str, Any], sub: Any) -> tuple[int, dict[str, Any]]:
        """Steps of the paper configuration that fit --paper-budget-s: a short probe measures s/step."""
        from nxsci.recon import PatternPhysics, get_solver

        solver = get_solver(method, {**params, "steps": PAPER_PROBE_STEPS})
        t0 = time.perf_counter()
        res = solver.reconstruct_all(sub.signal(sub.elements[0])[None, :], PatternPhysics(sub.patterns),
                                     guide=sub.txm)
        probe_s = time.perf_counter() - t0
        sps = float(res[0].info.get("seconds_per_step") or probe_s / PAPER_PROBE_STEPS)
        networks = 1 if solver.params.joint else len(sub.elements)
        steps = max(1, int(self.args.paper_budget_s / (sps * networks)))
        self.log(f"      siren-paper probe: {sps:.2f} s/step x {networks} network(s) -> {steps} steps for "
                 f"{self.args.paper_budget_s:g} s ({probe_s:.1f} s probe, not timed)")
        return steps, {"seconds_per_step": sps, "networks": networks, "probe_seconds": probe_s,
                       "probe_steps": PAPER_PROBE_STEPS, "budget_s": self.args.paper_budget_s}


def info_weight(info: dict[str, Any]) -> float | None:
    """The weight a solver reports, when it is a number."""
    w = info.get("weight")
    return float(w) if isinstance(w, (int, float)) else None
