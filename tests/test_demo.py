"""`make demo` (beamline -> tiled -> pipeline -> reconstruction) and its offline variant write the promised report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nxsci.demo import run_recon_demo


@pytest.mark.slow
def test_demo_writes_report_json_and_png(tmp_path: Path) -> None:
    report = run_recon_demo(tmp_path, size=32, sampling=0.2, seed=1)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["psnr"] == report["psnr"]
    assert set(saved["psnr"]) == {"Mn", "Co", "Ni"}
    assert min(saved["psnr"].values()) > 20.0
    assert 0.2 < saved["mean_dependence"] < 0.7 and 0 < saved["invertibility"] <= 1
    assert saved["registration"]["shift_error_rms_px"] < 0.3
    assert {"simulation", "pattern_analysis", "registration_s", "total"} <= set(saved["timings_s"])
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_main_demo_acquires_into_tiled_and_meets_its_targets(tmp_path: Path) -> None:
    """`make demo`'s chain at its default size: beamline -> RunEngine -> tiled -> pipeline -> default method."""
    from nxsci.demo import run_demo
    from nxsci.services import TiledSettings, open_catalog

    report = run_demo(tmp_path, seed=0)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["psnr"] == report["psnr"] and set(saved["psnr"]) == {"Mn", "Co", "Ni"}
    assert min(saved["psnr"].values()) >= 20.0, saved["psnr"]
    assert saved["method"] == "auto" and saved["num_patterns"] == round(0.15 * 64 * 64)
    assert 0.2 < saved["mean_dependence"] < 0.7 and 0 < saved["invertibility"] <= 1
    assert saved["registration"]["shift_error_rms_px"] < 0.3
    assert {"calibrate_patterns", "nxsci_scan", "pipeline", "reconstruction", "total"} <= set(saved["timings_s"])
    assert saved["timings_s"]["total"] < 300
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open_catalog(settings=TiledSettings(tiled_uri=None, data_dir=tmp_path / "catalog"), create=False) as cat:
        run = cat.run(saved["run_uid"])  # both runs are in the embedded catalog, the scan finished
        assert run.metadata["stop"]["exit_status"] == "success"
        assert cat.run(saved["pattern_library_uid"]).metadata["start"]["plan_name"] == "calibrate_patterns"
