"""Wall time, CPU time and peak memory of one call, as every benchmark here reports them.

Peak memory, method "rss" (Linux): the peak resident set size during the call minus the RSS just before it,
via the kernel's resettable high-water mark (write "5" to /proc/self/clear_refs, read VmHWM; after gc and
malloc_trim). It counts everything (numpy, LAPACK workspace, torch) except inputs that already exist.
"tracemalloc" (fallback elsewhere) counts only Python-allocator memory (numpy arrays) and is slower.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

__all__ = ["Probe", "status_kb", "rss_works", "MEMORY_TEXT"]

#: how each memory method is described in reports
MEMORY_TEXT = {
    "rss": "rss: peak RSS during each call minus RSS before it (kernel high-water mark reset via "
           "/proc/self/clear_refs; after gc + malloc_trim); inputs already in memory are not counted",
    "tracemalloc": "tracemalloc: peak of Python-allocator memory during each call (numpy; not LAPACK "
                   "workspace/torch)",
}


def status_kb(field: str) -> int:
    """A ``/proc/self/status`` field in kB (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _malloc_trim() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def rss_works() -> bool:
    """Whether the kernel high-water mark can be read and reset here."""
    try:
        status_kb("VmHWM")
    except (OSError, KeyError):
        return False
    return _reset_hwm()


class Probe:
    """Wall time, CPU time and peak memory of one call (``with probe.measure() as rec: ...``)."""

    def __init__(self, method: str = "auto") -> None:
        if method == "auto":
            method = "rss" if rss_works() else "tracemalloc"
        if method == "rss" and not rss_works():
            raise SystemExit("--memory rss needs Linux with a writable /proc/self/clear_refs")
        self.method = method

    @staticmethod
    def _rss_works() -> bool:  # kept for callers of the old name
        return rss_works()

    @contextlib.contextmanager
    def measure(self) -> Iterator[dict[str, float]]:
        """Fill the yielded dict with ``seconds``, ``cpu_seconds`` and ``peak_mb`` when the block ends."""
        rec: dict[str, float] = {}
        gc.collect()
        _malloc_trim()
        if self.method == "rss":
            base = status_kb("VmRSS")
            _reset_hwm()
        else:
            tracemalloc.start()
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
        c0, t0 = time.process_time(), time.perf_counter()
        try:
            yield rec
        finally:
            rec["seconds"] = time.perf_counter() - t0
            rec["cpu_seconds"] = time.process_time() - c0
            if self.method == "rss":
                rec["peak_mb"] = max(status_kb("VmHWM") - base, 0) / 1024.0
            else:
                rec["peak_mb"] = max(tracemalloc.get_traced_memory()[1] - base, 0) / 1024.0**2
                tracemalloc.stop()
