"""Shared test configuration: hermetic temp dirs, single-threaded BLAS (2-core machines), service probes."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

# Small matrix products are much slower with BLAS threads fighting for 2 busy cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def service_available(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip with a clear reason where the service is absent, but fail under CI, where it always runs."""
    if service_available(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: the service is required)")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _tmp_cwd_tmpdir(tmp_path, monkeypatch):
    """Keep stray temp files (ophyd.sim, matplotlib) inside the test's own directory."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    yield


@pytest.fixture(scope="session", autouse=True)
def _single_threaded_blas():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL database (created and dropped with the test)."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    import psycopg

    name = f"nxsci_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
