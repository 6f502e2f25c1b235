"""One process at a time on a catalog kept in local files.

The default catalog is a SQLite database and a duckdb table store in ``NXSCI_DATA_DIR``; neither takes a
second writing process (duckdb refuses the lock mid-scan, after the run has opened). Every process that
opens those files in-process (``nxsci tiled``, the embedded catalog of ``nxsci acquire``, ``nxsci shell``,
``nxsci export``) first takes an exclusive ``flock`` on ``<data dir>/.nxsci-catalog.lock`` and writes who
holds it there, so a second one is refused before it opens a run, with what to do instead. The kernel drops
the lock when its process ends, so a crash never leaves a stale lock behind. A PostgreSQL catalog with
PostgreSQL tables is shared by design and takes no lock.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import sys
import threading
from pathlib import Path

from nxsci.recon import NxsciError

from ._settings import TiledSettings

__all__ = ["CatalogLock", "lock_catalog", "CatalogInUseError"]

LOCK_NAME = ".nxsci-catalog.lock"

_held: dict[Path, CatalogLock] = {}
_guard = threading.Lock()


class CatalogInUseError(NxsciError, RuntimeError):
    """Another process holds the local catalog (the message says which and what to do)."""


def _local_files(settings: TiledSettings) -> bool:
    return (settings.resolved_catalog_uri().startswith("sqlite")
            or settings.resolved_tables_uri().startswith("duckdb"))


@dataclasses.dataclass(eq=False)
class CatalogLock:
    """This process's hold on a local catalog; shared by every opener in the process (counted)."""

    path: Path
    fd: int
    users: int = 1

    def describe(self, holder: str, uri: str | None = None) -> None:
        """Record who holds the catalog (``uri``: where it is served), for the message a second process gets."""
        record = {"pid": os.getpid(), "holder": holder, "uri": uri, "command": " ".join(sys.argv[:3])}
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(record).encode(), 0)

    def release(self) -> None:
        with _guard:
            self.users -= 1
            if self.users > 0:
                return
            _held.pop(self.path, None)
            os.close(self.fd)  # closing the descriptor drops the flock


def _holder_text(path: Path) -> tuple[str, str | None]:
    try:
        record = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        record = {}
    who = record.get("holder") or "another process"
    pid = f" (pid {record['pid']})" if record.get("pid") else ""
    return f"{who}{pid}", record.get("uri")


def lock_catalog(settings: TiledSettings, holder: str) -> CatalogLock | None:
    """Take the local catalog for this process (None: a shared PostgreSQL catalog needs no lock).

    Raises :class:`CatalogInUseError` when another process holds it."""
    if not _local_files(settings):
        return None
    directory = settings.data_dir.expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    with _guard:
        held = _held.get(path)
        if held is not None:
            held.users += 1
            return held
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            who, uri = _holder_text(path)
            advice = (f"write through it with --tiled {uri} (or NXSCI_TILED_URI={uri})" if uri else
                      "wait for it to finish, or serve the catalog with `nxsci tiled` and pass its URI "
                      "(--tiled or NXSCI_TILED_URI) to every process")
            raise CatalogInUseError(f"the catalog in {directory} is in use by {who}; its SQLite/duckdb files take "
                                    f"one process at a time: {advice}") from None
        lock = CatalogLock(path=path, fd=fd)
        _held[path] = lock
    lock.describe(holder)
    return lock
