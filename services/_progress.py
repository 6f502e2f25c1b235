"""Progress over the configurations of a scan: a bar on a terminal, a few plain lines in a log."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["ScanProgress", "is_terminal"]


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is an interactive terminal (a bar redraws itself there; in a log it is noise)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _PlainLines:
    """tqdm's ``update``/``close`` for a log: one line per tenth of the scan or per ``every_s`` seconds."""

    def __init__(self, total: int | None, desc: str, file: TextIO, every_s: float = 30.0) -> None:
        self.total, self.desc, self.file, self.every_s = total, desc, file, every_s
        self.n = 0
        self._shown = -1
        self._last = time.monotonic()
        self._t0 = self._last
        self._say(f"{self.desc}: started, {self.total if self.total else '?'} configurations")

    def _say(self, text: str) -> None:
        print(text, file=self.file, flush=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        tenth = int(10 * self.n / self.total) if self.total else self._shown
        now = time.monotonic()
        if tenth > self._shown or now - self._last >= self.every_s:
            self._shown, self._last = max(tenth, self._shown), now
            of = f" of {self.total}" if self.total else ""
            self._say(f"{self.desc}: {self.n}{of} configurations ({now - self._t0:.0f} s)")

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self._say(f"{self.desc}: {self.n} configurations, {text} ({time.monotonic() - self._t0:.0f} s)")

    def close(self) -> None:
        pass


class ScanProgress:
    """RunEngine callback: progress from the start document's ``num_points`` to the stop document, advanced
    by the events of the stream the plan's hints name (``primary`` for ``nxsci_scan``). A tqdm bar when the
    output is a terminal, otherwise plain lines now and then (a redrawn bar fills a log with kilobytes).

    A re-taken point (after a pause) carries an index it already had, so the progress follows the highest
    ``config_index`` seen rather than counting events."""

    def __init__(self, file: Any = None) -> None:
        self.file = file
        self._bar: Any = None
        self._stream: str | None = None
        self._descriptors: dict[str, str] = {}

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        handler = getattr(self, f"_{name}", None)
        if handler is not None:
            handler(doc)

    def _start(self, doc: dict[str, Any]) -> None:
        self._close()
        dimensions = (doc.get("hints") or {}).get("dimensions") or [[None, "primary"]]
        self._stream = dimensions[0][1]
        total = doc.get("num_points")
        desc = f"{doc.get('plan_name', 'scan')} {doc['uid'][:8]}"
        out = self.file if self.file is not None else sys.stderr
        if is_terminal(out):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="config", file=out, leave=True)
        else:
            self._bar = _PlainLines(total, desc, out)

    def _descriptor(self, doc: dict[str, Any]) -> None:
        self._descriptors[doc["uid"]] = doc["name"]

    def _event(self, doc: dict[str, Any]) -> None:
        if self._bar is None or self._descriptors.get(doc["descriptor"]) != self._stream:
            return
        index = doc["data"].get("config_index")
        done = int(index) + 1 if index is not None else self._bar.n + 1
        if done > self._bar.n:
            self._bar.update(done - self._bar.n)

    def _stop(self, doc: dict[str, Any]) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(doc.get("exit_status", ""), refresh=True)
        self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._descriptors.clear()
