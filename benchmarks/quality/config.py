"""recon_quality.py's command line: its rows, defaults and flags (see that script's docstring)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["ALL_ELEMENT_ROWS", "METHODS", "CV_METHODS", "DEFAULTS", "QUICK", "SCALING_DEFAULTS", "TARGET_MARGIN_DB",
           "TARGET_SECONDS", "PAPER_PROBE_STEPS", "OUT_DIR", "PINV_CAPPED_FOLDS", "parser", "parse_set", "parse_args"]

#: rows that reconstruct every element in one ``reconstruct_all`` call: library method, ablation overrides
ALL_ELEMENT_ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "composition-tv": ("composition-tv", {}),
    "siren": ("siren", {}),
    "siren-no-prior": ("siren", {"txm_prior": False}),
    "siren-map": ("siren", {"output": "map"}),
    "siren-per-element": ("siren", {"joint": False}),
    "siren-cold": ("siren", {"warm_start": "none"}),
    "siren-paper": ("siren-paper", {}),  # steps: from --paper-budget-s, per case
}
METHODS: tuple[str, ...] = ("point", "pinv", "tv", "tv-oracle", "tv-pdhg", "tv-under", "guided-tv",
                            *ALL_ELEMENT_ROWS)
CV_METHODS = ("tv", "guided-tv")
DEFAULTS: dict[str, Any] = {"size": 64, "samplings": [25.0, 10.0, 5.0], "images": ["battery"], "seeds": [0],
                            "headline_seeds": [0, 1, 2]}
QUICK: dict[str, Any] = {"size": 48, "samplings": [25.0, 5.0], "images": ["battery"], "seeds": [0],
                         "headline_seeds": [0]}
SCALING_DEFAULTS: dict[str, Any] = {"scaling_sizes": [64, 128, 256], "scaling_samplings": [5.0, 10.0, 25.0, 50.0]}
#: the quality target of the headline: default method >= TV-oracle + 1 dB, <= 30 s for all elements
TARGET_MARGIN_DB = 1.0
TARGET_SECONDS = 30.0
#: steps of the siren-paper probe that measures seconds per step before the budgeted run
PAPER_PROBE_STEPS = 3
OUT_DIR = Path(__file__).resolve().parents[1] / "out"
#: folds of the pseudo-inverse's rank cross-validation above --cv-max-entries (each fold is one SVD)
PINV_CAPPED_FOLDS = 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="recon_quality.py",
        description="Fig. 3C-style benchmark: PSNR/SSIM/FRC vs sampling ratio for point scanning, pseudo-inverse, "
                    "TV (auto / oracle / under-converged), guided TV, composition TV and SIREN (with ablations and "
                    "the paper's configuration), with wall time and peak memory; a headline table (default "
                    "method vs TV-oracle, every element, several seeds) and a --scaling mode.",
        epilog="Details (dose rule, memory method, cost caps): see the module docstring.")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 48x48, samplings 25 5 %%, battery only, seed 0, headline seed 0 "
                        "(explicit flags still win)")
    p.add_argument("--size", type=int, default=None,
                   help=f"image size in px (default {DEFAULTS['size']}; --quick: {QUICK['size']})")
    p.add_argument("--samplings", type=float, nargs="+", default=None, metavar="PCT",
                   help="sampling ratios N/M in percent (default 25 10 5; --quick: 25 5)")
    p.add_argument("--images", nargs="+", default=None, metavar="NAME",
                   help="'battery' and/or natural image names, e.g. camera coins "
                        "(default battery)")
    p.add_argument("--element", default="Ni",
                   help="battery element map that is reconstructed and scored (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="simulation seeds of Tables A/B (default 0)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS, metavar="METHOD",
                   help=f"subset of {', '.join(METHODS)} (default: all)")
    p.add_argument("--photons", type=float, default=1e5,
                   help="expected XRF counts per pattern of the strongest element, sets the noise "
                        "(default: %(default)s)")
    p.add_argument("--pattern-model", default="two-diffuser", choices=("two-diffuser", "speckle", "random"),
                   help="illumination pattern model (default: %(default)s)")
    p.add_argument("--feature-size", type=float, default=2.0,
                   help="pattern feature size (px) (default: %(default)s)")
    p.add_argument("--pdhg-iterations", type=int, default=2000,
                   help="PDHG iterations of the tv-pdhg row (default: %(default)s)")
    p.add_argument("--under-iterations", type=int, default=300,
                   help="PDHG iterations of the tv-under row (default: %(default)s)")
    p.add_argument("--cv-folds", type=int, default=None,
                   help="folds of every library cross-validation: TV/guided-TV weight, pseudo-inverse rank "
                        "(default: the library's)")
    p.add_argument("--cv-max-entries", type=float, default=1.1e7,
                   help="above this N*M the auto-weight TV methods are skipped (reported as such) and the "
                        "pseudo-inverse's rank CV uses 2 folds (marked †) (default: %(default)s)")
    p.add_argument("--pinv-rank", default=None,
                   help="pseudo-inverse rank rule, e.g. cv, gcv, full or an integer (default: the library's)")
    p.add_argument("--point-interp", default="cubic", choices=("cubic", "linear"),
                   help="interpolation of the point scan back to the full grid (default: %(default)s)")
    p.add_argument("--memory", default="auto", choices=("auto", "rss", "tracemalloc"),
                   help="peak-memory method (auto: rss where /proc/self/clear_refs works, else tracemalloc) "
                        "(default: %(default)s)")
    p.add_argument("--out-dir", type=Path, default=OUT_DIR,
                   help="where recon_quality.md/.json are written (default: %(default)s)")
    p.add_argument("--headline-seeds", type=int, nargs="+", default=None, metavar="SEED",
                   help="seeds of the headline table (battery, every element, default method vs TV-oracle) "
                        "(default 0 1 2; --quick: 0)")
    p.add_argument("--no-headline", action="store_true", help="skip the headline table")
    p.add_argument("--paper-budget-s", type=float, default=120.0,
                   help="wall-time budget of the siren-paper row per case, all elements: steps are set from a "
                        "measured s/step to fit it (default: %(default)s)")
    p.add_argument("--siren-set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra parameter override for every 'siren' row (value parsed as JSON, else a string); "
                        "for smoke runs, the published tables use none")
    p.add_argument("--reuse", type=Path, default=None, metavar="JSON",
                   help="carry the rows of methods NOT run now (and not needed now) over from an earlier "
                        "recon_quality.json of the same cases, e.g. to rerun only the SIREN rows after the "
                        "library changed; with --scaling: keep the measured cells of an earlier "
                        "recon_scaling.json and decide its skipped cells anew. The report lists what was reused")
    p.add_argument("--scaling", action="store_true",
                   help="run the scaling benchmark instead (time/memory vs image size; see the docstring)")
    p.add_argument("--scaling-sizes", type=int, nargs="+", default=None, metavar="PX",
                   help="--scaling: image sides (default 64 128 256)")
    p.add_argument("--scaling-samplings", type=float, nargs="+", default=None, metavar="PCT",
                   help="--scaling: N as a percentage of M (default 5 10 25 50)")
    p.add_argument("--scaling-methods", nargs="+", default=["default", "siren"], metavar="METHOD",
                   help="--scaling: 'default' (default_method of the data) and/or library method names "
                        "(default: %(default)s)")
    p.add_argument("--scaling-budget-s", type=float, default=300.0,
                   help="--scaling: a solve running longer is stopped and reported as over budget "
                        "(default: %(default)s)")
    p.add_argument("--scaling-memory-gb", type=float, default=None,
                   help="--scaling: skip cells whose predicted peak exceeds this (default: half the "
                        "available memory at start)")
    p.add_argument("--scaling-cell", default=None, help=argparse.SUPPRESS)  # internal: one child measurement
    return p


def parse_set(items: Sequence[str], p: argparse.ArgumentParser) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            p.error(f"--siren-set expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = parser()
    args = p.parse_args(list(argv) if argv is not None else None)
    base = {**(QUICK if args.quick else DEFAULTS), **SCALING_DEFAULTS}
    for key, value in base.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    from nxsci.recon import PHANTOMS, get_solver  # noqa: PLC0415 (keep `import recon_quality` cheap)

    if args.scaling_cell is not None:
        return args
    bad = [im for im in args.images if im not in PHANTOMS]
    if bad:
        p.error(f"unknown image(s) {bad}; choose from {', '.join(PHANTOMS)}")
    if args.size < 16 or any(s < 16 for s in args.scaling_sizes):
        p.error("--size / --scaling-sizes must be >= 16")
    if any(not (0 < s <= 100) for s in [*args.samplings, *args.scaling_samplings]):
        p.error("--samplings / --scaling-samplings are percentages in (0, 100]")
    if args.paper_budget_s <= 0 or args.scaling_budget_s <= 0:
        p.error("budgets must be > 0 s")
    if args.pinv_rank is None:  # record the library's default explicitly
        args.pinv_rank = get_solver("pinv").params.rank
    elif args.pinv_rank.lstrip("-").isdigit():
        args.pinv_rank = int(args.pinv_rank)
    try:
        get_solver("pinv", {"rank": args.pinv_rank})
    except Exception as exc:  # noqa: BLE001 - the library's own message names the valid choices
        p.error(f"--pinv-rank: {exc}")
    args.siren_set = parse_set(args.siren_set, p)
    try:
        get_solver("siren", args.siren_set)
    except Exception as exc:  # noqa: BLE001
        p.error(f"--siren-set: {exc}")
    for m in args.scaling_methods:
        if m != "default":
            try:
                get_solver(m)
            except Exception as exc:  # noqa: BLE001
                p.error(f"--scaling-methods: {exc}")
    args.samplings = sorted(set(args.samplings), reverse=True)
    args.scaling_sizes = sorted(set(args.scaling_sizes))
    args.scaling_samplings = sorted(set(args.scaling_samplings))
    args.methods = [m for m in METHODS if m in args.methods]  # canonical order
    args.headline_seeds = [] if args.no_headline or "battery" not in args.images else sorted(set(args.headline_seeds))
    return args
