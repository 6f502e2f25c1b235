"""Illumination configurations: where every motor that shapes the beam goes for one pattern.

A configuration is a plain mapping ``"device.axis" -> position`` (mm, mrad for condenser pitch/yaw), e.g.
``{"diffuser1.x": 0.12, "diffuser1.y": -0.3, "diffuser2.x": 0.4, "diffuser2.y": 0.05}``: serialisable, so
the queue server can pass it and the start document can record it, and open to the optics (condenser,
pinhole, zone plate) when a configuration changes them too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from ophyd import EpicsMotor

from nxsci.devices import Beamline

from ._context import PlanError

__all__ = ["DIFFUSER_AXES", "OPTICS_DEVICES", "draw_schedule", "check_configurations", "resolve_axis"]

#: the axes a drawn schedule moves: both diffusers, x and y
DIFFUSER_AXES: tuple[str, ...] = ("diffuser1.x", "diffuser1.y", "diffuser2.x", "diffuser2.y")
#: devices a configuration may move (everything that shapes the illumination; not the sample stage)
OPTICS_DEVICES: tuple[str, ...] = ("diffuser1", "diffuser2", "condenser", "pinhole", "zone_plate")

#: positions are rounded to the motor records' precision (PREC 4: 0.1 um), so a configuration recorded
#: in a start document and commanded again later gives the same pattern
_DECIMALS = 4


def draw_schedule(num_patterns: int, *, seed: int = 0, travel_mm: float = 1.0) -> list[dict[str, float]]:
    """``num_patterns`` configurations with both diffusers at independent uniform random positions within
    ``+-travel_mm / 2`` of their origin: speckle from unrelated parts of the sandpaper each time."""
    if not isinstance(num_patterns, (int, np.integer)) or num_patterns < 1:
        raise PlanError(f"num_patterns must be a positive integer, got {num_patterns!r}")
    if not (math.isfinite(travel_mm) and travel_mm > 0):
        raise PlanError(f"travel_mm must be a positive number, got {travel_mm!r}")
    rng = np.random.default_rng(seed)
    positions = np.round(rng.uniform(-travel_mm / 2, travel_mm / 2, (int(num_patterns), len(DIFFUSER_AXES))),
                         _DECIMALS)
    return [dict(zip(DIFFUSER_AXES, map(float, row))) for row in positions]


def resolve_axis(beamline: Beamline, axis: str, allowed: Sequence[str] = OPTICS_DEVICES) -> EpicsMotor:
    """The motor behind ``"device.axis"``; a clear error for an unknown device or axis."""
    device_name, _, axis_name = axis.partition(".")
    if device_name not in allowed:
        raise PlanError(f"'{axis}': configurations may move {', '.join(allowed)} (as 'device.axis'), "
                        f"not '{device_name}'")
    device = beamline.devices.get(device_name)
    motor = getattr(device, axis_name, None) if device is not None and axis_name else None
    if not isinstance(motor, EpicsMotor):
        axes = [n for n in getattr(device, "component_names", ()) if isinstance(getattr(device, n), EpicsMotor)]
        raise PlanError(f"'{axis}': {device_name} has no axis '{axis_name}' (axes: {', '.join(axes)})")
    return motor


def check_configurations(beamline: Beamline, configurations: Sequence[Mapping[str, float]]
                         ) -> list[dict[str, float]]:
    """Validated copies of ``configurations``: known axes, finite numbers, within the motors' limits."""
    if isinstance(configurations, (str, bytes)) or not isinstance(configurations, Sequence) or not configurations:
        raise PlanError("configurations must be a non-empty list of {'device.axis': position} mappings")
    out: list[dict[str, float]] = []
    for i, config in enumerate(configurations):
        if not isinstance(config, Mapping) or not config:
            raise PlanError(f"configuration {i} must be a non-empty mapping of 'device.axis' to position, "
                            f"got {config!r}")
        checked: dict[str, float] = {}
        for axis, value in config.items():
            motor = resolve_axis(beamline, str(axis))
            try:
                position = float(value)
            except (TypeError, ValueError):
                raise PlanError(f"configuration {i}: position of {axis} must be a number, got {value!r}") from None
            if not math.isfinite(position):
                raise PlanError(f"configuration {i}: position of {axis} must be finite, got {value!r}")
            low, high = motor.limits
            if low < high and not low <= position <= high:
                raise PlanError(f"configuration {i}: {axis} = {position} is outside its limits [{low}, {high}]")
            checked[str(axis)] = round(position, _DECIMALS)
        out.append(checked)
    return out
