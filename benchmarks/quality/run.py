"""recon_quality's main run: plan the cases and rows, run them, carry rows over from an earlier run (--reuse)."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.cases import quality_case
from harness.machine import library_state, loadavg, machine_info
from harness.measure import MEMORY_TEXT
from harness.tables import jsonable

from .config import METHODS
from .headline import element_order
from .labels import row_labels
from .report import write_report
from .runner import Runner

__all__ = ["plan", "run", "carry_over"]


def _reusable(old: list[dict[str, Any]], image: str, seed: int, pct: float, method: str,
              elements: Sequence[str]) -> bool:
    got = {r["element"] for r in old if r["image"] == image and r["seed"] == seed and r["sampling_pct"] == pct
           and r["method"] == method and r["status"] == "ok"}
    return set(elements) <= got


def plan(args: argparse.Namespace, runner: Runner, old: list[dict[str, Any]] | None = None,
         ) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, str]]:
    """Every case and its rows; the default method per image (from a small simulation of that image).
    Rows the headline needs are added unless ``old`` (--reuse) already has them for that case."""
    from nxsci.recon import default_method, simulate_case

    default_names: dict[str, str] = {}
    default_keys: dict[str, str] = {}
    for image in args.images:
        probe = simulate_case(phantom=image, size=24, sampling=0.1, seed=0)
        default_names[image] = default_method(probe)
        default_keys[image] = runner.add_default(default_names[image])
    cases = []
    for image in args.images:
        element = args.element if image == "battery" else "X"
        headline_seeds = set(args.headline_seeds) if image == "battery" else set()
        for seed in sorted(set(args.seeds) | headline_seeds):
            for pct in sorted(args.samplings):  # small N first: its oracle weights seed the next search
                methods = list(args.methods) if seed in args.seeds else []
                oracle_elements = [element]
                if seed in headline_seeds:
                    all_el = [element, *[e for e in ("Mn", "Co", "Ni") if e != element]]
                    for needed in ("tv-oracle", default_keys[image]):
                        if needed not in methods and not _reusable(old or [], image, seed, pct, needed, all_el):
                            methods.append(needed)
                    if "tv-oracle" in methods:
                        oracle_elements = all_el
                order = {m: i for i, m in enumerate([*METHODS, *runner.specs])}
                methods.sort(key=lambda m: order[m])
                cases.append({"image": image, "element": element, "seed": seed, "pct": pct, "methods": methods,
                              "oracle_elements": oracle_elements})
    return cases, default_names, default_keys


def _case_rows(case: dict[str, Any], runner: Runner) -> int:
    n_el = 3 if case["image"] == "battery" else 1
    total = sum(n_el if m in runner.specs else 1 for m in case["methods"])
    if "tv-oracle" in case["methods"]:
        total += len(case["oracle_elements"]) - 1
    return total


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Every planned case, one after another; the report is rewritten after each case (partial results survive)."""
    import torch
    from threadpoolctl import threadpool_limits

    t_start = time.perf_counter()
    params = {k: v for k, v in vars(args).items()}
    runner = Runner(args)
    mem_text = MEMORY_TEXT[runner.probe.method]
    report: dict[str, Any] = {"machine": machine_info(), "params": jsonable(params), "command": command,
                              "library_state": library_state(), "memory_method": mem_text, "results": [],
                              "oracle_searches": [], "complete": False, "total_seconds": 0.0}
    old_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            old = json.loads(args.reuse.read_text()) if args.reuse else None
            cases, default_names, default_keys = plan(args, runner, old["results"] if old else None)
            report.update(default_methods=default_names, default_keys=default_keys,
                          **row_labels(runner, args, default_keys))
            if old is not None:
                carry_over(report, old, cases, args)
            runner.total = sum(_case_rows(c, runner) for c in cases)
            np.random.seed(min(args.seeds))
            torch.manual_seed(min(args.seeds))
            runner.log(f"{len(cases)} cases, {runner.total} rows; default method(s): {default_names}")
            runner.log("warm-up (imports and first calls, not timed) ...")
            runner.warm_up()
            prev_oracle: dict[tuple[str, int], dict[str, float]] = {}
            for case in cases:
                image, seed, pct = case["image"], case["seed"], case["pct"]
                t0 = time.perf_counter()
                sub, binder = quality_case(image, size=args.size, pct=pct, seed=seed, pattern_model=args.pattern_model,
                                           feature_size=args.feature_size, photons=args.photons)
                if case["element"] not in sub.elements:
                    raise SystemExit(f"element {case['element']} not in {image} ({', '.join(sub.elements)})")
                runner.log(f"simulated {image} seed {seed} {pct:g} %: {sub.num_patterns} patterns "
                           f"{args.size}x{args.size} in {time.perf_counter() - t0:.1f} s")
                prev = prev_oracle.setdefault((image, seed), {})
                rows, orcs = runner.run_case(image, case["element"], seed, pct, sub, prev, case["methods"],
                                             case["oracle_elements"], binder)
                report["results"].extend(rows)
                report["oracle_searches"].extend(orcs)
                prev.update({o["element"]: o["weight"] for o in orcs})
                report["total_seconds"] = time.perf_counter() - t_start
                report["load_average_at_end"] = loadavg()
                write_report(report, args)  # partial results survive an interrupted run
                del sub
    finally:
        torch.set_num_threads(old_threads)
    report["complete"] = True
    report["total_seconds"] = time.perf_counter() - t_start
    report["load_average_at_end"] = loadavg()
    order = {m: i for i, m in enumerate([*METHODS, *runner.specs])}
    report["results"].sort(key=lambda r: (args.images.index(r["image"]) if r["image"] in args.images else 99,
                                          r["seed"], r["sampling_pct"], order.get(r["method"], 99),
                                          element_order(r["element"])))
    return report


def carry_over(report: dict[str, Any], old: dict[str, Any], cases: list[dict[str, Any]],
               args: argparse.Namespace) -> None:
    """--reuse: rows (and oracle searches) of the earlier run for the same cases whose method is not run now."""
    same = {k: old["params"].get(k) for k in ("size", "photons", "pattern_model", "feature_size")}
    now = {k: report["params"].get(k) for k in same}
    if same != now:
        raise SystemExit(f"--reuse: the earlier run simulated other cases ({same} vs now {now})")
    carried: dict[str, int] = {}
    for case in cases:
        key = (case["image"], case["seed"], case["pct"])
        for r in old["results"]:
            if (r["image"], r["seed"], r["sampling_pct"]) == key and r["method"] not in case["methods"]:
                report["results"].append({**r, "reused_from": old["machine"]["date_utc"]})
                carried[r["method"]] = carried.get(r["method"], 0) + 1
        if "tv-oracle" not in case["methods"]:
            report["oracle_searches"] += [o for o in old.get("oracle_searches", [])
                                          if (o["image"], o["seed"], o["sampling_pct"]) == key]
    for key in ("labels", "specs"):
        for k, v in old.get(key, {}).items():
            if k in carried:
                report[key][k] = v
    report["reused"] = {"path": str(args.reuse), "date_utc": old["machine"]["date_utc"], "command": old["command"],
                        "library_state": old.get("library_state"), "load_average_at_start":
                        old["machine"].get("load_average_at_start"), "rows_by_method": carried}
