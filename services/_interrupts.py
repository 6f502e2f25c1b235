"""One plan run from a command line, stopped the way bluesky users expect of Ctrl-C.

In IPython, bluesky's own SIGINT handler pauses the RunEngine and leaves the choice (resume, abort) to the
user at the prompt. A command line has no prompt: left paused, the run would never get its stop document and
the process would hang. Here the first SIGINT or SIGTERM pauses the RunEngine at once and the run is then
aborted cleanly (the plan's cleanup runs: shutter closed, detectors unstaged; the stop document says
``exit_status: abort``; every event recorded so far is kept), and a second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from bluesky.preprocessors import msg_mutator
from bluesky.utils import Msg, RequestAbort, RunEngineInterrupted

__all__ = ["PlanOutcome", "run_plan_interruptibly", "EventCounter", "display_to_stderr"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclasses.dataclass(frozen=True)
class PlanOutcome:
    """How a plan ended: its runs, and why it was aborted (None: it ran to its end)."""

    uids: tuple[str, ...]
    #: 'SIGINT', 'SIGTERM', or 'pause' (the plan paused itself: a command line cannot resume)
    aborted_by: str | None = None

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number (1 for a pause)."""
        if self.aborted_by is None:
            return 0
        if self.aborted_by in signal.Signals.__members__:
            return 128 + int(signal.Signals[self.aborted_by])
        return 1


class EventCounter:
    """RunEngine callback: how many configurations the last run planned (``num_points``) and recorded
    (events of the stream its hints name), for 'aborted after N of M configurations'."""

    def __init__(self) -> None:
        self.planned: int | None = None
        self.done = 0
        self._stream = "primary"
        self._descriptors: set[str] = set()

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        if name == "start":
            self.planned, self.done = doc.get("num_points"), 0
            dimensions = (doc.get("hints") or {}).get("dimensions") or [[None, "primary"]]
            self._stream = dimensions[0][1]
            self._descriptors.clear()
        elif name == "descriptor" and doc["name"] == self._stream:
            self._descriptors.add(doc["uid"])
        elif name == "event" and doc["descriptor"] in self._descriptors:
            self.done += 1


def _on_terminal(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


class _AbortOnSignal:
    """Signal handlers for the duration of one plan: the first SIGINT/SIGTERM requests an immediate pause
    (from a thread: a signal handler must return quickly, and ``request_pause`` waits on the RunEngine's
    loop), a second one ends the process at once."""

    def __init__(self, RE: Any) -> None:
        self.RE = RE
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _AbortOnSignal:
        self._stdout = sys.stdout
        for sig in _SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        sys.stdout = self._stdout

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        fresh_line = "\n" if _on_terminal(2) else ""  # past a progress bar's line
        if self.signal is not None:
            os.write(2, f"{fresh_line}{name} again: exiting now; the run may be left without its stop document\n"
                     .encode())
            os._exit(128 + signum)
        self.signal = name
        sys.stdout = io.StringIO()  # bluesky's 'Pausing...' and 'Aborting...': the line below says it
        os.write(2, f"{fresh_line}{name}: aborting the run (its data so far are kept); {name} again exits at once\n"
                 .encode())
        threading.Thread(target=self._pause, name="nxsci-abort-request", daemon=True).start()

    def _pause(self) -> None:
        try:
            self.RE.request_pause(defer=False)
        except Exception:  # idle or already stopping: the run is ending anyway
            pass


class _ExpectedAbortRecords(logging.Filter):
    """Drops what bluesky logs about an abort it was asked for (the RequestAbort traceback, 'No open traces
    left to close!'); the command says it in one line. Anything else still gets through."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (RequestAbort, asyncio.CancelledError)):
            return False
        return "No open traces left to close" not in record.getMessage()


@contextlib.contextmanager
def _quiet_expected_abort() -> Iterator[None]:
    log = logging.getLogger("bluesky")
    quiet = _ExpectedAbortRecords()
    log.addFilter(quiet)
    try:
        yield
    finally:
        log.removeFilter(quiet)


def run_plan_interruptibly(RE: Any, plan: Any) -> PlanOutcome:
    """``RE(plan)``; on SIGINT/SIGTERM the run is aborted cleanly and the outcome names the signal.

    ``RE`` should be made with ``context_managers=[]`` (no bluesky SIGINT handler, which would only pause).
    Must be called from the main thread (signal handlers)."""
    guard = _AbortOnSignal(RE)

    def with_reason(msg: Msg) -> Msg:
        """bluesky's stop document of an aborted run has no reason: the signal is it."""
        if (msg.command == "close_run" and msg.kwargs.get("exit_status") == "abort" and guard.signal
                and not msg.kwargs.get("reason")):
            return msg._replace(kwargs={**msg.kwargs, "reason": f"interrupted by {guard.signal}"})
        return msg

    with guard:
        try:
            uids = RE(msg_mutator(plan, with_reason))
        except RunEngineInterrupted:
            # paused by our signal handler (or by the plan itself: a command line cannot resume either way)
            reason = f"interrupted by {guard.signal}" if guard.signal else "paused; a command line cannot resume"
            with _quiet_expected_abort():
                uids = RE.abort(reason=reason)
            return PlanOutcome(tuple(uids), guard.signal or "pause")
    return PlanOutcome(tuple(uids))  # a signal that came as the plan ended found nothing left to abort


def display_to_stderr() -> contextlib.AbstractContextManager[Any]:
    """Everything a library prints (bluesky's status bars, its messages) goes to stderr, so a command's
    stdout carries only its machine-readable answer."""
    return contextlib.redirect_stdout(sys.stderr)
