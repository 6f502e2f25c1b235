"""The RunEngine the NxSCI sessions run plans with: bluesky's, with each stream's events checked once in full.

bluesky's bundler composes every event with event-model's ``ComposeEvent``, which validates the event
against the event jsonschema and then checks its keys against the descriptor. The schema part checks only
the envelope (``uid``, ``time``, ``seq_num``, ``descriptor``, ``filled``: values ``ComposeEvent`` itself
fills in), yet costs ~0.5 ms per event on a 2-core machine: an ``unevaluatedProperties`` check formats the
``repr`` of every array in the event for an error message it then discards. Two events per illumination
configuration make that a fifth of the 5 ms per-configuration budget.

:class:`RunEngine` validates the *first* event of each stream against the schema as before, and every
event's data, timestamps and ``filled`` keys against its descriptor (the check that catches a device whose
``read()`` disagrees with its ``describe()``), with event-model's own error message. Start, descriptor and
stop documents are validated in full.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bluesky import RunEngine as _BlueskyRunEngine
from bluesky.bundlers import RunBundler as _BlueskyRunBundler
from bluesky.utils import Msg
from event_model import ComposeDescriptorBundle, ComposeEvent
from event_model.documents.event import Event

__all__ = ["RunEngine"]


@dataclasses.dataclass
class _ComposeCheckedEvent(ComposeEvent):
    """``ComposeEvent`` that runs the event schema on the stream's first event only; the descriptor-key
    checks run on every event (a mismatch falls back to event-model's full validation and its error)."""

    schema_checked: bool = False
    #: the descriptor has ``STREAM:`` keys, which event-model exempts from the key match: its own check decides
    streamed: bool = dataclasses.field(init=False, default=False)

    def __post_init__(self) -> None:
        self.streamed = any(key.get("external") == "STREAM:" for key in self.descriptor["data_keys"].values())

    def __call__(self, data: dict, timestamps: dict, seq_num: int | None = None,
                 filled: dict[str, bool | str] | None = None, uid: str | None = None, time: float | None = None,
                 validate: bool = True) -> Event:
        if validate and (not self.schema_checked or not self._keys_match(data, timestamps, filled)):
            doc = super().__call__(data, timestamps, seq_num, filled, uid, time, validate=True)
            self.schema_checked = True
            return doc
        return super().__call__(data, timestamps, seq_num, filled, uid, time, validate=False)

    def _keys_match(self, data: dict, timestamps: dict, filled: dict[str, bool | str] | None) -> bool:
        keys = self.descriptor["data_keys"].keys()
        if self.streamed:
            return False
        return (data.keys() == keys and timestamps.keys() == keys and isinstance(data, dict)
                and (not filled or (filled.keys() <= keys and all(isinstance(v, (bool, str)) for v in filled.values()))))


class _RunBundler(_BlueskyRunBundler):
    """bluesky's bundler whose descriptors compose events with :class:`_ComposeCheckedEvent`."""

    async def open_run(self, msg: Msg) -> str:
        uid = await super().open_run(msg)
        compose_descriptor = self._compose_descriptor

        def compose(*args: Any, **kwargs: Any) -> ComposeDescriptorBundle:
            bundle = compose_descriptor(*args, **kwargs)
            event = bundle.compose_event
            return dataclasses.replace(bundle, compose_event=_ComposeCheckedEvent(event.descriptor,
                                                                                  event.event_counters))

        self._compose_descriptor = compose
        return uid


class RunEngine(_BlueskyRunEngine):
    """bluesky's ``RunEngine``, validating each stream's first event against the event schema and every
    event's keys against its descriptor (see the module docstring); otherwise unchanged."""

    RunBundler = _RunBundler
