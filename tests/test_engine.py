"""nxsci's RunEngine: the same documents as bluesky's, every event's keys checked against its descriptor, the
event schema run once per stream."""

from __future__ import annotations

import time
from typing import Any

import bluesky
import pytest
from bluesky.plans import count
from event_model import DocumentNames, EventModelValidationError, schema_validators
from ophyd.sim import SynAxis, SynGauss

from nxsci.plans import RunEngine

Docs = list[tuple[str, dict[str, Any]]]


class _Drifting:
    """A readable whose ``read()`` loses a key (``drift``) after ``good`` reads: a device whose reading
    disagrees with its description."""

    def __init__(self, good: int) -> None:
        self.name, self.parent, self.good, self.reads = "drifting", None, good, 0

    def read(self) -> dict[str, dict[str, Any]]:
        self.reads += 1
        out = {"drifting_a": {"value": 1.0, "timestamp": time.time()}}
        if self.reads <= self.good:
            out["drifting_b"] = {"value": 2.0, "timestamp": time.time()}
        return out

    def describe(self) -> dict[str, dict[str, Any]]:
        return {k: {"source": "test", "dtype": "number", "shape": []} for k in ("drifting_a", "drifting_b")}

    def read_configuration(self) -> dict[str, Any]:
        return {}

    def describe_configuration(self) -> dict[str, Any]:
        return {}


def _collect(RE: Any, plan: Any) -> Docs:
    docs: Docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE(plan)
    return docs


def _comparable(docs: Docs) -> list[tuple[str, Any]]:
    """Documents without what differs between two runs of the same plan (uids, times)."""
    out = []
    for name, doc in docs:
        if name == "event":
            out.append((name, (doc["seq_num"], doc["data"], sorted(doc["timestamps"]), doc["filled"])))
        elif name == "descriptor":
            out.append((name, (doc["name"], doc["data_keys"], doc["object_keys"])))
        else:
            out.append((name, sorted(doc)))
    return out


def test_same_documents_as_bluesky() -> None:
    motor = SynAxis(name="motor")
    det = SynGauss("det", motor, "motor", center=0, Imax=1, sigma=1, noise="none")
    plan = lambda: bluesky.plans.scan([det], motor, -1, 1, 5)  # noqa: E731
    ours = _collect(RunEngine({}, call_returns_result=False), plan())
    theirs = _collect(bluesky.RunEngine({}, call_returns_result=False), plan())
    assert _comparable(ours) == _comparable(theirs)
    assert [d["seq_num"] for n, d in ours if n == "event"] == [1, 2, 3, 4, 5]
    for name, doc in ours:  # every document still passes event-model's schema
        schema_validators[DocumentNames(name)].validate(doc)


def test_event_schema_once_per_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[dict[str, Any]] = []
    validator = schema_validators[DocumentNames.event]

    class Counting:
        def validate(self, doc: dict[str, Any]) -> None:
            checked.append(doc)
            validator.validate(doc)

    monkeypatch.setitem(schema_validators, DocumentNames.event, Counting())
    motor = SynAxis(name="motor")
    docs = _collect(RunEngine({}, call_returns_result=False), bluesky.plans.count([motor], num=6))
    events = [d for n, d in docs if n == "event"]
    assert len(events) == 6
    assert [d["uid"] for d in checked] == [events[0]["uid"]]


@pytest.mark.parametrize("good", [0, 3])
def test_reading_that_disagrees_with_its_description_is_refused(good: int) -> None:
    """Caught on the first event (schema and keys) and on any later one (keys), with event-model's error."""
    device = _Drifting(good)
    docs: Docs = []
    RE = RunEngine({}, call_returns_result=False)
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    with pytest.raises(EventModelValidationError, match="keys must match"):
        RE(count([device], num=6))
    assert len([d for n, d in docs if n == "event"]) == good
    assert [d["exit_status"] for n, d in docs if n == "stop"] == ["fail"]


def test_streamed_keys_keep_event_models_rule() -> None:
    """Descriptors with ``STREAM:`` keys take event-model's full check (it exempts those keys)."""
    from nxsci.plans._engine import _ComposeCheckedEvent

    descriptor = {"uid": "d", "name": "primary", "data_keys": {
        "a": {"source": "x", "dtype": "number", "shape": []},
        "s": {"source": "x", "dtype": "number", "shape": [], "external": "STREAM:"}}}
    compose = _ComposeCheckedEvent(descriptor, {"primary": 1})  # type: ignore[arg-type]
    for _ in range(3):
        doc = compose(data={"a": 1.0}, timestamps={"a": 0.0})
        assert doc["data"] == {"a": 1.0}
