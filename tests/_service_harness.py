"""Helpers of the service tests: a real tiled server, real bluesky runs, `nxsci serve` as a subprocess.

Synchronisation is always by polling a condition against a deadline (``/healthz``, a job's status), never
by sleeping a fixed time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml
from _acquisition_harness import free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]
TILED_KEY = "tiledtestsecret"
SERVICE_KEY = "servicetestsecret"
AUTH = {"Authorization": f"Apikey {SERVICE_KEY}"}
FINAL = {"succeeded", "failed", "cancelled"}
#: a 32x32 simulated run: three elements (Mn, Co, Ni), a TXM image, ~100 patterns; jobs take about a second
SMALL_SIM = {"size": 32, "sampling": 0.1, "seed": 0}
FAST_TV = {"method": "tv", "params": {"weight": 1e-5}}


def start_tiled(directory: Path) -> Any:
    """A real tiled server (file + duckdb storage) with a ``raw`` runs container."""
    from tiled.client import from_uri
    from tiled.server import SimpleTiledServer
    from tiled.structures.core import Spec

    server = SimpleTiledServer(directory=directory, api_key=TILED_KEY)
    client = from_uri(server.uri.split("?")[0], api_key=TILED_KEY)
    if "raw" not in client:
        client.create_container("raw", specs=[Spec("CatalogOfBlueskyRuns", version="3.0")])
    return server, client


def write_run(raw: Any, *, plan_name: str = "count", simulation: dict[str, Any] | None = None,
              md: dict[str, Any] | None = None) -> str:
    """A real bluesky run written by TiledWriter (``count`` of a simulated detector) with our start metadata."""
    from bluesky import RunEngine
    from bluesky.plans import count
    from bluesky_tiled_plugins import TiledWriter
    from ophyd.sim import det

    md = {"plan_name": plan_name, **(md or {})}
    if simulation is not None:
        md["nxsci_simulation"] = simulation
    RE = RunEngine({}, call_returns_result=False)
    RE.subscribe(TiledWriter(raw))
    (uid,) = RE(count([det], num=1, md=md))
    return uid


def write_documents(raw: Any, md: dict[str, Any], *, uid: str | None = None, events: int = 1,
                    stopped: bool = True) -> str:
    """A run composed document by document with event-model (any ``uid``), written by TiledWriter: for runs a
    RunEngine cannot make on demand (chosen uids, a run still open: ``stopped=False`` sends no stop)."""
    import time

    from bluesky_tiled_plugins import TiledWriter
    from event_model import compose_run

    writer = TiledWriter(raw)
    run = compose_run(uid=uid, metadata=md)
    writer("start", run.start_doc)
    stream = run.compose_descriptor(name="primary", data_keys={
        "det": {"source": "test", "dtype": "number", "shape": [], "dtype_numpy": "<f8"}})
    writer("descriptor", stream.descriptor_doc)
    for i in range(events):
        now = time.time()
        writer("event", stream.compose_event(data={"det": float(i)}, timestamps={"det": now}, seq_num=i + 1))
    if stopped:
        writer("stop", run.compose_stop())
    return str(run.start_doc["uid"])


def write_run_aborted_before_first_event(raw: Any, md: dict[str, Any]) -> str:
    """A real RunEngine run opened with ``md`` that fails before recording any event (exit status 'fail')."""
    import bluesky.plan_stubs as bps
    from bluesky import RunEngine
    from bluesky_tiled_plugins import TiledWriter

    class Interrupted(Exception):
        pass

    def plan() -> Any:
        yield from bps.open_run(md=md)
        raise Interrupted("the beam dumped before the first configuration")

    RE = RunEngine({}, call_returns_result=False)
    RE.subscribe(TiledWriter(raw))
    uids: list[str] = []
    RE.subscribe(lambda name, doc: uids.append(doc["uid"]) if name == "start" else None)
    try:
        RE(plan())
    except Interrupted:
        pass
    else:
        raise AssertionError("the plan was expected to fail")
    (uid,) = uids
    assert raw[uid].metadata["stop"]["exit_status"] == "fail"
    return uid


class ServiceProcess:
    """``python -m nxsci.cli serve`` on a free port; logs to a file; stopped by PID."""

    def __init__(self, workdir: Path, *, tiled_uri: str | None, config: dict[str, Any],
                 env: dict[str, str] | None = None, unset: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "service.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "service.log"
        self.tiled_uri = tiled_uri
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("NXSCI_")}
        self.env.update({"NXSCI_API_KEY": SERVICE_KEY, "NXSCI_TILED_API_KEY": TILED_KEY,
                         "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        self.env.update(env or {})
        for name in unset:  # e.g. NXSCI_TILED_API_KEY: the service then makes up a key and prints it
            self.env.pop(name, None)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> ServiceProcess:
        cmd = [sys.executable, "-m", "nxsci.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--config", str(self.config_path)]
        if self.tiled_uri:
            cmd += ["--tiled", self.tiled_uri]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()

        def healthy() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"nxsci serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2.0).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout, "nxsci serve /healthz", interval=0.25)
        return self

    def output_line(self, prefix: str) -> str:
        """The first line of the service's output (stdout and stderr) that starts with ``prefix``."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        found = [line for line in text.splitlines() if line.startswith(prefix)]
        assert found, f"no line starting with {prefix!r} in the output of nxsci serve:\n{self.log_tail()}"
        return found[0]

    def log_tail(self, n: int = 4000) -> str:
        """The end of the service's log without the access lines of successful requests (the polling)."""
        if not self.log_path.exists():
            return ""
        lines = self.log_path.read_text(errors="replace").splitlines()
        kept = [line for line in lines if not (line.startswith("INFO:") and '" 200 OK' in line)]
        return "\n".join(kept)[-n:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
                raise AssertionError(f"nxsci serve did not stop on signal {sig}:\n{self.log_tail()}")
        return int(self.proc.returncode)

    def stop_cleanly(self) -> None:
        """SIGTERM; uvicorn finishes the lifespan shutdown and re-raises the signal (exit status -15)."""
        code = self.stop(signal.SIGTERM)
        assert code in (0, -signal.SIGTERM), (code, self.log_tail())
        assert "Application shutdown complete" in self.log_tail(), self.log_tail()

    # -- REST helpers
    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30.0, **kw)

    def post(self, path: str, json: Any = None, headers: dict[str, str] | None = AUTH, **kw: Any) -> httpx.Response:
        return httpx.post(self.url + path, json=json, headers=headers, timeout=60.0, **kw)

    def delete(self, path: str, headers: dict[str, str] | None = AUTH) -> httpx.Response:
        return httpx.delete(self.url + path, headers=headers, timeout=30.0)

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        r = self.post("/api/v1/reconstructions", body)
        assert r.status_code == 201, (r.status_code, r.text)
        return r.json()

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.get(f"/api/v1/reconstructions/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_job(self, job_id: str, states: set[str] = FINAL, timeout: float = 120.0) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            job = self.job(job_id)
            return job if job["status"] in states else None

        try:
            return wait_for(reached, timeout, f"job {job_id} to reach {sorted(states)}", interval=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last: {self.job(job_id)}\n{self.log_tail()}") from None


def service_config(tmp: Path, *, jobs_url: str | None = None, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "source": "simulated",
        "tiled": {"directory": str(tmp / "embedded-tiled")},
        "jobs": {"url": jobs_url or f"sqlite:///{tmp / 'jobs.db'}"},
        "auto_trigger": {"enabled": True, "poll_interval_s": 0.5, **FAST_TV},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    return cfg


def create_old_jobs_database(url: str) -> str:
    """A job database as the first release of the service made it (no ``warnings`` column), holding one
    finished job; returns that job's id."""
    import sqlalchemy as sa

    from nxsci.services._job_store import engine_url

    md = sa.MetaData()
    jobs = sa.Table(
        "nxsci_jobs", md,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("run_uid", sa.String(256), nullable=False, index=True),
        sa.Column("elements", sa.JSON, nullable=True),
        sa.Column("method", sa.String(64), nullable=True),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("stage", sa.Text, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("started", sa.Float, nullable=True),
        sa.Column("finished", sa.Float, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("timings", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("result_uri", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
    )
    sa.Table("nxsci_meta", md, sa.Column("key", sa.String(64), primary_key=True),
             sa.Column("value", sa.Text, nullable=False))
    sa.Table("nxsci_triggered", md, sa.Column("run_uid", sa.String(256), primary_key=True),
             sa.Column("job_id", sa.String(32), nullable=False))
    engine = sa.create_engine(engine_url(url))
    job_id = "0" * 31 + "1"
    try:
        md.create_all(engine)
        with engine.begin() as conn:
            conn.execute(jobs.insert().values(
                id=job_id, run_uid="00000000-0000-4000-8000-000000000000", elements=["Ni"], method="tv",
                params={"weight": 1e-5}, origin="api", status="succeeded", progress=1.0, stage="done",
                created=1.0, started=2.0, finished=3.0, attempts=1, timings={"job_s": 1.0},
                metrics={"Ni": {"residual": 0.01}}, result_uri=None, error=None, cancel_requested=False))
    finally:
        engine.dispose()
    return job_id
