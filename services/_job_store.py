"""Persistent job records (SQLAlchemy Core): SQLite by default, PostgreSQL for a facility.

A restart loses nothing: finished jobs keep their metrics and result URI, and jobs that were running
when the service stopped are put back in the queue (:meth:`JobStore.requeue_interrupted`).
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

__all__ = ["JobRecord", "JobStore", "JOB_STATES", "FINAL_STATES"]

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})

_md = sa.MetaData()
_jobs = sa.Table(
    "nxsci_jobs", _md,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("run_uid", sa.String(256), nullable=False, index=True),
    sa.Column("elements", sa.JSON, nullable=True),
    sa.Column("method", sa.String(64), nullable=True),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("origin", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("progress", sa.Float, nullable=False),
    sa.Column("stage", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("started", sa.Float, nullable=True),
    sa.Column("finished", sa.Float, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("timings", sa.JSON, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("result_uri", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("cancel_requested", sa.Boolean, nullable=False),
    # added after the first release: nullable, so that older tables gain it with ALTER TABLE (see _upgrade)
    sa.Column("warnings", sa.JSON, nullable=True),
    # per element: the prior ``auto`` chose and its evidence (``ReconResult.priors()``)
    sa.Column("priors", sa.JSON, nullable=True),
)
#: columns newer than the first table layout, added to an existing table when missing
_ADDED_COLUMNS = ("warnings", "priors")
_meta = sa.Table("nxsci_meta", _md, sa.Column("key", sa.String(64), primary_key=True),
                 sa.Column("value", sa.Text, nullable=False))
_triggered = sa.Table("nxsci_triggered", _md, sa.Column("run_uid", sa.String(256), primary_key=True),
                      sa.Column("job_id", sa.String(32), nullable=False))


@dataclasses.dataclass
class JobRecord:
    id: str
    run_uid: str
    elements: list[str] | None
    method: str | None
    params: dict[str, Any]
    origin: str
    status: str
    progress: float
    stage: str
    created: float
    started: float | None
    finished: float | None
    attempts: int
    timings: dict[str, float]
    metrics: dict[str, dict[str, float]]
    result_uri: str | None
    error: str | None
    cancel_requested: bool
    warnings: list[str] = dataclasses.field(default_factory=list)
    priors: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Any) -> JobRecord:
        """A record from a table row (rows written before ``warnings`` or ``priors`` existed have NULL there)."""
        values = dict(row)
        values["warnings"] = [str(w) for w in values.get("warnings") or []]
        values["priors"] = dict(values.get("priors") or {})
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        del out["cancel_requested"]
        return out


def engine_url(url: str) -> str:
    """``postgresql://`` -> the psycopg (v3) driver; SQLite parent folders are created."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url[len("sqlite:///"):]).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    return url


class JobStore:
    """Thread-safe job table; every method is one short transaction."""

    def __init__(self, url: str) -> None:
        full = engine_url(url)
        kwargs: dict[str, Any] = {}
        if full.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.url = url
        self.engine = sa.create_engine(full, **kwargs)
        self._lock = threading.RLock()
        _md.create_all(self.engine)
        self._upgrade()

    def _upgrade(self) -> None:
        """Add the columns a table created by an older nxsci lacks (``create_all`` leaves existing tables)."""
        for name in _ADDED_COLUMNS:
            if name in self._columns():
                continue
            column = _jobs.c[name]
            ddl = f"ALTER TABLE {_jobs.name} ADD COLUMN {name} {column.type.compile(dialect=self.engine.dialect)}"
            try:
                with self._lock, self.engine.begin() as conn:
                    conn.execute(sa.text(ddl))
            except sa.exc.DBAPIError:
                if name not in self._columns():  # not another service adding it at the same moment
                    raise

    def _columns(self) -> set[str]:
        return {c["name"] for c in sa.inspect(self.engine).get_columns(_jobs.name)}

    def close(self) -> None:
        self.engine.dispose()

    # -- jobs
    def create(self, run_uid: str, *, elements: list[str] | None, method: str | None, params: dict[str, Any],
               origin: str = "api") -> JobRecord:
        row = dict(id=uuid.uuid4().hex, run_uid=run_uid, elements=elements, method=method, params=params,
                   origin=origin, status="queued", progress=0.0, stage="queued", created=time.time(),
                   started=None, finished=None, attempts=0, timings={}, metrics={}, result_uri=None, error=None,
                   cancel_requested=False, warnings=[], priors={})
        with self._lock, self.engine.begin() as conn:
            conn.execute(_jobs.insert().values(**row))
        return JobRecord(**row)

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock, self.engine.connect() as conn:
            row = conn.execute(_jobs.select().where(_jobs.c.id == job_id)).mappings().first()
        return None if row is None else JobRecord.from_row(row)

    def list(self, *, status: str | None = None, limit: int = 1000) -> list[JobRecord]:
        q = _jobs.select().order_by(_jobs.c.created.desc()).limit(limit)
        if status is not None:
            q = q.where(_jobs.c.status == status)
        with self._lock, self.engine.connect() as conn:
            return [JobRecord.from_row(r) for r in conn.execute(q).mappings()]

    def count(self, status: str) -> int:
        with self._lock, self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(_jobs)
                                    .where(_jobs.c.status == status)).scalar_one())

    def update(self, job_id: str, *, only_if_status: tuple[str, ...] | None = None, **values: Any) -> bool:
        """Set columns; with ``only_if_status`` only while the job is in one of those states."""
        q = _jobs.update().where(_jobs.c.id == job_id)
        if only_if_status is not None:
            q = q.where(_jobs.c.status.in_(only_if_status))
        with self._lock, self.engine.begin() as conn:
            return conn.execute(q.values(**values)).rowcount > 0

    def requeue_interrupted(self) -> list[str]:
        """Jobs left 'running' by a stopped service go back to 'queued' (their progress restarts)."""
        with self._lock, self.engine.begin() as conn:
            ids = [r[0] for r in conn.execute(sa.select(_jobs.c.id).where(_jobs.c.status == "running"))]
            if ids:
                conn.execute(_jobs.update().where(_jobs.c.id.in_(ids))
                             .values(status="queued", progress=0.0, stage="re-queued after a restart"))
            # a cancel asked for while the service was down ends the job now
            conn.execute(_jobs.update().where(_jobs.c.status == "queued", _jobs.c.cancel_requested.is_(True))
                         .values(status="cancelled", finished=time.time(), stage="cancelled"))
        return ids

    # -- auto-trigger bookkeeping
    def get_meta(self, key: str) -> str | None:
        with self._lock, self.engine.connect() as conn:
            return conn.execute(sa.select(_meta.c.value).where(_meta.c.key == key)).scalar()

    def set_meta_default(self, key: str, value: str) -> str:
        with self._lock, self.engine.begin() as conn:
            found = conn.execute(sa.select(_meta.c.value).where(_meta.c.key == key)).scalar()
            if found is None:
                conn.execute(_meta.insert().values(key=key, value=value))
                return value
            return found

    def set_meta(self, key: str, value: str) -> None:
        with self._lock, self.engine.begin() as conn:
            if conn.execute(_meta.update().where(_meta.c.key == key).values(value=value)).rowcount == 0:
                conn.execute(_meta.insert().values(key=key, value=value))

    def triggered(self, run_uid: str) -> bool:
        with self._lock, self.engine.connect() as conn:
            return conn.execute(sa.select(_triggered.c.job_id).where(_triggered.c.run_uid == run_uid)).first() \
                is not None

    def mark_triggered(self, run_uid: str, job_id: str) -> None:
        with self._lock, self.engine.begin() as conn:
            conn.execute(_triggered.insert().values(run_uid=run_uid, job_id=job_id))
