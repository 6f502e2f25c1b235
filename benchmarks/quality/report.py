"""recon_quality's markdown report (Tables A-C, headline, detail, oracle searches, notes) and its files."""

from __future__ import annotations

import argparse
import json
from typing import Any

from harness.scoring import PARTICLE_FRACTION
from harness.tables import fmt_pct, fmt_weight, mean_std, table, write_pair

from .config import CV_METHODS, METHODS, PAPER_PROBE_STEPS, PINV_CAPPED_FOLDS
from .headline import headline_summary, render_headline
from .labels import method_label

__all__ = ["render_markdown", "write_report"]


def _cell(rows: list[dict], keys: tuple[str, ...], fmts: tuple[str, ...], *, notes: bool = True) -> str:
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        if not rows:
            return "—"
        r = rows[0]
        short = r["reason"].split(":")[0] if r["status"] == "skipped" else r["reason"][:60]
        return f"{r['status']} ({short})"
    parts = [mean_std([r[k] for r in ok], f) for k, f in zip(keys, fmts)]
    txt = " / ".join(parts) + (" †" if any(r.get("capped") for r in ok) else "")
    cell_notes = sorted({r["cell_note"] for r in ok if r.get("cell_note")})
    if notes and cell_notes:
        txt += " " + " ".join(cell_notes)
    if len(ok) < len(rows):
        txt += f" (only {len(ok)} of {len(rows)} seeds; see detail)"
    return txt


def render_markdown(report: dict[str, Any], args: argparse.Namespace) -> str:
    """The whole markdown report."""
    mach, res = report["machine"], report["results"]
    out = ["# Reconstruction quality vs sampling ratio (Fig. 3C-style), TXM-aware methods, headline", ""]
    out += [
        f"- date (UTC): {mach['date_utc']}; run time: {report['total_seconds'] / 60:.1f} min"
        + ("" if report["complete"] else " (INCOMPLETE: partial results)"),
        f"- machine: {mach['host']}, {mach['cpu_model']}, os.cpu_count() = {mach['cpu_count']} "
        f"({mach['cpus_usable']} usable), {mach['memory_gb']} GB RAM; {mach['platform']}",
        f"- load average (1/5/15 min) at start: {mach.get('load_average_at_start')}, at end: "
        f"{report.get('load_average_at_end')} (other jobs share the CPUs: wall times are inflated, CPU times less)",
        f"- software: nxsci {mach['nxsci']}, Python {mach['python']}, numpy {mach['numpy']}, scipy {mach['scipy']}, "
        f"torch {mach['torch']}, corrct {mach['corrct']}; BLAS: {', '.join(mach['blas'])}",
        "- threads: BLAS/OpenMP limited to 1 (threadpoolctl), torch.set_num_threads(1); a solver that runs its own "
        "threads by default (e.g. elements in parallel) keeps them: CPU time > wall time shows it"
        + (f"; OPENBLAS_NUM_THREADS={mach['openblas_num_threads_env']}"
           if mach.get("openblas_num_threads_env") else ""),
        f"- memory: {report['memory_method']}",
        f"- command: `{report['command']}`",
        f"- library state: {report.get('library_state', 'n/a')}",
        *([f"- REUSED rows (not rerun): {json.dumps(report['reused']['rows_by_method'])} from the run of "
           f"{report['reused']['date_utc']} (`{report['reused']['command']}`; library state "
           f"{report['reused']['library_state']}; load average at its start "
           f"{report['reused']['load_average_at_start']})"] if report.get("reused") else []),
        "- parameters:", "", "```json", json.dumps(report["params"], indent=None), "```", "",
        "PSNR = 10 log10(range(truth)^2 / MSE) (standard; the paper's code used max/MSE, so values differ from "
        "its figure). FRC = Fourier ring correlation resolution vs the truth, 1/7 threshold, in pixels (lower is "
        "better). Scored against the noiseless truth map; Table A: battery element "
        f"{args.element} only (not an element average). Table seeds: {' '.join(map(str, args.seeds))}"
        + (" (mean±std)" if len(args.seeds) > 1 else "") + ". ‡ = one `reconstruct_all` call for every element: "
        "time and memory are for ALL elements (the other rows: one element).", ""]
    pcts = args.samplings
    labels = lambda m: method_label(m, args, report)  # noqa: E731
    for image in args.images:
        el = args.element if image == "battery" else "X"
        rows_i = [r for r in res if r["image"] == image and r["seed"] in args.seeds]
        n_of = {p: next((r["n"] for r in rows_i if r["sampling_pct"] == p), None) for p in pcts}
        hdr = ["Method"] + [f"{p:g} % (N={n_of[p]})" for p in pcts]
        present = {r["method"] for r in rows_i}
        table_methods = [m for m in [*METHODS, *report.get("labels", {})] if m in present]
        table_methods = list(dict.fromkeys(table_methods))
        body_q, body_c = [], []
        for method in table_methods:
            sel = {p: [r for r in rows_i if r["method"] == method and r["sampling_pct"] == p and r["element"] == el]
                   for p in pcts}
            body_q.append([labels(method)] + [_cell(sel[p], ("psnr", "ssim", "frc_px"), (".2f", ".3f", ".1f"))
                                              for p in pcts])
            body_c.append([labels(method)] + [_cell(sel[p], ("seconds", "cpu_seconds", "peak_mb"),
                                                    (".1f", ".1f", ".0f")) for p in pcts])
        out += [f"## Table A — {image} ({el}), {args.size}x{args.size}: PSNR (dB) / SSIM / FRC (px)", "",
                table(hdr, body_q), "",
                f"## Table A (cost) — {image}: wall time (s) / CPU time (s) / peak memory (MB), same run", "",
                table(hdr, body_c), ""]
        elements = list(dict.fromkeys(r["element"] for r in rows_i if r.get("all_elements")))
        if len(elements) > 1:
            multi = [m for m in table_methods if m == "tv-oracle" or m in report.get("labels", {})]
            body_b, body_bind = [], []
            for method in table_methods:
                per = {p: [[r for r in rows_i if r["method"] == method and r["sampling_pct"] == p
                            and r["element"] == e] for e in elements] for p in pcts}
                if method in multi:
                    body_b.append([labels(method)] + [" / ".join(_cell(rs, ("psnr",), (".2f",), notes=False)
                                                                 for rs in per[p]) for p in pcts])
                body_bind.append([labels(method)] + [
                    " / ".join(mean_std([100 * r["binder_ratio"] for r in rs if r["status"] == "ok"
                                          and "binder_ratio" in r], ".1f") if rs else "—" for rs in per[p])
                    for p in pcts])
            out += [f"## Table B — {image}, every element ({' / '.join(elements)}): PSNR (dB)", "",
                    table(hdr, body_b), ""]
            if image == "battery":
                out += [f"## Table C — binder painting: mean over the binder mask / mean over the element's particles "
                        f"(%), {' / '.join(elements)} (truth: 0; — = element not reconstructed by that row)", "",
                        table(hdr, body_bind), ""]
    h = report.get("headline")
    if h:
        out += render_headline(h, args)
    det_hdr = ["Image", "Sampling", "N", "Seed", "Element", "Method", "PSNR (dB)", "SSIM", "FRC (px)", "Binder %",
               "Time (s)", "CPU (s)", "Peak (MB)", "Weight", "Notes"]
    det = []
    for r in res:
        note = ""
        if r["status"] != "ok":
            note = f"{r['status']}: {r['reason']}"
        elif r["method"] == "point":
            i = r["info"]
            note = (f"{i['grid'][0]}x{i['grid'][1]} = {i['points']} points, {i['mean_counts_per_point']:.3g} counts/pt "
                    f"(SI: {i['si_mean_counts_per_pattern']:.3g}/pattern)")
        elif r["method"] == "pinv":
            prm = r["info"].get("params", {})
            note = (f"rank {r['info'].get('rank')} of {r['info'].get('max_rank')} (rule {prm.get('rank')}"
                    + (f", {prm['cv_folds']} folds" if prm.get("rank") == "cv" and "cv_folds" in prm else "") + ")")
            if r.get("capped"):
                note += f"; † {r['capped']}"
        elif r["method"] == "tv-oracle":
            note = (f"{r['info'].get('backend')}, {r['info'].get('iterations')} it; search: {r['search_fits']} fits, "
                    f"{r['search_seconds']:.1f} s")
        elif r["method"] in ("tv-pdhg", "tv-under"):
            note = f"{r['info'].get('backend')}, {r['info'].get('iterations')} it"
        elif r["method"] in CV_METHODS:
            i = r["info"]
            cv = i.get("cross_validation", {})
            note = (f"{i.get('backend')}, {i.get('iterations')} it; CV {cv.get('folds')} folds x "
                    f"{len(cv.get('grid', []))} weights, rule {cv.get('rule')}")
            if "min_weight" in i:
                note += f", guidance min_weight {i['min_weight']}"
        elif r.get("all_elements"):
            i = r["info"].get("per_element", {}).get(r["element"], {})
            bits = [f"all {r['all_elements']} elements in one call", f"overrides {json.dumps(r.get('overrides', {}))}"]
            for k in ("output", "lam", "steps_run", "best_step", "warm_start", "warm_start_seconds",
                      "seconds_per_step", "joint_elements"):
                if k in i:
                    v = i[k]
                    bits.append(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}")
            if r.get("paper_probe"):
                pp = r["paper_probe"]
                bits.append(f"probe {pp['seconds_per_step']:.2f} s/step x {pp['networks']} networks -> "
                            f"{r['paper_steps']} steps for {pp['budget_s']:g} s")
            note = "; ".join(bits)
        if r.get("reused_from"):
            note = f"(reused from {r['reused_from']}) " + note
        ok = r["status"] == "ok"
        det.append([r["image"], f"{r['sampling_pct']:g} %", str(r["n"]), str(r["seed"]), r["element"], r["method"],
                    f"{r['psnr']:.2f}" if ok else "", f"{r['ssim']:.3f}" if ok else "",
                    f"{r['frc_px']:.2f}" if ok else "",
                    fmt_pct(r.get("binder_ratio")) if ok and "binder_ratio" in r else "",
                    f"{r['seconds']:.2f}" if ok else "",
                    f"{r['cpu_seconds']:.2f}" if ok else "", f"{r['peak_mb']:.1f}" if ok else "",
                    fmt_weight(r.get("weight")) if ok else "", note])
    out += ["## Detail (every solve)", "", table(det_hdr, det), ""]
    if report["oracle_searches"]:
        out += ["## Oracle weight searches (grid 10^(k/4); library default TV solver run to its tolerance)", ""]
        for o in report["oracle_searches"]:
            pts = ", ".join(f"{g['weight']:.1e}: {g['psnr']:.2f} ({g['iterations']} it)" for g in o["grid"])
            edge = " (best at the grid edge!)" if o["at_grid_edge"] else ""
            out.append(f"- {o['image']}/{o['element']} {o['sampling_pct']:g} % seed {o['seed']}: best "
                       f"{o['weight']:.2e}{edge}; start {o['start_weight']:.1e}; {o['fits']} fits in "
                       f"{o['search_seconds']:.1f} s [{o['mode']}]; PSNR by weight: {pts}")
        out.append("")
    out += ["## Notes", "",
            "- Cases: `simulate_case(phantom, size, sampling, seed)` per sampling (the headline's cases); samplings "
            "of one seed share patterns (the first N of one diffuser schedule), not noise.",
            "- Point scanning: same N and same total incident dose as the structured-illumination run "
            "(dose per point = total pattern dose / points, on one pixel), Poisson counts, then interpolated; "
            "see the script docstring for the exact rule.",
            "- TV / guided TV auto weight: the library's defaults (solver, K-fold cross-validation and its rule"
            + ("" if args.cv_folds is None else f"; folds set to {args.cv_folds}") + "), recorded per solve in "
            f"the JSON. Cells marked skipped have N*M > --cv-max-entries {args.cv_max_entries:.2e}.",
            f"- † cost cap: above --cv-max-entries the pseudo-inverse's rank cross-validation uses "
            f"{PINV_CAPPED_FOLDS} folds (one SVD each) instead of the library's default.",
            "- TV-oracle: weight by ground truth; time/memory are one cold solve at that weight; the search "
            "cost is listed above. tv-pdhg / tv-under: corrct PDHG at the same weight, fixed iteration counts.",
            "- ‡ rows: library defaults plus only the overrides in their label, all elements per call; SIREN's "
            "joint mode trains one network for all elements. siren-paper: steps set per case from a "
            f"{PAPER_PROBE_STEPS}-step probe so the call fits --paper-budget-s {args.paper_budget_s:g} s.",
            f"- Binder painting: particles = truth > {PARTICLE_FRACTION:g} x the element's maximum; binder mask "
            "from `battery_phantom(size, seed)`.", ""]
    return "\n".join(out)


def write_report(report: dict[str, Any], args: argparse.Namespace) -> str:
    """Add the headline, write recon_quality.md/.json into --out-dir, return the markdown."""
    report["headline"] = headline_summary(report, args)
    md = render_markdown(report, args)
    write_pair(md, report, args.out_dir, "recon_quality")
    return md
