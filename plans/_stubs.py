"""Plan stubs: the steps the NxSCI plans are made of. Stubs never open or close runs.

Every acquisition is followed by a checkpoint, so a pause never rewinds past a recorded event; when an
interruption lands between an event and its checkpoint, bluesky re-takes that point with the same
``seq_num`` and the pipeline keeps the last reading of each ``config_index``.

The per-configuration stubs yield bluesky messages directly instead of calling ``bluesky.plan_stubs``:
each of those records the caller's stack trace (an unconsumed-plan warning), about 0.3 ms per call on a
2-core machine, which alone would be a third of the per-configuration overhead budget (5 ms).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bluesky.utils import Msg, MsgGenerator, short_uid

from nxsci.devices import Beamline

from ._movers import ConfigurationMover, StagePosition
from ._readers import IndexSignal, InlineFrames

__all__ = ["set_exposure", "take_darks", "move_to_configuration", "acquire", "move_sample", "move"]


def move(*args: Any) -> MsgGenerator[None]:
    """``bps.mv`` without its per-call overhead: set every ``(obj, value)`` pair in parallel, wait for all."""
    if len(args) % 2:
        raise ValueError("move expects pairs of (movable, value)")
    group = short_uid("move")
    for obj, value in zip(args[::2], args[1::2]):
        yield Msg("set", obj, value, group=group)
    yield Msg("wait", None, group=group)


def acquire(detectors: Sequence[Any], stream: str, extra: Sequence[Any] = ()) -> MsgGenerator[None]:
    """Trigger ``detectors`` together, record one event in ``stream`` with them and ``extra`` (read without
    triggering: motors, signals), then checkpoint."""
    group = short_uid("trigger")
    for obj in detectors:
        yield Msg("trigger", obj, group=group)
    yield Msg("wait", None, group=group)
    yield Msg("create", None, name=stream)
    for obj in (*detectors, *extra):
        yield Msg("read", obj)
    yield Msg("save")
    yield Msg("checkpoint")


def set_exposure(beamline: Beamline, exposure: float) -> MsgGenerator[None]:
    """Camera exposure and Vortex preset real time, both ``exposure`` seconds (set before staging)."""
    yield from move(beamline.camera.cam.acquire_time, exposure, beamline.vortex.count_time, exposure)


def take_darks(beamline: Beamline, frames: InlineFrames, num: int, stream: str = "dark") -> MsgGenerator[None]:
    """``num`` camera frames with the shutter closed (offset + dark current), then reopen the shutter."""
    yield from move(beamline.shutter, "close")
    for _ in range(num):
        yield from acquire([frames], stream)
    yield from move(beamline.shutter, "open")
    yield Msg("checkpoint")


def move_sample(stage: StagePosition, position: str) -> MsgGenerator[None]:
    """Sample stage to a named position (``in`` / ``out``); nothing moves when it is already there."""
    yield from move(stage, position)


def move_to_configuration(mover: ConfigurationMover, configuration: Mapping[str, float], *,
                          stage: StagePosition | None = None, sample: str | None = None,
                          index: IndexSignal | None = None, value: int | None = None) -> MsgGenerator[None]:
    """Every axis of ``configuration`` (and optionally the sample stage to a named position and the
    configuration index) in one parallel move: one ``set`` of ``mover`` when it was built with this
    ``stage`` and ``index``, else one ``set`` each."""
    step: dict[str, Any] = dict(configuration)
    args: list[Any] = []
    if stage is not None and sample is not None:
        if stage is mover.stage:
            step[mover.SAMPLE] = sample
        else:
            args += [stage, sample]
    if index is not None and value is not None:
        if index is mover.index:
            step[mover.INDEX] = value
        else:
            args += [index, value]
    if step:
        args = [mover, step, *args]
    if args:
        yield from move(*args)
