"""``nxsci shell`` and the IPython startup module: the beamline, a RunEngine writing to tiled, the plans."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from _acquisition_harness import env, fast_config, nxsci

CODE = ("RE(nxsci_scan(num_patterns=2)); run = runs[-1]; "
        "print('RUN', run.metadata['stop']['exit_status'], run['primary']['camera_image'].read().dtype, "
        "sorted(n for n in ('camera', 'vortex', 'diffuser1', 'sample_stage', 'xrf_point_scan', "
        "'calibrate_patterns', 'to_dataset') if n in globals()))")


@pytest.mark.slow
def test_nxsci_shell_runs_plans_into_the_catalog(tmp_path: Path) -> None:
    config = fast_config(tmp_path)
    out = nxsci("shell", "--config", str(config), "-c", CODE, environ=env(NXSCI_DATA_DIR=str(tmp_path / "data")))
    assert out.returncode == 0, out.stderr
    assert ("RUN success uint16 ['calibrate_patterns', 'camera', 'diffuser1', 'sample_stage', 'to_dataset', "
            "'vortex', 'xrf_point_scan']") in out.stdout
    assert "nxsci_scan" in out.stderr and "2 of 2 configurations" in out.stderr  # progress, plain lines in a log


@pytest.mark.slow
def test_ipython_startup_module_builds_the_same_session(tmp_path: Path) -> None:
    config = fast_config(tmp_path)
    code = "%run -m nxsci.services.ipython_startup\n" + CODE
    out = subprocess.run([sys.executable, "-m", "IPython", "--no-banner", "--HistoryManager.enabled=False", "-c", code],
                         capture_output=True, text=True, timeout=300,
                         env=env(NXSCI_DATA_DIR=str(tmp_path / "data"), NXSCI_BEAMLINE_CONFIG=str(config)))
    assert out.returncode == 0, out.stderr
    assert "RUN success uint16" in out.stdout
