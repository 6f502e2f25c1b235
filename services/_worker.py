"""Job execution: the whole chain for one job, and the executors that run it.

:func:`execute_job` is the job: run uid -> dataset (the run's frames and spectra through registration and
PyMca fitting, via a :class:`~nxsci.services.DatasetSource`) -> :func:`nxsci.recon.reconstruct` -> element
maps and provenance written into tiled. It needs only a :class:`JobSpec` (plain data), so it runs the same
in a thread of the service (:class:`LocalExecutor`) or on a dask.distributed worker anywhere on the
network (:class:`DaskExecutor`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from nxsci.recon import NxsciError

__all__ = ["JobSpec", "JobCallbacks", "Executor", "LocalExecutor", "DaskExecutor", "execute_job", "JobCancelled",
           "make_executor"]

log = logging.getLogger("nxsci.services")


class JobCancelled(Exception):
    """Raised inside a job when its cancellation was requested."""


@dataclasses.dataclass(frozen=True)
class JobSpec:
    job_id: str
    run_uid: str
    elements: list[str] | None
    method: str | None
    params: dict[str, Any]
    device: str
    source: str
    tiled_uri: str
    tiled_api_key: str | None
    raw: str
    results: str


def execute_job(spec: JobSpec, report: Callable[[float, str], None] | None = None,
                cancelled: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Run one job to the end; returns metrics, timings and the result's tiled URI."""
    from tiled.client import from_uri

    from nxsci.recon import reconstruct

    from ._dataset_source import make_source
    from ._results_tiled import results_container, write_result

    def step(fraction: float, text: str) -> None:
        if cancelled is not None and cancelled():
            raise JobCancelled(spec.job_id)
        if report is not None:
            report(min(max(fraction, 0.0), 1.0), text)

    t0 = time.perf_counter()
    step(0.01, "opening the catalog")
    client = from_uri(spec.tiled_uri, api_key=spec.tiled_api_key)
    try:
        source = make_source(spec.source, client[spec.raw])
        dataset = source.load(spec.run_uid, progress=lambda f, t: step(LOAD_SPAN[0] + _span(LOAD_SPAN) * f, t))
        t_load = time.perf_counter() - t0
        step(SOLVE_SPAN[0], "reconstructing")
        left = TimeLeft()
        result = reconstruct(dataset, method=spec.method, elements=spec.elements, params=spec.params,
                             device=spec.device,
                             progress=lambda elements, f, t: step(SOLVE_SPAN[0] + _span(SOLVE_SPAN) * f,
                                                                  f"{elements}: {t}{left(f)}"))
        step(SOLVE_SPAN[1], "writing the maps into tiled")
        t1 = time.perf_counter()
        result.timings["load_s"] = t_load
        worker = {"host": socket.gethostname(), "pid": os.getpid()}
        uri = write_result(results_container(client, spec.results), spec.job_id, spec.run_uid, result,
                           extra={"source": spec.source, "worker": worker})
    finally:
        client.context.close()  # one HTTP connection pool per job, released
    timings = {k: float(v) for k, v in result.timings.items()}
    timings["write_s"] = time.perf_counter() - t1
    timings["job_s"] = time.perf_counter() - t0
    summary = result.summary()
    return {"metrics": summary["metrics"], "timings": timings, "result_uri": uri, "method": result.method,
            "elements": list(result.elements), "warnings": result_warnings(result),
            "priors": summary.get("priors") or {}}


#: the job's progress: loading the run (registration, spectrum fitting) takes seconds, the solve up to hours,
#: so the solver's own fraction (steps done / planned) fills most of the range
LOAD_SPAN = (0.02, 0.07)
SOLVE_SPAN = (0.07, 0.97)


def _span(span: tuple[float, float]) -> float:
    return span[1] - span[0]


class TimeLeft:
    """', about 3 min left' from the solver's fraction and the time since the solve began (once 2 % are done
    and 5 s have passed: earlier the rate says nothing)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, fraction: float) -> str:
        elapsed = time.monotonic() - self.t0
        if fraction < 0.02 or elapsed < 5 or fraction >= 1:
            return ""
        left = elapsed * (1 - fraction) / fraction
        return f", about {left:.0f} s left" if left < 120 else f", about {left / 60:.0f} min left"


def result_warnings(result: Any) -> list[str]:
    """The result's warnings (e.g. a map that is not trustworthy) as plain strings; none from an older recon."""
    return [str(w) for w in getattr(result, "warnings", None) or []]


def describe_failure(exc: BaseException) -> str:
    """A user error reads as its message; anything else names its type (the traceback goes to the log)."""
    if isinstance(exc, NxsciError):
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"


class JobCallbacks(Protocol):
    def on_start(self, job_id: str) -> bool: ...  # False: the job was cancelled meanwhile, do not run it
    def on_progress(self, job_id: str, fraction: float, text: str) -> None: ...
    def on_done(self, job_id: str, outcome: dict[str, Any]) -> None: ...
    def on_error(self, job_id: str, message: str) -> None: ...
    def on_cancelled(self, job_id: str) -> None: ...


class Executor(Protocol):
    kind: str

    def submit(self, spec: JobSpec) -> None: ...
    def cancel(self, job_id: str) -> None: ...
    def close(self) -> None: ...


class LocalExecutor:
    """Jobs in a thread pool of the service process (``local_workers`` at a time)."""

    kind = "local"

    def __init__(self, callbacks: JobCallbacks, workers: int = 1) -> None:
        self.callbacks = callbacks
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nxsci-job")
        self._cancel: dict[str, threading.Event] = {}
        self._closing = threading.Event()

    def submit(self, spec: JobSpec) -> None:
        self._cancel[spec.job_id] = threading.Event()
        self.pool.submit(self._run, spec)

    def _run(self, spec: JobSpec) -> None:
        event = self._cancel[spec.job_id]
        cb = self.callbacks
        try:
            if self._closing.is_set():
                return
            if event.is_set() or not cb.on_start(spec.job_id):
                cb.on_cancelled(spec.job_id)
                return
            outcome = execute_job(spec, report=lambda f, t: cb.on_progress(spec.job_id, f, t),
                                  cancelled=lambda: event.is_set() or self._closing.is_set())
            cb.on_done(spec.job_id, outcome)
        except JobCancelled:
            if not self._closing.is_set():  # a shutdown leaves the job 'running': re-queued at the next start
                cb.on_cancelled(spec.job_id)
        except BaseException as exc:  # one failing job never takes the service down
            if isinstance(exc, NxsciError):  # the data or the request: its message says it all
                log.warning("job %s failed: %s", spec.job_id, exc)
            else:
                log.error("job %s failed:\n%s", spec.job_id, traceback.format_exc())
            cb.on_error(spec.job_id, describe_failure(exc))
        finally:
            self._cancel.pop(spec.job_id, None)

    def cancel(self, job_id: str) -> None:
        event = self._cancel.get(job_id)
        if event is not None:
            event.set()

    def close(self) -> None:
        self._closing.set()
        self.pool.shutdown(wait=True, cancel_futures=True)


#: where a job's progress lies on the scheduler (its metadata store: a plain dict, read without waiting)
PROGRESS_KEY = "nxsci-progress"


def _dask_task(spec: JobSpec) -> dict[str, Any]:
    """Runs on a dask worker: progress into the scheduler's metadata, cancellation through an Event."""
    from distributed import Event, get_client

    client = get_client()
    cancel = Event(f"nxsci-cancel-{spec.job_id}")
    last = {"report": 0.0, "check": 0.0, "cancelled": False}
    where = [PROGRESS_KEY, spec.job_id]

    def report(fraction: float, text: str) -> None:
        now = time.monotonic()
        if now - last["report"] > 0.3 or fraction >= SOLVE_SPAN[1]:
            last["report"] = now
            client.set_metadata(where, [fraction, text])

    def cancelled() -> bool:
        now = time.monotonic()
        if now - last["check"] > 0.3:
            last["check"] = now
            last["cancelled"] = cancel.is_set()
        return bool(last["cancelled"])

    client.set_metadata(where, [0.0, "started"])
    try:
        return {"status": "succeeded", **execute_job(spec, report, cancelled)}
    except JobCancelled:
        return {"status": "cancelled"}
    except BaseException as exc:
        return {"status": "failed", "error": describe_failure(exc), "traceback": traceback.format_exc()}
    finally:
        client.set_metadata(where, None)  # no delete in the metadata API: a None per finished job


class DaskExecutor:
    """Jobs as tasks on a dask.distributed cluster (one thread per job watches its future).

    The watcher waits on the future itself and reads the job's progress from the scheduler's metadata, which
    never blocks: a blocking ``Variable.get`` (one condition shared by all variables on the scheduler) was the
    only wait in the loop that must notice the job's end, and a cancelled job once stayed "running" in CI."""

    kind = "dask"

    def __init__(self, callbacks: JobCallbacks, address: str) -> None:
        from distributed import Client

        self.callbacks = callbacks
        self.address = address
        self.client = Client(address, timeout=30, set_as_default=False)
        self._futures: dict[str, Any] = {}
        self._started: set[str] = set()
        self._closing = threading.Event()

    def submit(self, spec: JobSpec) -> None:
        from distributed import Event

        Event(f"nxsci-cancel-{spec.job_id}", client=self.client).clear()
        future = self.client.submit(_dask_task, spec, key=f"nxsci-job-{spec.job_id}", pure=False, retries=0)
        self._futures[spec.job_id] = future
        threading.Thread(target=self._watch, args=(spec.job_id, future), daemon=True,
                         name=f"nxsci-watch-{spec.job_id[:8]}").start()

    def _watch(self, job_id: str, future: Any) -> None:
        cb = self.callbacks
        seen: Any = None
        ended = threading.Event()
        future.add_done_callback(lambda _: ended.set())
        try:
            while not self._closing.is_set() and not future.done():
                ended.wait(0.5)
                value = self.client.get_metadata([PROGRESS_KEY, job_id], None)
                if value is None or value == seen:
                    continue
                seen = value
                if job_id not in self._started:
                    self._started.add(job_id)
                    if not cb.on_start(job_id):
                        self.cancel(job_id)
                cb.on_progress(job_id, float(value[0]), str(value[1]))
            if self._closing.is_set():
                return
            if future.cancelled():
                cb.on_cancelled(job_id)
                return
            if future.status == "error":
                exc = future.exception()
                cb.on_error(job_id, describe_failure(exc))
                return
            out = future.result()
            status = out.pop("status")
            if job_id not in self._started and status != "cancelled":
                cb.on_start(job_id)
            if status == "succeeded":
                cb.on_done(job_id, out)
            elif status == "cancelled":
                cb.on_cancelled(job_id)
            else:
                log.error("job %s failed on a dask worker:\n%s", job_id, out.get("traceback", ""))
                cb.on_error(job_id, out["error"])
        except BaseException as exc:  # the watcher never dies silently
            if not self._closing.is_set():
                log.error("watching job %s failed:\n%s", job_id, traceback.format_exc())
                cb.on_error(job_id, describe_failure(exc))
        finally:
            self._futures.pop(job_id, None)
            self._started.discard(job_id)

    def cancel(self, job_id: str) -> None:
        from distributed import Event

        Event(f"nxsci-cancel-{job_id}", client=self.client).set()
        future = self._futures.get(job_id)
        if future is not None and job_id not in self._started:
            future.cancel()

    def close(self) -> None:
        self._closing.set()
        self.client.close()


def make_executor(callbacks: JobCallbacks, *, dask_scheduler: str | None, local_workers: int) -> Executor:
    if dask_scheduler:
        return DaskExecutor(callbacks, dask_scheduler)
    return LocalExecutor(callbacks, local_workers)
