"""``nxsci acquire`` and friends as a user meets them: Ctrl-C and SIGTERM, scripted use of stdout, element
subsets, bad arguments, two processes on one local catalog. Every check goes through a real subprocess."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from _acquisition_harness import API_KEY, Process, env, fast_config, nxsci, wait_for
from nxsci.recon import load_dataset
from nxsci.services import TiledServer, TiledSettings, open_catalog

pytestmark = pytest.mark.slow

NXSCI = [sys.executable, "-m", "nxsci.cli"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TiledServer]:
    settings = TiledSettings(data_dir=tmp_path_factory.mktemp("tiled"), tiled_api_key=API_KEY)
    with TiledServer(settings) as srv:
        yield srv


def _timed_config(directory: Path) -> Path:
    """The fast beamline, but exposures take their time (a 300-configuration scan lasts long enough to be
    interrupted in the middle)."""
    path = fast_config(directory)
    data = yaml.safe_load(path.read_text())
    data["simulation"]["timing"] = {"move_time_s": 0, "acquire_time_scale": 1}
    path.write_text(yaml.safe_dump(data))
    return path


def _environ(**extra: str) -> dict[str, str]:
    return env(NXSCI_TILED_API_KEY=API_KEY, PYTHONUNBUFFERED="1", **extra)


def _run_count(uri: str) -> int:
    with open_catalog(uri, api_key=API_KEY) as catalog:
        return len(catalog.runs)


def _one_line_error(out: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]


class _Scan:
    """``nxsci acquire`` of 300 timed configurations in the background, stdout and stderr to files."""

    def __init__(self, tmp_path: Path, uri: str) -> None:
        self.out, self.err = tmp_path / "stdout", tmp_path / "stderr"
        argv = [*NXSCI, "acquire", "--config", str(_timed_config(tmp_path)), "--num-patterns", "300",
                "--exposure", "0.02", "--tiled", uri]
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=err, env=_environ())

    def wait_for_progress(self) -> None:
        """Until the first tenth of the scan is recorded (its progress line)."""
        def started() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"nxsci acquire exited early:\n{self.err.read_text()[-3000:]}")
            return "30 of 300 configurations" in self.err.read_text()
        wait_for(started, 240, "the first 30 configurations")

    def wait(self, timeout: float = 120) -> int:
        return self.proc.wait(timeout)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_aborts_the_run_cleanly_and_keeps_its_data(server: TiledServer, tmp_path: Path,
                                                          sig: signal.Signals) -> None:
    assert server.uri is not None
    scan = _Scan(tmp_path, server.uri)
    scan.wait_for_progress()
    scan.proc.send_signal(sig)
    assert scan.wait() == 128 + sig  # the shell's convention for a command ended by a signal
    stdout, stderr = scan.out.read_text(), scan.err.read_text()
    assert "Traceback" not in stderr and "Task was destroyed" not in stderr, stderr[-3000:]
    uid = stdout.removesuffix("\n")
    assert stdout == f"{uid}\n" and uuid.UUID(uid)  # the run's uid, alone: a script can still export it
    summary = [line for line in stderr.splitlines() if "aborted after" in line]
    assert len(summary) == 1 and sig.name in summary[0], stderr[-2000:]
    with open_catalog(server.uri, api_key=API_KEY) as catalog:
        run = catalog.run(uid)
        assert run.metadata["stop"]["exit_status"] == "abort"
        assert f"interrupted by {sig.name}" in run.metadata["stop"]["reason"]
        recorded = len(run["primary"]["config_index"].read())
    assert 30 <= recorded < 300
    exported = nxsci("export", uid, "-o", str(tmp_path / "run.h5"), "--tiled", server.uri, environ=_environ())
    assert exported.returncode == 0, exported.stderr[-3000:]
    ds = load_dataset(tmp_path / "run.h5")
    # every configuration with both its pattern and its sample-in data (snake order: the last may lack one)
    assert recorded - 1 <= ds.num_patterns <= recorded and ds.attrs["exit_status"] == "abort"


def test_a_second_signal_exits_at_once(server: TiledServer, tmp_path: Path) -> None:
    assert server.uri is not None
    scan = _Scan(tmp_path, server.uri)
    scan.wait_for_progress()
    scan.proc.send_signal(signal.SIGINT)
    wait_for(lambda: "SIGINT again exits at once" in scan.err.read_text(), 30, "the first signal's message")
    scan.proc.send_signal(signal.SIGINT)
    assert scan.wait(30) == 130
    assert "exiting now" in scan.err.read_text() and "Traceback" not in scan.err.read_text()


def _read_all(fd: int, sink: list[bytes]) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        sink.append(chunk)


def test_stdout_is_only_the_uid_even_with_status_bars_on_a_terminal(server: TiledServer, tmp_path: Path) -> None:
    """``uid=$(nxsci acquire ...)`` in a terminal: stdout a pipe, stderr the terminal, where bluesky draws its
    status bars for real exposures; stdout must still be exactly the uid and a newline."""
    assert server.uri is not None
    config = _timed_config(tmp_path)
    master, slave = pty.openpty()
    seen: list[bytes] = []
    reader = threading.Thread(target=_read_all, args=(master, seen), daemon=True)
    reader.start()
    try:
        out = subprocess.run([*NXSCI, "acquire", "--config", str(config), "--num-patterns", "2", "--exposure", "0.3",
                              "--tiled", server.uri], stdout=subprocess.PIPE, stderr=slave, env=_environ(),
                             timeout=300, text=True)
    finally:
        os.close(slave)
    reader.join(10)
    os.close(master)
    terminal = b"".join(seen).decode(errors="replace")
    assert out.returncode == 0, terminal[-3000:]
    assert "camera" in terminal  # bluesky's status bars were drawn, on the terminal
    uid = out.stdout.removesuffix("\n")
    assert out.stdout == f"{uid}\n" and uuid.UUID(uid)
    quiet = nxsci("acquire", "--config", str(config), "--num-patterns", "1", "--exposure", "0.3", "-q",
                  "--tiled", server.uri, environ=_environ())
    assert quiet.returncode == 0 and len(quiet.stdout) == 37 and uuid.UUID(quiet.stdout.strip())
    listed = subprocess.run(f"{sys.executable} -m nxsci.cli methods | head -n 1", shell=True, capture_output=True,
                            text=True, env=_environ(), timeout=120)
    assert listed.stdout == "{\n" and listed.stderr == ""  # no BrokenPipeError when the reader stops early


def test_any_subset_of_elements_works_end_to_end(server: TiledServer, tmp_path: Path) -> None:
    assert server.uri is not None
    config = fast_config(tmp_path)
    acquired = nxsci("acquire", "--config", str(config), "--num-patterns", "24", "--elements", "Co,Mn", "-q",
                     "--tiled", server.uri, environ=_environ())
    assert acquired.returncode == 0, acquired.stderr[-3000:]
    uid = acquired.stdout.strip()
    exported = nxsci("export", uid, "-o", str(tmp_path / "two.h5"), "--tiled", server.uri, environ=_environ())
    assert exported.returncode == 0, exported.stderr[-3000:]
    ds = load_dataset(tmp_path / "two.h5")
    assert ds.elements == ["Co", "Mn"] and ds.truth_maps is not None and ds.truth_maps.shape == (2, 32, 32)
    # the truth follows the fitted elements by name: the true maps predict each element's true counts
    # (Co ~25x Mn here, so a swapped or shifted row could not pass)
    from nxsci.recon import apply_shifts

    predicted = np.einsum("nhw,ehw->ne", apply_shifts(ds.patterns, ds.metadata["shifts"]), ds.truth_maps)
    expected = ds.metadata["truth_counts"] * (ds.metadata["real_time"] / ds.metadata["live_time"])[:, None]
    assert np.abs(predicted.sum(axis=0) / expected.sum(axis=0) - 1).max() < 0.02
    assert expected[:, 0].sum() > 5 * expected[:, 1].sum()
    maps = tmp_path / "maps.h5"
    reconstructed = nxsci("reconstruct", str(tmp_path / "two.h5"), "-o", str(maps), "--elements", "Mn", "-q",
                          environ=_environ())
    assert reconstructed.returncode == 0, reconstructed.stderr[-3000:]
    assert "Mn:" in reconstructed.stdout and "psnr" in reconstructed.stdout


def test_bad_arguments_are_refused_in_one_line_before_a_run_opens(server: TiledServer, tmp_path: Path) -> None:
    assert server.uri is not None
    config = str(fast_config(tmp_path))
    before = _run_count(server.uri)
    cases = [
        (["--num-patterns", "2", "--elements", "Mn,Xx"], ["unknown element 'Xx'"]),
        (["--num-patterns", "2", "--elements", "Mn,Mo"], ["Mo K lines are not excited"]),
        (["--num-patterns", "2", "--exposure", "-1"], ["--exposure", "positive"]),
        (["--num-patterns", "2", "--exposure", "5000"], ["exposure must be"]),
        (["--num-patterns", "0"], ["--num-patterns", "positive"]),
        (["--pattern-library", "0123456789abcdef"], ["pattern library 0123456789abcdef"]),
        (["--calibrate", "--pattern-library", "0123456789abcdef"], ["not allowed with argument --calibrate"]),
        (["--calibrate", "--num-patterns", "2", "--elements", "Mn"], ["--calibrate", "--elements"]),
    ]
    for args, needles in cases:
        _one_line_error(nxsci("acquire", "--config", config, "-q", "--tiled", server.uri, *args,
                              environ=_environ()), *needles)
    assert _run_count(server.uri) == before  # nothing was recorded


def test_outputs_that_cannot_be_written_are_refused_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "sim.h5"
    assert nxsci("simulate", "-o", str(data), "--size", "24", "--sampling", "0.2").returncode == 0
    _one_line_error(nxsci("reconstruct", str(data), "-o", "/proc/x.h5", "--method", "pinv"), "cannot write /proc/x.h5")
    missing = tmp_path / "no" / "such" / "dir" / "x.h5"
    _one_line_error(nxsci("reconstruct", str(data), "-o", str(missing), "--method", "pinv"), "does not exist")
    assert not (tmp_path / "no").exists()  # no directories made behind the user's back
    _one_line_error(nxsci("simulate", "-o", str(missing)), "does not exist")


def test_a_second_writer_on_a_served_local_catalog_is_told_to_use_the_server(tmp_path: Path) -> None:
    data = tmp_path / "catalog"
    environ = _environ(NXSCI_DATA_DIR=str(data), NXSCI_TILED_URI="")
    served = Process([*NXSCI, "tiled"], tmp_path / "tiled.log", environ)
    try:
        uri = served.wait_line(lambda line: line.startswith("http://127.0.0.1:"), 180, "nxsci tiled's URI").strip()
        refused = nxsci("acquire", "--config", str(fast_config(tmp_path)), "--num-patterns", "2", "-q",
                        environ=environ)
        _one_line_error(refused, "in use by nxsci tiled", f"--tiled {uri}")
        assert _run_count(uri) == 0  # refused before a run opened
        exported = nxsci("export", "0123456789abcdef", "-o", str(tmp_path / "x.h5"), environ=environ)
        _one_line_error(exported, "in use by nxsci tiled")
    finally:
        assert served.stop() == 0
    # once the server is gone the embedded catalog is free again
    after = nxsci("acquire", "--config", str(fast_config(tmp_path)), "--num-patterns", "2", "-q", environ=environ)
    assert after.returncode == 0, after.stderr[-3000:]
