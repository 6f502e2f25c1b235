"""Runs into tiled: a real tiled server over HTTP (SQLite + duckdb, and PostgreSQL), the embedded catalog,
``nxsci tiled``, dtypes of what comes back, and the bluesky documents exported back out."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bluesky import RunEngine

from _acquisition_harness import API_KEY, Process, env, fast_config, nxsci
from conftest import require_service
from nxsci.devices import Beamline, load_config, make_beamline
from nxsci.plans import nxsci_scan, use_beamline
from nxsci.services import CatalogError, RunCatalog, TiledServer, TiledSettings, open_catalog, runs_container


@pytest.fixture(scope="module")
def beamline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Beamline]:
    bl = make_beamline("sim", load_config(fast_config(tmp_path_factory.mktemp("beamline"))))
    use_beamline(bl)
    yield bl
    bl.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TiledServer]:
    settings = TiledSettings(data_dir=tmp_path_factory.mktemp("tiled"), tiled_api_key=API_KEY)
    with TiledServer(settings) as srv:
        yield srv


def _scan(catalog: RunCatalog, n: int = 3) -> str:
    RE = RunEngine({}, call_returns_result=False)
    RE.subscribe(catalog.writer())
    (uid,) = RE(nxsci_scan(num_patterns=n, exposure=0.5))
    return uid


def _check_run(run: Any, n: int) -> None:
    assert run.metadata["stop"]["exit_status"] == "success"
    assert set(run) == {"baseline", "dark", "pattern", "primary", "truth_maps"}
    frames = run["primary"]["camera_image"].read()
    spectra = run["primary"]["vortex_mca_spectrum"].read()
    assert frames.dtype == np.uint16 and frames.shape == (n, 32, 32)
    assert spectra.dtype == np.int32 and spectra.shape == (n, 2048) and spectra.sum() > 0
    assert run["pattern"]["camera_image"].read().dtype == np.uint16
    assert run["dark"]["camera_image"].read().shape == (4, 32, 32)
    assert run["truth_maps"]["truth_maps"].read().dtype == np.float64
    assert run["primary"]["truth_shift"].read().shape == (n, 2)
    assert list(run["primary"]["config_index"].read()) == list(range(n))


def test_runs_written_over_http_read_back_as_typed_arrays(server: TiledServer, beamline: Beamline) -> None:
    assert server.uri is not None
    with open_catalog(server.uri, api_key=API_KEY) as catalog:
        uid = _scan(catalog)
        run = catalog.run(uid)
        _check_run(run, 3)
        assert run.metadata["start"]["plan_name"] == "nxsci_scan"
        assert catalog.runs[-1].metadata["start"]["uid"] == uid  # the runs container indexes by position
        assert catalog.run(uid[:8]).metadata["start"]["uid"] == uid
        docs = list(run.documents())  # the json-seq exporter is registered by our server config
        kinds = [name for name, _ in docs]
        assert kinds[0] == "start" and kinds[-1] == "stop"
        assert kinds.count("descriptor") == 5
        assert sum(1 for name, doc in docs if name in ("event", "event_page")) >= 1
        with pytest.raises(CatalogError, match="no run"):
            catalog.run("no-such-run")


def test_the_server_requires_its_api_key(server: TiledServer, tmp_path: Path) -> None:
    assert server.uri is not None
    with pytest.raises(CatalogError, match="cannot reach"):
        open_catalog(server.uri, api_key="wrongkey")
    with pytest.raises(CatalogError, match="NXSCI_TILED_API_KEY"):
        TiledServer(TiledSettings(data_dir=tmp_path, tiled_api_key=None))
    with pytest.raises(ValueError, match="letters and digits"):
        TiledSettings(tiled_api_key="not-alphanumeric")


def test_runs_live_in_a_catalog_of_runs_container(server: TiledServer) -> None:
    from tiled.client import from_uri

    client = from_uri(server.uri, api_key=API_KEY)
    raw = runs_container(client, "raw")
    assert "CatalogOfBlueskyRuns" in {s.name for s in raw.specs}
    client.create_container(f"plain-{uuid.uuid4().hex[:6]}")
    plain = [k for k in client if k.startswith("plain-")][0]
    with pytest.raises(CatalogError, match="not a catalog of runs"):
        runs_container(client, plain)


def test_embedded_catalog_persists_runs_on_disk(tmp_path: Path, beamline: Beamline) -> None:
    settings = TiledSettings(data_dir=tmp_path / "data", tiled_api_key=API_KEY)  # one key per process (tiled)
    with open_catalog(settings=settings) as catalog:
        assert catalog.location.startswith("embedded catalog")
        uid = _scan(catalog, 2)
    assert (tmp_path / "data" / "catalog.db").is_file()
    with open_catalog(settings=settings, create=False) as catalog:  # a new process would see the same
        _check_run(catalog.run(uid), 2)


@pytest.mark.slow
def test_nxsci_tiled_serves_the_catalog_and_stops_on_sigterm(tmp_path: Path) -> None:
    no_key = nxsci("tiled", environ=env(NXSCI_DATA_DIR=str(tmp_path / "d0"), NXSCI_TILED_API_KEY=""))
    assert no_key.returncode == 2 and "NXSCI_TILED_API_KEY" in no_key.stderr
    proc = Process([sys.executable, "-m", "nxsci.cli", "tiled"], tmp_path / "tiled.log",
                   env(NXSCI_DATA_DIR=str(tmp_path / "d1"), NXSCI_TILED_API_KEY=API_KEY))
    try:
        uri = proc.wait_line(lambda line: line.startswith("http://127.0.0.1:"), 180, "nxsci tiled's URI")
        with open_catalog(uri, api_key=API_KEY) as catalog:
            assert len(catalog.runs) == 0
    finally:
        code = proc.stop()
    assert code == 0 and "nxsci tiled stopped" in proc.text()


def _psql(sql: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                    "-qc", sql], check=True, capture_output=True, text=True)


@pytest.mark.slow
@pytest.mark.needs_postgres
def test_postgresql_catalog_and_tables(tmp_path: Path, beamline: Beamline) -> None:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    name = f"nxsci_test_{uuid.uuid4().hex[:10]}"
    _psql(f"CREATE DATABASE {name}_catalog")
    _psql(f"CREATE DATABASE {name}_tables")
    try:
        settings = TiledSettings(data_dir=tmp_path, tiled_api_key=API_KEY,
                                 catalog_uri=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}_catalog",
                                 tables_uri=f"postgresql://postgres@127.0.0.1:5432/{name}_tables")
        with TiledServer(settings) as srv, open_catalog(srv.uri, api_key=API_KEY) as catalog:
            uid = _scan(catalog)
            _check_run(catalog.run(uid), 3)
        out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", f"{name}_tables", "-Atc",
                              "select count(*) from information_schema.tables where table_schema='public'"],
                             check=True, capture_output=True, text=True)
        assert int(out.stdout.strip()) >= 1  # the event tables live in PostgreSQL, not in duckdb
        assert not (tmp_path / "tables.duckdb").exists()
    finally:
        _psql(f"DROP DATABASE IF EXISTS {name}_catalog WITH (FORCE)")
        _psql(f"DROP DATABASE IF EXISTS {name}_tables WITH (FORCE)")
