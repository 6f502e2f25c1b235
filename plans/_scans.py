"""The NxSCI acquisition plans: a structured-illumination scan and the pattern-library calibration.

``nxsci_scan`` records, for every illumination configuration, the pattern (sample out) and the sample
under it (sample in: TXM frame and Vortex spectrum together). ``calibrate_patterns`` records the patterns
alone (the paper's system calibration); ``nxsci_scan(pattern_library=uid)`` then records only the
sample-in data under the same configurations and reuses those patterns: half the stage moves and frames,
and no dose on the sample while patterns are recorded.

Streams (see :data:`STREAMS`): ``dark`` (shutter closed, at the start), ``pattern``, ``primary``,
``truth_maps`` (simulated beamline), ``baseline``. Every event carries ``config_index``.
"""

# no `from __future__ import annotations`: the queue server reads these plans' annotations as types
import dataclasses
from typing import Any

import bluesky.preprocessors as bpp
from bluesky.utils import MsgGenerator

from nxsci.devices import Beamline

from ._context import PatternLibrary, PlanError, current_context
from ._metadata import (STREAMS, beamline_metadata, mca_calibration, merge_md, resolve_elements, resolve_energy,
                        sample_metadata)
from ._movers import ConfigurationMover, StagePosition
from ._readers import DeviceReadings, IndexSignal, InlineFrames, SimTruth, SimTruthMaps
from ._schedule import DIFFUSER_AXES, check_configurations, draw_schedule, resolve_axis
from ._stubs import acquire, move, move_sample, move_to_configuration, set_exposure, take_darks

__all__ = ["nxsci_scan", "calibrate_patterns", "check_plan_arguments"]

_MOTORS = ("diffuser1", "diffuser2", "condenser", "pinhole", "zone_plate", "sample_stage")
#: what a sample-in event records of the Vortex (its full read() adds ROI sums and duplicate times)
VORTEX_EVENT_ATTRS = ("mca.spectrum", "elapsed_real", "elapsed_live", "dead_time", "dxp.input_count_rate",
                      "dxp.output_count_rate")


def _illumination(bl: Beamline, index: IndexSignal) -> list[Any]:
    """Recorded with every frame: the configuration index and the diffuser readbacks (``diffuser1_x`` ...
    ``diffuser2_y``); readbacks, not the motors' ``read()``, which adds setpoints the start document holds."""
    return [index, *(resolve_axis(bl, axis).user_readback for axis in DIFFUSER_AXES)]


def _sample(bl: Beamline, illumination: list[Any]) -> list[Any]:
    """Recorded with every sample-in frame: ``illumination``, the sample-stage readbacks and, simulated, the
    true displacement and counts."""
    stage = bl.sample_stage
    parts: list[Any] = [*illumination, stage.x.user_readback, stage.y.user_readback, stage.z.user_readback]
    if bl.model is not None:
        parts.append(SimTruth(bl.model))
    return parts


def _check_common(exposure: float, num_darks: int) -> None:
    if not (isinstance(exposure, (int, float)) and 0 < float(exposure) < 3600):
        raise PlanError(f"exposure must be a number of seconds in (0, 3600), got {exposure!r}")
    if not isinstance(num_darks, int) or num_darks < 1:
        raise PlanError(f"num_darks must be a positive integer (dark frames are subtracted), got {num_darks!r}")


def _schedule(bl: Beamline, num_patterns: int | None, configurations: list[dict[str, float]] | None,
              seed: int, travel_mm: float) -> list[dict[str, float]]:
    if configurations is not None:
        checked = check_configurations(bl, configurations)
        if num_patterns is not None and num_patterns != len(checked):
            raise PlanError(f"num_patterns={num_patterns} but {len(checked)} configurations were given")
        return checked
    if num_patterns is None:
        raise PlanError("give num_patterns (a drawn diffuser schedule) or configurations")
    return check_configurations(bl, draw_schedule(num_patterns, seed=seed, travel_mm=travel_mm))


def _library(bl_lookup: Any, uid: str, num_patterns: int | None,
             configurations: list[dict[str, float]] | None) -> PatternLibrary:
    if bl_lookup is None:
        raise PlanError("pattern_library: this session has no pattern-library lookup (it needs the run "
                        "catalog; nxsci shell, nxsci acquire and the queue server provide it)")
    library: PatternLibrary = bl_lookup(uid)
    if num_patterns is not None and num_patterns != len(library.configurations):
        raise PlanError(f"num_patterns={num_patterns} but pattern library {uid} has "
                        f"{len(library.configurations)} configurations")
    if configurations is not None:
        raise PlanError("pattern_library fixes the configurations: do not pass configurations as well")
    return library


@dataclasses.dataclass(frozen=True)
class _Setup:
    """What a scan's arguments resolve to, every check passed, before any message is yielded."""

    schedule: list[dict[str, float]]
    optics: dict[str, float]
    library: PatternLibrary | None = None
    sample: dict[str, Any] | None = None
    elements: list[str] | None = None
    energy_keV: float | None = None


def _setup_scan(num_patterns: int | None = None, *, configurations: list[dict[str, float]] | None = None,
                exposure: float = 0.5, num_darks: int = 4, seed: int = 0, travel_mm: float = 1.0,
                optics: dict[str, float] | None = None, pattern_library: str | None = None,
                sample: str | None = None, elements: list[str] | None = None, energy_keV: float | None = None
                ) -> _Setup:
    context = current_context()
    bl = context.beamline
    _check_common(exposure, num_darks)
    library = None
    if pattern_library is not None:
        library = _library(context.pattern_library, str(pattern_library), num_patterns, configurations)
        schedule = check_configurations(bl, library.configurations)
    else:
        schedule = _schedule(bl, num_patterns, configurations, seed, travel_mm)
    sample_md = sample_metadata(bl, sample)
    energy = resolve_energy(bl, energy_keV)
    return _Setup(schedule=schedule, optics=check_configurations(bl, [optics])[0] if optics else {},
                  library=library, sample=sample_md, elements=resolve_elements(bl, elements, energy),
                  energy_keV=energy)


def _setup_calibration(num_patterns: int | None = None, *, configurations: list[dict[str, float]] | None = None,
                       exposure: float = 0.5, num_darks: int = 4, seed: int = 0, travel_mm: float = 1.0,
                       optics: dict[str, float] | None = None) -> _Setup:
    bl = current_context().beamline
    _check_common(exposure, num_darks)
    return _Setup(schedule=_schedule(bl, num_patterns, configurations, seed, travel_mm),
                  optics=check_configurations(bl, [optics])[0] if optics else {})


def check_plan_arguments(plan_name: str, *args: Any, **kwargs: Any) -> None:
    """Every check ``plan_name`` (``nxsci_scan`` or ``calibrate_patterns``) makes before it opens a run,
    without running it: a command line or a service can refuse bad arguments (:class:`PlanError`) before a
    RunEngine starts, so nothing is logged as an aborted run."""
    setups = {"nxsci_scan": _setup_scan, "calibrate_patterns": _setup_calibration}
    if plan_name not in setups:
        raise PlanError(f"unknown plan '{plan_name}': checks exist for {', '.join(setups)}")
    kwargs.pop("md", None)
    try:
        setups[plan_name](*args, **kwargs)
    except TypeError as exc:  # an unknown keyword or a missing argument
        raise PlanError(f"{plan_name}: {exc}") from None


def _common_md(bl: Beamline, plan_name: str, plan_args: dict[str, Any], setup: _Setup, exposure: float,
               calibration: dict[str, float]) -> dict[str, Any]:
    return {
        "plan_name": plan_name,
        "plan_args": plan_args,
        "detectors": ["camera", "vortex"],
        "motors": ["diffuser1", "diffuser2"],
        "sample": setup.sample,
        "energy_keV": setup.energy_keV,
        "elements": setup.elements,
        "exposure": float(exposure),
        "configurations": setup.schedule,
        "num_points": len(setup.schedule),
        "num_intervals": len(setup.schedule) - 1,
        "mca": calibration,
        "beamline": beamline_metadata(bl),
        "streams": STREAMS,
        "nxsci_run": True,
    }


def nxsci_scan(num_patterns: int | None = None, *, configurations: list[dict[str, float]] | None = None,
               exposure: float = 0.5, num_darks: int = 4, seed: int = 0, travel_mm: float = 1.0,
               optics: dict[str, float] | None = None, pattern_library: str | None = None,
               sample: str | None = None, elements: list[str] | None = None, energy_keV: float | None = None,
               md: dict[str, Any] | None = None) -> MsgGenerator[None]:
    """Structured-illumination scan: for each illumination configuration, the pattern (sample out) and the
    sample under it (sample in: TXM frame and Vortex spectrum acquired together).

    Parameters
    ----------
    num_patterns
        Draw this many configurations (both diffusers at random positions; ``seed``, ``travel_mm``).
    configurations
        Explicit configurations instead: a list of ``{"device.axis": position}`` (diffusers, condenser,
        pinhole, zone plate), e.g. ``[{"diffuser1.x": 0.1, "diffuser2.y": -0.2}, ...]``.
    exposure
        Camera exposure and Vortex preset real time per acquisition, seconds.
    num_darks
        Dark frames (shutter closed) recorded at the start.
    optics
        Condenser / pinhole / zone-plate positions set once before the darks, e.g. ``{"zone_plate.z": 0.01}``.
    pattern_library
        uid of a ``calibrate_patterns`` run: record only sample-in data under its configurations.
    sample, elements, energy_keV
        What is measured; on the simulated beamline they default to the simulated sample and energy.
    md
        Extra start-document metadata.
    """
    plan_args = {"num_patterns": num_patterns, "configurations": configurations, "exposure": exposure,
                 "num_darks": num_darks, "seed": seed, "travel_mm": travel_mm, "optics": optics,
                 "pattern_library": pattern_library, "sample": sample, "elements": elements,
                 "energy_keV": energy_keV}
    setup = _setup_scan(**plan_args)
    bl = current_context().beamline
    library, schedule, optics_config = setup.library, setup.schedule, setup.optics
    calibration = yield from mca_calibration(bl)
    start = merge_md(_common_md(bl, "nxsci_scan", plan_args, setup, exposure, calibration), {
        "pattern_library": library.uid if library is not None else None,
        "pattern_library_exposure": library.exposure if library is not None else None,
        "optics": optics_config,
        "hints": {"dimensions": [[["config_index"], "primary"]]},
    })
    start = merge_md(start, md)

    frames = InlineFrames(bl.camera)
    index = IndexSignal("config_index")
    stage = StagePosition(bl.sample_stage)
    mover = ConfigurationMover(bl, stage=stage, index=index)
    illumination = _illumination(bl, index)
    # one object read per camera frame: the frame and what it was taken under (see InlineFrames)
    pattern_frames = frames.with_readings(illumination)
    sample_in_detectors: list[Any] = [frames.with_readings(_sample(bl, illumination)),
                                      DeviceReadings(bl.vortex, VORTEX_EVENT_ATTRS)]

    @bpp.baseline_decorator([bl.devices[name] for name in _MOTORS] + [bl.shutter])
    @bpp.stage_decorator([frames, bl.vortex])
    @bpp.run_decorator(md=start)
    def body() -> MsgGenerator[None]:
        if bl.model is not None:
            yield from acquire([], "truth_maps", [SimTruthMaps(bl.model)])
        yield from take_darks(bl, frames, num_darks)
        for i, configuration in enumerate(schedule):
            # snake order: the stage stays where the previous configuration left it, so it travels once
            # per configuration; each block still commands its position (consistent after a pause)
            order = ("in",) if library is not None else (("out", "in") if i % 2 == 0 else ("in", "out"))
            for k, position in enumerate(order):
                if k == 0:
                    yield from move_to_configuration(mover, configuration, stage=stage, sample=position,
                                                     index=index, value=i)
                else:
                    yield from move_sample(stage, position)
                if position == "out":
                    yield from acquire([pattern_frames], "pattern")
                else:
                    yield from acquire(sample_in_detectors, "primary")

    def prepare() -> MsgGenerator[None]:
        if optics_config:
            yield from move_to_configuration(mover, optics_config)
        yield from set_exposure(bl, float(exposure))

    yield from prepare()
    yield from bpp.finalize_wrapper(body(), move(bl.shutter, "close"))


def calibrate_patterns(num_patterns: int | None = None, *, configurations: list[dict[str, float]] | None = None,
                       exposure: float = 0.5, num_darks: int = 4, seed: int = 0, travel_mm: float = 1.0,
                       optics: dict[str, float] | None = None, md: dict[str, Any] | None = None
                       ) -> MsgGenerator[None]:
    """System calibration: the illumination patterns alone (sample out), to be reused by
    ``nxsci_scan(pattern_library=<this run's uid>)``. Parameters as :func:`nxsci_scan`."""
    plan_args = {"num_patterns": num_patterns, "configurations": configurations, "exposure": exposure,
                 "num_darks": num_darks, "seed": seed, "travel_mm": travel_mm, "optics": optics}
    setup = _setup_calibration(**plan_args)
    bl = current_context().beamline
    schedule, optics_config = setup.schedule, setup.optics
    calibration = yield from mca_calibration(bl)
    base = {
        "plan_name": "calibrate_patterns", "plan_args": plan_args, "detectors": ["camera"],
        "motors": ["diffuser1", "diffuser2"], "exposure": float(exposure), "configurations": schedule,
        "num_points": len(schedule), "num_intervals": len(schedule) - 1, "optics": optics_config,
        "mca": calibration, "beamline": beamline_metadata(bl), "streams": {k: STREAMS[k] for k in
                                                                           ("dark", "pattern", "baseline")},
        "hints": {"dimensions": [[["config_index"], "pattern"]]}, "nxsci_run": True,
    }
    start = merge_md(base, md)
    frames = InlineFrames(bl.camera)
    index = IndexSignal("config_index")
    stage = StagePosition(bl.sample_stage)
    mover = ConfigurationMover(bl, stage=stage, index=index)
    pattern_frames = frames.with_readings(_illumination(bl, index))

    @bpp.baseline_decorator([bl.devices[name] for name in _MOTORS] + [bl.shutter])
    @bpp.stage_decorator([frames])
    @bpp.run_decorator(md=start)
    def body() -> MsgGenerator[None]:
        yield from take_darks(bl, frames, num_darks)
        for i, configuration in enumerate(schedule):
            yield from move_to_configuration(mover, configuration, stage=stage, sample="out", index=index, value=i)
            yield from acquire([pattern_frames], "pattern")

    if optics_config:
        yield from move_to_configuration(mover, optics_config)
    yield from set_exposure(bl, float(exposure))
    yield from bpp.finalize_wrapper(body(), move(bl.shutter, "close"))
