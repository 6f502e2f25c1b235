"""Helpers of the acquisition tests (plans, tiled, pipeline, CLI, queue server): a fast simulated beamline
configuration, a real tiled server, subprocesses stopped by PID, polling with deadlines (never fixed sleeps).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "nxscitestkey0123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ca_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (Channel Access uses both on the server port)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return int(port)
    raise RuntimeError("no free port")


def ca_env() -> dict[str, str]:
    """Channel Access on loopback only, on ports of its own, for an IOC and its clients alike."""
    server, repeater = free_ca_port(), free_ca_port()
    return {"EPICS_CA_ADDR_LIST": "127.0.0.1", "EPICS_CA_AUTO_ADDR_LIST": "NO",
            "EPICS_CAS_INTF_ADDR_LIST": "127.0.0.1", "EPICS_CA_SERVER_PORT": str(server),
            "EPICS_CAS_SERVER_PORT": str(server), "EPICS_CA_REPEATER_PORT": str(repeater),
            "EPICS_CAS_BEACON_PORT": str(repeater), "PYTHONUNBUFFERED": "1"}


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def fast_config(directory: Path, *, image_size: int = 32, **simulation: Any) -> Path:
    """A beamline configuration file: the shipped PVs, instantaneous moves and exposures, frames on disk
    under ``directory``."""
    from nxsci.devices import SIM_CONFIG_PATH

    data = yaml.safe_load(SIM_CONFIG_PATH.read_text())
    data["devices"]["camera"]["write_path"] = str(directory / "txm") + "/"
    data["simulation"].update(image_size=image_size, timing={"move_time_s": 0, "acquire_time_scale": 0},
                              **simulation)
    path = directory / "beamline.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def pause_after(plan: Any, saves: int) -> Any:
    """``plan`` with an immediate pause request injected after its ``saves``-th event (as Ctrl-C does)."""
    from bluesky.preprocessors import plan_mutator
    from bluesky.utils import Msg

    seen = 0

    def insert(msg: Any) -> tuple[Any, None]:
        nonlocal seen
        if msg.command == "save":
            seen += 1
            if seen == saves:
                def then() -> Any:
                    response = yield msg
                    yield Msg("pause", None, defer=False)
                    return response
                return then(), None
        return None, None

    return plan_mutator(plan, insert)


def env(**extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: single-threaded BLAS, this checkout first on the path."""
    out = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    out.update(extra)
    return out


def nxsci(*args: str, environ: dict[str, str] | None = None, timeout: float = 300,
          cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nxsci.cli", *args], capture_output=True, text=True,
                          env=environ or env(), timeout=timeout, cwd=cwd)


class Process:
    """A server subprocess (``exec``'d, so its PID is the server's), output to a log file, stopped by PID."""

    def __init__(self, argv: list[str], log: Path, environ: dict[str, str], cwd: Path | None = None) -> None:
        self.log = log
        self._out = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.STDOUT, env=environ, cwd=cwd)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_line(self, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
        def found() -> str | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"{what}: the process exited with {self.proc.returncode}:\n{self.text()[-3000:]}")
            return next((line for line in self.text().splitlines() if predicate(line)), None)

        return wait_for(found, timeout, what)

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._out.close()
        return int(self.proc.returncode)


STARTUP = ROOT / "deploy" / "queueserver" / "startup"


@contextlib.contextmanager
def queue_manager(work: Path, *, tiled_uri: str, tiled_api_key: str, beamline_config: Path,
                  timeout: float = 300) -> Iterator[tuple[Any, Path]]:
    """A Redis-backed ``start-re-manager`` running ``deploy/queueserver/startup`` with its worker
    environment open, and a bluesky-queueserver-api client; yields ``(client, regenerated plan list)``.

    Redis keys live under a prefix of their own and are deleted afterwards; the manager is stopped by PID.
    """
    from bluesky_queueserver_api.zmq import REManagerAPI

    plans_devices = work / "existing_plans_and_devices.yaml"
    shutil.copy(STARTUP / "existing_plans_and_devices.yaml", plans_devices)  # the manager rewrites it
    control, info = free_port(), free_port()
    prefix = f"nxsci_test_{uuid.uuid4().hex[:8]}"
    argv = [str(Path(sys.executable).parent / "start-re-manager"), "--startup-dir", str(STARTUP),
            "--redis-addr", "127.0.0.1:6379", "--redis-name-prefix", prefix,
            "--zmq-control-addr", f"tcp://127.0.0.1:{control}", "--zmq-info-addr", f"tcp://127.0.0.1:{info}",
            "--existing-plans-devices", str(plans_devices), "--update-existing-plans-devices", "ENVIRONMENT_OPEN",
            "--user-group-permissions", str(STARTUP / "user_group_permissions.yaml")]
    proc = Process(argv, work / "manager.log", env(NXSCI_TILED_URI=tiled_uri, NXSCI_TILED_API_KEY=tiled_api_key,
                                                   NXSCI_BEAMLINE_CONFIG=str(beamline_config),
                                                   NXSCI_QSERVER_NO_TILED=""), cwd=work)
    RM = REManagerAPI(zmq_control_addr=f"tcp://127.0.0.1:{control}", zmq_info_addr=f"tcp://127.0.0.1:{info}",
                      request_fail_exceptions=False)

    def ready() -> bool:
        if proc.proc.poll() is not None:
            raise AssertionError(f"start-re-manager exited:\n{proc.text()[-3000:]}")
        try:
            return RM.status()["manager_state"] == "idle"
        except Exception:
            return False

    try:
        wait_for(ready, 120, "the queue server manager")
        RM.environment_open()
        RM.wait_for_idle(timeout=timeout)
        assert RM.status()["worker_environment_exists"], proc.text()[-3000:]
        yield RM, plans_devices
        RM.environment_close()
        RM.wait_for_idle(timeout=120)
    finally:
        RM.close()
        proc.stop(timeout=60)
        import redis

        client = redis.Redis(host="127.0.0.1", port=6379)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
