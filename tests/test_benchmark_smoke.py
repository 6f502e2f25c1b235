"""The benchmark script stays runnable (numbers live in benchmarks/, not in timed tests)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_recon_quality_quick_run_writes_tables(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("recon_quality", ROOT / "benchmarks" / "recon_quality.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    module.main(["--quick", "--samplings", "5", "--methods", "point", "pinv", "tv-oracle", "tv-under",
                 "--out-dir", str(tmp_path)])
    table = (tmp_path / "recon_quality.md").read_text()
    assert "TV-oracle" in table and "Point scan" in table
    data = json.loads((tmp_path / "recon_quality.json").read_text())
    text = json.dumps(data)
    assert "psnr" in text.lower()
