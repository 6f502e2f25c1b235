"""The beamline the plans act on, injected once per session.

Plans are called by name from the queue server with serialisable arguments only, so they cannot take
device objects; the session (IPython, CLI, queue-server startup) registers its beamline here once, and a
test can register another. Looking up a calibrated pattern library needs the data store, which plans must
not import (services -> plans): the session injects that lookup too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

from nxsci.devices import Beamline
from nxsci.recon import NxsciError

__all__ = ["PatternLibrary", "PatternLibraryLookup", "PlanContext", "use_beamline", "current_context",
           "PlanError"]


class PlanError(NxsciError, ValueError):
    """A plan was called with arguments it cannot run with (raised before any run is opened)."""


@dataclasses.dataclass(frozen=True)
class PatternLibrary:
    """A calibrated pattern library: the run that recorded it and its illumination configurations."""

    uid: str
    configurations: list[dict[str, float]]
    exposure: float


#: uid of a ``calibrate_patterns`` run -> that library (raises :class:`PlanError` when it is not one)
PatternLibraryLookup = Callable[[str], PatternLibrary]


@dataclasses.dataclass
class PlanContext:
    """What the plans of this session act on."""

    beamline: Beamline
    pattern_library: PatternLibraryLookup | None = None


_CONTEXT: list[PlanContext] = []


def use_beamline(beamline: Beamline, *, pattern_library: PatternLibraryLookup | None = None) -> PlanContext:
    """Make ``beamline`` the one every plan of this process acts on (replacing any earlier one)."""
    context = PlanContext(beamline=beamline, pattern_library=pattern_library)
    _CONTEXT[:] = [context]
    return context


def current_context() -> PlanContext:
    """The registered context; a clear error when a plan runs before a beamline was registered."""
    if not _CONTEXT:
        raise PlanError("no beamline registered for the plans: call nxsci.plans.use_beamline(beamline) first "
                        "(nxsci shell, nxsci acquire and the queue-server startup do this)")
    return _CONTEXT[0]


def library_from_start(uid: str, start: Mapping[str, object]) -> PatternLibrary:
    """The library recorded by a ``calibrate_patterns`` run, from its start document."""
    if start.get("plan_name") != "calibrate_patterns":
        raise PlanError(f"run {uid} is a '{start.get('plan_name')}' run, not a pattern library "
                        f"(calibrate_patterns)")
    configurations = start.get("configurations")
    if not isinstance(configurations, Sequence) or not configurations:
        raise PlanError(f"pattern library {uid} records no configurations")
    exposure = start.get("exposure")
    if not isinstance(exposure, (int, float)):
        raise PlanError(f"pattern library {uid} records no exposure")
    return PatternLibrary(uid=uid, configurations=[{str(k): float(v) for k, v in dict(c).items()}
                                                   for c in configurations],  # type: ignore[call-overload]
                          exposure=float(exposure))
