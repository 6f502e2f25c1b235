"""The whole chain through the service with the real data source: a simulated beamline records an
``nxsci_scan`` run into tiled (TiledWriter), the service notices the completed run (auto-trigger), reads its
frames and spectra, registers and PyMca-fits them (the issue-5 pipeline), reconstructs, and writes the maps
back into tiled."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from _service_harness import TILED_KEY, ServiceProcess, service_config, start_tiled, wait_for

try:
    from _acquisition_harness import fast_config

    from nxsci.plans import nxsci_scan
    from nxsci.services import build_session
except ImportError as exc:  # the acquisition side (plans, pipeline) is another issue's work
    pytest.skip(f"needs the acquisition pipeline (nxsci_scan, build_session): {exc}", allow_module_level=True)

pytestmark = pytest.mark.slow


def test_completed_nxsci_scan_is_reconstructed_automatically(tmp_path: Path) -> None:
    from tiled.client import from_uri

    tiled, client = start_tiled(tmp_path / "tiled")
    uri = tiled.uri.split("?")[0]
    svc = ServiceProcess(tmp_path, tiled_uri=uri, config=service_config(tmp_path, source="pipeline")).start()
    session = build_session(mode="sim", config=fast_config(tmp_path), tiled_uri=uri, api_key=TILED_KEY,
                            progress=False)
    try:
        # two of the sample's three elements: the truth follows the fitted elements by name
        (uid,) = session.RE(nxsci_scan(num_patterns=100, num_darks=2, sample="test cathode", elements=["Mn", "Co"]))

        def auto_job() -> dict | None:
            jobs = svc.get("/api/v1/reconstructions").json()["reconstructions"]
            return next((j for j in jobs if j["run_uid"] == uid), None)

        job = svc.wait_job(wait_for(auto_job, 60, "the automatic job of the nxsci_scan run")["id"], timeout=180)
        assert job["status"] == "succeeded", job
        assert job["origin"] == "auto" and set(job["metrics"]) == {"Mn", "Co"}
        for element, m in job["metrics"].items():
            assert m["residual"] < 0.2, (element, m)                 # the maps explain the fitted signals
            assert math.isfinite(m["psnr"]) and m["frc_px"] > 0      # the simulated run carries its truth
        node = from_uri(job["result_uri"], api_key=TILED_KEY)
        assert node.metadata["run_uid"] == uid and node.metadata["source"] == "pipeline"
        assert node["maps"].read().shape == (2, 32, 32)
        # and on request, one element, with the default method for a run with a TXM image
        asked = svc.wait_job(svc.submit({"run_uid": uid, "elements": ["Mn"], "params": {"weight": 1e-5}})["id"],
                             timeout=180)
        assert asked["status"] == "succeeded" and asked["method"] == "auto"
        assert list(asked["metrics"]) == ["Mn"] and math.isfinite(asked["metrics"]["Mn"]["psnr"])
    finally:
        session.beamline.close()
        if session.catalog is not None:
            session.catalog.close()
        svc.stop_cleanly()
        tiled.close()
