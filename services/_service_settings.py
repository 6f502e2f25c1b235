"""Configuration of the reconstruction service (``nxsci serve``): pydantic models with ``extra="forbid"``.

Precedence: command-line flags > environment (``NXSCI_...``, nested with ``__``, e.g.
``NXSCI_EXECUTOR__DASK_SCHEDULER=tcp://host:8786``) > the YAML file (``nxsci serve --config``) > defaults.
Secrets and the catalog have their own variables, shared with the rest of nxsci: ``NXSCI_API_KEY``
(clients' key for the mutating endpoints), ``NXSCI_TILED_URI`` and ``NXSCI_TILED_API_KEY`` (the tiled server,
or the key of the embedded one). The commented example is ``deploy/nxsci-service.yaml``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from nxsci.recon import NxsciError

__all__ = ["ServiceSettings", "load_service_settings", "ServiceSettingsError"]


class ServiceSettingsError(NxsciError, ValueError):
    """A service configuration file or environment variable is invalid."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ServiceTiled(_Section):
    uri: str | None = Field(None, description="tiled server URI; null = start an embedded tiled server")
    api_key: SecretStr | None = Field(None, description="tiled API key (default: $NXSCI_TILED_API_KEY)")
    directory: Path = Field(Path("var/tiled"), description="embedded server: catalog and data directory")
    port: int = Field(0, ge=0, le=65535, description="embedded server port (0 = a free port)")
    raw: str = Field("raw", pattern=r"^[A-Za-z0-9_\-]+$",
                     description="container of the bluesky runs (spec CatalogOfBlueskyRuns)")
    results: str = Field("results", pattern=r"^[A-Za-z0-9_\-]+$",
                         description="container the reconstructions are written into")


class ServiceJobs(_Section):
    url: str = Field("sqlite:///var/nxsci-jobs.db",
                     description="SQLAlchemy URL: sqlite:///path or postgresql://user@host:5432/db")


class ServiceExecutor(_Section):
    dask_scheduler: str | None = Field(None, description="dask.distributed scheduler address; null = in-process")
    local_workers: int = Field(1, ge=1, le=64, description="concurrent jobs of the in-process worker")
    device: Literal["cpu", "cuda", "auto"] = Field("cpu", description="reconstruction device")

    @field_validator("dask_scheduler")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None  # compose's ${VAR:-} gives ""

    @property
    def kind(self) -> str:
        return "dask" if self.dask_scheduler else "local"


class ServiceAutoTrigger(_Section):
    enabled: bool = Field(True, description="queue a reconstruction when an nxsci_scan run completes")
    plan_names: list[str] = Field(["nxsci_scan"], description="plans whose completed runs are reconstructed")
    poll_interval_s: float = Field(2.0, gt=0, le=3600, description="how often the catalog is checked")
    method: str | None = Field(None, description="method of automatic jobs (null = the default method)")
    params: dict[str, Any] = Field(default_factory=dict, description="parameters of automatic jobs")


class ServiceLimits(_Section):
    max_request_bytes: int = Field(65536, ge=1024, description="larger request bodies get 413")
    max_elements: int = Field(32, ge=1, description="elements per request")
    max_params: int = Field(32, ge=1, description="parameters per request")
    max_queued: int = Field(1000, ge=1, description="queued jobs before new ones get 429")


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NXSCI_", env_nested_delimiter="__", extra="forbid",
                                      validate_assignment=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_key: SecretStr | None = Field(None, description="key for mutating endpoints; null = a random one, "
                                                       "printed at start-up")
    source: Literal["pipeline", "simulated"] = Field(
        "pipeline", description="pipeline: registration + PyMca fit of the run's frames and spectra; "
                                "simulated: runs carrying 'nxsci_simulation' start metadata (tests, demos)")
    tiled: ServiceTiled = ServiceTiled()
    jobs: ServiceJobs = ServiceJobs()
    executor: ServiceExecutor = ServiceExecutor()
    auto_trigger: ServiceAutoTrigger = ServiceAutoTrigger()
    limits: ServiceLimits = ServiceLimits()

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        return (env_settings, init_settings)  # the environment overrides the file


def load_service_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> ServiceSettings:
    """File (optional) < environment < ``overrides`` (dotted keys, e.g. ``**{"tiled.uri": ...}``; None skipped)."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            loaded = yaml.safe_load(p.read_text())
        except OSError as exc:
            raise ServiceSettingsError(f"{p}: cannot read ({exc.strerror})") from exc
        except yaml.YAMLError as exc:
            raise ServiceSettingsError(f"{p}: not valid YAML ({exc})") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ServiceSettingsError(f"{p}: expected a mapping at the top level")
        data = loaded or {}
    where = str(path) if path is not None else "configuration"
    try:
        settings = ServiceSettings(**data)
        if settings.tiled.uri is None and os.environ.get("NXSCI_TILED_URI"):
            settings.tiled.uri = os.environ["NXSCI_TILED_URI"]
        for key, value in overrides.items():  # command-line flags win over the environment
            if value is not None:
                *parents, last = key.split(".")
                target: Any = settings
                for name in parents:
                    target = getattr(target, name)
                setattr(target, last, value)  # validate_assignment checks it
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ServiceSettingsError(f"{where}: {loc}: {err['msg']}") from exc
    if settings.tiled.api_key is None and os.environ.get("NXSCI_TILED_API_KEY"):
        settings.tiled.api_key = SecretStr(os.environ["NXSCI_TILED_API_KEY"])
    return settings
