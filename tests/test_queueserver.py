"""The queue server: a Redis-backed ``start-re-manager`` with ``deploy/queueserver/startup``, plans submitted
with bluesky-queueserver-api, runs checked in the queue history and in a real tiled server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from _acquisition_harness import API_KEY, STARTUP, fast_config, queue_manager
from conftest import require_service
from nxsci.services import TiledServer, TiledSettings, open_catalog

pytestmark = [pytest.mark.slow, pytest.mark.needs_redis]


@pytest.fixture(scope="module")
def tiled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TiledServer]:
    settings = TiledSettings(data_dir=tmp_path_factory.mktemp("tiled"), tiled_api_key=API_KEY)
    with TiledServer(settings) as server:
        yield server


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory, tiled: TiledServer) -> Iterator[tuple[Any, Path]]:
    require_service("Redis", "127.0.0.1", 6379)
    work = tmp_path_factory.mktemp("qserver")
    with queue_manager(work, tiled_uri=str(tiled.uri), tiled_api_key=API_KEY,
                       beamline_config=fast_config(work)) as (RM, plans_devices):
        yield RM, plans_devices


def test_queue_runs_nxsci_scan_into_tiled(manager: tuple[Any, Path], tiled: TiledServer) -> None:
    from bluesky_queueserver_api import BPlan

    RM, _ = manager
    allowed = RM.plans_allowed()["plans_allowed"]
    assert {"nxsci_scan", "calibrate_patterns", "xrf_point_scan"} <= set(allowed)
    RM.item_add(BPlan("nxsci_scan", num_patterns=3, exposure=0.5, md={"operator": "queue test"}))
    RM.queue_start()
    RM.wait_for_idle(timeout=300)
    item = RM.history_get()["items"][-1]
    assert item["name"] == "nxsci_scan" and item["result"]["exit_status"] == "completed", item["result"]
    (uid,) = item["result"]["run_uids"]
    with open_catalog(tiled.uri, api_key=API_KEY) as catalog:
        run = catalog.run(uid)
        start = run.metadata["start"]
        assert start["plan_name"] == "nxsci_scan" and start["operator"] == "queue test"
        assert run.metadata["stop"]["exit_status"] == "success"
        frames = run["primary"]["camera_image"].read()
        assert frames.dtype == np.uint16 and frames.shape == (3, 32, 32)
        assert run["primary"]["vortex_mca_spectrum"].read().dtype == np.int32


def test_queue_rejects_bad_parameters_and_records_failures(manager: tuple[Any, Path]) -> None:
    from bluesky_queueserver_api import BPlan

    RM, _ = manager
    rejected = RM.item_add(BPlan("nxsci_scan", num_patterns="many"))
    assert rejected["success"] is False and "num_patterns" in rejected["msg"]
    RM.item_add(BPlan("nxsci_scan", configurations=[{"sample_stage.x": 0.0}]))
    RM.queue_start()
    RM.wait_for_idle(timeout=300)
    item = RM.history_get()["items"][-1]
    assert item["result"]["exit_status"] == "failed" and item["result"]["run_uids"] == []
    assert "configurations may move" in item["result"]["msg"]


def test_committed_plan_list_is_current(manager: tuple[Any, Path]) -> None:
    _, regenerated = manager  # rewritten by the manager when the environment opened
    committed = yaml.safe_load((STARTUP / "existing_plans_and_devices.yaml").read_text())
    fresh = yaml.safe_load(regenerated.read_text())
    assert committed["existing_plans"] == fresh["existing_plans"]
    assert set(committed["existing_devices"]) == set(fresh["existing_devices"])
