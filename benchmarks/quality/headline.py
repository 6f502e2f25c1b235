"""The headline: default method minus TV-oracle per sampling, seed and element; time and binder painting."""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np

from harness.tables import fmt_pct, table

from .config import TARGET_MARGIN_DB, TARGET_SECONDS

__all__ = ["element_order", "headline_summary", "render_headline"]


def element_order(el: str) -> tuple[int, str]:
    """Battery elements first, in the tables' order."""
    order = ("Mn", "Co", "Ni")
    return (order.index(el) if el in order else len(order), el)


def headline_summary(report: dict[str, Any], args: argparse.Namespace) -> dict[str, Any] | None:
    """Margins of the default method over the TV-oracle per (sampling, seed, element), time per case."""
    key = report.get("default_keys", {}).get("battery")
    if not args.headline_seeds or key is None:
        return None
    res = [r for r in report["results"] if r["image"] == "battery" and r["seed"] in args.headline_seeds]
    cases, margins, binder_d, binder_o = [], [], [], []
    elements: list[str] = []
    for pct in sorted(args.samplings):
        for seed in args.headline_seeds:
            here = [r for r in res if r["sampling_pct"] == pct and r["seed"] == seed]
            dflt = {r["element"]: r for r in here if r["method"] == key}
            orc = {r["element"]: r for r in here if r["method"] == "tv-oracle"}
            if not dflt and not orc:
                continue
            case: dict[str, Any] = {"sampling_pct": pct, "seed": seed, "n": (here[0]["n"] if here else None),
                                    "elements": {}}
            for el in sorted(set(dflt) | set(orc), key=element_order):
                if el not in elements:
                    elements.append(el)
                d, o = dflt.get(el), orc.get(el)
                e: dict[str, Any] = {"default_status": d["status"] if d else "missing",
                                     "oracle_status": o["status"] if o else "missing"}
                if d and d["status"] == "ok":
                    e.update(default_psnr=d["psnr"], default_binder=d.get("binder_ratio"))
                    binder_d.append(d.get("binder_ratio", float("nan")))
                if o and o["status"] == "ok":
                    e.update(oracle_psnr=o["psnr"], oracle_binder=o.get("binder_ratio"))
                    binder_o.append(o.get("binder_ratio", float("nan")))
                if "default_psnr" in e and "oracle_psnr" in e:
                    e["margin_db"] = e["default_psnr"] - e["oracle_psnr"]
                    margins.append((e["margin_db"], pct, seed, el))
                case["elements"][el] = e
            d0 = next((r for r in dflt.values() if r["status"] == "ok"), None)
            if d0 is not None:
                case.update(seconds=d0["seconds"], cpu_seconds=d0["cpu_seconds"], peak_mb=d0["peak_mb"])
            cases.append(case)
    expected = len(cases) * len(elements)
    times = [c["seconds"] for c in cases if "seconds" in c]
    cpu = [c["cpu_seconds"] for c in cases if "cpu_seconds" in c]
    worst = min(margins) if margins else None
    fin = lambda v: [x for x in v if isinstance(x, (int, float)) and math.isfinite(x)]  # noqa: E731
    elements.sort(key=element_order)
    return {
        "method_key": key, "method": report["default_methods"]["battery"], "elements": elements, "cases": cases,
        "margins_measured": len(margins), "margins_expected": expected,
        "min_margin_db": worst[0] if worst else None,
        "min_margin_case": {"sampling_pct": worst[1], "seed": worst[2], "element": worst[3]} if worst else None,
        "mean_margin_db": float(np.mean([m[0] for m in margins])) if margins else None,
        "all_margins_ge_target": bool(margins) and len(margins) == expected
        and all(m[0] >= TARGET_MARGIN_DB for m in margins),
        "margins_below_target": sum(m[0] < TARGET_MARGIN_DB for m in margins),
        "max_seconds": max(times) if times else None, "max_cpu_seconds": max(cpu) if cpu else None,
        "cases_within_time": sum(t <= TARGET_SECONDS for t in times), "cases_timed": len(times),
        "binder_default_max": max(fin(binder_d)) if fin(binder_d) else None,
        "binder_default_mean": float(np.mean(fin(binder_d))) if fin(binder_d) else None,
        "binder_oracle_mean": float(np.mean(fin(binder_o))) if fin(binder_o) else None,
    }


def render_headline(h: dict[str, Any], args: argparse.Namespace) -> list[str]:
    els = h["elements"]
    hdr = (["Sampling", "Seed", "N"] + [f"{el}: default − oracle (dB)" for el in els]
           + [f"binder/particles, default ({' / '.join(els)}), %", "time all elements: wall s (CPU s)", "peak MB"])
    body = []
    for c in h["cases"]:
        cells = []
        for el in els:
            e = c["elements"].get(el, {})
            if "margin_db" in e:
                cells.append(f"{e['default_psnr']:.2f} − {e['oracle_psnr']:.2f} = **{e['margin_db']:+.2f}**")
            else:
                cells.append(f"default {e.get('default_status', 'missing')}, "
                             f"oracle {e.get('oracle_status', 'missing')}")
        binder = " / ".join(fmt_pct(c["elements"].get(el, {}).get("default_binder")) for el in els)
        t = f"{c['seconds']:.1f} ({c['cpu_seconds']:.1f})" if "seconds" in c else "n/a"
        pk = f"{c['peak_mb']:.0f}" if "peak_mb" in c else "n/a"
        body.append([f"{c['sampling_pct']:g} %", str(c["seed"]), str(c["n"]), *cells, binder, t, pk])
    mm = h["min_margin_db"]
    mc = h["min_margin_case"]
    lines = [f"## Headline — default method `{h['method']}` vs TV-oracle, battery {args.size}x{args.size}, "
             f"seeds {' '.join(map(str, args.headline_seeds))}, every element", "", table(hdr, body), "",
             f"- minimum margin: **{mm:+.2f} dB**" + (f" ({mc['element']}, {mc['sampling_pct']:g} %, seed {mc['seed']})"
                                                     if mc else "") if mm is not None else "- minimum margin: n/a",
             f"- mean margin: {h['mean_margin_db']:+.2f} dB" if h["mean_margin_db"] is not None
             else "- mean margin: n/a",
             f"- every margin >= {TARGET_MARGIN_DB:g} dB: **{'yes' if h['all_margins_ge_target'] else 'no'}** "
             f"({h['margins_below_target']} of {h['margins_measured']} below; "
             f"{h['margins_measured']} of {h['margins_expected']} margins measured)",
             f"- time <= {TARGET_SECONDS:g} s for all elements: {h['cases_within_time']} of {h['cases_timed']} cases "
             f"(max {h['max_seconds']:.1f} s wall, {h['max_cpu_seconds']:.1f} s CPU; BLAS/torch one thread each, the "
             f"library's own parallelism as by default)"
             if h["max_seconds"] is not None else "- time: n/a",
             f"- binder painting (mean over binder / mean over the element's particles; truth 0 %): default "
             f"{fmt_pct(h['binder_default_mean'])} % mean, {fmt_pct(h['binder_default_max'])} % max; TV-oracle (no TXM) "
             f"{fmt_pct(h['binder_oracle_mean'])} % mean", ""]
    return lines

