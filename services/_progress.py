"""A progress bar over the configurations of a scan, for interactive sessions."""

from __future__ import annotations

from typing import Any

__all__ = ["ScanProgress"]


class ScanProgress:
    """RunEngine callback: a tqdm bar from the start document's ``num_points`` to the stop document,
    advanced by the events of the stream the plan's hints name (``primary`` for ``nxsci_scan``).

    A re-taken point (after a pause) carries an index it already had, so the bar follows the highest
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
        from tqdm.auto import tqdm

        self._close()
        dimensions = (doc.get("hints") or {}).get("dimensions") or [[None, "primary"]]
        self._stream = dimensions[0][1]
        total = doc.get("num_points")
        self._bar = tqdm(total=total, desc=f"{doc.get('plan_name', 'scan')} {doc['uid'][:8]}", unit="config",
                         file=self.file, leave=True)

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
