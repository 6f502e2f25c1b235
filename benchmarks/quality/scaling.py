"""recon_quality --scaling: time and peak memory of whole-dataset solves vs image size, one child process per
cell, stopped at a budget; cells that cannot fit are skipped with the reason (see recon_quality's docstring)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.machine import library_state, loadavg, machine_info, mem_available_gb
from harness.measure import Probe, rss_works, status_kb
from harness.tables import jsonable, table, write_pair

__all__ = ["scaling_child", "run_scaling", "render_scaling"]

#: the script a cell runs in (``--scaling-cell``)
SCRIPT = Path(__file__).resolve().parents[1] / "recon_quality.py"


def scaling_child(spec: dict[str, Any]) -> int:
    """One scaling cell in this (child) process: warm up, simulate (untimed), announce, solve all elements."""
    import torch
    from threadpoolctl import threadpool_limits

    from nxsci.recon import PatternPhysics, default_method, get_solver, psnr, simulate_case

    def say(event: str, **kw: Any) -> None:
        print(json.dumps(jsonable({"event": event, **kw})), flush=True)

    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        probe = Probe(spec["memory"])
        t0 = time.perf_counter()
        ds = simulate_case(phantom="battery", size=spec["size"], sampling=spec["pct"] / 100.0,
                           pattern_model=spec["pattern_model"], feature_size=spec["feature_size"],
                           photons=spec["photons"], seed=spec["seed"])
        name = default_method(ds) if spec["method"] == "default" else spec["method"]
        say("simulated", seconds=time.perf_counter() - t0, method=name, n=ds.num_patterns)
        small = simulate_case(phantom="battery", size=24, sampling=0.25, seed=123)  # first-call costs, untimed
        warm = {"steps": 3, "warm_steps": 3} if name.startswith("siren") else {}
        get_solver(name, {**spec["params"], **warm}).reconstruct_all(
            np.stack([small.signal(e) for e in small.elements]), PatternPhysics(small.patterns), guide=small.txm)
        solver = get_solver(name, spec["params"])
        physics = PatternPhysics(ds.patterns)
        ys = np.stack([ds.signal(e) for e in ds.elements])
        sigma = None if ds.signals_sigma is None else np.stack([ds.sigma(e) for e in ds.elements])
        input_mb = (ds.patterns.nbytes + physics.matrix.element_size() * physics.matrix.nelement()) / 1024**2
        say("start", method=name)
        with probe.measure() as rec:
            results = solver.reconstruct_all(ys, physics, guide=ds.txm, sigma=sigma)
        process_peak = status_kb("VmHWM") / 1024 if probe.method == "rss" else None
        info0 = results[0].info
        say("done", method=name, seconds=rec["seconds"], cpu_seconds=rec["cpu_seconds"], peak_mb=rec["peak_mb"],
            process_peak_mb=process_peak, input_mb=input_mb, n=ds.num_patterns,
            psnr={e: float(psnr(r.x, ds.truth(e))) for e, r in zip(ds.elements, results)},
            info={k: info0[k] for k in ("weight", "lam", "steps_run", "best_step", "seconds_per_step",
                                        "warm_start_seconds", "output") if k in info0},
            params=solver.params.model_dump())
    return 0


def _run_scaling_cell(spec: dict[str, Any], budget: float, log: Callable[[str], None]) -> dict[str, Any]:
    """Run one cell in a child process; stop it when its solve passes the budget."""
    import queue
    import subprocess
    import threading

    cmd = [sys.executable, str(SCRIPT), "--scaling-cell", json.dumps(spec)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=reader, daemon=True).start()
    events: dict[str, dict[str, Any]] = {}
    sim_deadline = time.monotonic() + max(900.0, budget)
    solve_deadline: float | None = None
    t_start_solve: float | None = None
    while True:
        deadline = solve_deadline if solve_deadline is not None else sim_deadline
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            proc.kill()
            proc.wait()
            if solve_deadline is not None:
                return {"status": "over budget", "reason": f"stopped after {budget:g} s (--scaling-budget-s)",
                        "seconds_lower_bound": time.monotonic() - (t_start_solve or time.monotonic()),
                        "simulated": events.get("simulated")}
            return {"status": "failed", "reason": "simulation did not finish in time"}
        if line is None:
            rc = proc.wait()
            if "done" in events:
                return {"status": "ok", **events["done"], "simulated": events.get("simulated")}
            why = "killed (out of memory?)" if rc in (-9, 137) else f"exit status {rc}"
            return {"status": "failed", "reason": f"child process ended without a result: {why}"}
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        events[ev.get("event", "?")] = ev
        if ev.get("event") == "start":
            t_start_solve = time.monotonic()
            solve_deadline = t_start_solve + budget
            log(f"      solving ({ev.get('method')}) ...")


def _scaling_skip(mkey: str, size: int, pct: float, n: int, m: int, cells: list[dict[str, Any]],
                  cap_mb: float, warm_of_siren: str | None) -> tuple[str, str] | None:
    """Why this cell is not run (reason, root cause), or None to run it (see the module docstring)."""
    from nxsci.recon.sim.simulate import MAX_PATTERN_BYTES

    if n * m * 4 > MAX_PATTERN_BYTES:
        why = (f"patterns alone need {n * m * 4 / 1024**3:.1f} GiB (> the library's "
               f"{MAX_PATTERN_BYTES / 1024**3:g} GiB limit)")
        return why, why
    same = [c for c in cells if c["method_key"] == mkey]
    for c in same:
        if c["status"] in ("over budget", "skipped", "failed") and c["n"] <= n and c["m"] <= m \
                and not c.get("reason", "").startswith("patterns alone"):
            root = c.get("root_reason") or c.get("reason", "")
            if c["status"] == "over budget":
                return f"a smaller cell of this method ({c['size']} px, {c['pct']:g} %) ran past the budget", root
            return f"as the smaller cell {c['size']} px, {c['pct']:g} % ({c['status']}: {root})", root
    if mkey == "siren" and warm_of_siren is not None:
        warm = [c for c in cells if c["method_key"] == "default" and c.get("library_method") == warm_of_siren
                and c["size"] == size and c["pct"] == pct]
        if warm and warm[0]["status"] != "ok":
            why = f"its warm start ({warm_of_siren}, the default method) {warm[0]['status']} here"
            return why, why
    ok = [c for c in same if c["status"] == "ok"]
    if ok:
        ref = max(ok, key=lambda c: c["n"] * c["m"])
        ratio = (n * m) / (ref["n"] * ref["m"])
        mem = (ref["peak_mb"] + ref.get("input_mb", 0.0)) * ratio
        if mem > cap_mb:
            why = (f"predicted peak ~{mem / 1024:.1f} GB (measured {ref['peak_mb'] + ref.get('input_mb', 0):.0f} MB "
                   f"at {ref['size']} px {ref['pct']:g} %, scaled by N*M) > --scaling-memory-gb {cap_mb / 1024:.1f}")
            return why, why
    return None


def render_scaling(report: dict[str, Any], args: argparse.Namespace) -> str:
    mach = report["machine"]
    out = ["# Scaling: time and peak memory vs image size (all elements per call)", "",
           f"- date (UTC): {mach['date_utc']}; run time: {report['total_seconds'] / 60:.1f} min"
           + ("" if report["complete"] else " (INCOMPLETE: partial results)"),
           f"- machine: {mach['host']}, {mach['cpu_model']}, {mach['cpus_usable']} usable CPUs, {mach['memory_gb']} GB "
           f"RAM; load average at start {mach.get('load_average_at_start')}, at end "
           f"{report.get('load_average_at_end')}",
           "- BLAS/OpenMP and torch one thread (threadpoolctl, torch.set_num_threads(1)); a solver's own default "
           "threads (e.g. elements in parallel) are kept: CPU > wall shows them; each cell in a fresh child "
           "process, simulation untimed; battery phantom seed "
           f"{report['seed']}, two-diffuser patterns; budget {args.scaling_budget_s:g} s per solve, memory cap "
           f"{report['memory_cap_mb'] / 1024:.1f} GB",
           f"- command: `{report['command']}`",
           f"- library state: {report.get('library_state', 'n/a')}",
           *([f"- REUSED measured cells (not rerun; skipped cells decided anew) from the run of "
              f"{report['reused']['date_utc']} (`{report['reused']['command']}`; library state "
              f"{report['reused']['library_state']}); marked * in the table"] if report.get("reused") else []),
           "- cell: wall s / CPU s / peak MB above inputs (process peak MB) [N]; PSNR (dB) mean over Mn/Co/Ni in "
           "the detail", ""]
    pcts = args.scaling_samplings
    hdr = ["Method", "Size"] + [f"N = {p:g} % of M" for p in pcts]
    body = []
    for mkey in args.scaling_methods:
        for size in args.scaling_sizes:
            cells = {c["pct"]: c for c in report["cells"] if c["method_key"] == mkey and c["size"] == size}
            lib = next((c.get("library_method") for c in cells.values() if c.get("library_method")), None)
            row = [f"{mkey}" + (f" ({lib})" if lib and lib != mkey else ""), f"{size}x{size}"]
            for p in pcts:
                c = cells.get(p)
                star = "*" if c is not None and c.get("reused_from") else ""
                if c is None:
                    row.append("—")
                    continue
                if c["status"] == "ok":
                    pp = f" ({c['process_peak_mb']:.0f})" if c.get("process_peak_mb") else ""
                    row.append(f"{c['seconds']:.1f} / {c['cpu_seconds']:.1f} / {c['peak_mb']:.0f}{pp} "
                               f"[N={c['n']}]{star}")
                elif c["status"] == "over budget":
                    row.append(f"> {args.scaling_budget_s:g} s (stopped) [N={c['n']}]{star}")
                else:
                    row.append(f"{c['status']}: {c.get('reason', '')} [N={c['n']}]{star}")
            body.append(row)
    out += ["## Scaling table", "", table(hdr, body), ""]
    det = [["Method", "Size", "Sampling", "N", "Status", "PSNR Mn/Co/Ni", "Time (s)", "CPU (s)", "Peak (MB)",
            "Process peak (MB)", "Inputs (MB)", "Info"]]
    for c in report["cells"]:
        ok = c["status"] == "ok"
        ps = " / ".join(f"{v:.2f}" for v in c.get("psnr", {}).values()) if ok else ""
        det.append([c["method_key"], f"{c['size']}", f"{c['pct']:g} %", str(c["n"]), c["status"], ps,
                    f"{c['seconds']:.1f}" if ok else "", f"{c['cpu_seconds']:.1f}" if ok else "",
                    f"{c['peak_mb']:.0f}" if ok else "",
                    f"{c['process_peak_mb']:.0f}" if ok and c.get("process_peak_mb") else "",
                    f"{c['input_mb']:.0f}" if ok else "",
                    json.dumps(c.get("info", {})) if ok else c.get("reason", "")])
    out += ["## Detail", "", table(det[0], det[1:]), ""]
    return "\n".join(out)


def run_scaling(args: argparse.Namespace, command: str) -> dict[str, Any]:
    from nxsci.recon import get_solver

    t_start = time.perf_counter()
    cap_mb = (args.scaling_memory_gb * 1024) if args.scaling_memory_gb else 0.5 * mem_available_gb() * 1024
    report: dict[str, Any] = {"machine": machine_info(), "params": jsonable(vars(args)), "command": command,
                              "library_state": library_state(), "cells": [], "complete": False,
                              "total_seconds": 0.0, "memory_cap_mb": cap_mb, "seed": 0}
    siren_params = dict(args.siren_set)
    sp = get_solver("siren", siren_params).params
    # SIREN runs its warm-start method first; only when that is the default method with its own (cross-validated)
    # parameters is the default method's time a lower bound of SIREN's
    siren_warm = sp.warm_start if not getattr(sp, "warm_params", None) else None
    old: dict[tuple[str, int, float], dict[str, Any]] = {}
    if args.reuse:
        prev = json.loads(args.reuse.read_text())
        report["reused"] = {"path": str(args.reuse), "date_utc": prev["machine"]["date_utc"],
                            "command": prev["command"], "library_state": prev.get("library_state")}
        old = {(c["method_key"], c["size"], c["pct"]): c for c in prev["cells"] if c["status"] != "skipped"}
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    memory = "rss" if args.memory == "auto" and rss_works() else args.memory
    for size in args.scaling_sizes:
        m = size * size
        for pct in args.scaling_samplings:
            n = max(1, int(round(pct / 100.0 * m)))
            for mkey in args.scaling_methods:
                base = {"method_key": mkey, "size": size, "pct": pct, "n": n, "m": m}
                lib = None
                if report["cells"]:
                    lib = next((c.get("library_method") for c in report["cells"]
                                if c["method_key"] == mkey and c.get("library_method")), None)
                reason = _scaling_skip(mkey, size, pct, n, m, report["cells"], cap_mb, siren_warm)
                if (mkey, size, pct) in old:  # --reuse: measured before; skipped cells are decided anew
                    cell = {**old[(mkey, size, pct)], "reused_from": report["reused"]["date_utc"]}
                elif reason:
                    reason, root = reason
                    cell = {**base, "status": "skipped", "reason": reason, "root_reason": root, "library_method": lib}
                else:
                    log(f"scaling: {mkey} {size}x{size} {pct:g} % (N={n}) ...")
                    spec = {"size": size, "pct": pct, "seed": report["seed"], "method": mkey,
                            "params": siren_params if mkey == "siren" else {}, "memory": memory,
                            "photons": args.photons, "pattern_model": args.pattern_model,
                            "feature_size": args.feature_size}
                    got = _run_scaling_cell(spec, args.scaling_budget_s, log)
                    cell = {**base, **got, "library_method": got.get("method") or lib}
                    cell.pop("event", None)
                    if cell["library_method"] is None and got.get("simulated"):
                        cell["library_method"] = got["simulated"].get("method")
                    cell["n"] = n
                msg = (f"{cell['seconds']:.1f} s (cpu {cell['cpu_seconds']:.1f}), {cell['peak_mb']:.0f} MB"
                       if cell["status"] == "ok" else f"{cell['status']}: {cell.get('reason', '')}")
                log(f"scaling: {mkey} {size}x{size} {pct:g} % (N={n}): {msg}")
                report["cells"].append(cell)
                report["total_seconds"] = time.perf_counter() - t_start
                report["load_average_at_end"] = loadavg()
                write_pair(render_scaling(report, args), report, args.out_dir, "recon_scaling")
    report["complete"] = True
    report["total_seconds"] = time.perf_counter() - t_start
    report["load_average_at_end"] = loadavg()
    return report
