"""How the default reconstruction behaves on data our simulator did not make (issue 16).

Every row is one case family x case x element: the default method as it is today
(``nxsci.recon.reconstruct(ds)``: composition TV when the dataset has a TXM, TV otherwise) against the TV-oracle
(the library's converged ``tv`` at its ground-truth-best weight, ``harness.oracle``) and plain TV with its
automatic weight (what a TXM-free default gives): PSNR and SSIM against the truth, default − oracle in dB,
the default call's wall time, CPU time and peak memory, all in the same run.

Families (``robust.families``; 64x64, 10 % sampling by default, deterministic seeds): battery phantoms (the
reference), the same measurements with the TXM offset (1, 2.5, 5 px), blurred and noisy, replaced by a natural
image, with one species faint and a foreign one strong, or with Zernike-like halos; graded-composition
particles; no TXM; and real element maps (HXN XRF without a structural image, Si dropped; STEM-EELS with its
HAADF) measured by the project's simulator.

    OPENBLAS_NUM_THREADS=1 python benchmarks/robustness.py [--samplings 5 10 25] [--json PATH] [--md PATH]
    python benchmarks/robustness.py --quick          # smoke run: 32x32, seed 0, a 3-fit oracle

Markdown goes to stdout (and ``--md``), every number (oracle searches, weights, warnings) to ``--json``,
one progress line per case to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # the shared harness and this script's modules
    sys.path.insert(0, HERE)

from harness.machine import library_state, loadavg, machine_info  # noqa: E402
from harness.measure import MEMORY_TEXT, Probe  # noqa: E402
from harness.oracle import ORACLE_MAX_FITS, ORACLE_PARAMS  # noqa: E402
from harness.tables import write_json, write_text  # noqa: E402
from robust.families import FAMILIES, build_cases  # noqa: E402
from robust.report import render_markdown, summary  # noqa: E402
from robust.runner import RobustnessRunner  # noqa: E402

DEFAULTS: dict[str, Any] = {"size": 64, "samplings": [10.0], "seeds": [0, 1, 2], "oracle_fits": ORACLE_MAX_FITS}
QUICK: dict[str, Any] = {"size": 32, "samplings": [10.0], "seeds": [0], "oracle_fits": 3}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="robustness.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: 32x32, seed 0, oracle of 3 fits (explicit "
                                                        "flags still win)")
    p.add_argument("--size", type=int, default=None, help="image side, px (default 64; --quick 32)")
    p.add_argument("--samplings", type=float, nargs="+", default=None, metavar="PCT",
                   help="sampling ratios N/M in percent (default 10; e.g. 5 10 25)")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="battery / graded seeds; the real maps use the first (default 0 1 2; --quick 0)")
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES, metavar="FAMILY",
                   help=f"subset of {', '.join(FAMILIES)} (default: all)")
    p.add_argument("--method", default=None,
                   help="method of the 'default' column (default: the library's default for each dataset)")
    p.add_argument("--photons", type=float, default=1e5,
                   help="expected counts per pattern of each case's strongest element (default: %(default)s)")
    p.add_argument("--oracle-fits", type=int, default=None,
                   help=f"most fits of each oracle search (default {ORACLE_MAX_FITS}; --quick 3)")
    p.add_argument("--memory", default="auto", choices=("auto", "rss", "tracemalloc"),
                   help="peak-memory method (default: %(default)s)")
    p.add_argument("--json", type=Path, default=None, help="write every number here")
    p.add_argument("--md", type=Path, default=None, help="write the markdown report here")
    args = p.parse_args(list(argv) if argv is not None else None)
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.size < 24:
        p.error("--size must be >= 24 (the battery phantom's minimum)")
    if any(not 0 < s <= 100 for s in args.samplings):
        p.error("--samplings are percentages in (0, 100]")
    if args.oracle_fits < 3:
        p.error("--oracle-fits must be >= 3 (a start and its two neighbours)")
    return args


def _warm_up(runner: RobustnessRunner) -> None:
    """Imports and first calls (corrct, allocator) out of the timings."""
    from nxsci.recon import reconstruct, simulate_case

    ds = simulate_case(phantom="battery", size=24, sampling=0.25, seed=123)
    reconstruct(ds, method=runner.method)
    reconstruct(ds, method="tv")


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    import torch
    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    probe = Probe(args.memory)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    runner = RobustnessRunner(probe, oracle_max_fits=args.oracle_fits, log=log, method=args.method)
    report: dict[str, Any] = {
        "machine": machine_info(), "command": command, "library_state": library_state(),
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "memory_method": MEMORY_TEXT[probe.method],
        "oracle": (f"library `tv` ({ORACLE_PARAMS}) at the best PSNR on the grid 10^(k/4): half-decade hill-climb "
                   f"from tv-auto's weight until bracketed, then the quarter-decade neighbours (at most "
                   f"{args.oracle_fits} fits per element; cold public calls)"),
        "results": [], "complete": False, "total_seconds": 0.0}
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        _warm_up(runner)
        for pct in sorted(args.samplings):
            cases = build_cases(size=args.size, pct=pct, seeds=args.seeds, photons=args.photons,
                                families=args.families)
            for i, case in enumerate(cases, 1):
                t1 = time.perf_counter()
                rows = runner.run(case)
                report["results"] += rows
                gaps = " ".join(f"{r['element']} {r['default_minus_oracle_db']:+.2f}" for r in rows)
                log(f"[{pct:g} % {i}/{len(cases)}] {case.family} / {case.name}: default − oracle {gaps} dB "
                    f"({rows[0]['default_method']}, {rows[0]['seconds']:.1f} s; case {time.perf_counter() - t1:.0f} s)")
    report.update(summary=summary(report["results"]), complete=True, total_seconds=time.perf_counter() - t0,
                  load_average_at_end=loadavg())
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    shown = list(argv) if argv is not None else sys.argv[1:]
    command = "python benchmarks/robustness.py" + "".join(f" {a}" for a in shown)
    with contextlib.redirect_stdout(sys.stderr):  # stray prints (corrct's import notice) stay off stdout
        report = run(args, command)
    md = render_markdown(report)
    print(md)
    if args.md:
        write_text(args.md, md)
    if args.json:
        write_json(args.json, report)
    print(f"done in {report['total_seconds'] / 60:.1f} min", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
