"""Property-based fuzzing of the whole REST API of a real `nxsci serve`, from its own OpenAPI schema.

schemathesis (its command line, as a user runs it) generates requests for every operation of
``/openapi.json`` in all four phases (explicit examples, coverage of boundaries and invalid values, random
fuzzing, stateful sequences that follow the ``Location`` of created jobs), with a fixed seed and bounded
examples, and runs its default checks plus ``not_a_server_error`` on every response. The catalog holds real
runs and the job store real jobs (succeeded, failed, cancelled); the ``{job_id}`` routes and the ``run_uid``
field draw from them (schema examples, and dictionaries half of the time), so the fuzzer reaches past 404,
and every request carries the API key, so POST and DELETE are reached past 401.

Two default checks are configured, not dropped silently:
* ``positive_data_acceptance`` also accepts 413 and 422: whether a schema-valid request can be served depends
  on the catalog (a run without XRF data, an element the run lacks) and on the configured limits, which a
  schema cannot say;
* ``use_after_free`` is off: DELETE cancels a job and the job stays readable as history (``cancelled``), as
  the README documents; it is not a deleted resource.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _service_harness import (AUTH, FAST_TV, SMALL_SIM, ServiceProcess, service_config, start_tiled, wait_for,
                              write_run)
from conftest import IN_CI

try:
    import schemathesis  # noqa: F401  (run through its command line; imported to check it is there)
except ImportError:  # pragma: no cover - a test dependency (pip install -e '.[test]'), always there in CI
    if IN_CI:
        raise
    pytest.skip("schemathesis is not installed: pip install -e '.[test]'", allow_module_level=True)

pytestmark = pytest.mark.slow

SEED = 20261126
#: random examples per operation (fuzzing and stateful phases): about 20 s of requests on 2 cores
MAX_EXAMPLES = 30
#: the whole command, should the service hang
FUZZ_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    tiled, client = start_tiled(tmp / "tiled")
    raw = client["raw"]
    runs = {"sim": write_run(raw, simulation=SMALL_SIM), "plain": write_run(raw),
            "slow": write_run(raw, simulation={"size": 48, "sampling": 0.3, "seed": 1}),
            "doomed": write_run(raw, simulation=SMALL_SIM)}
    cfg = service_config(tmp, auto_trigger={"enabled": False}, limits={"max_queued": 4})
    svc = ServiceProcess(tmp, tiled_uri=tiled.uri.split("?")[0], config=cfg).start()
    try:
        yield {"svc": svc, "raw": raw, "runs": runs, "jobs": _seed_jobs(svc, raw, runs), "tmp": tmp}
    finally:
        svc.stop_cleanly()
        tiled.close()


def _seed_jobs(svc: ServiceProcess, raw: Any, runs: dict[str, str]) -> dict[str, str]:
    """One job in each final state, so the fuzzer meets real ids (GET, DELETE -> 409, maps -> 200/404)."""
    ok = svc.wait_job(svc.submit({"run_uid": runs["sim"], "elements": ["Ni"], **FAST_TV})["id"])
    assert ok["status"] == "succeeded", ok
    slow = svc.submit({"run_uid": runs["slow"], "method": "tv"})  # cross-validated: busy for a minute
    svc.wait_job(slow["id"], {"running"}, timeout=60)
    doomed = svc.submit({"run_uid": runs["doomed"], **FAST_TV})  # queued behind it; loses its data meanwhile
    start = dict(raw[runs["doomed"]].metadata["start"])
    start["nxsci_simulation"] = None
    raw[runs["doomed"]].update_metadata(metadata={"start": start})
    assert svc.delete(f"/api/v1/reconstructions/{slow['id']}").status_code == 202
    assert svc.wait_job(slow["id"])["status"] == "cancelled"
    assert svc.wait_job(doomed["id"])["status"] == "failed"
    return {"succeeded": ok["id"], "cancelled": slow["id"], "failed": doomed["id"]}


def _with_examples(openapi: dict[str, Any], jobs: dict[str, str], runs: dict[str, str]) -> dict[str, Any]:
    """The service's schema plus explicit examples: the seeded job ids for ``job_id`` and a valid request."""
    schema = copy.deepcopy(openapi)
    for item in schema["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "job_id":
                    parameter["examples"] = {state: {"value": job_id} for state, job_id in jobs.items()}
                elif parameter["name"] == "element":
                    parameter["examples"] = {"Ni": {"value": "Ni"}, "Mn": {"value": "Mn"}}
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                body["examples"] = {
                    "by-uid": {"value": {"run_uid": runs["sim"], "elements": ["Ni"], **FAST_TV}},
                    "by-prefix": {"value": {"run_uid": runs["sim"][:8], "method": "pinv"}},
                    "no-xrf": {"value": {"run_uid": runs["plain"]}},
                }
    return schema


def _config(jobs: dict[str, str], runs: dict[str, str]) -> str:
    """schemathesis.toml: seed, bounds, the API key, where real ids come from, and the two check settings
    explained in the module docstring."""
    refs = [runs["sim"], runs["sim"][:8], runs["plain"], runs["doomed"][:12]]
    return f"""
seed = {SEED}
headers = {{ Authorization = {json.dumps(AUTH["Authorization"])} }}

[generation]
max-examples = {MAX_EXAMPLES}
database = "none"

[dictionaries.job_ids]
values = {json.dumps(list(jobs.values()))}
[dictionaries.run_refs]
values = {json.dumps(refs)}
[dictionaries.elements]
values = ["Mn", "Co", "Ni"]

[parameters]
"path.job_id" = {{ dictionary = "job_ids", probability = 0.5 }}
"path.element" = {{ dictionary = "elements", probability = 0.5 }}
"body.run_uid" = {{ dictionary = "run_refs", probability = 0.5 }}

[checks.not_a_server_error]
enabled = true
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "413", "422", "429"]
[checks.use_after_free]
enabled = false
"""


ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/1\.1" (?P<status>\d{3})')


def _access_log(svc: ServiceProcess, since: int) -> list[tuple[str, str, int]]:
    """(method, path, status) of every request uvicorn logged after byte ``since`` of the service's log."""
    text = svc.log_path.read_bytes()[since:].decode(errors="replace")
    return [(m["method"], m["path"], int(m["status"])) for m in ACCESS_LINE.finditer(text)]


def test_every_operation_survives_the_fuzzer(fuzz_env: dict[str, Any]) -> None:
    svc, jobs, runs, tmp = fuzz_env["svc"], fuzz_env["jobs"], fuzz_env["runs"], fuzz_env["tmp"]
    openapi = httpx.get(f"{svc.url}/openapi.json", timeout=30).json()
    schema_path, config_path = tmp / "openapi.json", tmp / "schemathesis.toml"
    schema_path.write_text(json.dumps(_with_examples(openapi, jobs, runs)))
    config_path.write_text(_config(jobs, runs))
    log_start = svc.log_path.stat().st_size
    cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config_path), "--no-color", "run",
           str(schema_path), "--url", svc.url, "--workers", "1", "--report", "junit",
           "--report-junit-path", str(tmp / "junit.xml")]
    done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=FUZZ_TIMEOUT_S)
    report = done.stdout[-12000:] + done.stderr[-3000:]
    assert done.returncode == 0, f"schemathesis found problems:\n{report}"
    tested = re.search(r"Tested: (\d+)", done.stdout)
    operations = sum(len(item) for item in openapi["paths"].values())
    assert tested and int(tested[1]) == operations, report
    assert re.search(r"\d+ generated, \d+ passed", done.stdout), report

    seen = _access_log(svc, log_start)
    assert not [s for s in seen if s[2] >= 500], [s for s in seen if s[2] >= 500]
    # the seeded ids were used, past 401 and 404: reads of real jobs, a refused cancel, a map, new jobs
    reached = {(method, status) for method, path, status in seen if any(i in path for i in jobs.values())}
    assert ("GET", 200) in reached and ("DELETE", 409) in reached, sorted(reached)
    assert any(m == "GET" and p.endswith(".png") and s == 200 for m, p, s in seen), "no map was fetched"
    assert any(m == "POST" and s == 201 for m, _, s in seen), "no job was created"
    assert any(m == "DELETE" and s == 202 for m, _, s in seen), "no job was cancelled"


def test_service_is_healthy_after_fuzzing(fuzz_env: dict[str, Any]) -> None:
    svc = fuzz_env["svc"]
    assert svc.get("/healthz").status_code == 200
    # what the fuzzer queued may ask for long solves: cancel it, let it drain, then a normal job succeeds
    for job in svc.get("/api/v1/reconstructions").json()["reconstructions"]:
        if job["status"] in ("queued", "running"):
            assert svc.delete(f"/api/v1/reconstructions/{job['id']}").status_code in (202, 409)
    wait_for(lambda: all(j["status"] in ("succeeded", "failed", "cancelled")
                         for j in svc.get("/api/v1/reconstructions").json()["reconstructions"]),
             120, "the fuzzer's jobs to finish")
    done = svc.wait_job(svc.submit({"run_uid": fuzz_env["runs"]["sim"], **FAST_TV})["id"])
    assert done["status"] == "succeeded", done
    assert "Traceback" not in svc.log_path.read_text(errors="replace"), svc.log_tail()
