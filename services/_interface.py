"""The reconstruction service's interface layer: what the REST routes call (blueapi's ``interface.py``).

:class:`ReconstructionService` owns the tiled client (or an embedded tiled server), the job store, the
executor (in-process or dask) and the auto-trigger; routes stay thin and translate :class:`ApiError` into
HTTP responses.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import threading
import time
import traceback
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field

from nxsci.recon import DatasetError, NxsciError, SolverError, get_solver, method_schemas
from nxsci.recon.data.dataset import nxsci_version

from ._dataset_source import (CatalogUnavailableError, DatasetSource, RunInfo, RunReferenceError, UnknownRunError,
                              UnusableRunError, make_source)
from ._job_store import FINAL_STATES, JobRecord, JobStore
from ._service_settings import ServiceSettings
from ._worker import Executor, JobSpec, make_executor

__all__ = ["ReconstructionService", "ReconstructionRequest", "ApiError"]

log = logging.getLogger("nxsci.services")


class ApiError(Exception):
    """An error with the HTTP status a route answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ReconstructionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_uid: str = Field(..., min_length=1, max_length=256,
                         description="the run's uid, or a unique prefix of it of at least 8 characters (letters, "
                                     "digits, '-'); scan ids are not accepted. The job stores the full uid")
    elements: list[str] | None = Field(None, description="elements to reconstruct (default: all of the run's)")
    method: str | None = Field(None, description="see GET /api/v1/methods (default: the benchmark winner)")
    params: dict[str, Any] = Field(default_factory=dict, description="the method's parameters")


def _strip_query(uri: str) -> str:
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def embedded_tiled_notice(uri: str, key: str, key_origin: str | None) -> str:
    """The start-up line that tells operators where the embedded tiled server is and how to write runs into
    it. A generated key is printed (nobody could write otherwise); a key the operator chose is only named."""
    if key_origin is None:
        return (f"nxsci serve: embedded tiled at {uri} (API key {key}; set NXSCI_TILED_API_KEY to choose it): "
                f"NXSCI_TILED_API_KEY={key} nxsci acquire --tiled {uri}")
    return (f"nxsci serve: embedded tiled at {uri} (API key: the {key_origin} value, not printed): "
            f"NXSCI_TILED_API_KEY=<that key> nxsci acquire --tiled {uri}")


def _tiled_key_origin(settings: ServiceSettings) -> str | None:
    """Where the configured tiled key came from (None: not configured, the service generates one)."""
    if settings.tiled.api_key is None:
        return None
    if os.environ.get("NXSCI_TILED_API_KEY") == settings.tiled.api_key.get_secret_value():
        return "NXSCI_TILED_API_KEY"
    return "tiled.api_key setting"


class ReconstructionService:
    def __init__(self, settings: ServiceSettings, *, source: DatasetSource | None = None,
                 executor: Executor | None = None) -> None:
        self.settings = settings
        self._source = source
        self.executor = executor
        self.store: JobStore | None = None
        self.client: Any = None
        self.tiled_server: Any = None
        self.tiled_uri = ""
        self._tiled_key: str | None = None
        self._stop = threading.Event()
        self._trigger_thread: threading.Thread | None = None
        self._progress_seen: dict[str, float] = {}
        self.api_key = settings.api_key.get_secret_value() if settings.api_key else None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        from tiled.client import from_uri
        from tiled.structures.core import Spec

        s = self.settings
        if self.api_key is None:
            self.api_key = secrets.token_hex(16)
            log.warning("NXSCI_API_KEY is not set: generated API key %s", self.api_key)
            print(f"nxsci serve: no NXSCI_API_KEY set; this run's API key is {self.api_key}", flush=True)
        self._tiled_key = s.tiled.api_key.get_secret_value() if s.tiled.api_key else None
        if s.tiled.uri is None:
            from tiled.server import SimpleTiledServer

            self._tiled_key = self._tiled_key or secrets.token_hex(16)
            s.tiled.directory.mkdir(parents=True, exist_ok=True)
            # SimpleTiledServer points the process-wide uvicorn loggers at files in its directory: keep the
            # service's console log (the embedded server's lines then go there too)
            saved = {name: (list(lg.handlers), lg.level, lg.propagate)
                     for name in ("uvicorn", "uvicorn.error", "uvicorn.access") for lg in [logging.getLogger(name)]}
            try:
                self.tiled_server = SimpleTiledServer(directory=s.tiled.directory, api_key=self._tiled_key,
                                                      port=s.tiled.port)
            finally:
                for name, (handlers, level, propagate) in saved.items():
                    lg = logging.getLogger(name)
                    lg.handlers[:] = handlers
                    lg.setLevel(level)
                    lg.propagate = propagate
            self.tiled_uri = _strip_query(self.tiled_server.uri)
            print(embedded_tiled_notice(self.tiled_uri, self._tiled_key, _tiled_key_origin(s)), flush=True)
        else:
            self.tiled_uri = _strip_query(s.tiled.uri)
        self.client = from_uri(self.tiled_uri, api_key=self._tiled_key)
        if s.tiled.raw not in self.client:
            self.client.create_container(s.tiled.raw, specs=[Spec("CatalogOfBlueskyRuns", version="3.0")])
        if self._source is None:
            self._source = make_source(s.source, self.client[s.tiled.raw])
        self.store = JobStore(s.jobs.url)
        if self.executor is None:
            self.executor = make_executor(self, dask_scheduler=s.executor.dask_scheduler,
                                          local_workers=s.executor.local_workers)
        requeued = self.store.requeue_interrupted()
        if requeued:
            log.warning("re-queued %d job(s) interrupted by the last shutdown", len(requeued))
        for job in sorted(self.store.list(status="queued", limit=100000), key=lambda j: j.created):
            self.executor.submit(self._spec(job))
        if s.auto_trigger.enabled:
            self.store.set_meta_default("auto_trigger_since", repr(time.time()))
            self._trigger_thread = threading.Thread(target=self._auto_trigger_loop, daemon=True,
                                                    name="nxsci-auto-trigger")
            self._trigger_thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._trigger_thread is not None:
            self._trigger_thread.join(timeout=10)
        if self.executor is not None:
            self.executor.close()
        if self.store is not None:
            self.store.close()
        if self.tiled_server is not None:
            self.tiled_server.close()

    @property
    def source(self) -> DatasetSource:
        assert self._source is not None, "service not started"
        return self._source

    def _spec(self, job: JobRecord) -> JobSpec:
        s = self.settings
        return JobSpec(job_id=job.id, run_uid=job.run_uid, elements=job.elements, method=job.method,
                       params=job.params, device=s.executor.device, source=s.source, tiled_uri=self.tiled_uri,
                       tiled_api_key=self._tiled_key, raw=s.tiled.raw, results=s.tiled.results)

    # ---------------------------------------------------------------- queries
    def info(self) -> dict[str, Any]:
        s = self.settings
        url = s.jobs.url
        return {"name": "nxsci reconstruction service", "version": nxsci_version(), "tiled_uri": self.tiled_uri,
                "tiled_embedded": self.tiled_server is not None, "executor": s.executor.kind,
                "dask_scheduler": s.executor.dask_scheduler, "job_store": url.split(":", 1)[0].split("+")[0],
                "source": s.source, "raw_container": s.tiled.raw, "results_container": s.tiled.results,
                "auto_trigger": s.auto_trigger.enabled, "device": s.executor.device}

    def methods(self) -> dict[str, Any]:
        return method_schemas()

    def list_jobs(self, status: str | None = None) -> list[JobRecord]:
        assert self.store is not None
        return self.store.list(status=status)

    def get_job(self, job_id: str) -> JobRecord:
        assert self.store is not None
        job = self.store.get(job_id) if len(job_id) <= 64 else None
        if job is None:
            raise ApiError(404, f"unknown reconstruction '{job_id}'")
        return job

    # ---------------------------------------------------------------- commands
    def describe_run(self, run_ref: str) -> RunInfo:
        """The run a reference names (its full ``uid`` and what it holds), or the 4xx/503 saying why not."""
        try:
            return self.source.describe(run_ref)
        except UnknownRunError as exc:
            raise ApiError(404, str(exc)) from None
        except (RunReferenceError, UnusableRunError) as exc:
            raise ApiError(422, str(exc)) from None
        except CatalogUnavailableError as exc:
            raise ApiError(503, str(exc)) from None

    def validate(self, request: ReconstructionRequest) -> RunInfo:
        """Everything a request can get wrong, checked before a job exists (4xx, one clear message); returns
        the run's description, whose ``uid`` is the full uid the reference resolved to."""
        lim = self.settings.limits
        if request.elements is not None and len(request.elements) > lim.max_elements:
            raise ApiError(413, f"too many elements: {len(request.elements)} > {lim.max_elements}")
        if len(request.params) > lim.max_params:
            raise ApiError(413, f"too many parameters: {len(request.params)} > {lim.max_params}")
        if request.elements is not None and not request.elements:
            raise ApiError(422, "elements: give at least one element, or leave it out for all")
        info = self.describe_run(request.run_uid)
        for element in request.elements or []:
            if element not in info["elements"]:
                raise ApiError(422, f"unknown element {element!r}: run '{info['uid']}' has "
                                    f"{', '.join(info['elements'])}")
        if request.method is not None and request.method not in method_schemas():
            raise ApiError(422, f"unknown method '{request.method}': choose one of {', '.join(method_schemas())}")
        method = request.method or info.get("default_method") or "tv"
        try:
            get_solver(method, request.params)
        except SolverError as exc:
            raise ApiError(422, f"invalid parameters for '{method}': {exc}") from None
        return info

    def submit(self, request: ReconstructionRequest, origin: str = "api") -> JobRecord:
        assert self.store is not None and self.executor is not None
        info = self.validate(request)
        if self.store.count("queued") >= self.settings.limits.max_queued:
            raise ApiError(429, f"the queue is full ({self.settings.limits.max_queued} jobs); try again later")
        job = self.store.create(info["uid"], elements=request.elements, method=request.method,
                                params=request.params, origin=origin)
        self.executor.submit(self._spec(job))
        return job

    def cancel(self, job_id: str) -> JobRecord:
        assert self.store is not None and self.executor is not None
        job = self.get_job(job_id)
        if job.status in FINAL_STATES:
            raise ApiError(409, f"reconstruction '{job_id}' is already {job.status}")
        if self.store.update(job_id, only_if_status=("queued",), status="cancelled", finished=time.time(),
                             stage="cancelled before it started", cancel_requested=True):
            self.executor.cancel(job_id)
        else:
            self.store.update(job_id, cancel_requested=True, stage="cancelling")
            self.executor.cancel(job_id)
        return self.get_job(job_id)

    def element_png(self, job_id: str, element: str) -> bytes:
        from ._results_tiled import read_element_map

        job = self.get_job(job_id)
        if job.status != "succeeded":
            raise ApiError(409, f"reconstruction '{job_id}' is {job.status}: no maps yet")
        if element not in job.metrics:
            raise ApiError(404, f"reconstruction '{job_id}' has no element '{element}'")
        image = read_element_map(self.client[self.settings.tiled.results], job_id, element)
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        plt.imsave(buf, image, cmap="viridis", format="png")
        return buf.getvalue()

    # ---------------------------------------------------------------- executor callbacks
    def on_start(self, job_id: str) -> bool:
        assert self.store is not None
        job = self.store.get(job_id)
        attempts = (job.attempts if job else 0) + 1
        return self.store.update(job_id, only_if_status=("queued",), status="running", started=time.time(),
                                 stage="started", progress=0.0, attempts=attempts)

    def on_progress(self, job_id: str, fraction: float, text: str) -> None:
        assert self.store is not None
        now = time.monotonic()
        if now - self._progress_seen.get(job_id, 0.0) < 0.25 and fraction < 0.9:
            return
        self._progress_seen[job_id] = now
        self.store.update(job_id, only_if_status=("running",), progress=round(float(fraction), 4),
                          stage=text[:500])

    def on_done(self, job_id: str, outcome: dict[str, Any]) -> None:
        assert self.store is not None
        job = self.store.get(job_id)
        timings = dict(outcome["timings"])
        if job is not None and job.started is not None:
            timings["queued_s"] = job.started - job.created
        self._progress_seen.pop(job_id, None)
        self.store.update(job_id, only_if_status=("running",), status="succeeded", progress=1.0, stage="done",
                          finished=time.time(), timings=timings, metrics=outcome["metrics"],
                          result_uri=outcome["result_uri"], elements=outcome["elements"],
                          method=outcome["method"], warnings=[str(w) for w in outcome.get("warnings") or []],
                          priors=dict(outcome.get("priors") or {}))

    def on_error(self, job_id: str, message: str) -> None:
        assert self.store is not None
        self._progress_seen.pop(job_id, None)
        self.store.update(job_id, only_if_status=("queued", "running"), status="failed", stage="failed",
                          finished=time.time(), error=message)

    def on_cancelled(self, job_id: str) -> None:
        assert self.store is not None
        self._progress_seen.pop(job_id, None)
        self.store.update(job_id, only_if_status=("queued", "running"), status="cancelled", stage="cancelled",
                          finished=time.time())

    # ---------------------------------------------------------------- auto-trigger
    def _auto_trigger_loop(self) -> None:
        while not self._stop.wait(self.settings.auto_trigger.poll_interval_s):
            try:
                self.poll_completed_runs()
            except Exception:  # the catalog may be briefly unreachable: try again next time
                log.warning("auto-trigger poll failed:\n%s", traceback.format_exc())

    #: runs whose stop document is older than the newest one seen, by up to this much, are still looked at
    #: (late writes, clock skew between hosts); older ones are never listed again, so a poll stays cheap
    TRIGGER_SLACK_S = 600.0

    def poll_completed_runs(self) -> list[str]:
        """Queue a reconstruction for every completed run of the configured plans not yet seen."""
        from tiled.queries import Key

        assert self.store is not None
        cfg = self.settings.auto_trigger
        since = float(self.store.get_meta("auto_trigger_since") or 0.0)
        horizon = float(self.store.get_meta("auto_trigger_horizon") or since)
        raw = self.client[self.settings.tiled.raw]
        queued: list[str] = []
        newest = horizon
        for plan in cfg.plan_names:
            found = (raw.search(Key("start.plan_name") == plan).search(Key("stop.exit_status") == "success")
                     .search(Key("stop.time") >= max(since, horizon - self.TRIGGER_SLACK_S)))
            for uid, node in found.items():
                if self._stop.is_set():
                    return queued
                newest = max(newest, float(node.metadata["stop"].get("time", 0.0)))
                if self.store.triggered(uid):
                    continue
                request = ReconstructionRequest(run_uid=uid, method=cfg.method, params=dict(cfg.params))
                try:
                    job = self.submit(request, origin="auto")
                except (ApiError, NxsciError, DatasetError) as exc:  # visible as a failed job
                    job = self.store.create(uid, elements=None, method=cfg.method, params=dict(cfg.params),
                                            origin="auto")
                    self.store.update(job.id, status="failed", stage="rejected", finished=time.time(),
                                      error=getattr(exc, "message", str(exc)))
                self.store.mark_triggered(uid, job.id)
                queued.append(job.id)
        if newest > horizon:
            self.store.set_meta("auto_trigger_horizon", repr(newest))
        return queued
