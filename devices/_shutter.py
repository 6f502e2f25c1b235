"""The beam shutter: a command PV whose put completes when the shutter has moved, and a status PV."""

from __future__ import annotations

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO
from ophyd.status import StatusBase

__all__ = ["Shutter"]

_VALUES = {"open": 1, "close": 0, "closed": 0, 1: 1, 0: 0}


class Shutter(Device):
    """``set("open")`` / ``set("close")`` (or 1 / 0); ``status`` reads ``"Open"`` or ``"Closed"``."""

    command = Cpt(EpicsSignal, "Cmd", put_complete=True, kind="omitted")
    status = Cpt(EpicsSignalRO, "Sts", string=True, kind="normal")

    def set(self, value: str | int) -> StatusBase:  # type: ignore[override]
        key = value.lower() if isinstance(value, str) else value
        if key not in _VALUES:
            raise ValueError(f"{self.name}: shutter value must be 'open' or 'close' (or 1 / 0), got {value!r}")
        return self.command.set(_VALUES[key])

    def open(self, timeout: float | None = 10.0) -> None:
        self.set("open").wait(timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        self.set("close").wait(timeout)

    @property
    def is_open(self) -> bool:
        return self.status.get(as_string=True) == "Open"
