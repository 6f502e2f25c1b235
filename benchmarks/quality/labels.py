"""Row labels of recon_quality's tables: what each row ran, and whether an ablation equals the default."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["method_label", "row_labels"]


def method_label(method: str, args: argparse.Namespace, report: dict[str, Any] | None = None) -> str:
    labels = (report or {}).get("labels", {})
    if method in labels:
        return labels[method]
    return {
        "point": f"Point scan (equal dose, {args.point_interp} interp.)",
        "pinv": f"Pseudo-inverse (TSVD, rank {args.pinv_rank})",
        "tv": "TV, auto weight (K-fold CV)",
        "tv-oracle": "TV-oracle (converged, best weight vs truth)",
        "tv-pdhg": f"TV PDHG {args.pdhg_iterations} it (oracle weight)",
        "tv-under": f"TV under-converged (PDHG {args.under_iterations} it, oracle weight)",
        "guided-tv": "Guided TV, auto weight (K-fold CV)",
    }.get(method, method)


def row_labels(runner: Any, args: argparse.Namespace, default_keys: dict[str, str]) -> dict[str, Any]:
    """Labels of the every-element rows (ablations say when they equal the library default) + their specs."""
    from nxsci.recon import get_solver

    base = {
        "composition-tv": "Composition TV, auto weight (larger of CV and discrepancy) ‡",
        "siren": "SIREN (library defaults) ‡",
        "siren-no-prior": "SIREN, no TXM gradient prior (txm_prior=false) ‡",
        "siren-map": "SIREN, map output, no composition (output=map) ‡",
        "siren-per-element": "SIREN, one network per element (joint=false) ‡",
        "siren-cold": "SIREN, no warm start (warm_start=none) ‡",
        "siren-paper": f"SIREN, paper config, {args.paper_budget_s:g} s budget [steps] ‡",
    }
    labels: dict[str, str] = {}
    specs: dict[str, Any] = {}
    for key, (method, over) in runner.specs.items():
        lab = base.get(key, f"{method} (library defaults) ‡")
        defaults = get_solver(method).params.model_dump()
        same = [k for k, v in over.items() if defaults.get(k) == v]
        if same:
            lab = lab.replace(" ‡", f" (= default: {', '.join(same)}) ‡")
        if method == "siren" and args.siren_set:
            lab = lab.replace(" ‡", f" [+ {json.dumps(args.siren_set)}] ‡")
        if key in default_keys.values():
            lab = lab.replace(" ‡", " — default method ‡")
        labels[key] = lab
        specs[key] = {"method": method, "overrides": runner.row_params(key)[1], "equals_default": same}
    return {"labels": labels, "specs": specs}
