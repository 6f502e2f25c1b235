"""``nxsci acquire``: one scan from the command line into the embedded catalog or a tiled server, on the
simulated beamline or over Channel Access; the run uid on the last line of stdout."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from _acquisition_harness import API_KEY, Process, ca_env, env, fast_config, nxsci
from nxsci.recon import load_dataset
from nxsci.services import TiledServer, TiledSettings, open_catalog


def _uid(stdout: str) -> str:
    last = stdout.strip().splitlines()[-1]
    uuid.UUID(last)  # a run uid, alone on the last line
    return last


@pytest.mark.slow
def test_acquire_into_the_embedded_catalog(tmp_path: Path) -> None:
    config = fast_config(tmp_path)
    out = nxsci("acquire", "--mode", "sim", "--config", str(config), "--num-patterns", "3", "-q",
                environ=env(NXSCI_DATA_DIR=str(tmp_path / "data"), NXSCI_TILED_URI="", NXSCI_TILED_API_KEY=""))
    assert out.returncode == 0, out.stderr
    uid = _uid(out.stdout)
    assert "embedded catalog" in out.stderr
    with open_catalog(settings=TiledSettings(data_dir=tmp_path / "data", tiled_api_key=API_KEY)) as catalog:
        run = catalog.run(uid)
        assert run.metadata["start"]["plan_name"] == "nxsci_scan" and run.metadata["stop"]["exit_status"] == "success"
        assert run["primary"]["camera_image"].read().shape == (3, 32, 32)
    bad = nxsci("acquire", "--config", str(config), "--num-patterns", "0", "-q",
                environ=env(NXSCI_DATA_DIR=str(tmp_path / "data2")))
    assert bad.returncode == 2 and "--num-patterns: must be a positive integer" in bad.stderr


@pytest.mark.slow
def test_acquire_into_a_tiled_server_with_a_pattern_library(tmp_path: Path) -> None:
    config = fast_config(tmp_path)
    settings = TiledSettings(data_dir=tmp_path / "server", tiled_api_key=API_KEY)
    with TiledServer(settings) as server:
        environ = env(NXSCI_TILED_API_KEY=API_KEY)
        library = nxsci("acquire", "--config", str(config), "--num-patterns", "4", "--calibrate", "-q",
                        "--tiled", str(server.uri), environ=environ)
        assert library.returncode == 0, library.stderr
        library_uid = _uid(library.stdout)
        scan = nxsci("acquire", "--config", str(config), "--pattern-library", library_uid, "-q",
                     "--tiled", str(server.uri), environ=environ)
        assert scan.returncode == 0, scan.stderr
        with open_catalog(server.uri, api_key=API_KEY) as catalog:
            run = catalog.run(_uid(scan.stdout))
            assert run.metadata["start"]["pattern_library"] == library_uid
            assert set(run) == {"baseline", "dark", "primary", "truth_maps"}  # sample-in data only
            spectra = run["primary"]["vortex_mca_spectrum"].read()
            assert spectra.dtype == np.int32 and spectra.shape == (4, 2048)
            assert catalog.run(library_uid)["pattern"]["camera_image"].read().shape == (4, 32, 32)


@pytest.mark.slow
def test_acquire_over_channel_access_from_the_sim_ioc(tmp_path: Path) -> None:
    """``--mode epics``: the same plan on EPICS devices, served by ``nxsci sim-ioc`` over Channel Access."""
    config = fast_config(tmp_path)
    environ = env(**ca_env(), NXSCI_DATA_DIR=str(tmp_path / "data"), NXSCI_TILED_URI="", NXSCI_TILED_API_KEY="")
    ioc = Process([sys.executable, "-m", "nxsci.cli", "sim-ioc", "--config", str(config)], tmp_path / "ioc.log",
                  environ)
    try:
        ioc.wait_line(lambda line: "sim-ioc ready" in line, 120, "the simulated IOC")
        missing = nxsci("acquire", "--mode", "epics", "--config", str(config), "--num-patterns", "2", "-q",
                        environ=environ)
        assert missing.returncode == 2 and "sample" in missing.stderr  # a real beamline does not know its sample
        out = nxsci("acquire", "--mode", "epics", "--config", str(config), "--num-patterns", "3", "-q",
                    "--sample", "NMC cathode", "--elements", "Mn,Co,Ni", "--energy-kev", "9.0", environ=environ)
        assert out.returncode == 0, out.stderr[-3000:]
        uid = _uid(out.stdout)
        exported = nxsci("export", uid, "-o", str(tmp_path / "run.h5"), environ=environ)
        assert exported.returncode == 0, exported.stderr[-3000:]
    finally:
        assert ioc.stop() == 0
    with open_catalog(settings=TiledSettings(data_dir=tmp_path / "data", tiled_api_key=API_KEY)) as catalog:
        run = catalog.run(uid)
        start = run.metadata["start"]
        assert start["beamline"]["mode"] == "epics" and start["sample"] == {"name": "NMC cathode"}
        assert set(run) == {"baseline", "dark", "pattern", "primary"}  # no simulator truth over EPICS
        frames = run["primary"]["camera_image"].read()
        assert frames.dtype == np.uint16 and frames.shape == (3, 32, 32) and frames.mean() > 100
        assert run["primary"]["vortex_mca_spectrum"].read().sum() > 1000
    ds = load_dataset(tmp_path / "run.h5")
    assert ds.num_patterns == 3 and ds.truth_maps is None and np.all(ds.signals[:, 2] > 0)
