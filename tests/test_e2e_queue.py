"""End to end, as a facility runs it: a plan submitted to the Redis-backed queue server
(``deploy/queueserver/startup``) records an ``nxsci_scan`` run into a real tiled server; the reconstruction
service (``nxsci serve`` under uvicorn) notices the completed run, registers and PyMca-fits its frames and
spectra, reconstructs every element with the default method, and writes the maps back into tiled.

The maps are read back from tiled and scored here against the simulator's truth, independently of the
metrics the service reports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _acquisition_harness import fast_config, queue_manager, wait_for
from _service_harness import TILED_KEY, ServiceProcess, service_config, start_tiled
from conftest import require_service

from nxsci.recon import psnr
from nxsci.services import run_to_dataset

pytestmark = [pytest.mark.slow, pytest.mark.needs_redis]

ELEMENTS = {"Mn", "Co", "Ni"}
NUM_PATTERNS = 200  # ~20 % of a 32x32 map: the sampling of the paper's experiments


def test_queue_submission_is_reconstructed_into_tiled(tmp_path: Path) -> None:
    require_service("Redis", "127.0.0.1", 6379)
    from bluesky_queueserver_api import BPlan
    from tiled.client import from_uri

    tiled, client = start_tiled(tmp_path / "tiled")
    uri = tiled.uri.split("?")[0]
    # automatic jobs with the default method and its automatic weight choice (no parameters given)
    config = service_config(tmp_path, source="pipeline", auto_trigger={"method": None, "params": {}})
    svc = ServiceProcess(tmp_path, tiled_uri=uri, config=config).start()
    work = tmp_path / "qserver"
    work.mkdir()
    try:
        with queue_manager(work, tiled_uri=uri, tiled_api_key=TILED_KEY,
                           beamline_config=fast_config(work)) as (RM, _):
            added = RM.item_add(BPlan("nxsci_scan", num_patterns=NUM_PATTERNS, exposure=0.5,
                                      sample="e2e cathode", md={"operator": "end-to-end test"}))
            assert added["success"], added
            RM.queue_start()
            RM.wait_for_idle(timeout=600)
            item = RM.history_get()["items"][-1]
            assert item["result"]["exit_status"] == "completed", item["result"]
            (uid,) = item["result"]["run_uids"]

        def auto_job() -> dict | None:
            jobs = svc.get("/api/v1/reconstructions").json()["reconstructions"]
            return next((j for j in jobs if j["run_uid"] == uid), None)

        queued = wait_for(auto_job, 60, "the automatic reconstruction of the queue's nxsci_scan run")
        job = svc.wait_job(queued["id"], timeout=600)
        assert job["status"] == "succeeded", job
        assert job["origin"] == "auto" and job["method"] == "auto", job
        assert set(job["metrics"]) == ELEMENTS

        node = from_uri(job["result_uri"], api_key=TILED_KEY)
        assert node.metadata["run_uid"] == uid and node.metadata["method"] == "auto"
        maps = node["maps"]
        elements = maps.metadata["elements"]
        recon = maps.read()
        truth = run_to_dataset(client["raw"], uid).truth_maps  # the simulator's maps, in the dataset's frame
        assert truth is not None and recon.shape == truth.shape == (3, 32, 32)
        scores = {el: psnr(recon[i], truth[i]) for i, el in enumerate(elements)}
        print("PSNR of the maps in tiled vs truth:", scores)
        assert set(scores) == ELEMENTS
        assert all(score >= 20.0 for score in scores.values()), scores
        for el, score in scores.items():  # the service's own scoring agrees with ours
            assert np.isclose(job["metrics"][el]["psnr"], score, atol=0.5), (el, job["metrics"][el], score)
    finally:
        svc.stop_cleanly()
        tiled.close()
