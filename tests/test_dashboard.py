"""`nxsci serve` without a tiled URI (embedded tiled server), and its HTML dashboard in headless Chromium.

Chromium is Debian's ``chromium`` package (``apt-get install -y chromium``); without it the dashboard test
is skipped with that reason (and fails under CI=true).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _service_harness import FAST_TV, SMALL_SIM, TILED_KEY, ServiceProcess, service_config, write_run
from conftest import IN_CI

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from tiled.client import from_uri

    tmp = tmp_path_factory.mktemp("embedded")
    svc = ServiceProcess(tmp, tiled_uri=None, config=service_config(tmp)).start()
    try:
        info = svc.get("/api/v1/info").json()
        client = from_uri(info["tiled_uri"], api_key=TILED_KEY)  # NXSCI_TILED_API_KEY is the embedded key
        yield {"svc": svc, "info": info, "client": client, "dir": tmp / "embedded-tiled"}
    finally:
        svc.stop_cleanly()


def test_embedded_tiled_server_holds_runs_and_results(embedded: dict[str, Any]) -> None:
    svc, info, client = embedded["svc"], embedded["info"], embedded["client"]
    assert info["tiled_embedded"] is True and info["tiled_uri"].startswith("http://127.0.0.1:")
    assert "api_key" not in info["tiled_uri"]          # the key is never published
    assert (embedded["dir"] / "catalog.db").exists()    # SQLite catalog in the configured directory
    assert "raw" in client
    uid = write_run(client["raw"], simulation=SMALL_SIM)
    job = svc.wait_job(svc.submit({"run_uid": uid, **FAST_TV})["id"])
    assert job["status"] == "succeeded", job
    assert job["result_uri"].startswith(info["tiled_uri"])
    assert client["results"][job["id"]]["maps"].read().shape == (3, 32, 32)


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        reason = "Debian's chromium is not installed (apt-get install -y chromium)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return exe


def test_dashboard_in_headless_chromium(embedded: dict[str, Any], tmp_path: Path) -> None:
    exe = _chromium()
    svc, client = embedded["svc"], embedded["client"]
    uid = write_run(client["raw"], simulation=SMALL_SIM)
    done = svc.wait_job(svc.submit({"run_uid": uid, **FAST_TV, "elements": ["Co", "Ni"]})["id"])
    assert done["status"] == "succeeded"
    other = svc.submit({"run_uid": uid, **FAST_TV, "elements": ["Mn"]})
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=20000", "--dump-dom",
           f"{svc.url}/"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    dom = out.stdout
    assert "<h1>nxsci reconstructions</h1>" in dom, out.stderr[-2000:]
    assert 'data-refreshed="yes"' in dom  # the page's script ran and read the job list
    row = re.search(rf'<tr id="job-{done["id"]}"[^>]*data-status="succeeded"[^>]*>(.*?)</tr>', dom, re.S)
    assert row, dom[:3000]
    cells = row.group(1)
    assert "psnr" in cells and "frc_px" in cells and "residual" in cells
    # both element maps are images that the browser decoded (32 px wide PNGs)
    for element in ("Co", "Ni"):
        img = re.search(rf'<img[^>]*data-element="{element}"[^>]*>', cells)
        assert img, cells
        assert 'data-loaded="32"' in img.group(0), img.group(0)
    assert f'id="job-{other["id"]}"' in dom  # every job has a row, whatever its state
