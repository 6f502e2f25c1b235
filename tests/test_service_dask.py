"""Scale-out: with a dask scheduler address configured, jobs run on the cluster's workers (a real LocalCluster
with worker processes), report progress, can be cancelled, and write their maps into tiled the same way."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _service_harness import FAST_TV, SMALL_SIM, TILED_KEY, ServiceProcess, service_config, start_tiled, write_run

pytestmark = pytest.mark.slow


def test_jobs_run_on_a_dask_cluster(tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    tiled, client = start_tiled(tmp_path / "tiled")
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                           host="127.0.0.1")
    try:
        quick = write_run(client["raw"], simulation=SMALL_SIM)
        slow = write_run(client["raw"], simulation={"size": 48, "sampling": 0.3, "seed": 4})
        cfg = service_config(tmp_path, executor={"dask_scheduler": cluster.scheduler_address})
        svc = ServiceProcess(tmp_path, tiled_uri=tiled.uri.split("?")[0], config=cfg).start()
        try:
            info = svc.get("/api/v1/info").json()
            assert info["executor"] == "dask" and info["dask_scheduler"] == cluster.scheduler_address
            job = svc.wait_job(svc.submit({"run_uid": quick, **FAST_TV, "elements": ["Ni"]})["id"], timeout=180)
            assert job["status"] == "succeeded", (job, svc.log_tail())
            assert job["metrics"]["Ni"]["psnr"] > 20 and job["metrics"]["Ni"]["residual"] < 0.05
            # the job ran in the cluster's worker process, not in the service
            from tiled.client import from_uri

            node = from_uri(job["result_uri"], api_key=TILED_KEY)
            with Client(cluster.scheduler_address) as dc:
                worker_pids = set(dc.run(os.getpid).values())
            assert node.metadata["worker"]["pid"] in worker_pids
            assert node.metadata["worker"]["pid"] != svc.proc.pid
            assert node["Ni"].read().shape == (32, 32)

            long = svc.submit({"run_uid": slow, "method": "tv"})
            running = svc.wait_job(long["id"], {"running"}, timeout=120)
            assert running["status"] == "running"
            assert svc.delete(f"/api/v1/reconstructions/{long['id']}").status_code == 202
            try:
                cancelled = svc.wait_job(long["id"], timeout=120)
            except AssertionError as exc:  # say where the worker is (the job's stack), not only that it hung
                with Client(cluster.scheduler_address) as dc:
                    raise AssertionError(f"{exc}\nworker stacks: {dc.call_stack()}") from None
            assert cancelled["status"] == "cancelled", cancelled
            after = svc.wait_job(svc.submit({"run_uid": quick, **FAST_TV, "elements": ["Mn"]})["id"], timeout=120)
            assert after["status"] == "succeeded"
        finally:
            svc.stop_cleanly()
    finally:
        cluster.close()
        tiled.close()
