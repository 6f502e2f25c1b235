"""The run catalog ("databroker"): a tiled server or the embedded local catalog, and its runs node.

Runs live under one child container with the ``CatalogOfBlueskyRuns`` spec (``raw`` by default), so
``runs[uid]``, ``runs[-1]`` and searches work; runs written at the root cannot be indexed. A catalog
needs both a file store (arrays, as zarr) and a SQL table store (event tables): SQLite + duckdb by
default, PostgreSQL for both when several processes share it (duckdb is single-process).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import secrets
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nxsci.recon import NxsciError

from ._catalog_lock import lock_catalog
from ._settings import TiledSettings

__all__ = ["RunCatalog", "CatalogError", "open_catalog", "tiled_config", "build_tiled_app", "runs_container",
           "RUNS_SPEC"]

logger = logging.getLogger(__name__)

#: the spec of the container that holds runs (bluesky-tiled-plugins' catalog client)
RUNS_SPEC = ("CatalogOfBlueskyRuns", "3.0")


class CatalogError(NxsciError, RuntimeError):
    """The run catalog cannot be reached, or has no such run."""


def tiled_config(settings: TiledSettings, *, api_key: str, host: str = "127.0.0.1",
                 port: int = 0) -> dict[str, Any]:
    """A tiled server configuration (as ``tiled serve config`` reads it) for the configured catalog.

    tiled keeps server settings process-wide (``tiled.server.settings.get_settings`` is cached and every
    app writes its key into it): every app of one process must use the same API key, and none may allow
    anonymous access, or it would open the others too."""
    array_dir = settings.array_dir()
    array_dir.mkdir(parents=True, exist_ok=True)
    catalog_uri = settings.resolved_catalog_uri()
    # tiled initialises a catalog in a subprocess (seconds): only when a SQLite file is not there yet
    sqlite_file = catalog_uri.split(":///", 1)[1] if catalog_uri.startswith("sqlite:///") else None
    initialise = sqlite_file is None or not Path(sqlite_file).exists()
    return {
        "authentication": {"single_user_api_key": api_key},
        "catalog": {"uri": catalog_uri,
                    "writable_storage": [str(array_dir), settings.resolved_tables_uri()],
                    "init_if_not_exists": initialise},
        # run.documents() (bluesky documents back out of tiled) needs the json-seq exporter
        "media_types": {"BlueskyRun": {"application/json-seq": "bluesky_tiled_plugins.exporters:json_seq_exporter"}},
        "uvicorn": {"host": host, "port": port},
    }


def build_tiled_app(settings: TiledSettings, *, api_key: str) -> Any:
    """The tiled FastAPI app serving the configured catalog (creates the catalog if it does not exist)."""
    from tiled.config import Config, construct_build_app_kwargs
    from tiled.server.app import build_app

    config = Config.model_validate(tiled_config(settings, api_key=api_key))
    return build_app(**construct_build_app_kwargs(config))


def runs_container(client: Any, name: str = "raw", *, create: bool = True) -> Any:
    """The child of ``client`` that holds the runs (created with the right spec when missing)."""
    from tiled.structures.core import Spec

    if name not in client:
        if not create:
            raise CatalogError(f"the catalog has no '{name}' container of runs")
        try:
            client.create_container(name, specs=[Spec(RUNS_SPEC[0], version=RUNS_SPEC[1])])
        except Exception:  # another writer created it meanwhile
            if name not in client:
                raise
    node = client[name]
    specs = {s.name for s in getattr(node, "specs", [])}
    if RUNS_SPEC[0] not in specs:
        raise CatalogError(f"'{name}' exists but is not a catalog of runs (specs: {', '.join(sorted(specs)) or 'none'})")
    return node


@dataclasses.dataclass
class RunCatalog:
    """An open run catalog: the tiled client, its runs container, and how to close it."""

    client: Any
    runs: Any
    location: str
    settings: TiledSettings
    _closers: list[Callable[[], None]] = dataclasses.field(default_factory=list)

    def run(self, uid: str) -> Any:
        """The run with this uid (a full uid or a unique prefix of at least 8 characters; scan ids are not
        unique, so they are refused): the service's rules for a run reference (``find_run``)."""
        from ._dataset_source import UnknownRunError, find_run

        try:
            return find_run(self.runs, uid)[1]
        except UnknownRunError:
            raise CatalogError(f"no run '{uid}' in {self.location}") from None

    def writer(self, *, batch_size: int | None = None) -> Any:
        """A ``TiledWriter`` into the runs container (subscribe it to a RunEngine)."""
        from bluesky_tiled_plugins import TiledWriter

        return TiledWriter(self.runs, batch_size=batch_size or self.settings.writer_batch_size)

    def close(self) -> None:
        while self._closers:
            try:
                self._closers.pop()()
            except Exception:  # pragma: no cover - best effort at shutdown
                logger.exception("closing the run catalog failed")

    def __enter__(self) -> RunCatalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _quiet_tiled_imports() -> None:
    # tiled's in-process client imports starlette's TestClient, which warns about httpx on every start
    warnings.filterwarnings("ignore", message=".*httpx.*starlette.testclient.*")
    warnings.filterwarnings("ignore", message=".*starlette.testclient.*")


@functools.lru_cache(maxsize=1)
def _process_key() -> str:
    """The embedded catalog's key when none is configured: random, one per process (see tiled_config)."""
    return secrets.token_hex(16)


def open_catalog(uri: str | None = None, *, api_key: str | None = None,
                 settings: TiledSettings | None = None, create: bool = True) -> RunCatalog:
    """Open the run catalog: the tiled server at ``uri`` (default ``NXSCI_TILED_URI``), or, when none is
    named, the embedded local catalog in ``NXSCI_DATA_DIR`` (in-process, no server; one process at a time).
    """
    _quiet_tiled_imports()
    settings = settings or TiledSettings()
    uri = uri or settings.tiled_uri
    key = api_key or settings.api_key()
    if uri:
        from tiled.client import from_uri

        try:
            client = from_uri(uri, api_key=key)
        except Exception as exc:
            raise CatalogError(f"cannot reach the tiled server at {uri}: {exc}") from None
        return RunCatalog(client=client, runs=runs_container(client, settings.runs_node, create=create),
                          location=uri, settings=settings)
    from tiled.client import Context, from_context

    lock = lock_catalog(settings, holder=f"an embedded catalog ({Path(sys.argv[0]).name} {' '.join(sys.argv[1:2])})")
    try:
        try:
            app = build_tiled_app(settings, api_key=key or _process_key())
            context = Context.from_app(app)
        except Exception as exc:
            raise CatalogError(f"cannot open the embedded catalog in {settings.data_dir} ({exc}); if `nxsci tiled` "
                               f"serves this directory, pass its URI (--tiled or NXSCI_TILED_URI)") from None
        client = from_context(context)
        catalog = RunCatalog(client=client, runs=runs_container(client, settings.runs_node, create=create),
                             location=f"embedded catalog {settings.data_dir}", settings=settings)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    if lock is not None:
        catalog._closers.append(lock.release)  # closers run last-in first-out: the app closes first
    catalog._closers.append(context.close)
    return catalog
