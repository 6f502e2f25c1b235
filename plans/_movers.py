"""Movables the plans command instead of the individual motors.

* :class:`ConfigurationMover`: one ``set`` moves every axis of an illumination configuration in parallel,
  and, built with the sample stage's :class:`StagePosition` and the :class:`IndexSignal`, also takes the
  stage to a named position and sets the configuration index: the step to the next configuration is one
  RunEngine ``set`` and one status. The RunEngine does per-message work for every object it sets (a
  protocol check, a span, a status callback; ~0.1 ms on a 2-core machine), and ophyd per status.
* :class:`StagePosition`: the sample stage's named position; only the axes whose readbacks are not there
  move (``in`` and ``out`` usually differ in x alone). In the snake order the stage stays put between the two
  acquisitions of consecutive configurations, and each block still asks for its position, so that a pause
  and resume (after which an operator may have moved the stage) is safe: the readbacks decide what moves;
  commanding a motor to where it is costs as much as moving it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ophyd import EpicsMotor
from ophyd.status import StatusBase

from nxsci.devices import Beamline, MotorsMove, SampleStage

from ._readers import IndexSignal
from ._schedule import resolve_axis

__all__ = ["ConfigurationMover", "StagePosition"]


class StagePosition:
    """``set("in")`` / ``set("out")``: the sample stage's named positions, moving only the axes not there."""

    def __init__(self, stage: SampleStage, tolerance_mm: float = 1e-4) -> None:
        self.stage = stage
        self.name = f"{stage.name}_position"
        self.parent = None
        self.tolerance_mm = tolerance_mm

    def moves(self, position: str) -> list[tuple[EpicsMotor, float]]:
        """The (motor, target) moves that take the stage to ``position``: the axes whose readback is not at
        the position's value (none when the stage is there)."""
        return self.stage.moves_to(position, self.tolerance_mm)

    def set(self, position: str) -> StatusBase:
        return MotorsMove(self.moves(position))

    def stop(self, *, success: bool = False) -> None:
        self.stage.stop(success=success)

    def __repr__(self) -> str:
        return f"StagePosition({self.stage.name})"


class ConfigurationMover:
    """``set({"diffuser1.x": 0.1, ...})`` moves those axes together; the status completes when all have.

    With ``stage``, the key ``"sample"`` names the sample stage's position (``"in"``/``"out"``) for the same
    move; with ``index``, the key ``"index"`` sets the configuration index (it is read with each event).
    """

    SAMPLE = "sample"
    INDEX = "index"

    def __init__(self, beamline: Beamline, name: str = "illumination", *, stage: StagePosition | None = None,
                 index: IndexSignal | None = None) -> None:
        self.beamline = beamline
        self.name = name
        self.parent = None
        self.stage = stage
        self.index = index
        self._motors: dict[str, EpicsMotor] = {}
        self._moving: list[EpicsMotor] = []

    def motor(self, axis: str) -> EpicsMotor:
        if axis not in self._motors:
            self._motors[axis] = resolve_axis(self.beamline, axis)
        return self._motors[axis]

    def set(self, configuration: Mapping[str, Any]) -> StatusBase:
        moves: list[tuple[EpicsMotor, float]] = []
        index = None
        for key, value in configuration.items():
            if key == self.SAMPLE and self.stage is not None:
                moves += self.stage.moves(value)
            elif key == self.INDEX and self.index is not None:
                index = int(value)
            else:
                moves.append((self.motor(key), float(value)))
        status = MotorsMove(moves)  # checks every target before anything moves
        if index is not None:
            self.index.put(index)  # type: ignore[union-attr]
        self._moving = [motor for motor, _ in moves]
        return status

    def stop(self, *, success: bool = False) -> None:
        for motor in self._moving:
            motor.stop(success=success)

    def __repr__(self) -> str:
        return f"ConfigurationMover({self.name})"
