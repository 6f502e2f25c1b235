"""Run references in ``POST /api/v1/reconstructions``, against a real `nxsci serve` and a real tiled server.

A reference is a full run uid or a unique prefix of one (at least 8 characters, letters, digits and '-');
scan ids are refused. The reference is resolved to the full uid before anything is stored, so the job and
the result's provenance carry the full uid. Runs that cannot be reconstructed (still open, aborted before
their first event) are refused at submission with 422, not accepted and failed later.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from _service_harness import (FAST_TV, SMALL_SIM, TILED_KEY, ServiceProcess, service_config, start_tiled,
                              write_documents, write_run, write_run_aborted_before_first_event)

pytestmark = pytest.mark.slow

#: start metadata of an nxsci_scan run as the pipeline source checks it (no frames needed to be refused)
NXSCI_MD = {"plan_name": "nxsci_scan", "nxsci_run": True, "elements": ["Mn", "Co", "Ni"], "exposure": 0.1}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("runref")
    tiled, client = start_tiled(tmp / "tiled")
    raw = client["raw"]
    prefix = uuid.uuid4().hex[:8]  # two runs whose uids share their first 8 characters
    runs = {
        "sim": write_run(raw, simulation=SMALL_SIM),
        "twin1": write_documents(raw, {"plan_name": "count"}, uid=prefix + str(uuid.uuid4())[8:]),
        "twin2": write_documents(raw, {"plan_name": "count"}, uid=prefix + str(uuid.uuid4())[8:]),
        "open_sim": write_documents(raw, {"plan_name": "count", "nxsci_simulation": SMALL_SIM}, stopped=False),
        "open_scan": write_documents(raw, NXSCI_MD, stopped=False),
        "aborted_scan": write_run_aborted_before_first_event(raw, NXSCI_MD),
    }
    uri = tiled.uri.split("?")[0]
    svc = ServiceProcess(tmp, tiled_uri=uri, config=service_config(tmp, auto_trigger={"enabled": False})).start()
    try:
        yield {"svc": svc, "client": client, "raw": raw, "runs": runs, "prefix": prefix, "tmp": tmp, "uri": uri}
    finally:
        svc.stop_cleanly()
        tiled.close()


def _jobs(svc: ServiceProcess) -> list[dict[str, Any]]:
    return svc.get("/api/v1/reconstructions").json()["reconstructions"]


@pytest.mark.parametrize("run_uid, status, words", [
    ("0", 422, ["'0' looks like a scan id", "scan ids are not accepted", "not unique", "at least 8 characters"]),
    ("42", 422, ["scan id", "restart with every RunEngine"]),
    ("nope", 422, ["'nope' is too short", "at least 8 characters"]),
    ("abc1234", 422, ["too short (7 characters)"]),
    ("runs/abcdef12", 422, ["contains '/'"]),
    ("abcdef12 ", 422, ["contains whitespace"]),
    ("abcd\n1234", 422, ["contains whitespace", "'abcd\\n1234'"]),
    ("abcdef1_%", 422, ["characters other than letters, digits and '-'"]),
    ("f" * 200, 422, ["too long (200 characters > 128)"]),
    (0, 422, ["run_uid", "valid string"]),
    ("12345678", 404, ["unknown run '12345678'", "scan ids are not accepted"]),
    ("UNKNOWN-FULL-UID", 404, ["unknown run", "not in the catalog"]),
])
def test_malformed_and_unknown_references_get_4xx_naming_the_problem(env: dict[str, Any], run_uid: Any, status: int,
                                                                   words: list[str]) -> None:
    svc = env["svc"]
    if run_uid == "UNKNOWN-FULL-UID":
        run_uid = str(uuid.uuid4())
    before = len(_jobs(svc))
    r = svc.post("/api/v1/reconstructions", {"run_uid": run_uid, **FAST_TV})
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert "\n" not in detail and "Traceback" not in detail, detail
    for word in words:
        assert word in detail, (word, detail)
    assert len(_jobs(svc)) == before  # nothing was stored


def test_ambiguous_prefix_is_refused_naming_the_runs(env: dict[str, Any]) -> None:
    svc, runs = env["svc"], env["runs"]
    r = svc.post("/api/v1/reconstructions", {"run_uid": env["prefix"], **FAST_TV})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "matches several runs" in detail and "give more characters" in detail, detail
    assert runs["twin1"][:13] in detail and runs["twin2"][:13] in detail, detail
    # a longer prefix tells them apart; that run has no XRF data, so it is refused for that reason instead
    r = svc.post("/api/v1/reconstructions", {"run_uid": runs["twin1"][:24], **FAST_TV})
    assert r.status_code == 422 and "no XRF data" in r.json()["detail"] and runs["twin1"] in r.json()["detail"]


def test_unique_prefix_is_stored_as_the_full_uid_in_job_and_provenance(env: dict[str, Any]) -> None:
    svc, uid = env["svc"], env["runs"]["sim"]
    r = svc.post("/api/v1/reconstructions", {"run_uid": uid[:8], "elements": ["Ni"], **FAST_TV})
    assert r.status_code == 201, r.text
    assert r.json()["run_uid"] == uid
    job = svc.wait_job(r.json()["id"])
    assert job["status"] == "succeeded" and job["run_uid"] == uid, job
    from tiled.client import from_uri

    node = from_uri(job["result_uri"], api_key=TILED_KEY)
    assert node.metadata["run_uid"] == uid
    # the full uid itself resolves to the same run
    r = svc.post("/api/v1/reconstructions", {"run_uid": uid, "elements": ["Ni"], **FAST_TV})
    assert r.status_code == 201 and r.json()["run_uid"] == uid, r.text
    assert svc.wait_job(r.json()["id"])["status"] == "succeeded"


def test_a_run_still_open_is_refused_until_it_ends(env: dict[str, Any]) -> None:
    svc, raw, uid = env["svc"], env["raw"], env["runs"]["open_sim"]
    r = svc.post("/api/v1/reconstructions", {"run_uid": uid[:10], **FAST_TV})
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == f"run '{uid}' is still running (no stop document yet): submit it after it ends"
    # the stop document arrives: the same request is accepted
    start = raw[uid].metadata["start"]
    raw[uid].update_metadata(metadata={"stop": {"uid": str(uuid.uuid4()), "run_start": uid, "time": start["time"] + 1,
                                                "exit_status": "success", "reason": "", "num_events": {"primary": 1}}})
    r = svc.post("/api/v1/reconstructions", {"run_uid": uid[:10], **FAST_TV, "elements": ["Co"]})
    assert r.status_code == 201, r.text
    assert svc.wait_job(r.json()["id"])["status"] == "succeeded"


def test_pipeline_source_refuses_empty_and_open_scans(env: dict[str, Any]) -> None:
    """With the real (pipeline) source: an nxsci_scan run aborted before its first event, or still open."""
    tmp, runs = env["tmp"] / "pipeline", env["runs"]
    tmp.mkdir()
    cfg = service_config(tmp, source="pipeline", auto_trigger={"enabled": False})
    svc = ServiceProcess(tmp, tiled_uri=env["uri"], config=cfg).start()
    try:
        aborted = runs["aborted_scan"]
        r = svc.post("/api/v1/reconstructions", {"run_uid": aborted[:8]})
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == (f"run '{aborted}' has no usable data: no sample-in acquisitions ('primary' "
                                      f"events; the run ended with exit status 'fail')"), r.text
        r = svc.post("/api/v1/reconstructions", {"run_uid": runs["open_scan"]})
        assert r.status_code == 422 and "is still running" in r.json()["detail"], r.text
        r = svc.post("/api/v1/reconstructions", {"run_uid": runs["sim"]})
        assert r.status_code == 422 and "no XRF data" in r.json()["detail"], r.text
        r = svc.post("/api/v1/reconstructions", {"run_uid": "7"})
        assert r.status_code == 422 and "scan id" in r.json()["detail"], r.text
        assert svc.get("/api/v1/reconstructions").json()["reconstructions"] == []
    finally:
        svc.stop_cleanly()
