"""Progress for people: a bar on a terminal, a few plain lines anywhere else (log files, CI, pipes).

A tqdm bar redraws itself with carriage returns many times a second; written to a log file that is
kilobytes of unreadable text (~19 KB for one reconstruction). When the stream is not a terminal we print
one line only when the fraction has advanced by ``step`` (10 %) or ``interval_s`` (30 s) has passed, and
always the start and the end, so a log shows a handful of lines that still reach 100 %.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Protocol, TypeVar

__all__ = ["FractionProgress", "LineProgress", "fraction_progress", "iterate_with_progress", "is_terminal"]

T = TypeVar("T")


class FractionProgress(Protocol):
    """Something that shows a fraction done: ``update(fraction, text)``, then ``close()``."""

    def update(self, fraction: float, text: str = "") -> None: ...

    def close(self) -> None: ...


def is_terminal(stream: IO[str] | None) -> bool:
    """True only for an interactive terminal (a closed or unusual stream counts as not one)."""
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class LineProgress:
    """Plain ``label: 40% text`` lines, printed rarely (see the module docstring); ``clock`` for tests."""

    def __init__(self, label: str, stream: IO[str], *, step: float = 0.1, interval_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.stream, self.step, self.interval_s, self.clock = label, stream, step, interval_s, clock
        self._printed: float | None = None  # the last fraction printed
        self._last_time = clock()
        self._latest: tuple[float, str] = (0.0, "")

    def update(self, fraction: float, text: str = "") -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        self._latest = (fraction, text)
        now = self.clock()
        due = (self._printed is None or fraction >= 1.0 and self._printed < 1.0
               or fraction >= self._printed + self.step or now - self._last_time >= self.interval_s)
        if due:
            self._print(fraction, text, now)

    def close(self) -> None:
        """A final line when the last state reported was not printed (e.g. the last step before 100 %)."""
        fraction, text = self._latest
        if self._printed is None or fraction > self._printed:
            self._print(fraction, text, self.clock())

    def _print(self, fraction: float, text: str, now: float) -> None:
        tail = f" {text}" if text else ""
        self.stream.write(f"{self.label}: {100 * fraction:3.0f}%{tail}\n")
        self.stream.flush()
        self._printed, self._last_time = fraction, now


class _BarProgress:
    """A tqdm bar over 0..100 % with the status text as its postfix (terminals only)."""

    def __init__(self, label: str, stream: IO[str]) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=100, desc=label, unit="%", leave=True, file=stream,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} {postfix}")

    def update(self, fraction: float, text: str = "") -> None:
        self.bar.n = int(round(100 * min(max(float(fraction), 0.0), 1.0)))
        self.bar.set_postfix_str(text, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def fraction_progress(label: str, stream: IO[str] | None = None) -> FractionProgress:
    """A bar when ``stream`` (default: the current ``sys.stderr``) is a terminal, rare plain lines otherwise."""
    out = sys.stderr if stream is None else stream
    return _BarProgress(label, out) if is_terminal(out) else LineProgress(label, out)


def iterate_with_progress(items: Iterable[T], total: int, label: str, unit: str,
                          stream: IO[str] | None = None) -> Iterator[T]:
    """Iterate ``items`` showing ``done/total unit`` (a bar on a terminal, rare lines otherwise)."""
    shown = fraction_progress(label, stream)
    done = 0
    try:
        for item in items:
            yield item
            done += 1
            shown.update(done / max(total, 1), f"{done}/{total} {unit}")
    finally:
        shown.close()
