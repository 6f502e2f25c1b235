"""How well do the automatic TV-weight rules do? Composition TV on simulated 64x64 battery cases, every
element, against TV-oracle (plain TV at its ground-truth-best weight) and against composition TV's own
ground-truth-best weight.

Per case: a weight sweep (17 weights, 1e-6..1e-2, converged batched ADMM) of plain TV (its best PSNR is the
TV-oracle) and of composition TV (its best is the composition oracle: what any weight rule could reach),
then composition TV with ``weight="cv"``, ``"discrepancy"`` and ``"auto"`` (the larger of the two, as the
library's default does with the spectrum fit's uncertainties). Prints one line per case and a summary table
of the margins over TV-oracle (minimum, mean, cases below 1 dB).

    python benchmarks/weight_rules.py --seeds 0 1 2 3 4 5 6 --samplings 5 10 [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from typing import Any

import numpy as np

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

RULES = ("cv", "discrepancy", "auto")


def _sweep(a: np.ndarray, ys: np.ndarray, shape: tuple[int, int], grid: np.ndarray, score: Any) -> np.ndarray:
    """PSNR (G, E) of converged TV solves over ``grid`` (strong to weak, warm-started)."""
    from nxsci.recon.solvers.tv_admm import TVSystem, admm_tv_batch

    system = TVSystem(a, shape)
    norm2 = float(np.linalg.norm(a, 2) ** 2)
    out, warms = [], None
    for w in grid[::-1]:
        warms = admm_tv_batch(system, ys, [w * norm2] * len(ys), max_iter=2000, tol=1e-4, warms=warms)
        out.append([score(e, s.z2) for e, s in enumerate(warms)])
    return np.array(out[::-1])


def run_case(seed: int, pct: float, size: int) -> dict[str, Any]:
    from nxsci.recon import PatternPhysics, SolverError, get_solver, map_scale, psnr, simulate_case
    from nxsci.recon.solvers.txm_prior import txm_thickness

    t0 = time.perf_counter()
    ds = simulate_case(phantom="battery", size=size, sampling=pct / 100.0, seed=seed)
    truth = ds.truth_maps
    assert truth is not None
    a = PatternPhysics(ds.patterns).numpy_matrix().astype(np.float64)
    ys = np.stack([ds.signal(e) for e in ds.elements])
    sigma = np.stack([ds.sigma(e) for e in ds.elements])
    grid = np.geomspace(1e-6, 1e-2, 17)
    scale = np.array([map_scale(a, y) for y in ys])
    tv = _sweep(a, ys / scale[:, None], ds.image_shape, grid, lambda e, x: psnr(x * scale[e], truth[e]))
    thick = txm_thickness(ds.txm, background_percentile=5.0, floor=1e-2)
    ac = a * thick.reshape(1, -1)
    cscale = np.array([map_scale(ac, y) for y in ys])
    comp = _sweep(ac, ys / cscale[:, None], ds.image_shape, grid,
                  lambda e, x: psnr(x * thick * cscale[e], truth[e]))
    physics = PatternPhysics(ds.patterns)
    case: dict[str, Any] = {"seed": seed, "sampling_pct": pct, "n": ds.num_patterns, "elements": ds.elements,
                            "tv_oracle": tv.max(axis=0).tolist(), "composition_oracle": comp.max(axis=0).tolist()}
    for rule in RULES:
        try:
            results = get_solver("composition-tv", {"weight": rule}).reconstruct_all(ys, physics, guide=ds.txm,
                                                                                     sigma=sigma)
        except SolverError as exc:  # the discrepancy principle alone can find no weight: a result too
            case[rule], case[f"{rule}_error"] = None, str(exc)
            continue
        case[rule] = [psnr(r.x, truth[e]) for e, r in enumerate(results)]
        case[f"{rule}_weight"] = [r.info["weight"] for r in results]
    case["seconds"] = time.perf_counter() - t0
    return case


def summary(cases: list[dict[str, Any]]) -> str:
    rows = ["| rule | min margin over TV-oracle (dB) | mean (dB) | margins < 1 dB "
            "| mean gap to composition oracle (dB) |", "|---|---|---|---|---|"]
    for key in ("composition_oracle", *RULES):
        done = [c for c in cases if c[key] is not None]
        label = "composition TV at its best weight (truth)" if key == "composition_oracle" else f"`{key}`"
        failed = f"; no weight in {len(cases) - len(done)} cases" if len(done) < len(cases) else ""
        if not done:
            rows.append(f"| {label} | n/a | n/a | n/a{failed} | n/a |")
            continue
        margins = np.array([m - o for c in done for m, o in zip(c[key], c["tv_oracle"])])
        gap = np.array([b - m for c in done for m, b in zip(c[key], c["composition_oracle"])])
        rows.append(f"| {label} | {margins.min():+.2f} | {margins.mean():+.2f} | {int((margins < 1).sum())} of "
                    f"{margins.size}{failed} | {gap.mean():.2f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--samplings", type=float, nargs="+", default=[5.0, 10.0, 25.0])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--json", help="write the cases and the summary here")
    args = p.parse_args(argv)
    cases = []
    for seed in args.seeds:
        for pct in args.samplings:
            case = run_case(seed, pct, args.size)
            cases.append(case)
            margins = {k: " ".join(f"{m - o:+.2f}" for m, o in zip(case[k], case["tv_oracle"]))
                       if case[k] is not None else "n/a" for k in ("composition_oracle", *RULES)}
            print(f"seed {seed} {pct:g} % (N={case['n']}), margins over TV-oracle ({'/'.join(case['elements'])}): "
                  + " | ".join(f"{k} {v}" for k, v in margins.items()) + f"  [{case['seconds']:.0f} s]", flush=True)
    table = summary(cases)
    print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                       "command": " ".join(sys.argv), "cases": cases, "summary_markdown": table}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
