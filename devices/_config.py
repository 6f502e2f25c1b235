"""The beamline configuration file: PV prefixes of every device (never hard-coded) and the simulation.

A YAML file validated by pydantic models with ``extra="forbid"``: a misspelt key, a missing prefix or a
wrong type is reported as one line naming the file, the key and the problem
(:class:`BeamlineConfigError`, exit status 2 from the CLI). The shipped example for the simulated
beamline is :data:`SIM_CONFIG_PATH` (``devices/configs/sim.yaml``, installed with the package).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nxsci.recon import NxsciError

from .sim._params import SimulationParams

__all__ = [
    "BeamlineConfigError",
    "BeamlineConfig",
    "DevicesConfig",
    "MotorDeviceConfig",
    "SampleStageConfig",
    "CameraConfig",
    "VortexConfig",
    "ShutterConfig",
    "SIM_CONFIG_PATH",
    "load_config",
]

#: the example configuration of the simulated beamline, shipped inside the package
SIM_CONFIG_PATH = Path(__file__).resolve().parent / "configs" / "sim.yaml"

_PV_RE = re.compile(r"^[A-Za-z0-9_:.\-{}\[\]<>;]+$")


class BeamlineConfigError(NxsciError, ValueError):
    """A beamline configuration file is missing, not YAML, or does not validate."""


def _check_pv(value: str) -> str:
    if not value or not _PV_RE.match(value):
        raise ValueError(f"'{value}' is not a valid EPICS PV name part (letters, digits, _ : . - only)")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MotorDeviceConfig(_Strict):
    """A group of EpicsMotors: ``prefix`` + record name per axis (defaults: the axis name in capitals)."""

    prefix: str
    motors: dict[str, str] = Field(default_factory=dict, description="axis -> motor record name, e.g. {x: m1}")

    _check_prefix = field_validator("prefix")(_check_pv)

    @field_validator("motors")
    @classmethod
    def _check_motors(cls, value: dict[str, str]) -> dict[str, str]:
        for record in value.values():
            _check_pv(record)
        return value


class SampleStageConfig(MotorDeviceConfig):
    """Sample stage: motors plus named positions (mm); ``in`` and ``out`` are required."""

    positions: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {"in": {"x": 0.0, "y": 0.0, "z": 0.0}, "out": {"x": 1.0, "y": 0.0, "z": 0.0}})

    @field_validator("positions")
    @classmethod
    def _check_positions(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        missing = {"in", "out"} - set(value)
        if missing:
            raise ValueError(f"named positions must include 'in' and 'out' (missing {', '.join(sorted(missing))})")
        for name, axes in value.items():
            bad = set(axes) - {"x", "y", "z"}
            if bad:
                raise ValueError(f"position '{name}' names unknown axes {', '.join(sorted(bad))} (x, y, z only)")
        return value


class CameraConfig(_Strict):
    """TXM camera (areaDetector): IOC prefix, plugin names, and where the HDF5 plugin writes."""

    prefix: str
    cam: str = "cam1:"
    image: str = "image1:"
    hdf5: str = "HDF1:"
    write_path: str = Field("/tmp/nxsci/txm/%Y/%m/%d/", description="strftime template, as the IOC sees it")
    read_path: str | None = Field(None, description="the same directory as this machine sees it, if different")
    root: str = "/"

    _check_prefix = field_validator("prefix", "cam", "image", "hdf5")(_check_pv)


class VortexConfig(_Strict):
    """Vortex on an XIA Mercury (dxp IOC): system prefix, MCA record and DXP channel names."""

    prefix: str
    mca: str = "mca1"
    dxp: str = "dxp1:"

    _check_prefix = field_validator("prefix", "mca", "dxp")(_check_pv)


class ShutterConfig(_Strict):
    """Shutter: a command PV (0 close, 1 open; put completes when moved) and a status PV."""

    prefix: str
    command: str = "Cmd"
    status: str = "Sts"

    _check_prefix = field_validator("prefix", "command", "status")(_check_pv)


class DevicesConfig(_Strict):
    """Every device of the beamline."""

    diffuser1: MotorDeviceConfig
    diffuser2: MotorDeviceConfig
    condenser: MotorDeviceConfig
    pinhole: MotorDeviceConfig
    zone_plate: MotorDeviceConfig
    sample_stage: SampleStageConfig
    camera: CameraConfig
    vortex: VortexConfig
    shutter: ShutterConfig


class BeamlineConfig(_Strict):
    """A beamline configuration file."""

    beamline: str = "nxsci"
    devices: DevicesConfig
    simulation: SimulationParams = SimulationParams()


def _format_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        problem = "unknown key"
    elif kind == "missing":
        problem = "missing required field"
    else:
        problem = err["msg"]
        if "input" in err and kind != "value_error":
            problem += f" (got {err['input']!r})"
    more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
    return f"{where}: {problem}{more}"


def load_config(path: str | Path | None = None, *, overrides: dict[str, Any] | None = None) -> BeamlineConfig:
    """Read and validate a beamline configuration file (default: the shipped simulated beamline)."""
    p = Path(path) if path is not None else SIM_CONFIG_PATH
    if not p.is_file():
        raise BeamlineConfigError(f"beamline config {p}: file not found")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise BeamlineConfigError(f"beamline config {p}: not valid YAML{line}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise BeamlineConfigError(f"beamline config {p}: cannot be read ({exc})") from exc
    if not isinstance(data, dict):
        raise BeamlineConfigError(f"beamline config {p}: must be a mapping of keys to values, got "
                                  f"{type(data).__name__}")
    if overrides:
        data = _merge(data, overrides)
    try:
        return BeamlineConfig.model_validate(data)
    except ValidationError as exc:
        raise BeamlineConfigError(f"beamline config {p}: {_format_error(exc)}") from None


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
