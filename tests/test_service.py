"""The reconstruction service's REST contract against a real `nxsci serve` (uvicorn) and a real tiled server.

One service for the module (in-process worker, SQLite job store, simulated-run source); runs are real
bluesky runs written by TiledWriter whose start document carries the simulation's parameters.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from _service_harness import (AUTH, FAST_TV, SMALL_SIM, TILED_KEY, ServiceProcess, create_old_jobs_database,
                              service_config, start_tiled, wait_for, write_run)

from nxsci.services import JobStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("service")
    tiled, client = start_tiled(tmp / "tiled")
    raw = client["raw"]
    runs = {"sim": write_run(raw, simulation=SMALL_SIM),
            "slow": write_run(raw, simulation={"size": 48, "sampling": 0.3, "seed": 1}),
            "plain": write_run(raw),  # a run without XRF data
            # ~1-10 counts per pattern: the maps cannot be trusted, and the result says so
            "dim": write_run(raw, simulation={**SMALL_SIM, "photons": 10})}
    # the service opens a job database made by the first release (no 'warnings' column) and upgrades it
    old_job = create_old_jobs_database(f"sqlite:///{tmp / 'jobs.db'}")
    # at most two queued jobs, so that the test of the full queue (429) stays small
    svc = ServiceProcess(tmp, tiled_uri=tiled.uri.split("?")[0],
                         config=service_config(tmp, limits={"max_queued": 2})).start()
    try:
        yield {"svc": svc, "client": client, "raw": raw, "runs": runs, "tiled": tiled, "old_job": old_job}
    finally:
        svc.stop_cleanly()
        tiled.close()


def test_health_info_and_methods(env: dict[str, Any]) -> None:
    svc = env["svc"]
    assert svc.get("/healthz").json() == {"status": "ok"}
    info = svc.get("/api/v1/info").json()
    assert info["tiled_uri"] == env["tiled"].uri.split("?")[0]
    assert info["executor"] == "local" and info["job_store"] == "sqlite" and info["tiled_embedded"] is False
    from importlib.metadata import version

    assert info["version"] == version("nxsci")
    methods = svc.get("/api/v1/methods").json()
    assert {"tv", "composition-tv", "pinv"} <= set(methods)
    weight = methods["tv"]["parameters"]["properties"]["weight"]
    assert weight["default"] == "auto"


def test_reconstruction_lifecycle_and_result_in_tiled(env: dict[str, Any]) -> None:
    svc, uid = env["svc"], env["runs"]["sim"]
    r = svc.post("/api/v1/reconstructions", {"run_uid": uid, "elements": ["Ni", "Co"], **FAST_TV})
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["location"] == f"/api/v1/reconstructions/{body['id']}"
    assert body["status"] == "queued" and body["progress"] == 0.0 and body["run_uid"] == uid
    job = svc.wait_job(body["id"])
    assert job["status"] == "succeeded", job
    assert job["progress"] == 1.0 and job["error"] is None and job["warnings"] == []
    assert set(job["metrics"]) == {"Ni", "Co"}
    assert job["priors"] == {"Ni": {"prior": "tv"}, "Co": {"prior": "tv"}}  # a method chosen by name: no choice
    ni = job["metrics"]["Ni"]
    assert ni["residual"] < 0.05          # the maps explain the measurements
    assert ni["psnr"] > 20                 # against the simulation's ground truth (25 dB measured)
    assert 1.0 <= ni["frc_px"] <= 8.0      # FRC resolution in pixels
    for key in ("registration_s", "solve_s", "total_s", "load_s", "write_s", "job_s", "queued_s"):
        assert job["timings"][key] >= 0, key
    assert job["started"] >= job["created"] and job["finished"] >= job["started"]
    listed = svc.get("/api/v1/reconstructions").json()["reconstructions"]
    assert body["id"] in [j["id"] for j in listed]
    assert [j["id"] for j in svc.get("/api/v1/reconstructions", params={"status": "succeeded"})
            .json()["reconstructions"]].count(body["id"]) == 1

    # the result is a tiled node: maps + provenance
    from tiled.client import from_uri

    from _service_harness import TILED_KEY

    node = from_uri(job["result_uri"], api_key=TILED_KEY)
    md = node.metadata
    assert md["run_uid"] == uid and md["job_id"] == body["id"] and md["method"] == "tv"
    assert md["parameters"]["weight"] == 1e-5 and md["nxsci_version"]
    assert md["elements"] == ["Ni", "Co"] and "total_s" in md["timings"]
    maps = node["maps"].read()
    assert maps.shape == (2, 32, 32) and np.isfinite(maps).all() and maps.max() > 0
    np.testing.assert_array_equal(node["Ni"].read(), maps[0])
    assert node["Ni"].metadata["metrics"]["psnr"] == pytest.approx(ni["psnr"])

    png = svc.get(f"/api/v1/reconstructions/{body['id']}/maps/Ni.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_default_method_and_all_elements(env: dict[str, Any]) -> None:
    svc = env["svc"]
    job = svc.wait_job(svc.submit({"run_uid": env["runs"]["sim"], "params": {"weight": 1e-5}})["id"])
    assert job["status"] == "succeeded", job
    assert job["method"] == "auto"   # composition TV where the TXM is supported by held-out measurements
    assert set(job["metrics"]) == {"Mn", "Co", "Ni"}


def test_mutating_endpoints_need_the_api_key(env: dict[str, Any]) -> None:
    svc, uid = env["svc"], env["runs"]["sim"]
    before = len(svc.get("/api/v1/reconstructions").json()["reconstructions"])
    for headers in (None, {"Authorization": "Apikey wrong"}, {"Authorization": "Bearer " + AUTH["Authorization"]
                                                                                           .split()[1]}):
        r = svc.post("/api/v1/reconstructions", {"run_uid": uid, **FAST_TV}, headers=headers)
        assert r.status_code == 401 and "API key" in r.json()["detail"]
        assert svc.delete("/api/v1/reconstructions/whatever", headers=headers).status_code == 401
    assert len(svc.get("/api/v1/reconstructions").json()["reconstructions"]) == before  # nothing was queued


@pytest.mark.parametrize("body, status, words", [
    ({"run_uid": "0f0f-no-such-run", **FAST_TV}, 404, ["unknown run", "0f0f-no-such-run"]),
    ({"run_uid": "RUN:plain", **FAST_TV}, 422, ["no XRF data"]),
    ({"run_uid": "RUN:sim", "elements": ["Ni", "Zz"], **FAST_TV}, 422, ["unknown element 'Zz'", "Mn, Co, Ni"]),
    ({"run_uid": "RUN:sim", "method": "magic"}, 422, ["unknown method 'magic'", "tv"]),
    ({"run_uid": "RUN:sim", "method": "tv", "params": {"weight": -1}}, 422, ["invalid parameters", "weight"]),
    ({"run_uid": "RUN:sim", "method": "tv", "params": {"colour": 1}}, 422, ["colour"]),
    ({"run_uid": "RUN:sim", "elements": []}, 422, ["at least one element"]),
    ({"elements": ["Ni"]}, 422, ["run_uid", "Field required"]),
    ({"run_uid": "RUN:sim", "priority": 3}, 422, ["priority", "Extra inputs"]),
    ({"run_uid": "RUN:sim", "params": {f"p{i}": i for i in range(40)}}, 413, ["too many parameters"]),
])
def test_bad_requests_get_4xx_naming_the_problem(env: dict[str, Any], body: dict[str, Any], status: int,
                                                 words: list[str]) -> None:
    if str(body.get("run_uid", "")).startswith("RUN:"):
        body = {**body, "run_uid": env["runs"][body["run_uid"][4:]]}
    r = env["svc"].post("/api/v1/reconstructions", body)
    assert r.status_code == status, r.text
    for word in words:
        assert word in r.json()["detail"], (word, r.json())


def test_oversized_and_malformed_bodies(env: dict[str, Any]) -> None:
    svc = env["svc"]
    big = {"run_uid": env["runs"]["sim"], "params": {"note": "x" * 100_000}}
    r = svc.post("/api/v1/reconstructions", big)
    assert r.status_code == 413 and "too large" in r.json()["detail"]
    r = svc.post("/api/v1/reconstructions", content=b"{not json", headers={**AUTH, "content-type": "application/json"},
                 json=None)
    assert r.status_code == 422 and "JSON" in r.json()["detail"]
    chunked = svc.post("/api/v1/reconstructions", content=iter([b'{"run_uid": "x"}']), json=None,
                       headers={**AUTH, "content-type": "application/json"})
    assert chunked.status_code == 411 and "Content-Length" in chunked.json()["detail"]
    assert svc.get("/api/v1/reconstructions/nope").status_code == 404
    assert "unknown reconstruction 'nope'" in svc.get("/api/v1/reconstructions/nope").json()["detail"]
    assert svc.delete("/api/v1/reconstructions/nope").status_code == 404


def test_cancel_failure_isolation_and_auto_trigger(env: dict[str, Any]) -> None:
    svc, raw = env["svc"], env["raw"]
    # a long job (cross-validated weight on 48x48, about a minute) occupies the single worker
    slow = svc.submit({"run_uid": env["runs"]["slow"], "method": "tv"})
    svc.wait_job(slow["id"], {"running"}, timeout=60)
    # queued behind it: a job whose run loses its XRF data before it starts -> fails with a clear message
    doomed_uid = write_run(raw, simulation=SMALL_SIM)
    doomed = svc.submit({"run_uid": doomed_uid, **FAST_TV})
    queued = svc.submit({"run_uid": env["runs"]["sim"], **FAST_TV})
    # the queue holds two jobs now: a third is refused, and nothing is stored for it
    before = len(svc.get("/api/v1/reconstructions").json()["reconstructions"])
    full = svc.post("/api/v1/reconstructions", {"run_uid": env["runs"]["sim"], **FAST_TV})
    assert full.status_code == 429 and "the queue is full (2 jobs)" in full.json()["detail"], full.text
    assert len(svc.get("/api/v1/reconstructions").json()["reconstructions"]) == before
    start = dict(raw[doomed_uid].metadata["start"])
    start["nxsci_simulation"] = None  # (tiled merges metadata patches: None removes the key)
    raw[doomed_uid].update_metadata(metadata={"start": start})
    assert not raw[doomed_uid].metadata["start"].get("nxsci_simulation")
    # cancelling a queued job ends it at once; cancelling the running one stops it mid-solve
    r = svc.delete(f"/api/v1/reconstructions/{queued['id']}")
    assert r.status_code == 202 and r.json()["status"] == "cancelled"
    assert svc.delete(f"/api/v1/reconstructions/{queued['id']}").status_code == 409
    running = svc.job(slow["id"])
    assert running["status"] == "running" and 0 <= running["progress"] < 1
    assert svc.delete(f"/api/v1/reconstructions/{slow['id']}").status_code == 202
    cancelled = svc.wait_job(slow["id"], timeout=60)
    assert cancelled["status"] == "cancelled" and cancelled["result_uri"] is None
    failed = svc.wait_job(doomed["id"])
    assert failed["status"] == "failed"
    assert "no XRF data" in failed["error"] and doomed_uid in failed["error"]
    # the service carries on
    ok = svc.wait_job(svc.submit({"run_uid": env["runs"]["sim"], **FAST_TV})["id"])
    assert ok["status"] == "succeeded"

    # auto-trigger: a completed nxsci_scan run is reconstructed without being asked for
    auto_uid = write_run(raw, plan_name="nxsci_scan", simulation=SMALL_SIM)

    def auto_job() -> dict[str, Any] | None:
        jobs = svc.get("/api/v1/reconstructions").json()["reconstructions"]
        return next((j for j in jobs if j["run_uid"] == auto_uid), None)

    found = wait_for(auto_job, 60, "an automatic job for the new nxsci_scan run")
    assert found["origin"] == "auto"
    done = svc.wait_job(found["id"])
    assert done["status"] == "succeeded" and done["method"] == "tv" and set(done["metrics"]) == {"Mn", "Co", "Ni"}
    # other plans' runs are not triggered, and a run is triggered once: by the time a second nxsci_scan
    # run (written after a count run) has its job, the poll has seen the count run too
    other_uid = write_run(raw, plan_name="count", simulation=SMALL_SIM)
    second_uid = write_run(raw, plan_name="nxsci_scan", simulation=SMALL_SIM)
    wait_for(lambda: any(j["run_uid"] == second_uid for j in svc.get("/api/v1/reconstructions").json()
                         ["reconstructions"]), 60, "the second automatic job")
    jobs = svc.get("/api/v1/reconstructions").json()["reconstructions"]
    assert [j["run_uid"] for j in jobs if j["origin"] == "auto"].count(auto_uid) == 1
    assert not any(j["run_uid"] == other_uid for j in jobs)


def _recon_has_warnings() -> None:
    from nxsci.recon import ReconResult

    if "warnings" not in {f.name for f in dataclasses.fields(ReconResult)}:
        pytest.fail("nxsci.recon.ReconResult has no 'warnings' field yet (recon/data/results.py): the service passes "
                    "a result's warnings on, but this recon produces none")


def test_job_warnings_reach_the_job_the_result_and_the_dashboard(env: dict[str, Any]) -> None:
    """A run with a few counts per pattern: its maps are flagged, and the flags travel with the job."""
    _recon_has_warnings()
    svc = env["svc"]
    job = svc.wait_job(svc.submit({"run_uid": env["runs"]["dim"], **FAST_TV})["id"])
    assert job["status"] == "succeeded", job
    warnings = job["warnings"]
    assert warnings and all(isinstance(w, str) for w in warnings), job
    assert any(w.startswith("Mn: map not trustworthy") for w in warnings), warnings
    listed = {j["id"]: j for j in svc.get("/api/v1/reconstructions").json()["reconstructions"]}
    assert listed[job["id"]]["warnings"] == warnings
    from tiled.client import from_uri

    assert from_uri(job["result_uri"], api_key=TILED_KEY).metadata["warnings"] == warnings
    assert "warningsHtml(job)" in svc.get("/").text  # the dashboard shows them next to the metrics


def test_the_default_method_reports_each_elements_prior(env: dict[str, Any]) -> None:
    """No method: ``auto`` chooses a prior per element; the job and the result in tiled say which, and why."""
    svc = env["svc"]
    job = svc.wait_job(svc.submit({"run_uid": env["runs"]["sim"], "elements": ["Mn", "Ni"]})["id"], timeout=300)
    assert job["status"] == "succeeded", job
    assert job["method"] == "auto" and set(job["priors"]) == {"Mn", "Ni"}
    for prior in job["priors"].values():
        assert prior["prior"] in {"composition-tv", "tv"} and prior["reason"]
        assert isinstance(prior["txm_blur_px"], float) and len(prior["txm_offset_px"]) == 2
    from tiled.client import from_uri

    assert from_uri(job["result_uri"], api_key=TILED_KEY).metadata["priors"] == job["priors"]


def test_jobs_of_the_old_table_layout_are_served(env: dict[str, Any]) -> None:
    job = env["svc"].job(env["old_job"])
    assert job["status"] == "succeeded" and job["warnings"] == [] and job["metrics"] == {"Ni": {"residual": 0.01}}
    assert job["priors"] == {}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_job_store_upgrades_the_old_table_and_keeps_warnings(request: pytest.FixtureRequest, tmp_path: Path,
                                                             backend: str) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    old_id = create_old_jobs_database(url)
    store = JobStore(url)
    try:
        assert store.get(old_id).warnings == []
        job = store.create("some-run-uid-0001", elements=None, method="tv", params={})
        assert store.update(job.id, warnings=["Mn: map not trustworthy: test"])
    finally:
        store.close()
    again = JobStore(url)  # a second start finds the column there
    try:
        assert again.get(job.id).warnings == ["Mn: map not trustworthy: test"]
        assert again.get(old_id).to_json()["warnings"] == [] and again.get(old_id).priors == {}
    finally:
        again.close()


EMBEDDED_LINE = re.compile(r"nxsci serve: embedded tiled at (?P<uri>http://127\.0\.0\.1:\d+/api/v1) "
                           r"\(API key (?P<key>[0-9a-f]{32}); set NXSCI_TILED_API_KEY to choose it\): "
                           r"NXSCI_TILED_API_KEY=(?P<key2>[0-9a-f]{32}) nxsci acquire --tiled (?P<uri2>\S+)")


def test_embedded_tiled_prints_how_to_write_runs_into_it(tmp_path: Path) -> None:
    """No --tiled and no NXSCI_TILED_API_KEY: the printed URI and key are enough to write a run the service
    then reconstructs."""
    cfg = service_config(tmp_path, auto_trigger={"enabled": False})
    svc = ServiceProcess(tmp_path, tiled_uri=None, config=cfg, unset=("NXSCI_TILED_API_KEY",)).start()
    try:
        line = svc.output_line("nxsci serve: embedded tiled at ")
        found = EMBEDDED_LINE.fullmatch(line)
        assert found, line
        uri, key = found["uri"], found["key"]
        assert found["key2"] == key and found["uri2"] == uri
        info = svc.get("/api/v1/info").json()
        assert info["tiled_embedded"] is True and info["tiled_uri"] == uri
        from tiled.client import from_uri

        client = from_uri(uri, api_key=key)
        uid = write_run(client["raw"], simulation=SMALL_SIM)
        job = svc.wait_job(svc.submit({"run_uid": uid[:8], "elements": ["Ni"], **FAST_TV})["id"])
        assert job["status"] == "succeeded" and job["run_uid"] == uid, job
        assert from_uri(job["result_uri"], api_key=key).metadata["run_uid"] == uid
    finally:
        svc.stop_cleanly()


def test_embedded_tiled_with_a_chosen_key_does_not_print_it(tmp_path: Path) -> None:
    cfg = service_config(tmp_path, auto_trigger={"enabled": False})
    svc = ServiceProcess(tmp_path, tiled_uri=None, config=cfg).start()  # NXSCI_TILED_API_KEY=TILED_KEY
    try:
        uri = svc.get("/api/v1/info").json()["tiled_uri"]
        line = svc.output_line("nxsci serve: embedded tiled at ")
        assert line == (f"nxsci serve: embedded tiled at {uri} (API key: the NXSCI_TILED_API_KEY value, not "
                        f"printed): NXSCI_TILED_API_KEY=<that key> nxsci acquire --tiled {uri}")
        assert TILED_KEY not in svc.log_path.read_text()
    finally:
        svc.stop_cleanly()


def test_the_schema_documents_every_answer_and_405_names_all_methods(env: dict[str, Any]) -> None:
    """What the fuzzer held the service to: every status a route answers is in /openapi.json with the body it
    has, the API key is a declared security scheme, and a 405 lists every method of the path."""
    svc = env["svc"]
    schema = svc.get("/openapi.json").json()
    post = schema["paths"]["/api/v1/reconstructions"]["post"]
    assert {"201", "401", "404", "411", "413", "422", "429", "503"} <= set(post["responses"])
    assert post["responses"]["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert post["security"] == [{"Apikey": []}]
    assert schema["components"]["securitySchemes"]["Apikey"] == {
        "type": "apiKey", "in": "header", "name": "Authorization",
        "description": "'Apikey <NXSCI_API_KEY>'; needed by POST and DELETE"}
    png = schema["paths"]["/api/v1/reconstructions/{job_id}/maps/{element}.png"]["get"]["responses"]
    assert set(png["200"]["content"]) == {"image/png"} and {"404", "409"} <= set(png)
    job = schema["paths"]["/api/v1/reconstructions/{job_id}"]
    assert "404" in job["get"]["responses"] and {"401", "404", "409"} <= set(job["delete"]["responses"])

    r = httpx.request("OPTIONS", f"{svc.url}/api/v1/reconstructions/{env['old_job']}")
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET", r.headers
    r = svc.get("/api/v1/reconstructions", params={"status": "finished"})
    assert r.status_code == 422 and "status" in r.json()["detail"] and "'succeeded'" in r.json()["detail"], r.text
    for body in (b"\xff", b"\xc3"):  # not UTF-8: malformed JSON like any other (FastAPI alone says 400)
        r = svc.post("/api/v1/reconstructions", content=body, json=None,
                     headers={**AUTH, "content-type": "application/json"})
        assert r.status_code == 422 and r.json() == {"detail": "body: not valid JSON (the bytes are not UTF-8 text)"}


def test_a_long_solve_reports_progress_that_follows_its_steps(env: dict[str, Any]) -> None:
    """A user watching a job: at step k of n its progress is about k/n (the solve fills most of the range:
    loading a run takes seconds, a solve up to hours) and the stage says how long is left."""
    svc = env["svc"]
    job_id = svc.submit({"run_uid": env["runs"]["sim"], "elements": ["Mn"], "method": "siren-paper",
                         "params": {"steps": 300, "width": 512, "depth": 3, "warm_start": "none"}})["id"]
    seen: list[tuple[int, float, str]] = []

    def sample() -> bool:
        job = svc.get(f"/api/v1/reconstructions/{job_id}").json()
        found = re.search(r"step (\d+)/300", job["stage"] or "")
        if found and job["status"] == "running":
            seen.append((int(found.group(1)), float(job["progress"]), job["stage"]))
        return job["status"] in ("succeeded", "failed", "cancelled")

    wait_for(sample, 300, "the siren-paper job", interval=0.2)
    assert svc.get(f"/api/v1/reconstructions/{job_id}").json()["status"] == "succeeded"
    assert len(seen) >= 3, seen
    for step, progress, _ in seen:
        assert abs(progress - step / 300) < 0.12, (step, progress)
    assert all(b[1] >= a[1] for a, b in zip(seen, seen[1:]))  # never backwards
    assert any("left" in stage for step, _, stage in seen if step >= 150), seen[-3:]  # ~10 s solve: 5 s in
