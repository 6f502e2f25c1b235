"""Simulated devices without EPICS: the beamline's PV database served in-process.

:class:`PVStore` holds the PV values, runs the record handlers (the same code the caproto IOC runs) in
worker threads, and delivers value updates and put completions from one dispatcher thread, in order,
as Channel Access monitors arrive. :func:`make_sim_device` builds the *same* ophyd device classes with
their EPICS signals replaced by :class:`SimEpicsSignal` & co., which read and write that store: the
component names, ``read()``/``describe()`` keys and sources are the EPICS ones by construction.
"""

from __future__ import annotations

import contextvars
import copy
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device
from ophyd import DynamicDeviceComponent as DDC
from ophyd.areadetector.base import EpicsSignalWithRBV
from ophyd.areadetector.paths import EpicsPathSignal, set_and_wait_path
from ophyd.utils.epics_pvs import _compare_maybe_enum
from ophyd.signal import EpicsSignal, EpicsSignalBase, EpicsSignalRO, Signal
from ophyd.status import Status, SubscriptionStatus
from ophyd.utils import LimitError, ReadOnlyError

from ._pvs import PutProcessor, PVDatabase, PVSpec

__all__ = ["PVStore", "SimEpicsSignal", "SimEpicsSignalRO", "SimEpicsSignalWithRBV", "SimEpicsPathSignal",
           "make_sim_class", "make_sim_device"]

logger = logging.getLogger(__name__)

_BUILDING: contextvars.ContextVar[PVStore | None] = contextvars.ContextVar("nxsci_pv_store", default=None)
_STORE_ATTR = "_nxsci_pv_store"


class PVStore:
    """In-process PV server: values, record handlers, ordered monitor and put-completion delivery."""

    def __init__(self, db: PVDatabase) -> None:
        self.db = db
        self._lock = threading.RLock()
        self._values: dict[str, Any] = {name: copy.copy(spec.value) for name, spec in db.specs.items()}
        self._stamps: dict[str, float] = dict.fromkeys(db.specs, time.time())
        self._subs: dict[str, list[Callable[[Any, float], None]]] = defaultdict(list)
        # SimpleQueue: puts and gets without a Condition each (~130 values posted per configuration)
        self._events: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._dispatcher = threading.Thread(target=self._dispatch, name="nxsci-sim-pv-dispatch", daemon=True)
        self._dispatcher.start()
        self._processor = PutProcessor(db, self)

    # -- PVIO -------------------------------------------------------------------------------------
    def spec(self, name: str) -> PVSpec:
        try:
            return self.db.specs[name]
        except KeyError:
            raise KeyError(f"the simulated beamline has no PV '{name}'") from None

    def get(self, name: str) -> Any:
        with self._lock:
            return self._values[self.spec(name).name]

    def timestamp(self, name: str) -> float:
        with self._lock:
            return self._stamps[name]

    def post(self, name: str, value: Any) -> None:
        """A new value from the record side; subscribers hear of it from the dispatcher thread."""
        self._publish(name, self.spec(name).coerce(value))

    def _publish(self, name: str, value: Any) -> None:
        """Store an already coerced value and queue its monitor updates (under the lock: in posting order,
        and after the first update of a concurrent ``subscribe(run=True)``)."""
        now = time.time()
        with self._lock:
            self._values[name] = value
            self._stamps[name] = now
            subs = self._subs.get(name)
            if subs:
                for fn in subs:
                    self._events.put((fn, (value, now)))

    # -- client side ------------------------------------------------------------------------------
    def put(self, name: str, value: Any, *, callback: Callable[[], None] | None = None, wait: bool = False,
            timeout: float | None = None) -> None:
        """A client put: store the value, then let the record process it (readback mirror, handler);
        ``callback`` runs, from the dispatcher thread, when processing has finished (put completion)."""
        value = self.spec(name).coerce(value)
        self._publish(name, value)
        if not wait:
            # no Event to wait on: the completion goes straight to the dispatcher (a put per motor move)
            if callback is None:
                self._processor.submit(name, value, _no_completion)
            else:
                self._processor.submit(name, value, lambda: self._events.put((callback, ())))
            return
        done = threading.Event()

        def complete() -> None:
            done.set()
            if callback is not None:
                callback()

        self._processor.submit(name, value, lambda: self._events.put((complete, ())))
        if not done.wait(timeout):
            raise TimeoutError(f"put to {name} did not complete within {timeout} s")

    def subscribe(self, name: str, fn: Callable[[Any, float], None], *, run: bool = False) -> None:
        """``fn(value, timestamp)`` on every new value of ``name`` (from the dispatcher thread); ``run``: also
        once with the current value, delivered before any later update."""
        self.spec(name)
        with self._lock:
            self._subs[name].append(fn)
            if run:  # queued under the lock: a concurrent post queues its update after this one
                self._events.put((fn, (self._values[name], self._stamps[name])))

    def unsubscribe(self, name: str, fn: Callable[[Any, float], None]) -> None:
        with self._lock:
            if fn in self._subs.get(name, []):
                self._subs[name].remove(fn)

    def _dispatch(self) -> None:
        while True:
            item = self._events.get()
            if item is None:
                return
            fn, args = item
            try:
                fn(*args)
            except Exception:
                logger.exception("simulated PV callback %r failed", fn)

    def close(self) -> None:
        """Stop the record workers and the dispatcher thread."""
        self._processor.close()
        self._events.put(None)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every update posted so far has been delivered."""
        done = threading.Event()
        self._events.put((done.set, ()))
        done.wait(timeout)


def _no_completion() -> None:
    """Put completion nobody waits for."""


def _find_store(parent: Any) -> PVStore:
    store = _BUILDING.get()
    node = parent
    while store is None and node is not None:
        store = getattr(node, _STORE_ATTR, None)
        node = getattr(node, "parent", None)
    if store is None:
        raise RuntimeError("simulated signals must be created by make_sim_device (no PV store in reach)")
    return store


class SimEpicsSignalRO(Signal):
    """Read-only EPICS signal served by a :class:`PVStore` (same API and describe() as ``EpicsSignalRO``)."""

    _metadata_keys = EpicsSignalBase._metadata_keys
    _read_only = True

    def __init__(self, read_pv: str, write_pv: str | None = None, *, put_complete: bool = False,
                 string: bool = False, limits: bool = False, auto_monitor: Any = None, name: str | None = None,
                 timeout: float | None = None, write_timeout: float | None = None,
                 connection_timeout: float | None = None, **kwargs: Any) -> None:
        store = _find_store(kwargs.get("parent"))
        self._store = store
        # like ophyd's EpicsSignalBase, the PV is monitored from the first value subscription on (_monitor): a
        # signal nobody subscribes to (most motor-record and detector fields) costs nothing when the IOC posts
        self._monitor_lock = threading.Lock()
        self._monitoring = False
        self._read_name = read_pv
        self._write_name = write_pv or read_pv
        self._put_complete = put_complete
        self.as_string = string
        self._use_limits = limits
        spec = store.spec(read_pv)
        store.spec(self._write_name)
        self._spec = spec
        super().__init__(name=name or read_pv, value=self._convert(store.get(read_pv)),
                         timestamp=store.timestamp(read_pv), **kwargs)
        wspec = store.spec(self._write_name)
        self._metadata.update(connected=True, read_access=True, write_access=not self._read_only,
                              units=spec.units, precision=spec.precision if spec.kind == "float" else None,
                              enum_strs=spec.enum_strs if spec.kind == "enum" else None,
                              lower_ctrl_limit=wspec.limits[0], upper_ctrl_limit=wspec.limits[1],
                              severity=0, status=0)

    # -- values -----------------------------------------------------------------------------------
    def _convert(self, value: Any, as_string: bool | None = None, count: int | None = None) -> Any:
        as_string = self.as_string if as_string is None else as_string
        spec = self._spec
        if spec.kind == "enum" and as_string:
            return spec.enum_strs[int(value)] if 0 <= int(value) < len(spec.enum_strs) else str(value)
        if spec.kind == "array":
            arr = np.array(value, copy=True)
            return arr[:count] if count is not None else arr
        if as_string and spec.kind not in ("string", "char"):
            return str(value)
        return value

    def _on_update(self, value: Any, timestamp: float) -> None:
        old = self._readback
        self._readback = self._convert(value)
        self._metadata["timestamp"] = timestamp
        self._run_subs(sub_type=self.SUB_VALUE, old_value=old, value=self._readback, timestamp=timestamp)

    def subscribe(self, callback: Callable[..., None], event_type: str | None = None, run: bool = True) -> int:
        if (event_type or self._default_sub) == self.SUB_VALUE:
            self._monitor()
        return super().subscribe(callback, event_type=event_type, run=run)

    def _monitor(self) -> None:
        """Start monitoring the read PV (once): ``_on_update`` with its current value, then with each new one."""
        with self._monitor_lock:
            if self._monitoring:
                return
            self._monitoring = True
        self._store.subscribe(self._read_name, self._on_update, run=True)

    @property
    def timestamp(self) -> float:
        return self._store.timestamp(self._read_name)

    def get(self, *, as_string: bool | None = None, count: int | None = None, use_monitor: bool | None = None,
            timeout: float | None = None, connection_timeout: float | None = None, **kwargs: Any) -> Any:
        return self._convert(self._store.get(self._read_name), as_string, count)

    # -- EPICS-like metadata ----------------------------------------------------------------------
    @property
    def source_name(self) -> str:
        return f"PV:{self._read_name}"

    @property
    def pvname(self) -> str:
        return self._read_name

    @property
    def precision(self) -> int | None:
        return self._metadata.get("precision")

    @property
    def enum_strs(self) -> tuple[str, ...] | None:
        return self._metadata.get("enum_strs")

    @property
    def limits(self) -> tuple[float, float]:
        return (self._metadata["lower_ctrl_limit"], self._metadata["upper_ctrl_limit"])

    @property
    def low_limit(self) -> float:
        return self.limits[0]

    @property
    def high_limit(self) -> float:
        return self.limits[1]

    @property
    def alarm_status(self) -> int:
        return 0

    @property
    def alarm_severity(self) -> int:
        return 0

    @property
    def put_complete(self) -> bool:
        return self._put_complete

    @property
    def _read_pv(self) -> Any:  # EpicsMotor refreshes limits through it
        store, name = self._store, self._write_name

        class _CtrlVars:
            def get_ctrlvars(self) -> dict[str, float]:
                lo, hi = store.spec(name).limits
                return {"lower_ctrl_limit": lo, "upper_ctrl_limit": hi}

        return _CtrlVars()

    def _metadata_changed(self, pvname: str, md: dict[str, Any], **kwargs: Any) -> None:
        self._metadata.update({k: v for k, v in md.items() if k in ("lower_ctrl_limit", "upper_ctrl_limit")})

    def describe(self) -> dict[str, dict[str, Any]]:
        ret = super().describe()
        desc = ret[self.name]
        lo, hi = self.limits
        desc.update(units=self._metadata["units"], lower_ctrl_limit=lo, upper_ctrl_limit=hi)
        if self.precision is not None:
            desc["precision"] = self.precision
        if self.enum_strs is not None:
            desc["enum_strs"] = tuple(self.enum_strs)
        return ret

    def wait_for_connection(self, timeout: float | None = None) -> None:
        return None

    def destroy(self) -> None:
        if self._monitoring:
            self._store.unsubscribe(self._read_name, self._on_update)
        super().destroy()

    # -- writes -----------------------------------------------------------------------------------
    def check_value(self, value: Any) -> None:
        if value is None:
            raise ValueError("Cannot write None to EPICS PVs")
        lo, hi = self.limits
        if self._use_limits and lo < hi and not lo <= value <= hi:
            raise LimitError(f"{self.name}: value {value} outside limits ({lo}, {hi})")

    def put(self, value: Any, force: bool = False, connection_timeout: float | None = None,
            callback: Callable[..., None] | None = None, use_complete: bool | None = None,
            timeout: float | None = None, wait: bool = False, **kwargs: Any) -> None:
        if self._read_only:
            raise ReadOnlyError(f"{self.name} is read-only")
        if not force:
            self.check_value(value)
        cb = None if callback is None else (lambda: callback())
        self._store.put(self._write_name, value, callback=cb, wait=wait, timeout=timeout)

    def set(self, value: Any, *, timeout: float | None = None, settle_time: float | None = None,
            **kwargs: Any) -> Status:
        """As ``EpicsSignal.set``: with put completion, done when the put completes; otherwise put, and done
        when the readback equals the value (within ``tolerance``, enum strings or indices).

        ophyd's ``Signal.set`` does the latter in a new thread that polls the readback; staging a device
        sets a dozen signals that way (~3 ms each on a busy 2-core machine, waiting for the thread to start).
        Here the status follows the readback's monitor updates instead, as ``SubscriptionStatus`` does."""
        if self._put_complete:
            st = Status(self, timeout=timeout, settle_time=settle_time)
            self.put(value, callback=lambda: st._finished(success=True))
            return st
        count = {"count": len(value)} if isinstance(value, (list, np.ndarray, tuple)) else {}
        enums = self.enum_strs if self._spec.kind == "enum" else ()

        def there(**_: Any) -> bool:
            current = self.get(**count)
            return current is not None and _compare_maybe_enum(value, current, enums, self.tolerance,
                                                              self.rtolerance)

        try:
            self.put(value, **kwargs)
        except Exception as exc:
            failed = Status(self)
            failed.set_exception(exc)
            return failed
        return _ReadbackStatus(self, there, run=True, timeout=timeout, settle_time=settle_time)


class _ReadbackStatus(SubscriptionStatus):
    """``SubscriptionStatus`` that finishes once. Its first check runs in the caller's thread while monitor
    updates arrive from the dispatcher's: when the readback is already there, both checks succeed, and
    ophyd's status would call ``set_finished`` twice (``InvalidState`` logged from the dispatcher)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._check_lock = threading.Lock()
        self._finishing = False
        super().__init__(*args, **kwargs)

    def check_value(self, *args: Any, **kwargs: Any) -> None:
        with self._check_lock:
            if self._finishing:
                return
            if self.callback(*args, **kwargs):
                self._finishing = True
                self._finished(success=True)


class SimEpicsSignal(SimEpicsSignalRO):
    """Read/write EPICS signal served by a :class:`PVStore`."""

    _read_only = False

    @property
    def setpoint_pvname(self) -> str:
        return self._write_name

    def get_setpoint(self, *, as_string: bool | None = None, **kwargs: Any) -> Any:
        spec = self._store.spec(self._write_name)
        value = self._store.get(self._write_name)
        as_string = self.as_string if as_string is None else as_string
        return spec.enum_strs[int(value)] if (as_string and spec.kind == "enum") else value

    @property
    def setpoint(self) -> Any:
        return self.get_setpoint()


class SimEpicsSignalWithRBV(SimEpicsSignal):
    """areaDetector ``PV`` / ``PV_RBV`` pair."""

    def __init__(self, prefix: str, **kwargs: Any) -> None:
        super().__init__(prefix + "_RBV", write_pv=prefix, **kwargs)


class SimEpicsPathSignal(SimEpicsSignalWithRBV):
    """areaDetector file path pair, compared with path semantics on ``set``."""

    def __init__(self, write_pv: str, *, path_semantics: str, string: bool = True, **kwargs: Any) -> None:
        if write_pv.endswith("_RBV"):
            write_pv = write_pv[:-4]
        self.path_semantics = path_semantics
        super().__init__(write_pv, string=True, **kwargs)

    def set(self, value: Any, *, timeout: float | None = None, settle_time: float | None = None,
            **kwargs: Any) -> Status:
        # ophyd's set (a thread running _set_and_wait): the readback is compared as a path, not as a string
        return Signal.set(self, value, timeout=timeout, settle_time=settle_time, **kwargs)

    def _set_and_wait(self, value: Any, timeout: float | None, **kwargs: Any) -> None:
        set_and_wait_path(self, value, timeout=timeout, path_semantics=self.path_semantics)


_SIM_SIGNALS: dict[type, type] = {
    EpicsSignal: SimEpicsSignal,
    EpicsSignalRO: SimEpicsSignalRO,
    EpicsSignalWithRBV: SimEpicsSignalWithRBV,
    EpicsPathSignal: SimEpicsPathSignal,
}
_SIM_CLASSES: dict[type, type] = {}


def make_sim_class(cls: type) -> type:
    """``cls`` (a Device) with every EPICS signal component replaced by its PV-store twin, recursively."""
    if cls in _SIM_SIGNALS:
        return _SIM_SIGNALS[cls]
    if not (isinstance(cls, type) and issubclass(cls, Device)):
        if isinstance(cls, type) and issubclass(cls, EpicsSignalBase):
            raise TypeError(f"no simulated twin for EPICS signal class {cls.__name__}")
        return cls
    if cls not in _SIM_CLASSES:
        members: dict[str, Any] = {}
        for name in cls.component_names:
            cpt = getattr(cls, name)
            if isinstance(cpt, DDC):
                new = Cpt(cpt.cls, suffix=cpt.suffix, lazy=cpt.lazy, trigger_value=cpt.trigger_value,
                          kind=cpt.kind, add_prefix=cpt.add_prefix, doc=cpt.doc, **cpt.kwargs)
            else:
                new = copy.copy(cpt)
            new.cls = make_sim_class(cpt.cls)
            members[name] = new
        _SIM_CLASSES[cls] = type(cls.__name__, (cls,), members)
    return _SIM_CLASSES[cls]


def make_sim_device(cls: type[Device], store: PVStore, prefix: str, *, name: str, **kwargs: Any) -> Device:
    """An instance of ``cls`` whose EPICS PVs are served by ``store``."""
    token = _BUILDING.set(store)
    try:
        device = make_sim_class(cls)(prefix, name=name, **kwargs)
    finally:
        _BUILDING.reset(token)
    setattr(device, _STORE_ATTR, store)
    return device
