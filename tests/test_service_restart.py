"""Persistence: a restarted service loses no job, re-queues the interrupted one and keeps finished results.

Against a real `nxsci serve` and tiled server, with the job store in SQLite and in PostgreSQL
(127.0.0.1:5432, a throwaway database per test).
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from _service_harness import FAST_TV, SMALL_SIM, ServiceProcess, service_config, start_tiled, write_run

from nxsci.services import JobStore

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgresql"])
def jobs_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    return request.getfixturevalue("postgres_url")


def test_restart_keeps_finished_jobs_and_requeues_the_interrupted_one(tmp_path: Path, jobs_url: str) -> None:
    tiled, client = start_tiled(tmp_path / "tiled")
    try:
        quick = write_run(client["raw"], simulation=SMALL_SIM)
        # cross-validated weights on 32x32 with 30 % sampling: long enough (~10 s) to be caught running
        longer = write_run(client["raw"], simulation={"size": 32, "sampling": 0.3, "seed": 2})
        cfg = service_config(tmp_path, jobs_url=jobs_url)
        svc = ServiceProcess(tmp_path, tiled_uri=tiled.uri.split("?")[0], config=cfg).start()
        try:
            done = svc.wait_job(svc.submit({"run_uid": quick, **FAST_TV})["id"])
            assert done["status"] == "succeeded"
            interrupted = svc.submit({"run_uid": longer, "method": "tv", "elements": ["Ni"]})
            svc.wait_job(interrupted["id"], {"running"}, timeout=60)
            waiting = svc.submit({"run_uid": quick, **FAST_TV, "elements": ["Mn"]})
        finally:
            svc.stop_cleanly()   # stops mid-job: the job stays 'running' in the store
        store = JobStore(jobs_url)
        assert store.get(interrupted["id"]).status == "running"
        assert store.get(waiting["id"]).status == "queued"
        store.close()

        again = ServiceProcess(tmp_path, tiled_uri=tiled.uri.split("?")[0], config=cfg)
        again.port = svc.port  # same address, as after a service restart
        again.url = svc.url
        again.start()
        try:
            kept = again.job(done["id"])
            assert kept == {**done, "links": kept["links"]}  # identical record, metrics and result URI
            resumed = again.wait_job(interrupted["id"], timeout=180)
            assert resumed["status"] == "succeeded", resumed
            assert resumed["attempts"] == 2 and resumed["metrics"]["Ni"]["psnr"] > 20
            assert again.wait_job(waiting["id"])["status"] == "succeeded"
            listed = {j["id"] for j in again.get("/api/v1/reconstructions").json()["reconstructions"]}
            assert {done["id"], interrupted["id"], waiting["id"]} <= listed
            info = again.get("/api/v1/info").json()
            assert info["job_store"] == jobs_url.split(":")[0]
        finally:
            again.stop_cleanly()
    finally:
        tiled.close()


def test_crash_mid_job_is_recovered(tmp_path: Path) -> None:
    """SIGKILL (no shutdown at all): the job left 'running' is re-queued and finishes after the restart."""
    tiled, client = start_tiled(tmp_path / "tiled")
    try:
        longer = write_run(client["raw"], simulation={"size": 32, "sampling": 0.3, "seed": 3})
        cfg = service_config(tmp_path)
        svc = ServiceProcess(tmp_path, tiled_uri=tiled.uri.split("?")[0], config=cfg).start()
        job = svc.submit({"run_uid": longer, "method": "tv", "elements": ["Co"]})
        svc.wait_job(job["id"], {"running"}, timeout=60)
        assert svc.stop(signal.SIGKILL) == -signal.SIGKILL
        again = ServiceProcess(tmp_path, tiled_uri=tiled.uri.split("?")[0], config=cfg).start()
        try:
            finished = again.wait_job(job["id"], timeout=180)
            assert finished["status"] == "succeeded" and finished["attempts"] == 2
            assert "Co" in finished["metrics"]
        finally:
            again.stop_cleanly()
    finally:
        tiled.close()


def test_job_store_on_postgresql(postgres_url: str) -> None:
    store = JobStore(postgres_url)
    try:
        job = store.create("run-1", elements=["Ni"], method="tv", params={"weight": 1e-5})
        assert store.update(job.id, only_if_status=("queued",), status="running", started=1.0)
        assert not store.update(job.id, only_if_status=("queued",), status="cancelled")  # no longer queued
        store.update(job.id, metrics={"Ni": {"psnr": 30.5}}, timings={"total_s": 1.5})
        got = store.get(job.id)
        assert got.status == "running" and got.metrics == {"Ni": {"psnr": 30.5}} and got.params == {"weight": 1e-5}
        assert store.requeue_interrupted() == [job.id] and store.get(job.id).status == "queued"
        assert store.count("queued") == 1
        assert store.set_meta_default("since", "1.0") == "1.0" and store.set_meta_default("since", "2.0") == "1.0"
        store.set_meta("horizon", "5.0")
        store.set_meta("horizon", "6.0")
        assert store.get_meta("horizon") == "6.0"
        assert not store.triggered("run-1")
        store.mark_triggered("run-1", job.id)
        assert store.triggered("run-1")
    finally:
        store.close()
