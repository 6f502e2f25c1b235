"""The robustness report: the per-element table, the per-family summary and the JSON record."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.tables import table

__all__ = ["summary", "render_table", "render_summary", "render_markdown"]


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (family, sampling): rows, min/mean of default − oracle and tv-auto − oracle, slowest default call."""
    out = []
    keys = list(dict.fromkeys((r["family"], r["sampling_pct"]) for r in rows))
    for fam, pct in keys:
        sel = [r for r in rows if r["family"] == fam and r["sampling_pct"] == pct]
        d = np.array([r["default_minus_oracle_db"] for r in sel])
        t = np.array([r["tv_auto_minus_oracle_db"] for r in sel])
        out.append({"family": fam, "sampling_pct": pct, "rows": len(sel),
                    "default_methods": sorted({r["default_method"] for r in sel}),
                    "default_minus_oracle_min": float(d.min()), "default_minus_oracle_mean": float(d.mean()),
                    "default_minus_oracle_max": float(d.max()),
                    "tv_auto_minus_oracle_min": float(t.min()), "tv_auto_minus_oracle_mean": float(t.mean()),
                    "max_seconds": max(r["seconds"] for r in sel), "max_peak_mb": max(r["peak_mb"] for r in sel)})
    return out


def render_table(rows: list[dict[str, Any]]) -> str:
    """One line per family x case x element."""
    hdr = ["Family", "Case", "Element", "N", "Default method", "PSNR default / tv-auto / TV-oracle (dB)",
           "default − oracle (dB)", "tv-auto − oracle (dB)", "SSIM default / tv-auto / oracle", "oracle weight",
           "time default, all elements: wall s (CPU s)", "peak MB"]
    body = [[r["family"], r["case"], r["element"], str(r["n"]), r["default_method"],
             f"{r['default']['psnr']:.2f} / {r['tv_auto']['psnr']:.2f} / {r['oracle']['psnr']:.2f}",
             f"**{r['default_minus_oracle_db']:+.2f}**", f"{r['tv_auto_minus_oracle_db']:+.2f}",
             f"{r['default']['ssim']:.3f} / {r['tv_auto']['ssim']:.3f} / {r['oracle']['ssim']:.3f}",
             f"{r['oracle']['weight']:.1e}" + (" (edge)" if r["oracle"]["at_grid_edge"] else ""),
             f"{r['seconds']:.1f} ({r['cpu_seconds']:.1f})", f"{r['peak_mb']:.0f}"] for r in rows]
    return table(hdr, body)


def render_summary(summ: list[dict[str, Any]]) -> str:
    hdr = ["Family", "Sampling", "Rows", "Default method", "default − oracle: min / mean / max (dB)",
           "tv-auto − oracle: min / mean (dB)", "max time (s)", "max peak MB"]
    body = [[s["family"], f"{s['sampling_pct']:g} %", str(s["rows"]), ", ".join(s["default_methods"]),
             f"**{s['default_minus_oracle_min']:+.2f}** / {s['default_minus_oracle_mean']:+.2f} / "
             f"{s['default_minus_oracle_max']:+.2f}",
             f"{s['tv_auto_minus_oracle_min']:+.2f} / {s['tv_auto_minus_oracle_mean']:+.2f}",
             f"{s['max_seconds']:.1f}", f"{s['max_peak_mb']:.0f}"] for s in summ]
    return table(hdr, body)


def render_markdown(report: dict[str, Any]) -> str:
    """The whole report: how it was run, the families, the table, the summary."""
    mach = report["machine"]
    notes: dict[str, list[str]] = {}
    for r in report["results"]:
        notes.setdefault(r["family"], [])
        if r["note"] not in notes[r["family"]]:
            notes[r["family"]].append(r["note"])
    out = ["# Robustness of the default reconstruction on data the simulator did not make", "",
           f"- date (UTC): {mach['date_utc']}; run time: {report['total_seconds'] / 60:.1f} min"
           + ("" if report["complete"] else " (INCOMPLETE: partial results)"),
           f"- machine: {mach['host']}, {mach['cpu_model']}, {mach['cpus_usable']} usable CPUs, {mach['memory_gb']} GB "
           f"RAM; load average at start {mach.get('load_average_at_start')}, at end {report.get('load_average_at_end')}",
           f"- software: nxsci {mach['nxsci']}, numpy {mach['numpy']}, scipy {mach['scipy']}, torch {mach['torch']}; "
           f"OPENBLAS_NUM_THREADS={mach.get('openblas_num_threads_env')}; BLAS/OpenMP and torch one thread, the "
           "TV family's own pass threads as by default",
           f"- command: `{report['command']}`",
           f"- library state: {report['library_state']}",
           f"- memory: {report['memory_method']}",
           f"- TV-oracle: {report['oracle']}",
           f"- default = `nxsci.recon.reconstruct(ds, method={report['params'].get('method')!r})` (None: the "
           "library's default for the dataset; `auto -> prior` names the prior `auto` chose), all elements in one "
           "timed call; tv-auto = `reconstruct(ds, method=\"tv\")` (its automatic weight: what a TXM-free default "
           "gives); PSNR = 10 log10(range(truth)^2 / MSE) against the noiseless truth map; SSIM likewise.",
           "", "## Families", ""]
    out += [f"- **{f}**: {'; '.join(n)}" for f, n in notes.items()]
    out += ["", "## Summary per family (default − TV-oracle, dB)", "", render_summary(report["summary"]), "",
            "## Every family x case x element", "", render_table(report["results"]), ""]
    return "\n".join(out)
