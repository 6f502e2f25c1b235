"""``nxsci sim-ioc`` on loopback and the EPICS-backed devices against it over Channel Access."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from _acquisition_harness import ca_env

from nxsci.devices import SIM_CONFIG_PATH

pytestmark = pytest.mark.slow

READY_TIMEOUT_S = 60.0


def _ca_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ca_env(), TMPDIR=str(tmp_path), OPENBLAS_NUM_THREADS="1")
    return env


def _config(tmp_path: Path) -> Path:
    data = yaml.safe_load(SIM_CONFIG_PATH.read_text())
    data["devices"]["camera"]["write_path"] = str(tmp_path / "txm") + "/"
    data["simulation"].update(image_size=32, timing={"move_time_s": 0.1, "acquire_time_scale": 1.0})
    path = tmp_path / "beamline.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class _Ioc:
    def __init__(self, proc: subprocess.Popen[str], ready: str, lines: list[str]) -> None:
        self.proc, self.ready, self.lines = proc, ready, lines

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.lines.extend(out.splitlines())
        return int(self.proc.returncode)


def _start_ioc(config: Path, env: dict[str, str]) -> _Ioc:
    """Start ``nxsci sim-ioc`` and return once it printed its ready line (no sleeps)."""
    proc = subprocess.Popen([sys.executable, "-m", "nxsci.cli", "sim-ioc", "--config", str(config)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + READY_TIMEOUT_S
    lines: list[str] = []
    while time.monotonic() < deadline:
        if not selector.select(timeout=deadline - time.monotonic()):
            break
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if "sim-ioc ready" in line:
            return _Ioc(proc, line.strip(), lines)
    proc.kill()
    rest = proc.communicate()[0]
    raise AssertionError("sim-ioc did not become ready:\n" + "\n".join(lines) + rest)


@pytest.fixture()
def ioc(tmp_path: Path) -> Iterator[tuple[_Ioc, Path, dict[str, str]]]:
    env = _ca_env(tmp_path)
    config = _config(tmp_path)
    server = _start_ioc(config, env)
    yield server, config, env
    rc = server.stop()
    assert rc == 0, "\n".join(server.lines)
    assert "nxsci sim-ioc stopped" in server.lines


CLIENT = r'''
import json, sys, time
import h5py, numpy as np
from nxsci.devices import load_config, make_beamline
cfg = load_config(sys.argv[1])
out = {}
sim = make_beamline("sim", cfg)
bl = make_beamline("epics", cfg, timeout=20)
out["keys_match"] = {n: sorted(d.describe()) == sorted(sim.devices[n].describe())
                     and sorted(d.read()) == sorted(d.describe())
                     and sorted(d.describe_configuration()) == sorted(sim.devices[n].describe_configuration())
                     for n, d in bl.devices.items()}
out["sources"] = bl.diffuser1.describe()["diffuser1_x"]["source"]
sim.close()
t = time.monotonic(); bl.diffuser1.x.set(0.75).wait(10); out["move_s"] = time.monotonic() - t
out["rbv"] = bl.diffuser1.x.user_readback.get(use_monitor=False)
bl.sample_stage.set("out").wait(10); out["where"] = bl.sample_stage.where()
cam = bl.camera
cam.cam.acquire_time.set(0.05).wait(5)
cam.stage()
try:
    t = time.monotonic(); cam.trigger().wait(10); out["trigger_s"] = time.monotonic() - t
    reading = cam.read()
    frame = cam.last_frame()
    docs = list(cam.collect_asset_docs())
finally:
    cam.unstage()
resource = [d for k, d in docs if k == "resource"][0]
with h5py.File(resource["root"] + resource["resource_path"], "r") as f:
    stored = f["entry/data/data"][()]
out["frame_shape"] = list(frame.shape); out["frame_mean"] = float(frame.mean())
out["frame_in_file"] = bool(np.array_equal(stored[-1], frame))
out["datum_is_read"] = reading["camera_image"]["value"] == [d for k, d in docs if k == "datum"][-1]["datum_id"]
bl.sample_stage.set("in").wait(10); out["where_after"] = bl.sample_stage.where()
vortex = bl.vortex
vortex.count_time.put(0.3)
vortex.stage()
try:
    t = time.monotonic(); vortex.trigger().wait(10); out["vortex_s"] = time.monotonic() - t
    r = vortex.read()
finally:
    vortex.unstage()
spectrum = np.asarray(r["vortex_mca_spectrum"]["value"])
out["spectrum_len"] = int(spectrum.size); out["spectrum_sum"] = int(spectrum.sum())
cal = vortex.mca.calibration_slope.get()
out["ni_peak_keV"] = float(np.argmax(np.where(np.abs(np.arange(spectrum.size) * cal - 7.48) < 0.15, spectrum, 0)) * cal)
out["elapsed_real"] = r["vortex_elapsed_real"]["value"]; out["elapsed_live"] = r["vortex_elapsed_live"]["value"]
out["dead_time"] = r["vortex_dead_time"]["value"]
bl.shutter.set("close").wait(10); out["shutter"] = bl.shutter.read()["shutter_status"]["value"]
print("RESULT " + json.dumps(out))
'''


def test_channel_access_round_trip(ioc) -> None:  # type: ignore[no-untyped-def]
    server, config, env = ioc
    assert "on 127.0.0.1:" + env["EPICS_CA_SERVER_PORT"] in server.ready
    import psutil

    addresses = {c.laddr.ip for c in psutil.Process(server.proc.pid).net_connections(kind="inet")}
    assert addresses == {"127.0.0.1"}, addresses  # loopback only
    done = subprocess.run([sys.executable, "-c", CLIENT, str(config)], env=env, capture_output=True, text=True,
                          timeout=240)
    result_line = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    assert done.returncode == 0 and result_line, done.stdout[-3000:] + done.stderr[-3000:]
    out = json.loads(result_line[0][len("RESULT "):])
    assert all(out["keys_match"].values()), out["keys_match"]  # EPICS and sim devices: same keys
    assert out["sources"] == "PV:NXSCI:DIFF1:X.RBV"
    assert out["rbv"] == pytest.approx(0.75) and out["move_s"] >= 0.09  # put completes when the move is done
    assert out["where"] == "out" and out["where_after"] == "in"
    assert out["frame_shape"] == [32, 32] and out["frame_mean"] > 100 and out["frame_in_file"]
    assert out["datum_is_read"] and out["trigger_s"] >= 0.04
    assert out["spectrum_len"] == 2048 and out["spectrum_sum"] > 1000
    assert abs(out["ni_peak_keV"] - 7.478) <= 0.03
    assert out["elapsed_real"] == pytest.approx(0.3) and 0 < out["elapsed_live"] < 0.3 and out["vortex_s"] >= 0.29
    assert out["dead_time"] == pytest.approx(100 * (1 - out["elapsed_live"] / 0.3), rel=1e-3)
    assert out["shutter"] == "Closed"


def test_sigint_stops_the_ioc_cleanly(tmp_path: Path) -> None:
    server = _start_ioc(_config(tmp_path), _ca_env(tmp_path))
    assert server.stop(signal.SIGINT) == 0
    assert "nxsci sim-ioc stopped" in server.lines
