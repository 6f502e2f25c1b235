"""The reconstruction-only demo (`make demo`) writes its report with the promised content."""

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
