"""Settings of the run catalog and the beamline session, from ``NXSCI_*`` environment variables.

| variable | meaning |
|---|---|
| ``NXSCI_TILED_URI`` | a running tiled server (``http://host:port``); unset: the embedded local catalog |
| ``NXSCI_TILED_API_KEY`` | its API key (``nxsci tiled`` requires it; clients send it) |
| ``NXSCI_DATA_DIR`` | where the embedded catalog and ``nxsci tiled`` keep data (default ``~/.local/share/nxsci``) |
| ``NXSCI_CATALOG_URI`` | catalog database (default ``sqlite:///<data dir>/catalog.db``; or ``postgresql+asyncpg://...``) |
| ``NXSCI_TABLES_URI`` | event-table storage (default ``duckdb:///<data dir>/tables.duckdb``; or ``postgresql://...``) |
| ``NXSCI_RUNS_NODE`` | the catalog's child that holds the runs (default ``raw``) |
| ``NXSCI_WRITER_BATCH_SIZE`` | events per tiled write (default 50; 1 = every event at once, ~85 ms each) |
| ``NXSCI_BEAMLINE_MODE`` | ``sim`` (default) or ``epics`` |
| ``NXSCI_BEAMLINE_CONFIG`` | beamline configuration YAML (default: the shipped simulated beamline) |
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["TiledSettings", "BeamlineSettings", "default_data_dir"]


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "nxsci"


class TiledSettings(BaseSettings):
    """Where runs are written and read."""

    model_config = SettingsConfigDict(env_prefix="NXSCI_", extra="forbid")

    tiled_uri: str | None = Field(None, description="running tiled server; None: the embedded local catalog")
    tiled_api_key: SecretStr | None = Field(None, description="API key of the tiled server")
    data_dir: Path = Field(default_factory=default_data_dir, description="embedded catalog / nxsci tiled data")
    catalog_uri: str | None = Field(None, description="catalog database URI (default: SQLite in data_dir)")
    tables_uri: str | None = Field(None, description="event-table storage URI (default: duckdb in data_dir)")
    runs_node: str = Field("raw", pattern=r"^[A-Za-z0-9_\-]+$", description="container holding the runs")
    writer_batch_size: int = Field(50, ge=1, description="events per tiled write")

    @field_validator("tiled_uri", "catalog_uri", "tables_uri")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("tiled_api_key")
    @classmethod
    def _alphanumeric(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if not value.get_secret_value().isalnum():  # tiled refuses others (they break in ?api_key= URLs)
            raise ValueError("the tiled API key must be letters and digits only (e.g. `openssl rand -hex 32`)")
        return value

    def api_key(self) -> str | None:
        return self.tiled_api_key.get_secret_value() if self.tiled_api_key else None

    def resolved_catalog_uri(self) -> str:
        return self.catalog_uri or f"sqlite:///{self.data_dir.expanduser().resolve() / 'catalog.db'}"

    def resolved_tables_uri(self) -> str:
        return self.tables_uri or f"duckdb:///{self.data_dir.expanduser().resolve() / 'tables.duckdb'}"

    def array_dir(self) -> Path:
        return self.data_dir.expanduser().resolve() / "data"


class BeamlineSettings(BaseSettings):
    """Which beamline a session builds."""

    model_config = SettingsConfigDict(env_prefix="NXSCI_", extra="forbid")

    beamline_mode: Literal["sim", "epics"] = "sim"
    beamline_config: Path | None = None
