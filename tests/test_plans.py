"""Bluesky plans on the simulated beamline: documents, metadata, streams, validation, pause/resume/abort."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bluesky.preprocessors as bpp
import numpy as np
import pytest
from nxsci.plans import RunEngine
from bluesky.utils import RunEngineInterrupted
from ophyd.device import Staged

from _acquisition_harness import fast_config, pause_after
from nxsci.devices import Beamline, load_config, make_beamline
from nxsci.plans import (STREAMS, ConfigurationMover, InlineFrames, StagePosition, PatternLibrary, PlanError, acquire, calibrate_patterns,
                         draw_schedule, library_from_start, move_to_configuration, nxsci_scan, set_exposure,
                         take_darks, use_beamline, xrf_point_scan)

Docs = list[tuple[str, dict[str, Any]]]
LIBRARIES: dict[str, PatternLibrary] = {}


def _lookup(uid: str) -> PatternLibrary:
    if uid not in LIBRARIES:
        raise PlanError(f"no pattern library {uid}")
    return LIBRARIES[uid]


@pytest.fixture(scope="module")
def beamline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Beamline]:
    bl = make_beamline("sim", load_config(fast_config(tmp_path_factory.mktemp("beamline"))))
    use_beamline(bl, pattern_library=_lookup)
    yield bl
    bl.close()


def _run(plan: Any, RE: RunEngine | None = None) -> Docs:
    docs: Docs = []
    RE = RE or RunEngine({}, call_returns_result=False)
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE(plan)
    return docs


def _one(docs: Docs, name: str) -> dict[str, Any]:
    (doc,) = [d for n, d in docs if n == name]
    return doc


def _events(docs: Docs, stream: str) -> list[dict[str, Any]]:
    uids = {d["uid"] for n, d in docs if n == "descriptor" and d["name"] == stream}
    return [d for n, d in docs if n == "event" and d["descriptor"] in uids]


def _descriptor(docs: Docs, stream: str) -> dict[str, Any]:
    return next(d for n, d in docs if n == "descriptor" and d["name"] == stream)


def test_nxsci_scan_records_patterns_sample_in_darks_and_truth(beamline: Beamline) -> None:
    docs = _run(nxsci_scan(num_patterns=4, exposure=0.5, num_darks=3, seed=7, sample="test cathode"))
    start, stop = _one(docs, "start"), _one(docs, "stop")
    assert stop["exit_status"] == "success"
    assert stop["num_events"] == {"truth_maps": 1, "dark": 3, "pattern": 4, "primary": 4, "baseline": 2}
    # rich start metadata
    assert start["plan_name"] == "nxsci_scan" and start["sample"]["name"] == "test cathode"
    assert start["energy_keV"] == 9.0 and start["elements"] == ["Mn", "Co", "Ni"] and start["exposure"] == 0.5
    assert start["configurations"] == draw_schedule(4, seed=7) and start["num_points"] == 4
    assert start["mca"] == {"zero_keV": 0.0, "gain_keV": 0.01, "channels": 2048}
    assert start["beamline"]["mode"] == "sim" and start["beamline"]["config"]["devices"]["camera"]["prefix"]
    assert set(start["streams"]) == set(STREAMS)
    assert start["plan_args"]["seed"] == 7
    # frames and spectra carried in the events, with their dtypes declared
    primary = _descriptor(docs, "primary")["data_keys"]
    assert primary["camera_image"]["dtype_numpy"] == "<u2" and primary["camera_image"]["shape"] == [32, 32]
    assert primary["vortex_mca_spectrum"]["dtype_numpy"] == "<i4" and primary["vortex_mca_spectrum"]["shape"] == [2048]
    assert {"truth_shift", "truth_counts", "config_index", "diffuser1_x", "sample_stage_x"} <= set(primary)
    # what the events record: what services read (frames, spectra, real/live time, diffuser readbacks, truth)
    # and a few cheap per-acquisition figures; no setpoints, ROI sums or motor configuration per event
    assert set(primary) == {"camera_image", "vortex_mca_spectrum", "vortex_elapsed_real", "vortex_elapsed_live",
                            "vortex_dead_time", "vortex_dxp_input_count_rate", "vortex_dxp_output_count_rate",
                            "config_index", "diffuser1_x", "diffuser1_y", "diffuser2_x", "diffuser2_y",
                            "sample_stage_x", "sample_stage_y", "sample_stage_z", "truth_shift", "truth_counts"}
    assert set(_descriptor(docs, "pattern")["data_keys"]) == {"camera_image", "config_index", "diffuser1_x",
                                                              "diffuser1_y", "diffuser2_x", "diffuser2_y"}
    # one object read per frame: the camera with what the frame was taken under, the Vortex's chosen signals
    assert set(_descriptor(docs, "pattern")["object_keys"]) == {"camera"}
    assert set(_descriptor(docs, "primary")["object_keys"]) == {"camera", "vortex"}
    assert "sample_stage_x" in _descriptor(docs, "primary")["object_keys"]["camera"]
    configuration = _descriptor(docs, "primary")["configuration"]
    assert configuration["vortex"]["data"]["vortex_mca_calibration_slope"] == pytest.approx(0.01)
    assert "camera_cam_acquire_time" in configuration["camera"]["data"]
    assert not any(n == "datum" for n, _ in docs)  # frames are in the events, not referenced in the IOC's file
    pattern, sample_in, darks = _events(docs, "pattern"), _events(docs, "primary"), _events(docs, "dark")
    assert [e["data"]["config_index"] for e in pattern] == [0, 1, 2, 3]
    assert [e["data"]["config_index"] for e in sample_in] == [0, 1, 2, 3]
    for event, config in zip(sample_in, start["configurations"]):
        assert event["data"]["diffuser1_x"] == pytest.approx(config["diffuser1.x"])
        assert event["data"]["diffuser2_y"] == pytest.approx(config["diffuser2.y"])
        assert event["data"]["camera_image"].dtype == np.uint16
        assert event["data"]["vortex_mca_spectrum"].sum() > 1000
        assert np.all(event["data"]["truth_counts"] > 0) and np.abs(event["data"]["truth_shift"]).max() < 4
        assert event["data"]["sample_stage_x"] == pytest.approx(0.0)  # the "in" position
        assert 0 < event["data"]["vortex_elapsed_live"] <= event["data"]["vortex_elapsed_real"] == pytest.approx(0.5)
    # darks: shutter closed -> offset + dark current only; patterns are bright, the sample absorbs
    offset = beamline.model.params.camera.offset
    dark_mean = np.mean([e["data"]["camera_image"].mean() for e in darks])
    assert dark_mean == pytest.approx(offset + 20 * 0.5, abs=2)
    assert pattern[0]["data"]["camera_image"].mean() > 10 * dark_mean
    assert sample_in[0]["data"]["camera_image"].mean() < pattern[0]["data"]["camera_image"].mean()
    truth_maps = _events(docs, "truth_maps")[0]["data"]
    assert truth_maps["truth_maps"].shape == (3, 32, 32) and truth_maps["truth_signal_scale"].shape == (3,)
    assert not beamline.shutter.is_open  # closed at the end
    assert beamline.camera._staged == Staged.no and beamline.vortex._staged == Staged.no


def test_snake_order_moves_the_stage_once_per_configuration(beamline: Beamline) -> None:
    docs = _run(nxsci_scan(num_patterns=3))
    order = [d["name"] for n, d in docs if n == "descriptor"]
    streams = {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}
    sequence = [streams[d["descriptor"]] for n, d in docs if n == "event" and streams[d["descriptor"]] in
                ("pattern", "primary")]
    assert sequence == ["pattern", "primary", "primary", "pattern", "pattern", "primary"]
    assert order.count("pattern") == 1
    # the stage stayed in between configurations 0 and 1: both sample-in frames saw the same placement
    shifts = [tuple(e["data"]["truth_shift"]) for e in _events(docs, "primary")]
    assert shifts[0] == shifts[1] and shifts[1] != shifts[2]


def test_stubs_never_open_runs(beamline: Beamline) -> None:
    frames = InlineFrames(beamline.camera)
    stubs = [take_darks(beamline, frames, 2),
             move_to_configuration(ConfigurationMover(beamline), {"diffuser1.x": 0.1},
                                   stage=StagePosition(beamline.sample_stage), sample="in"),
             acquire([frames], "primary"), set_exposure(beamline, 0.1)]
    for stub in stubs:
        commands = {msg.command for msg in stub}
        assert not commands & {"open_run", "close_run"}, commands
    # and inside a run someone else opened, they add events to it
    docs = _run(bpp.stage_wrapper(bpp.run_wrapper(take_darks(beamline, frames, 2)), [frames]))
    assert len([d for n, d in docs if n == "start"]) == 1 and _one(docs, "stop")["num_events"] == {"dark": 2}


@pytest.mark.parametrize("kwargs, message", [
    ({"num_patterns": 0}, "positive integer"),
    ({}, "give num_patterns"),
    ({"num_patterns": 2, "configurations": [{"diffuser1.x": 0.0}]}, "num_patterns=2 but 1"),
    ({"configurations": [{"diffuser1.q": 0.0}]}, "has no axis 'q'"),
    ({"configurations": [{"sample_stage.x": 0.0}]}, "configurations may move"),
    ({"configurations": [{"diffuser1.x": 1e3}]}, "outside its limits"),
    ({"num_patterns": 2, "exposure": -1.0}, "exposure"),
    ({"num_patterns": 2, "num_darks": 0}, "num_darks"),
    ({"num_patterns": 2, "md": {"exposure": 3}}, "recorded by the plan itself"),
    ({"pattern_library": "nope"}, "no pattern library"),
])
def test_bad_arguments_fail_before_any_run_opens(beamline: Beamline, kwargs: dict[str, Any], message: str) -> None:
    docs: Docs = []
    RE = RunEngine({}, call_returns_result=False)
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    with pytest.raises(PlanError, match=message):
        RE(nxsci_scan(**kwargs))
    assert docs == []


def test_pattern_library_scan_records_only_the_sample(beamline: Beamline) -> None:
    library = _run(calibrate_patterns(3, seed=3, exposure=0.25))
    start = _one(library, "start")
    assert _one(library, "stop")["num_events"] == {"dark": 4, "pattern": 3, "baseline": 2}
    LIBRARIES[start["uid"]] = library_from_start(start["uid"], start)
    docs = _run(nxsci_scan(pattern_library=start["uid"], exposure=0.5))
    scan = _one(docs, "start")
    assert _one(docs, "stop")["num_events"] == {"truth_maps": 1, "dark": 4, "primary": 3, "baseline": 2}
    assert scan["pattern_library"] == start["uid"] and scan["pattern_library_exposure"] == 0.25
    assert scan["configurations"] == start["configurations"] == draw_schedule(3, seed=3)
    with pytest.raises(PlanError, match="not a pattern library"):
        library_from_start(scan["uid"], scan)
    with pytest.raises(PlanError, match="do not pass configurations"):
        RunEngine({})(nxsci_scan(pattern_library=start["uid"], configurations=[{"diffuser1.x": 0.0}]))


def test_pause_then_resume_finishes_one_consistent_run(beamline: Beamline) -> None:
    docs: Docs = []
    RE = RunEngine({}, call_returns_result=False)
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    with pytest.raises(RunEngineInterrupted):
        RE(pause_after(nxsci_scan(num_patterns=4), saves=8))  # baseline, truth_maps, 4 darks, pattern 0, primary 0
    assert RE.state == "paused"
    RE.resume()
    stop = _one(docs, "stop")
    assert stop["exit_status"] == "success" and len([d for n, d in docs if n == "start"]) == 1
    primary, pattern = _events(docs, "primary"), _events(docs, "pattern")
    # an immediate pause re-takes the interrupted point: same index, same seq_num, later event
    assert sorted({e["data"]["config_index"] for e in primary}) == [0, 1, 2, 3]
    assert sorted({e["data"]["config_index"] for e in pattern}) == [0, 1, 2, 3]
    last = {e["data"]["config_index"]: e for e in primary}
    assert [last[i]["seq_num"] for i in range(4)] == [1, 2, 3, 4]
    assert not beamline.shutter.is_open and beamline.camera._staged == Staged.no


def test_abort_closes_the_run_with_its_exit_status(beamline: Beamline) -> None:
    docs: Docs = []
    RE = RunEngine({}, call_returns_result=False)
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    with pytest.raises(RunEngineInterrupted):
        RE(pause_after(nxsci_scan(num_patterns=6), saves=9))  # baseline, truth_maps, 4 darks, 1.5 configurations
    RE.abort(reason="operator stopped the scan")
    stop = _one(docs, "stop")
    assert stop["exit_status"] == "abort"
    assert {e["data"]["config_index"] for e in _events(docs, "primary")} == {0, 1}
    assert RE.state == "idle" and not beamline.shutter.is_open
    assert beamline.camera._staged == Staged.no and beamline.vortex._staged == Staged.no


def test_xrf_point_scan_rasters_a_pencil_beam(beamline: Beamline) -> None:
    docs = _run(xrf_point_scan(4, dwell=0.5))
    start = _one(docs, "start")
    assert _one(docs, "stop")["num_events"] == {"truth_maps": 1, "primary": 16, "baseline": 2}
    assert start["grid"]["shape"] == [4, 4] and start["grid"]["step_px"] == pytest.approx(8.0)
    events = _events(docs, "primary")
    assert [(e["data"]["grid_row"], e["data"]["grid_column"]) for e in events[:5]] == [
        (0, 0), (0, 1), (0, 2), (0, 3), (1, 0)]
    spectrum = events[5]["data"]["pencil_spectrum"]
    assert spectrum.dtype == np.int32 and spectrum.shape == (2048,)
    assert _descriptor(docs, "primary")["data_keys"]["pencil_spectrum"]["dtype_numpy"] == "<i4"
    counts = np.array([e["data"]["pencil_truth_counts"] for e in events])
    assert counts.max() > 100 and counts.min() >= 0  # particles and empty space both sampled


def test_plan_parameters_are_annotated_and_serialisable() -> None:
    for plan in (nxsci_scan, calibrate_patterns, xrf_point_scan):
        assert inspect.isgeneratorfunction(plan)
        hints = typing.get_type_hints(plan)
        for name, parameter in inspect.signature(plan).parameters.items():
            assert name in hints, f"{plan.__name__}({name}) is not annotated"
            assert not isinstance(parameter.annotation, str), f"{plan.__name__}({name}): string annotation"
            if parameter.default is not inspect.Parameter.empty:
                assert ast.literal_eval(repr(parameter.default)) == parameter.default


def test_plans_do_not_import_tiled_or_services() -> None:
    code = "import sys, nxsci.plans; print([m for m in ('tiled', 'nxsci.services', 'fastapi') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


def test_plans_without_a_beamline_say_how_to_register_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from nxsci.plans import _context

    monkeypatch.setattr(_context, "_CONTEXT", [])
    with pytest.raises(PlanError, match="use_beamline"):
        RunEngine({})(nxsci_scan(num_patterns=2))


def test_stage_position_moves_only_the_axes_that_are_not_there(beamline: Beamline) -> None:
    """``in`` and ``out`` differ in x: only x is commanded; an axis an operator moved (during a pause, say)
    is commanded back."""
    stage = StagePosition(beamline.sample_stage)
    stage.set("in").wait(10)
    assert stage.moves("in") == []
    assert [motor.name for motor, _ in stage.moves("out")] == ["sample_stage_x"]
    beamline.sample_stage.y.set(0.25).wait(10)
    assert [(motor.name, target) for motor, target in stage.moves("in")] == [("sample_stage_y", 0.0)]
    stage.set("in").wait(10)
    assert beamline.sample_stage.where() == "in"
