"""The reconstruction-only demo behind ``make demo``: simulate -> analyse patterns -> reconstruct -> report.

Until the acquisition issues land, the dataset comes from the library's simulator rather than from a
RunEngine; everything after that (registration, solver, metrics, report) is the production path.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np


def _report_figure(ds: Any, result: Any, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_el = len(result.elements)
    fig = Figure(figsize=(3.0 * max(n_el, 3), 9.0))
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, max(n_el, 3))
    for ax in axes.ravel():
        ax.axis("off")
    axes[0, 0].imshow(ds.txm, cmap="gray")
    axes[0, 0].set_title("TXM (optical density)")
    for j in range(1, min(3, max(n_el, 3))):
        axes[0, j].imshow(ds.patterns[j - 1], cmap="magma")
        axes[0, j].set_title(f"pattern {j - 1}")
    for k, el in enumerate(result.elements):
        truth = ds.truth(el)
        vmax = float(truth.max()) if truth is not None else float(result.maps[k].max())
        if truth is not None:
            axes[1, k].imshow(truth, cmap="viridis", vmin=0, vmax=vmax)
            axes[1, k].set_title(f"{el} truth")
        axes[2, k].imshow(result.maps[k], cmap="viridis", vmin=0, vmax=vmax)
        m = result.metrics[el]
        title = f"{el} {result.method}"
        if "psnr" in m:
            title += f"\n{m['psnr']:.1f} dB, SSIM {m['ssim']:.2f}"
        axes[2, k].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def run_recon_demo(outdir: Path, *, size: int = 64, sampling: float = 0.15, seed: int = 0,
                   method: str | None = None) -> dict[str, Any]:
    from nxsci.recon import analyze_patterns, reconstruct, save_dataset, save_result, simulate_case

    outdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"[1/3] simulating a {size}x{size} battery cathode, sampling {sampling:.0%}, stage error 1 px")
    ds = simulate_case(phantom="battery", size=size, sampling=sampling, seed=seed, shift_sigma=1.0)
    save_dataset(ds, outdir / "dataset.h5", overwrite=True)
    t_sim = time.perf_counter() - t0
    print(f"[2/3] pattern analysis of {ds.num_patterns} patterns")
    t1 = time.perf_counter()
    report_p = analyze_patterns(ds.patterns, reference=ds.truth_maps.sum(axis=0), max_targets=256)
    t_pat = time.perf_counter() - t1
    print(f"      mean dependence {report_p.mean_dependence:.3f}, invertibility {report_p.invertibility:.3f}")
    print("[3/3] registration and reconstruction")
    result = reconstruct(ds, method=method, progress=True)
    save_result(result, outdir / "result.h5", overwrite=True)
    _report_figure(ds, result, outdir / "report.png")
    report: dict[str, Any] = {
        "method": result.method,
        "psnr": {el: round(result.metrics[el]["psnr"], 2) for el in result.elements},
        "ssim": {el: round(result.metrics[el]["ssim"], 4) for el in result.elements},
        "frc_px": {el: round(result.metrics[el]["frc_px"], 2) for el in result.elements},
        "mean_dependence": round(report_p.mean_dependence, 4),
        "invertibility": round(report_p.invertibility, 4),
        "num_patterns": ds.num_patterns,
        "image_shape": list(ds.image_shape),
        "registration": result.provenance["registration"],
        "chosen_weights": {el: result.solver_info[el].get("weight") for el in result.elements},
        "timings_s": {"simulation": round(t_sim, 2), "pattern_analysis": round(t_pat, 2),
                      **{k: round(v, 2) for k, v in result.timings.items()},
                      "total": round(time.perf_counter() - t0, 2)},
    }
    (outdir / "report.json").write_text(json.dumps(report, indent=2, default=float))
    return report
