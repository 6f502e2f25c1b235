"""Motorised devices: the two diffuser stages, condenser, pinhole, zone plate and the sample stage.

Every axis is an ``ophyd.EpicsMotor`` (motor record); the record name of each axis comes from the
configuration (default: the axis name in capitals, so ``prefix + "X"``), see :func:`motor_device_class`.
"""

from __future__ import annotations

import inspect
import math
import threading
import time
import types
from collections.abc import Callable, Mapping, Sequence

from ophyd import Component as Cpt
from ophyd import Device, EpicsMotor
from ophyd.status import StatusBase

__all__ = ["Motor", "DiffuserStage", "Condenser", "Pinhole", "ZonePlate", "SampleStage", "AllStatus", "MotorsMove",
           "QuickCallbacks", "with_components"]


def _takes_status(callback: Callable[..., object]) -> bool:
    """Whether ``callback`` is a plain function of exactly one positional parameter (``cb(status)``), judged
    once per code object."""
    if type(callback) is not types.FunctionType:
        return False
    code = callback.__code__
    known = _ONE_PARAMETER.get(code)
    if known is None:
        known = _ONE_PARAMETER[code] = (code.co_argcount == 1 and code.co_kwonlyargcount == 0
                                        and not code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS))
    return known


_ONE_PARAMETER: dict[types.CodeType, bool] = {}


class QuickCallbacks(StatusBase):
    """``add_callback`` without ophyd's signature inspection for ``cb(status)`` functions.

    ophyd inspects every callback's signature (to support the old ``cb()`` form) each time one is added; the
    RunEngine adds one per ``set`` and ``trigger`` (~15 us each on a 2-core machine, four per illumination
    configuration on these statuses). A plain function of one positional parameter is the new form by
    construction; anything else goes through ophyd's check.
    """

    def add_callback(self, callback: Callable[[StatusBase], object]) -> None:
        if not _takes_status(callback):
            return super().add_callback(callback)
        with self._lock:
            if self.done:
                callback(self)
            else:
                self._callbacks.append(callback)
        return None


class _CountdownStatus(QuickCallbacks):
    """Done when ``count`` members have finished: successful if every one succeeded, else failed at the first
    failure (at once, without waiting for the others). One lock-protected counter, shared by the statuses
    below."""

    def __init__(self, count: int, **kwargs: object) -> None:
        self._remaining = count
        self._count_lock = threading.Lock()
        super().__init__(**kwargs)  # type: ignore[arg-type]
        if count == 0:
            self.set_finished()

    def _member_finished(self, success: bool, error: Callable[[], BaseException]) -> None:
        with self._count_lock:
            if self.done or self._externally_initiated_completion:
                return
            self._remaining -= 1
            if not success:
                self.set_exception(error())
            elif self._remaining == 0:
                self.set_finished()


class AllStatus(_CountdownStatus):
    """Done when all of ``statuses`` are: successful if every one succeeded, else failed with the first
    failure's exception (at once, without waiting for the others), like a chain of ``AndStatus``.

    A chain of ``AndStatus`` over N statuses is N - 1 more statuses and 2(N - 1) callbacks (each
    ``add_callback`` inspects the callback's signature); this is one status and N callbacks.
    """

    def __init__(self, statuses: Sequence[StatusBase], **kwargs: object) -> None:
        self.statuses = list(statuses)
        super().__init__(len(self.statuses), **kwargs)
        for status in self.statuses:
            status.add_callback(self._member_done)

    def _member_done(self, status: StatusBase) -> None:
        self._member_finished(status.success,
                              lambda: status.exception() or RuntimeError(f"{status!r} failed"))

    def __repr__(self) -> str:
        return " & ".join(f"({s!r})" for s in self.statuses) or "AllStatus()"


class Motor(EpicsMotor):
    """``ophyd.EpicsMotor`` with a race fixed and two per-move costs removed.

    * ophyd's ``_done_moving`` runs the move-done callbacks (which let a waiting RunEngine issue the next
      move of this motor at once) and *then* clears every move-done subscription, including the one the next
      move has just made; that move's status never finishes (a hang within a few hundred instantaneous moves
      of one motor, as in a point scan). Here exactly the callbacks being run are unsubscribed, before they run.
    * Every ``move`` checks :attr:`connected` three times (``move`` and ``position``, twice, in its
      ``MoveStatus``) and formats the motor's ``repr`` for the status's tracing attributes; ophyd computes
      both by walking the component tree (~100 us per move on a 2-core machine, 7 moves per illumination
      configuration). Here ``connected`` reads the motor's signals directly and the ``repr`` is kept until
      something it shows (name, timing, a component's kind) changes. Same values, no walk.
    """

    _repr_cache: tuple[tuple[object, ...], str] | None = None

    @property
    def connected(self) -> bool:
        # as Device.connected: every instantiated signal connected, no connection callback pending (a motor's
        # components are all signals, so there are no sub-devices to walk)
        return not self._required_for_connection and all(sig.connected for sig in self._signals.values())

    def __repr__(self) -> str:
        key = (self.name, self.prefix, self._settle_time, self._timeout,
               tuple((attr, sig._kind) for attr, sig in self._signals.items()))
        cached = self._repr_cache
        if cached is None or cached[0] != key:
            cached = self._repr_cache = (key, super().__repr__())
        return cached[1]

    def start_move(self, position: float, done: Callable[[bool], None]) -> None:
        """Command ``position``; ``done(success)`` runs when the move has ended (``DMOV`` back to 1, judged
        by ``EpicsMotor``'s rules: limit switches, alarm severity), from the monitor thread.

        This is ``move()`` without its ``MoveStatus`` (for :class:`MotorsMove`, one status for a whole
        parallel move): a ``MoveStatus`` per motor subscribes to the readback for progress watchers, formats
        its tracing attributes and checks the connection again (~0.15 ms per move on a 2-core machine,
        seven moves per illumination configuration). The end of the move is still the ``DMOV`` monitor, not
        the put-callback: monitors arrive in order, so the readback is up to date when ``done`` runs.
        """
        self.check_value(position)  # soft limits, as move() does before anything is sent
        self._started_moving = False  # as move(): the next DMOV 1 -> 0 is this move's start
        self.subscribe(lambda success=True, **_: done(bool(success)), event_type=self._SUB_REQ_DONE, run=False)
        self.user_setpoint.put(position, wait=False)

    def _done_moving(self, success: bool = True, timestamp: float | None = None, value: object = None,
                     **kwargs: object) -> None:
        if success:
            self._run_subs(sub_type=self.SUB_DONE, timestamp=timestamp, value=value)
        pending = dict(self._callbacks[self._SUB_REQ_DONE])  # wrapped callbacks: exceptions are logged
        for cid in pending:
            self.unsubscribe(cid)
        stamp = time.time() if timestamp is None else timestamp
        for callback in pending.values():
            callback(success=success, timestamp=stamp, obj=self, sub_type=self._SUB_REQ_DONE)


class MotorsMove(_CountdownStatus):
    """Several motors moved together: done when every one has arrived, failed at the first failure.

    :class:`Motor` axes report the end of their move to this status (:meth:`Motor.start_move`): one status
    for the whole move, no ``MoveStatus`` per axis. Other positioners move through their own ``set()``.
    Every target is checked against its motor's limits before any motor is commanded.
    """

    def __init__(self, moves: Sequence[tuple[EpicsMotor, float]], **kwargs: object) -> None:
        self.moves = [(motor, float(target)) for motor, target in moves]
        for motor, target in self.moves:
            motor.check_value(target)
        settle = max((motor.settle_time or 0.0 for motor, _ in self.moves), default=0.0)
        super().__init__(len(self.moves), settle_time=settle, **kwargs)
        for motor, target in self.moves:
            if isinstance(motor, Motor):
                motor.start_move(target, self._arrived)
            else:
                motor.set(target).add_callback(self._member_done)

    def _member_done(self, status: StatusBase) -> None:
        self._arrived(status.success)

    def _arrived(self, success: bool) -> None:
        self._member_finished(success,
                              lambda: RuntimeError(f"{self!r}: a motor stopped short (limit switch, alarm or stop)"))

    def __repr__(self) -> str:
        return f"MotorsMove({', '.join(f'{motor.name}={target}' for motor, target in self.moves)})"


class DiffuserStage(Device):
    """A sandpaper diffuser on an x/y stage (mm): moving it changes the speckle pattern."""

    x = Cpt(Motor, "X", kind="hinted")
    y = Cpt(Motor, "Y", kind="hinted")


class Condenser(Device):
    """Capillary condenser: x/y (mm) and pitch/yaw (mrad) steer the beam envelope and the flux."""

    x = Cpt(Motor, "X")
    y = Cpt(Motor, "Y")
    pitch = Cpt(Motor, "PITCH")
    yaw = Cpt(Motor, "YAW")


class Pinhole(Device):
    """Pinhole (order-sorting aperture) x/y (mm): misaligned, it cuts the flux."""

    x = Cpt(Motor, "X")
    y = Cpt(Motor, "Y")


class ZonePlate(Device):
    """Zone-plate objective x/y/z (mm): x/y shift the camera image, z focuses it."""

    x = Cpt(Motor, "X")
    y = Cpt(Motor, "Y")
    z = Cpt(Motor, "Z")


class SampleStage(Device):
    """Sample x/y/z (mm) with named positions (``in``, ``out``, ...) from the configuration.

    ``set("in")`` (so ``bps.mv(sample_stage, "out")``) moves every axis the position names; a number
    is refused, since a bare number does not say which axis. The stage does not return exactly: the
    sample lands with a small error each time, which is why patterns are registered.
    """

    x = Cpt(Motor, "X", kind="hinted")
    y = Cpt(Motor, "Y", kind="hinted")
    z = Cpt(Motor, "Z")

    def __init__(self, *args: object, positions: Mapping[str, Mapping[str, float]] | None = None,
                 **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.named_positions: dict[str, dict[str, float]] = {k: dict(v) for k, v in (positions or {}).items()}

    def set(self, value: str) -> StatusBase:  # type: ignore[override]
        """Move to a named position; the status completes when every axis is there."""
        return MotorsMove([(getattr(self, axis), target) for axis, target in self._named(value).items()])

    def move_to(self, name: str, *, wait: bool = True, timeout: float | None = 60.0) -> StatusBase:
        status = self.set(name)
        if wait:
            status.wait(timeout)
        return status

    def moves_to(self, name: str, tolerance: float = 1e-4) -> list[tuple[Motor, float]]:
        """The (motor, target) moves that take the stage to the named position: the axes whose readback is
        not at the position's value (within ``tolerance`` mm); none when the stage is there."""
        moves = []
        for axis, target in self._named(name).items():
            motor = getattr(self, axis)
            # the readback signal, not ``.position``: that is None until a motor's first readback monitor arrives
            here = motor.user_readback.get()
            if here is None or not math.isclose(here, target, abs_tol=tolerance):
                moves.append((motor, target))
        return moves

    def where(self, tolerance: float = 1e-4) -> str | None:
        """The named position the readbacks are at (within ``tolerance`` mm), or None."""
        return next((name for name in self.named_positions if not self.moves_to(name, tolerance)), None)

    def _named(self, value: object) -> dict[str, float]:
        if not isinstance(value, str) or value not in self.named_positions:
            raise ValueError(f"{self.name}: unknown position {value!r}; named positions are "
                             f"{', '.join(self.named_positions) or 'none'}")
        return self.named_positions[value]


def with_components(cls: type[Device], suffixes: Mapping[str, str],
                    kwargs: Mapping[str, Mapping[str, object]] | None = None) -> type[Device]:
    """``cls`` with some components' PV suffixes (and constructor kwargs) replaced: the configuration
    names the PVs, while component names, and so ``read()``/``describe()`` keys, stay the class's."""
    kwargs = kwargs or {}
    names = set(suffixes) | set(kwargs)
    if not names:
        return cls
    key = (cls, tuple(sorted(suffixes.items())), repr(sorted((k, sorted(v.items())) for k, v in kwargs.items())))
    if key in _CONFIGURED:
        return _CONFIGURED[key]
    unknown = names - set(cls.component_names)
    if unknown:
        from ._config import BeamlineConfigError

        raise BeamlineConfigError(f"{cls.__name__} has no component(s) {', '.join(sorted(unknown))} "
                                  f"(components: {', '.join(cls.component_names)})")
    overrides = {}
    for attr in names:
        cpt = getattr(cls, attr)
        new_kwargs = {**cpt.kwargs, **kwargs.get(attr, {})}
        overrides[attr] = type(cpt)(cpt.cls, suffixes.get(attr, cpt.suffix), kind=cpt.kind, lazy=cpt.lazy,
                              trigger_value=cpt.trigger_value, add_prefix=cpt.add_prefix, doc=cpt.doc, **new_kwargs)
    _CONFIGURED[key] = type(cls.__name__, (cls,), overrides)
    return _CONFIGURED[key]


_CONFIGURED: dict[tuple[object, ...], type[Device]] = {}
