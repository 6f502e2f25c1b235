"""The main job behind ``make demo``, end to end on the simulated beamline.

``run_demo``: simulated beamline -> ``calibrate_patterns`` and ``nxsci_scan(pattern_library=...)`` in a
RunEngine -> embedded tiled catalog -> pipeline (dark/flat, registration, PyMca fits) -> reconstruction with
the default method -> ``report.json`` / ``report.png``. ``run_recon_demo`` (``nxsci demo --offline``) skips
the acquisition: the library's simulator makes the dataset directly.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any



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
        "warnings": list(getattr(result, "warnings", [])),
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


def _demo_config(outdir: Path, size: int, seed: int) -> Path:
    """The shipped simulated beamline with instantaneous motors and detectors and frames under ``outdir``."""
    import yaml

    from nxsci.devices import SIM_CONFIG_PATH

    data = yaml.safe_load(SIM_CONFIG_PATH.read_text())
    data["devices"]["camera"]["write_path"] = str((outdir / "frames").resolve()) + "/"
    data["simulation"]["image_size"] = int(size)
    data["simulation"]["sample"] = {**data["simulation"].get("sample", {}), "seed": int(seed)}
    data["simulation"]["timing"] = {"move_time_s": 0, "acquire_time_scale": 0}
    path = outdir / "beamline.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_demo(outdir: Path, *, size: int = 64, sampling: float = 0.15, seed: int = 0,
             method: str | None = None) -> dict[str, Any]:
    """Acquire on the simulated beamline into an embedded catalog, reconstruct, score against the truth."""
    from nxsci.plans import calibrate_patterns, nxsci_scan
    from nxsci.recon import analyze_patterns, reconstruct, save_dataset, save_result
    from nxsci.services import TiledSettings, build_session, run_to_dataset

    outdir.mkdir(parents=True, exist_ok=True)
    n = max(8, int(round(sampling * size * size)))
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    print(f"[1/5] simulated beamline ({size}x{size} px, battery cathode), RunEngine -> embedded tiled "
          f"catalog in {outdir / 'catalog'}")
    session = build_session(mode="sim", config=_demo_config(outdir, size, seed), tiled_uri=None, progress=True,
                            tiled_settings=TiledSettings(tiled_uri=None, data_dir=outdir / "catalog"))
    try:
        t1 = time.perf_counter()
        print(f"[2/5] calibrate_patterns: {n} illumination patterns (sample out), then nxsci_scan reusing them")
        (library_uid,) = session.RE(calibrate_patterns(num_patterns=n, seed=seed))
        timings["calibrate_patterns"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        (uid,) = session.RE(nxsci_scan(pattern_library=library_uid, sample="simulated battery cathode"))
        timings["nxsci_scan"] = time.perf_counter() - t1
        print(f"      runs {library_uid} (patterns) and {uid} (scan)")
        t1 = time.perf_counter()
        print("[3/5] pipeline: dark/flat, registration of every pattern, PyMca fits of every spectrum")
        ds = run_to_dataset(session.catalog, uid)
        timings["pipeline"] = time.perf_counter() - t1
    finally:
        session.close()
    save_dataset(ds, outdir / "dataset.h5", overwrite=True)
    print(f"[4/5] pattern analysis of {ds.num_patterns} patterns")
    t1 = time.perf_counter()
    reference = ds.truth_maps.sum(axis=0) if ds.truth_maps is not None else None
    report_p = analyze_patterns(ds.patterns, reference=reference, max_targets=256)
    timings["pattern_analysis"] = time.perf_counter() - t1
    print(f"      mean dependence {report_p.mean_dependence:.3f}, invertibility {report_p.invertibility:.3f}")
    print("[5/5] reconstruction with the default method" if method is None else f"[5/5] reconstruction ({method})")
    t1 = time.perf_counter()
    result = reconstruct(ds, method=method, progress=True)
    timings["reconstruction"] = time.perf_counter() - t1
    save_result(result, outdir / "result.h5", overwrite=True)
    _report_figure(ds, result, outdir / "report.png")
    timings["total"] = time.perf_counter() - t0
    pipeline = json.loads(ds.attrs["pipeline"]) if isinstance(ds.attrs.get("pipeline"), str) else {}
    scored = [el for el in result.elements if "psnr" in result.metrics[el]]
    report: dict[str, Any] = {
        "run_uid": uid,
        "pattern_library_uid": library_uid,
        "catalog": str(outdir / "catalog"),
        "method": result.method,
        "warnings": list(getattr(result, "warnings", [])),
        "psnr": {el: round(result.metrics[el]["psnr"], 2) for el in scored},
        "ssim": {el: round(result.metrics[el]["ssim"], 4) for el in scored},
        "frc_px": {el: round(result.metrics[el]["frc_px"], 2) for el in scored},
        "residual": {el: round(result.metrics[el]["residual"], 5) for el in result.elements},
        "mean_dependence": round(report_p.mean_dependence, 4),
        "invertibility": None if report_p.invertibility is None else round(report_p.invertibility, 4),
        "num_patterns": ds.num_patterns,
        "image_shape": list(ds.image_shape),
        "registration": result.provenance["registration"],
        "pipeline": pipeline,
        "solver_info": {el: {k: v for k, v in result.solver_info[el].items()
                             if isinstance(v, (int, float, str)) or v is None} for el in result.elements},
        "timings_s": {**{k: round(v, 2) for k, v in timings.items()},
                      **{f"reconstruction.{k}": round(v, 2) for k, v in result.timings.items()}},
    }
    (outdir / "report.json").write_text(json.dumps(report, indent=2, default=float))
    return report
