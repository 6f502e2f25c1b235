"""PV database: every PV an ophyd device class can connect to, with a type and a starting value.

The simulated IOC and the in-process simulated devices serve the same database, built by walking the
device classes' components (lazy ones included), so "serves every PV the classes connect to" holds by
construction. Types come from the records that give PVs behaviour (motor, camera, MCA, shutter) and,
for the many PVs that only need to exist, from a few naming rules.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any, Literal, Protocol

import numpy as np
from ophyd import Device
from ophyd.areadetector.paths import EpicsPathSignal
from ophyd.signal import EpicsSignal, EpicsSignalBase, EpicsSignalRO

__all__ = ["PVSpec", "PVIO", "PutHandler", "PVDatabase", "PutProcessor", "walk_device_pvs"]

logger = logging.getLogger(__name__)

PVKind = Literal["float", "int", "enum", "string", "char", "array"]


@dataclasses.dataclass
class PVSpec:
    """One PV: type, starting value, metadata, and where a put is mirrored (a ``_RBV`` readback)."""

    name: str
    kind: PVKind = "float"
    value: Any = 0.0
    enum_strs: tuple[str, ...] = ()
    dtype: str = "float64"
    length: int = 1
    units: str = ""
    precision: int = 4
    limits: tuple[float, float] = (0.0, 0.0)
    echo: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "enum" and isinstance(self.value, str):
            self.value = self.enum_strs.index(self.value)
        if self.kind == "array":
            arr = np.zeros(self.length, dtype=self.dtype)
            given = np.asarray(self.value if self.value is not None else [], dtype=self.dtype).ravel()
            arr[: given.size] = given[: self.length]
            self.value = arr
        if self.kind == "char" and self.length < 2:
            self.length = 256

    def coerce(self, value: Any) -> Any:
        """A put value in this PV's type (enum strings to indices, char arrays to str)."""
        if isinstance(value, _NUMBERS) and self.kind in _SCALAR_KINDS:
            # the common case (a record posting a number), without the array round trip below: ~130 values
            # are posted per illumination configuration
            if self.kind == "float":
                return float(value)
            if self.kind == "int":
                return int(round(float(value)))
            index = int(value)
            if not 0 <= index < max(len(self.enum_strs), 1):
                raise ValueError(f"{self.name}: enum index {index} out of range {self.enum_strs}")
            return index
        if self.kind == "enum":
            if isinstance(value, (bytes, str)):
                text = value.decode() if isinstance(value, bytes) else value
                if text in self.enum_strs:
                    return self.enum_strs.index(text)
                try:
                    value = int(float(text))
                except ValueError:
                    raise ValueError(f"{self.name}: {text!r} is not one of {self.enum_strs}") from None
            index = int(np.asarray(value).ravel()[0])
            if not 0 <= index < max(len(self.enum_strs), 1):
                raise ValueError(f"{self.name}: enum index {index} out of range {self.enum_strs}")
            return index
        if self.kind in ("string", "char"):
            if isinstance(value, bytes):
                return value.decode("latin-1").rstrip("\x00")
            if isinstance(value, np.ndarray) and value.dtype.kind in "iu":
                return bytes(value.astype(np.uint8)).decode("latin-1").split("\x00")[0]
            if isinstance(value, (list, tuple)) and len(value) == 1:
                value = value[0]
            return str(value.decode("latin-1") if isinstance(value, bytes) else value)
        if self.kind == "array":
            arr = np.zeros(self.length, dtype=self.dtype)
            given = np.asarray(value, dtype=self.dtype).ravel()
            arr[: min(given.size, self.length)] = given[: self.length]
            return arr
        scalar = np.asarray(value).ravel()
        if scalar.size == 0:
            raise ValueError(f"{self.name}: empty value")
        v = scalar[0]
        if isinstance(v, (bytes, str, np.str_, np.bytes_)):
            v = float(v.decode() if isinstance(v, bytes) else v)
        return int(round(float(v))) if self.kind == "int" else float(v)


_NUMBERS = (int, float, np.integer, np.floating)  # bool is an int
_SCALAR_KINDS = frozenset({"float", "int", "enum"})


class PVIO(Protocol):
    """What record logic sees of a PV server: read a PV, post a new value (any thread)."""

    def get(self, name: str) -> Any: ...

    def post(self, name: str, value: Any) -> None: ...


#: a put handler runs in a worker thread after the value is stored; the put completes when it returns.
#: A non-None return value becomes the PV's final value (a busy record going back to 0).
PutHandler = Callable[[Any], Any]


@dataclasses.dataclass
class PVDatabase:
    """All PVs of a beamline and the put handlers that give some of them behaviour."""

    specs: dict[str, PVSpec] = dataclasses.field(default_factory=dict)
    handlers: dict[str, PutHandler] = dataclasses.field(default_factory=dict)
    concurrent: set[str] = dataclasses.field(default_factory=set)

    def add(self, spec: PVSpec, *, replace: bool = True) -> None:
        if replace or spec.name not in self.specs:
            self.specs[spec.name] = spec

    def handle(self, name: str, handler: PutHandler, *, concurrent: bool = False) -> None:
        """Give ``name`` behaviour. Puts to one PV are processed one after the other, in order, like a
        record; ``concurrent`` handlers run at once instead (a put that must interrupt a running one)."""
        if name not in self.specs:
            raise KeyError(f"no PV {name} to attach a handler to")
        self.handlers[name] = handler
        if concurrent:
            self.concurrent.add(name)

    def __contains__(self, name: object) -> bool:
        return name in self.specs

    def __len__(self) -> int:
        return len(self.specs)


class PutProcessor:
    """Processes client puts for a PV server: mirror to the readback, then run the handler; in order per
    PV in a worker thread each. ``done`` is called when processing ends (put completion)."""

    def __init__(self, db: PVDatabase, io: PVIO) -> None:
        self.db, self.io = db, io
        # SimpleQueue: no Condition to notify per item (a record queue gets a put per move or acquisition)
        self._queues: dict[str, queue.SimpleQueue[tuple[Any, Callable[[], None]] | None]] = {}
        self._lock = threading.Lock()
        # idle workers for concurrent handlers: starting a thread per put (each camera frame) costs the
        # putting client ~0.5 ms on a busy 2-core machine, as it waits for the new thread to start
        self._spares: list[queue.SimpleQueue[tuple[str, Any, Callable[[], None]] | None]] = []
        self._closed = False

    def submit(self, name: str, value: Any, done: Callable[[], None]) -> None:
        spec = self.db.specs[name]
        if name not in self.db.handlers:
            if spec.echo:
                self.io.post(spec.echo, value)
            done()
        elif name in self.db.concurrent:
            if spec.echo:
                self.io.post(spec.echo, value)
            self._spare_worker().put((name, value, done))
        else:
            with self._lock:
                q = self._queues.get(name)
                if q is None:
                    q = self._queues[name] = queue.SimpleQueue()
                    threading.Thread(target=self._worker, args=(name, q), daemon=True,
                                     name=f"nxsci-record-{name}").start()
            q.put((value, done))

    def _spare_worker(self) -> queue.SimpleQueue[tuple[str, Any, Callable[[], None]] | None]:
        """The queue of an idle worker for a concurrent handler, or of a new one when all are busy."""
        with self._lock:
            if self._spares:
                return self._spares.pop()
        q: queue.SimpleQueue[tuple[str, Any, Callable[[], None]] | None] = queue.SimpleQueue()
        threading.Thread(target=self._concurrent_worker, args=(q,), daemon=True, name="nxsci-put").start()
        return q

    def _concurrent_worker(self, q: queue.SimpleQueue[tuple[str, Any, Callable[[], None]] | None]) -> None:
        while True:
            item = q.get()
            if item is None:
                return
            self._run(*item, False)
            with self._lock:
                if self._closed:
                    return
                self._spares.append(q)

    def _worker(self, name: str, q: queue.SimpleQueue[tuple[Any, Callable[[], None]] | None]) -> None:
        while True:
            item = q.get()
            if item is None:
                return
            self._run(name, item[0], item[1], True)

    def close(self) -> None:
        """End the record worker threads (after the puts already queued)."""
        with self._lock:
            for q in self._queues.values():
                q.put(None)
            self._queues.clear()
            for spare in self._spares:
                spare.put(None)
            self._spares.clear()
            self._closed = True

    def _run(self, name: str, value: Any, done: Callable[[], None], echo: bool) -> None:
        spec = self.db.specs[name]
        try:
            if echo and spec.echo:
                self.io.post(spec.echo, value)
            final = self.db.handlers[name](value)
            if final is not None:
                self.io.post(name, final)
                if spec.echo:
                    self.io.post(spec.echo, final)
        except Exception:  # a record error must not stop the server
            logger.exception("put handler of %s failed", name)
        finally:
            done()


# -- walking ophyd classes -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SignalPVs:
    """The PVs of one EPICS signal component: its read PV, write PV (if any), and whether it is text."""

    attr: str
    read_pv: str
    write_pv: str | None
    string: bool
    read_only: bool


def walk_device_pvs(cls: type[Device], prefix: str, _attr: str = "") -> Iterator[SignalPVs]:
    """Every EPICS signal of ``cls`` (lazy components too) with its PV names for ``prefix``."""
    for name in cls.component_names:
        cpt = getattr(cls, name)
        suffix = cpt.suffix
        full = f"{prefix}{suffix}" if (suffix is not None and "suffix" in cpt.add_prefix) else suffix
        attr = f"{_attr}{name}"
        if issubclass(cpt.cls, Device):
            yield from walk_device_pvs(cpt.cls, full if full is not None else prefix, attr + ".")
        elif issubclass(cpt.cls, EpicsSignalBase):
            if full is None:
                continue
            string = bool(cpt.kwargs.get("string", False))
            write = cpt.kwargs.get("write_pv")
            if write is not None and "write_pv" in cpt.add_prefix:
                write = f"{prefix}{write}"
            if issubclass(cpt.cls, EpicsPathSignal) or cpt.cls.__name__ == "EpicsSignalWithRBV":
                yield SignalPVs(attr, f"{full}_RBV", full, string or issubclass(cpt.cls, EpicsPathSignal), False)
            elif issubclass(cpt.cls, EpicsSignalRO):
                yield SignalPVs(attr, full, None, string, True)
            elif issubclass(cpt.cls, EpicsSignal):
                yield SignalPVs(attr, full, write, string, False)
            else:  # pragma: no cover - a new EPICS signal class would need a rule here
                raise TypeError(f"{cls.__name__}.{attr}: unsupported EPICS signal class {cpt.cls.__name__}")


#: PV name endings of areaDetector/dxp PVs that hold floating-point values (others default to int)
_AD_FLOATS = re.compile(r"(AcquireTime|AcquirePeriod|Gain|Temperature|TemperatureActual|TimeRemaining|"
                        r"ShutterOpenDelay|ShutterCloseDelay|ArrayRate|TimeStamp|RunTime|IOSpeed|"
                        r"MinCallbackTime|PoolMaxMem|PoolUsedMem|BoundaryThreshold)(_RBV)?$")


#: text PVs that are char waveforms on a real IOC (paths, file names, messages); other text is DBR_STRING
_LONG_TEXT = re.compile(r"(File|Path|Template|Message|Attributes|FromServer|ToServer)")


def generic_spec(pv: SignalPVs, *, areadetector: bool) -> list[PVSpec]:
    """Specs for a PV that only has to exist: text if the component reads text, else a number
    (areaDetector PVs are mostly integers; dxp/mca parameters mostly floats)."""
    names = [pv.read_pv] + ([pv.write_pv] if pv.write_pv and pv.write_pv != pv.read_pv else [])
    out = []
    for name in names:
        if pv.string and _LONG_TEXT.search(name):
            out.append(PVSpec(name, "char", "", length=256))
        elif pv.string:
            out.append(PVSpec(name, "string", ""))
        elif areadetector and not _AD_FLOATS.search(name):
            out.append(PVSpec(name, "int", 0))
        else:
            out.append(PVSpec(name, "float", 0.0))
    if pv.write_pv and pv.write_pv != pv.read_pv:
        out[1].echo = pv.read_pv
    return out
