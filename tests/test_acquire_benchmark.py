"""The acquisition benchmark script runs end to end (small sizes) and reports what the README tables show."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from _acquisition_harness import ROOT, env


@pytest.mark.slow
def test_acquisition_benchmark_quick(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "acquisition.py"), "--quick", "--json",
                          str(tmp_path / "bench.json")], capture_output=True, text=True, timeout=600, env=env())
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Per illumination configuration" in out.stdout and "spectra/s" in out.stdout
    report = json.loads((tmp_path / "bench.json").read_text())
    assert {r["writer"] for r in report["overhead"]} == {"none", "TiledWriter"}
    for r in report["overhead"]:  # the simulated records' time includes the physics, the wall includes both
        assert 0 < r["physics_ms"] and 0 < r["sim_ms"] < r["wall_ms"]
        assert r["overhead_ms"] == pytest.approx(r["wall_ms"] - r["sim_ms"])
        assert 0 < r["engine_cpu_ms"] < r["cpu_ms"] and 0 < r["monitor_cpu_ms"] < r["cpu_ms"]  # ns counters
    assert report["ingest"][0]["frames_per_s"] > 0
    assert report["fitting"][0]["spectra_per_s"] > 1000 and report["fitting"][0]["max_total_bias_percent"] < 2
