"""Beamline configuration, device classes, and the simulated (no-EPICS) beamline."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml

from nxsci.devices import (DEVICE_NAMES, SIM_CONFIG_PATH, Beamline, BeamlineConfig, BeamlineConfigError,
                           SampleStage, load_config, make_beamline)
from nxsci.devices.sim._pvs import walk_device_pvs
from nxsci.devices.sim._records import device_classes


def _write(tmp_path: Path, data: object, name: str = "bl.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def _sim_config(tmp_path: Path, **simulation: object) -> BeamlineConfig:
    return load_config(overrides={"devices": {"camera": {"write_path": str(tmp_path / "txm") + "/"}},
                                  "simulation": {"timing": {"move_time_s": 0.05, "acquire_time_scale": 1.0},
                                                 "image_size": 32, **simulation}})


# -- configuration --------------------------------------------------------------------------------------


def test_shipped_config_validates_and_names_every_device() -> None:
    cfg = load_config(SIM_CONFIG_PATH)
    assert set(type(cfg.devices).model_fields) == set(DEVICE_NAMES)
    assert cfg.devices.sample_stage.positions["out"]["x"] == 1.0
    assert cfg.simulation.image_size == 64


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["devices"]["camera"].update(prefx="X:"), r"devices\.camera\.prefx: unknown key"),
    (lambda d: d["devices"].pop("vortex"), r"devices\.vortex: missing required field"),
    (lambda d: d["simulation"].update(image_size="big"), r"simulation\.image_size: .*integer.*'big'"),
    (lambda d: d["devices"]["shutter"].update(prefix="BAD PV"), r"devices\.shutter\.prefix: .*valid EPICS PV"),
    (lambda d: d["devices"]["sample_stage"].update(positions={"in": {"x": 0}}), r"must include 'in' and 'out'"),
    (lambda d: d.update(extra=1), r"extra: unknown key"),
])
def test_bad_config_files_are_rejected_with_one_clear_line(tmp_path: Path, mutate: Any, message: str) -> None:
    data = yaml.safe_load(SIM_CONFIG_PATH.read_text())
    mutate(data)
    with pytest.raises(BeamlineConfigError, match=message) as info:
        load_config(_write(tmp_path, data))
    assert "\n" not in str(info.value) and str(tmp_path) in str(info.value)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(BeamlineConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(BeamlineConfigError, match=r"not valid YAML at line \d"):
        load_config(_write(tmp_path, "devices:\n  camera: [unclosed\n"))
    with pytest.raises(BeamlineConfigError, match="must be a mapping"):
        load_config(_write(tmp_path, "- a\n- b\n"))


def test_cli_reports_a_bad_config_in_one_line_with_status_2(tmp_path: Path) -> None:
    bad = _write(tmp_path, {"devices": {}})
    out = subprocess.run([sys.executable, "-m", "nxsci.cli", "sim-ioc", "--config", str(bad)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert "missing required field" in out.stderr and "devices.diffuser1" in out.stderr


def test_pv_prefixes_come_from_the_config(tmp_path: Path) -> None:
    data = yaml.safe_load(SIM_CONFIG_PATH.read_text())
    data["devices"]["diffuser1"] = {"prefix": "BL62:", "motors": {"x": "m7", "y": "m8"}}
    cfg = load_config(_write(tmp_path, data))
    cls, prefix, _ = device_classes(cfg)["diffuser1"]
    pvs = {pv.read_pv for pv in walk_device_pvs(cls, prefix)}
    assert "BL62:m7.RBV" in pvs and "BL62:m8.VAL" in pvs
    data["devices"]["diffuser2"] = {"prefix": "BL62:", "motors": {"x": "m7"}}
    with pytest.raises(BeamlineConfigError, match="belongs to both"):
        make_beamline("sim", load_config(_write(tmp_path, data)))
    data["devices"]["diffuser2"] = {"prefix": "BL62:", "motors": {"w": "m9"}}
    with pytest.raises(BeamlineConfigError, match="no component"):
        make_beamline("sim", load_config(_write(tmp_path, data)))


# -- the simulated beamline ---------------------------------------------------------------------------


@pytest.fixture()
def beamline(tmp_path: Path) -> Iterator[Beamline]:
    bl = make_beamline("sim", _sim_config(tmp_path))
    yield bl
    bl.close()


def test_every_device_reads_and_describes_with_matching_keys(beamline: Beamline) -> None:
    for name in DEVICE_NAMES:
        device = beamline.devices[name]
        reading, description = device.read(), device.describe()
        assert set(reading) == set(description), name
        config, config_desc = device.read_configuration(), device.describe_configuration()
        assert set(config) == set(config_desc), name
        for key, desc in description.items():
            assert desc["source"].startswith("PV:"), key
    assert {"diffuser1_x", "diffuser1_y"} <= set(beamline.diffuser1.read())
    vortex = beamline.vortex.describe()
    assert vortex["vortex_mca_spectrum"]["shape"] == [2048]
    assert {"vortex_elapsed_real", "vortex_elapsed_live", "vortex_dead_time", "vortex_mca_rois_roi0_count",
            "vortex_dxp_input_count_rate"} <= set(vortex)
    assert beamline.vortex.read_configuration()["vortex_mca_calibration_slope"]["value"] == pytest.approx(0.01)
    assert set(beamline.shutter.read()) == {"shutter_status"}


def test_motors_take_their_time_and_return_the_same_pattern(beamline: Beamline) -> None:
    motor = beamline.diffuser1.x
    start = time.monotonic()
    motor.set(0.25).wait(5)
    assert time.monotonic() - start >= 0.045  # configured move time 0.05 s
    assert motor.user_readback.get() == pytest.approx(0.25) and beamline.model.position("diffuser1.x") == 0.25
    first = beamline.model.illumination().copy()
    motor.set(1.0).wait(5)
    assert not np.array_equal(beamline.model.illumination(), first)
    motor.set(0.25).wait(5)
    assert np.array_equal(beamline.model.illumination(), first)
    with pytest.raises(Exception, match="limits"):
        motor.set(1e6)


def test_sample_stage_named_positions(beamline: Beamline) -> None:
    stage: SampleStage = beamline.sample_stage
    stage.set("out").wait(5)
    assert stage.where() == "out"
    assert abs(beamline.model.sample_shift_px()[1]) > 1000
    stage.set("in").wait(5)
    assert stage.where() == "in"
    assert max(abs(s) for s in beamline.model.sample_shift_px()) < 5  # repeatability error only
    with pytest.raises(ValueError, match="unknown position"):
        stage.set("parked")


def _frame(bl: Beamline) -> np.ndarray:
    bl.camera.trigger().wait(10)
    return bl.camera.last_frame().astype(np.float64)


def test_camera_sees_pattern_or_sample_and_writes_hdf5(beamline: Beamline) -> None:
    bl = beamline
    bl.camera.cam.acquire_time.set(0.05).wait(5)
    bl.camera.stage()
    try:
        bl.sample_stage.set("out").wait(5)
        out = _frame(bl)
        read_out = bl.camera.read()
        bl.sample_stage.set("in").wait(5)
        inside = _frame(bl)
        read_in = bl.camera.read()
        docs = list(bl.camera.collect_asset_docs())
    finally:
        bl.camera.unstage()
    offset = bl.model.params.camera.offset
    light = bl.model.illumination() * bl.model.params.camera.photons_per_s * 0.05
    assert np.corrcoef((out - offset).ravel(), light.ravel())[0, 1] > 0.95  # sample out: the pattern
    expected_in = light * np.exp(-bl.model.sample_density())
    assert np.corrcoef((inside - offset).ravel(), expected_in.ravel())[0, 1] > 0.95
    assert inside.mean() < out.mean()
    resource = next(doc for kind, doc in docs if kind == "resource")
    assert resource["spec"] == "AD_HDF5" and resource["resource_kwargs"] == {"frame_per_point": 1}
    datums = [doc for kind, doc in docs if kind == "datum"]
    assert [d["datum_kwargs"]["point_number"] for d in datums] == [0, 1]
    assert read_out["camera_image"]["value"] == datums[0]["datum_id"]
    assert read_in["camera_image"]["value"] == datums[1]["datum_id"]
    path = Path(resource["root"]) / resource["resource_path"]
    with h5py.File(path, "r") as f:
        frames = f["entry/data/data"][()]
    assert frames.dtype == np.uint16 and frames.shape == (2, 32, 32)
    assert np.array_equal(frames[1], inside.astype(np.uint16))
    assert bl.camera.describe()["camera_image"]["shape"] == (1, 32, 32)


def test_vortex_trigger_gives_the_spectrum_of_the_current_light(beamline: Beamline) -> None:
    bl = beamline
    bl.vortex.count_time.put(0.2)
    bl.vortex.stage()
    try:
        start = time.monotonic()
        bl.vortex.trigger().wait(10)
        assert time.monotonic() - start >= 0.19  # preset real time, acquire_time_scale 1
        reading = bl.vortex.read()
    finally:
        bl.vortex.unstage()
    truth = bl.model.acquisitions[-1]
    assert truth["kind"] == "vortex"
    spectrum = reading["vortex_mca_spectrum"]["value"]
    assert spectrum.shape == (2048,) and spectrum.sum() > 1000
    assert reading["vortex_elapsed_real"]["value"] == pytest.approx(0.2)
    live = reading["vortex_elapsed_live"]["value"]
    assert live == pytest.approx(truth["live_time"]) and live < 0.2
    assert reading["vortex_dead_time"]["value"] == pytest.approx(100 * (1 - live / 0.2))
    assert bl.vortex.mca.rois.roi2.label.get() == "Ni Ka"
    assert reading["vortex_mca_rois_roi2_count"]["value"] > 0
    bl.shutter.set("close").wait(5)
    assert bl.shutter.read()["shutter_status"]["value"] == "Closed"
    bl.vortex.trigger().wait(10)
    assert bl.vortex.mca.spectrum.get().sum() == 0  # no beam, no counts
    bl.shutter.open()
    assert bl.shutter.is_open


def test_zero_move_time_for_benchmarks(tmp_path: Path) -> None:
    cfg = load_config(overrides={"simulation": {"image_size": 32, "timing": {"move_time_s": 0,
                                                                             "acquire_time_scale": 0}}})
    bl = make_beamline("sim", cfg)
    try:
        start = time.monotonic()
        for i in range(20):
            bl.diffuser2.y.set(0.01 * i).wait(5)
        bl.vortex.preset_real_time.put(100.0)
        bl.vortex.trigger().wait(5)
        assert time.monotonic() - start < 5.0
        assert bl.vortex.elapsed_real.get() == pytest.approx(100.0)
    finally:
        bl.close()


def test_continuous_camera_and_live_time_preset(beamline: Beamline) -> None:
    from ophyd.status import SubscriptionStatus

    cam = beamline.camera.cam
    cam.acquire_time.set(0.01).wait(5)
    cam.image_mode.set("Continuous").wait(5)
    start = cam.array_counter.get()
    three = SubscriptionStatus(cam.array_counter, lambda value, **_: value >= start + 3)
    cam.acquire.put(1)
    three.wait(10)
    stopped = SubscriptionStatus(cam.acquire, lambda old_value, value, **_: value == 0, run=True)
    cam.acquire.put(0)
    stopped.wait(10)
    assert cam.detector_state.get(as_string=True) == "Idle"
    vortex = beamline.vortex
    vortex.preset_mode.set("Live time").wait(5)
    vortex.preset_live_time.set(0.1).wait(5)
    vortex.trigger().wait(10)
    assert vortex.elapsed_live.get() == pytest.approx(0.1)
    assert vortex.elapsed_real.get() > 0.1
    assert vortex.mca.preset_live_time.get() == pytest.approx(0.1)  # mirrored into the mca record


def test_all_status_finishes_with_all_and_fails_with_the_first_failure() -> None:
    from ophyd.status import StatusBase

    from nxsci.devices import AllStatus

    members = [StatusBase() for _ in range(3)]
    combined = AllStatus(members)
    members[0].set_finished()
    members[2].set_finished()
    assert not combined.done
    members[1].set_finished()
    combined.wait(1)
    assert combined.success
    assert AllStatus([]).done
    failing = [StatusBase(), StatusBase()]
    combined = AllStatus(failing)
    failing[1].set_exception(ValueError("stalled"))
    assert combined.done and not combined.success and isinstance(combined.exception(), ValueError)
    failing[0].set_finished()  # a late success changes nothing
    assert not combined.success


def test_motors_move_together_with_one_status(beamline: Beamline) -> None:
    """MotorsMove: done when every motor is there (readbacks already updated), nothing moves when one target
    is outside its limits, and a motor's failed move (limit switch: ``_done_moving(success=False)``, as
    ``EpicsMotor`` reports it) fails the whole move."""
    from nxsci.devices import MotorsMove

    axes = [beamline.diffuser1.x, beamline.diffuser1.y, beamline.diffuser2.x]
    move = MotorsMove([(axis, 0.1 * (i + 1)) for i, axis in enumerate(axes)])
    move.wait(5)
    assert move.success
    assert [axis.user_readback.get() for axis in axes] == pytest.approx([0.1, 0.2, 0.3])
    assert [axis.position for axis in axes] == pytest.approx([0.1, 0.2, 0.3])
    with pytest.raises(Exception, match="limits"):
        MotorsMove([(axes[0], 0.0), (axes[1], 1e6)])
    assert axes[0].user_readback.get() == pytest.approx(0.1)  # not commanded either
    failed = MotorsMove([(axes[0], 0.9), (axes[1], 0.9)])
    axes[0]._done_moving(success=False)
    with pytest.raises(RuntimeError, match="stopped short"):
        failed.wait(5)
    from ophyd.status import SubscriptionStatus

    SubscriptionStatus(axes[0].motor_done_move, lambda value, **_: value == 1 and abs(axes[0].position - 0.9) < 1e-9,
                       run=True).wait(5)  # the record finished that move
    # a long move, so that the stop comes before its end however busy the machine; the sim then stops it
    # whether the stop is processed mid-move or before the move has started (as a real record would)
    beamline.records.timing = beamline.records.timing.model_copy(update={"move_time_s": 30.0})
    stopped = MotorsMove([(axes[0], -0.9)])
    axes[0].stop()  # as EpicsMotor: the move ends (DMOV) where the motor stopped
    stopped.wait(10)
    assert axes[0].user_readback.get() > -0.9
    assert MotorsMove([]).done


def test_sim_set_completes_when_the_readback_says_the_work_is_done(beamline: Beamline, tmp_path: Path) -> None:
    """A set without put completion is done when the readback equals the value (enum strings or indices);
    the HDF5 plugin's Capture_RBV follows the opened file and the incremented FileNumber, as on an IOC."""
    hdf5 = beamline.camera.hdf5
    hdf5.file_write_mode.set("Stream").wait(5)
    assert hdf5.file_write_mode.get(as_string=True) == "Stream"
    hdf5.file_path.set(str(tmp_path) + "/").wait(5)
    hdf5.file_name.set("probe").wait(5)
    hdf5.file_number.set(7).wait(5)
    hdf5.capture.set(1).wait(5)
    try:
        assert hdf5.file_number.get() == 8  # no waiting beyond the set: the file is open
        assert Path(hdf5.full_file_name.get()).name == "probe_000007.h5"
        assert Path(hdf5.full_file_name.get()).is_file()
    finally:
        hdf5.capture.set(0).wait(5)
    assert hdf5.capture.get() == 0


def test_sim_set_finishes_once_when_the_readback_is_already_there(beamline: Beamline) -> None:
    """The initial check (caller's thread) and a monitor update (dispatcher) can both find the readback
    there; the status finishes once instead of raising ``InvalidState`` from the second."""
    from nxsci.devices.sim._store import _ReadbackStatus

    signal = beamline.camera.hdf5.file_write_mode
    signal.set("Stream").wait(5)
    status = _ReadbackStatus(signal, lambda **_: True, run=False)
    status.check_value(value=signal.get())  # the initial check
    status.check_value(value=signal.get())  # the late monitor update: ophyd's SubscriptionStatus raises here
    status.wait(5)
    assert status.success
    statuses = [signal.set("Stream") for _ in range(50)]  # readback already equal: the racy case
    for st in statuses:
        st.wait(5)
    assert all(st.success for st in statuses)


def test_quick_callbacks_take_every_form_ophyd_takes() -> None:
    """``cb(status)`` functions skip ophyd's signature check; old ``cb()`` callbacks, bound methods and other
    callables still go through it; a callback added after completion runs at once."""
    from nxsci.devices import QuickCallbacks

    calls: list[object] = []

    class Receiver:
        def method(self, status: object) -> None:
            calls.append(("method", status))

    status = QuickCallbacks()
    status.add_callback(lambda st: calls.append(("new", st)))
    with pytest.warns(DeprecationWarning):
        status.add_callback(lambda: calls.append(("old", None)))
    status.add_callback(Receiver().method)
    assert calls == []
    status.set_finished()
    status.wait(5)
    status.add_callback(lambda st: calls.append(("late", st)))
    assert sorted(kind for kind, _ in calls) == ["late", "method", "new", "old"]
    assert all(st is status for kind, st in calls if kind != "old")
