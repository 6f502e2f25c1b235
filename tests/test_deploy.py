"""Deployment files, validated without docker: docker-compose.yml against the Compose Specification schema
(tests/data/compose-spec.json, from github.com/compose-spec/compose-spec, schema/compose-spec.json, Apache-2.0)
plus its wiring; the tiled config against tiled's own schema and model; the service example against
ServiceSettings; the PostgreSQL init script and the Dockerfile against what the configs use."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
QUEUESERVER = ROOT / "deploy" / "queueserver"
EXPECTED = {"postgres", "redis", "tiled", "queue-manager", "queue-http", "nxsci", "dask-scheduler", "dask-worker"}


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _compose_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text())
    return jsonschema.Draft7Validator(schema)


def test_compose_file_matches_the_compose_specification() -> None:
    validator = _compose_validator()
    errors = sorted(validator.iter_errors(_compose()), key=str)
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)
    # the schema is strict enough to catch a typo
    broken = _compose()
    broken["services"]["nxsci"]["enviroment"] = {}
    assert any("enviroment" in e.message for e in validator.iter_errors(broken))


def test_compose_services_and_their_wiring() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == EXPECTED
    for name, svc in services.items():
        assert ("image" in svc) or ("build" in svc), name
        optional = name.startswith("dask-")
        assert (svc.get("profiles") == ["dask"]) is optional, f"{name}: only the Dask services are optional"
        deps = svc.get("depends_on", [])
        for dep in deps if isinstance(deps, list) else deps.keys():
            assert dep in services, f"{name} depends on unknown service {dep}"
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./deploy/queueserver") and not QUEUESERVER.exists():
                continue  # the queue-server startup files come with the acquisition issue (deploy/queueserver)
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name} uses undeclared volume {source}"
    ports = [p for svc in services.values() for p in svc.get("ports", [])]
    assert all(p.startswith("127.0.0.1:") for p in ports), "publish on loopback only"
    assert len({p.split(":")[1] for p in ports}) == len(ports), "host ports collide"
    # the service runs `nxsci serve` with the mounted example config, on PostgreSQL, against the tiled service
    nxsci = services["nxsci"]
    assert nxsci["command"][:2] == ["nxsci", "serve"]
    config_in_container = nxsci["command"][nxsci["command"].index("--config") + 1]
    assert any(v.endswith(":" + config_in_container + ":ro") for v in nxsci["volumes"])
    assert nxsci["environment"]["NXSCI_JOBS__URL"].startswith("postgresql://")
    assert nxsci["environment"]["NXSCI_TILED_URI"] == "http://tiled:8000"
    assert services["dask-worker"]["command"][:3] == ["dask", "worker", "tcp://dask-scheduler:8786"]
    # the queue server: manager on Redis with the startup dir of deploy/queueserver, HTTP server on its ZMQ ports
    manager = " ".join(services["queue-manager"]["command"])
    assert "--redis-addr=redis:6379" in manager and "--keep-re" in manager
    if QUEUESERVER.exists():
        assert (QUEUESERVER / "startup/user_group_permissions.yaml").exists()
    http_env = services["queue-http"]["environment"]
    assert http_env["QSERVER_ZMQ_CONTROL_ADDRESS"] == "tcp://queue-manager:60615"
    assert "tcp://0.0.0.0:60615" in manager
    tiled_cmd = services["tiled"]["command"]
    assert tiled_cmd[:3] == ["tiled", "serve", "config"]
    assert any(v.endswith(":" + tiled_cmd[3] + ":ro") for v in services["tiled"]["volumes"])


def test_every_compose_variable_is_in_the_env_example() -> None:
    used = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    example = {line.split("=", 1)[0].strip() for line in (ROOT / "deploy/env.example").read_text().splitlines()
               if "=" in line and not line.lstrip().startswith("#")}
    assert used and used <= example, f"not in deploy/env.example: {sorted(used - example)}"


def _expanded_tiled_config(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from tiled.utils import parse

    monkeypatch.setenv("TILED_SINGLE_USER_API_KEY", "abc123")
    monkeypatch.setenv("POSTGRES_PASSWORD", "pw")
    return parse(ROOT / "deploy/tiled/config.yml")


def test_tiled_config_validates_against_tileds_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    """tiled's configuration schema is its pydantic ``Config`` model (extra keys forbidden), which
    ``tiled serve config`` itself applies; the bundled JSON schema of tiled 0.2.20 predates ``catalog:``."""
    from pydantic import ValidationError
    from tiled.config import Config, parse_configs

    config = _expanded_tiled_config(monkeypatch)
    model = parse_configs(ROOT / "deploy/tiled/config.yml")
    assert model.authentication.single_user_api_key == "abc123"
    (tree,) = model.trees  # tiled turns `catalog:` into one tree at /
    assert tree.path == "/" and tree.args["init_if_not_exists"] is True
    assert str(tree.args["uri"]).startswith("postgresql+asyncpg://")
    storage = [str(s) for s in tree.args["writable_storage"]]
    assert any(s.startswith("postgresql://") for s in storage), "event tables need SQL storage (not duckdb)"
    assert "BlueskyRun" in model.media_types  # run.documents() works
    with pytest.raises(ValidationError, match="writeable_storage"):
        Config.model_validate({**config, "catalog": {**config["catalog"], "writeable_storage": []}})


def test_postgres_init_creates_every_database_the_configs_use(monkeypatch: pytest.MonkeyPatch) -> None:
    created = set(re.findall(r"CREATE DATABASE (\w+)", (ROOT / "deploy/postgres/init.sql").read_text()))
    config = _expanded_tiled_config(monkeypatch)
    urls = [config["catalog"]["uri"], *config["catalog"]["writable_storage"],
            _compose()["services"]["nxsci"]["environment"]["NXSCI_JOBS__URL"],
            yaml.safe_load((ROOT / "deploy/nxsci-service.yaml").read_text())["jobs"]["url"]]
    used = {url.rsplit("/", 1)[1] for url in urls if url.startswith("postgresql")}
    assert used == created


def test_service_example_config_validates_and_documents_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from nxsci.services import ServiceSettings, load_service_settings

    for key in [k for k in __import__("os").environ if k.startswith("NXSCI_")]:
        monkeypatch.delenv(key)
    path = ROOT / "deploy/nxsci-service.yaml"
    settings = load_service_settings(path)
    assert settings.tiled.uri == "http://tiled:8000" and settings.source == "pipeline"
    assert settings.executor.kind == "local" and settings.jobs.url.startswith("postgresql://")
    data = yaml.safe_load(path.read_text())
    for name, field in ServiceSettings.model_fields.items():
        if name == "api_key":
            assert "api_key" not in data, "secrets do not belong in the file"
            continue
        assert name in data, f"example lacks '{name}'"
        sub = getattr(field.annotation, "model_fields", None)
        if sub:
            missing = set(sub) - set(data[name]) - {"api_key"}
            assert not missing, f"example lacks {name}.{sorted(missing)}"
    assert path.read_text().count("#") > 15  # commented


def test_dockerfile_matches_the_project() -> None:
    text = (ROOT / "Dockerfile").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    torch_pin = next(d for d in project["project"]["dependencies"] if d.startswith("torch"))
    assert torch_pin in text
    for folder in set(project["tool"]["setuptools"]["package-dir"].values()):
        top = folder.split("/")[0]
        assert re.search(rf"^COPY {top} \./{top}$", text, re.M), f"Dockerfile does not copy {top}/"
    assert "bluesky-httpserver" in text  # queue-http runs bluesky_httpserver
    assert re.search(r"^USER (?!root)\w+", text, re.M), "the services do not run as root"
