"""Is the TV-oracle's search fine enough? Compare it with a dense sweep of the same library ``tv``.

For each chosen measurement and element: the oracle as the benchmarks find it (``harness.oracle.find_oracle``:
half-decade hill-climb from plain TV's automatic weight, then quarter-decade neighbours) against the best of a
sweep at eighth-decade spacing, two decades either side of the found weight. Prints one line per element and a
markdown table; ``--json`` keeps every sweep point.

    OPENBLAS_NUM_THREADS=1 python benchmarks/oracle_check.py [--cases battery eels] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from harness.oracle import dense_sweep, find_oracle  # noqa: E402
from harness.tables import table, write_json  # noqa: E402
from robust.families import build_cases  # noqa: E402

#: measurement name -> robustness family that holds it
CASES = {"battery": "battery", "graded": "graded", "hxn": "real-xrf-no-txm", "eels": "real-eels-haadf"}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="+", default=["battery", "eels"], choices=list(CASES))
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--sampling", type=float, default=10.0, help="percent (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(list(argv) if argv is not None else None)
    from nxsci.recon import reconstruct
    from threadpoolctl import threadpool_limits

    records, body = [], []
    with contextlib.redirect_stdout(sys.stderr), threadpool_limits(limits=1):
        for name in args.cases:
            (case,) = build_cases(size=args.size, pct=args.sampling, seeds=[args.seed], families=[CASES[name]])
            ds = case.dataset
            auto = reconstruct(ds, method="tv")
            for e in ds.elements:
                y, truth = ds.signal(e), ds.truth(e)
                found = find_oracle(ds.patterns, y, truth, start_weight=float(auto.solver_info[e]["weight"]))
                sweep = dense_sweep(ds.patterns, y, truth, found.weight, decades=2.0, per_decade=8)
                best = max(sweep, key=lambda g: g["psnr"])
                gain = best["psnr"] - found.scores["psnr"]
                print(f"{name} {e}: search {found.weight:.2e} {found.scores['psnr']:.3f} dB ({len(found.grid)} fits); "
                      f"dense {best['weight']:.2e} {best['psnr']:.3f} dB ({len(sweep)} fits): +{gain:.3f} dB",
                      file=sys.stderr, flush=True)
                records.append({"case": name, "element": e, "search": found.as_dict(), "dense": sweep,
                                "dense_gain_db": gain})
                body.append([name, e, f"{found.weight:.2e}", f"{found.scores['psnr']:.2f}", str(len(found.grid)),
                             f"{best['weight']:.2e}", f"{best['psnr']:.2f}", f"{gain:+.3f}",
                             "yes" if any(g["capped"] for g in sweep) else "no"])
    print(table(["Case", "Element", "search weight", "search PSNR", "fits", "dense best weight", "dense PSNR",
                 "dense − search (dB)", "any fit at the iteration cap"], body))
    if args.json:
        write_json(args.json, {"command": " ".join(sys.argv), "params": vars(args) | {"json": str(args.json)},
                               "records": records})
    return 0


if __name__ == "__main__":
    sys.exit(main())
