"""The benchmark script stays runnable (numbers live in benchmarks/, not in timed tests)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("recon_quality", ROOT / "benchmarks" / "recon_quality.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_recon_quality_quick_run_writes_tables(tmp_path: Path) -> None:
    module = _load()
    module.main(["--quick", "--samplings", "5", "--methods", "point", "pinv", "tv-oracle", "tv-under",
                 "composition-tv", "siren", "siren-paper", "--paper-budget-s", "3", "--siren-set", "steps=30",
                 "--out-dir", str(tmp_path)])
    table = (tmp_path / "recon_quality.md").read_text()
    assert "TV-oracle" in table and "Point scan" in table
    assert "Composition TV" in table and "SIREN (library defaults)" in table and "paper config" in table
    assert "## Headline" in table and "minimum margin" in table and "binder" in table
    data = json.loads((tmp_path / "recon_quality.json").read_text())
    assert data["complete"]
    ok = [r for r in data["results"] if r["status"] == "ok"]
    assert {r["method"] for r in ok} >= {"point", "pinv", "tv-oracle", "tv-under", "composition-tv", "siren",
                                         "siren-paper"}
    assert {r["element"] for r in ok if r["method"] == "siren"} == {"Mn", "Co", "Ni"}
    assert all(isinstance(r["psnr"], float) and isinstance(r["frc_px"], float) for r in ok)
    paper = [r for r in ok if r["method"] == "siren-paper"]
    assert paper and paper[0]["paper_steps"] >= 1
    head = data["headline"]
    assert head["margins_measured"] == head["margins_expected"] == 3
    assert head["max_seconds"] > 0


@pytest.mark.slow
def test_recon_scaling_mode_measures_and_skips(tmp_path: Path) -> None:
    module = _load()
    module.main(["--scaling", "--scaling-sizes", "24", "--scaling-samplings", "5", "10",
                 "--scaling-methods", "default", "--scaling-memory-gb", "1e-6", "--out-dir", str(tmp_path)])
    data = json.loads((tmp_path / "recon_scaling.json").read_text())
    cells = data["cells"]
    assert [c["status"] for c in cells] == ["ok", "skipped"]  # the tiny memory cap skips the second
    assert cells[0]["seconds"] > 0 and cells[0]["library_method"]
    assert "predicted peak" in cells[1]["reason"]
    assert "Scaling table" in (tmp_path / "recon_scaling.md").read_text()


def test_binder_ratio_and_oracle_search() -> None:
    import numpy as np

    module = _load()
    truth = np.zeros((8, 8))
    truth[2:5, 2:5] = 1.0
    binder = np.zeros((8, 8), dtype=bool)
    binder[6:, 6:] = True
    painted = truth.copy()
    painted[binder] = 0.5
    assert module.binder_ratio(truth, truth, binder) == 0.0
    assert module.binder_ratio(painted, truth, binder) == pytest.approx(0.5)
    best, runs = module.oracle_search(lambda w: {"mse": (np.log10(w) + 3.0) ** 2}, -20)
    assert 10 ** (best / 4) == pytest.approx(1e-3)


def test_weight_rules_benchmark_scores_every_rule(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "rules.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "weight_rules.py"), "--size", "32", "--seeds", "1",
                          "--samplings", "25", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    (case,) = report["cases"]
    assert len(case["tv_oracle"]) == len(case["composition_oracle"]) == 3
    # the ground-truth-best weight is an upper bound for every rule (up to the sweep's grid spacing)
    for rule in ("cv", "auto"):
        assert all(p <= best + 0.5 for p, best in zip(case[rule], case["composition_oracle"])), (rule, case)
    assert "| `auto` |" in report["summary_markdown"] and "| `auto` |" in run.stdout
