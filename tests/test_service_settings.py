"""Service configuration: file < environment < command line, extra keys rejected with the key named, and
`nxsci serve` with a bad file exits 2 with one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nxsci.services import ServiceSettingsError, load_service_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in [k for k in os.environ if k.startswith("NXSCI_")]:
        monkeypatch.delenv(key)


def test_defaults_are_local_and_embedded() -> None:
    s = load_service_settings()
    assert s.tiled.uri is None and s.executor.kind == "local" and s.jobs.url.startswith("sqlite:///")
    assert s.auto_trigger.enabled and s.auto_trigger.plan_names == ["nxsci_scan"] and s.api_key is None


def test_file_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text("port: 9001\nexecutor: {local_workers: 2}\ntiled: {uri: http://file:1}\n")
    s = load_service_settings(cfg)
    assert (s.port, s.executor.local_workers, s.tiled.uri) == (9001, 2, "http://file:1")
    monkeypatch.setenv("NXSCI_PORT", "9002")
    monkeypatch.setenv("NXSCI_EXECUTOR__DASK_SCHEDULER", "tcp://sched:8786")
    monkeypatch.setenv("NXSCI_API_KEY", "k1")
    monkeypatch.setenv("NXSCI_TILED_API_KEY", "k2")
    s = load_service_settings(cfg)
    assert s.port == 9002 and s.executor.kind == "dask" and s.executor.local_workers == 2
    assert s.api_key.get_secret_value() == "k1" and s.tiled.api_key.get_secret_value() == "k2"
    assert "k1" not in repr(s) and "k2" not in repr(s)  # secrets stay out of logs
    s = load_service_settings(cfg, port=9003, **{"tiled.uri": "http://flag:2"})
    assert s.port == 9003 and s.tiled.uri == "http://flag:2"


def test_tiled_uri_from_the_shared_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NXSCI_TILED_URI", "http://tiled:8000")
    assert load_service_settings().tiled.uri == "http://tiled:8000"


@pytest.mark.parametrize("text, words", [
    ("prot: 1\n", ["prot", "Extra inputs"]),
    ("executor: {dask: x}\n", ["executor.dask", "Extra inputs"]),
    ("port: many\n", ["port"]),
    ("auto_trigger: {poll_interval_s: -1}\n", ["auto_trigger.poll_interval_s"]),
    ("tiled: {results: 'a/b'}\n", ["tiled.results"]),
    ("[1, 2]\n", ["mapping"]),
    ("port: [\n", ["not valid YAML"]),
])
def test_bad_files_name_the_key(tmp_path: Path, text: str, words: list[str]) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    with pytest.raises(ServiceSettingsError) as info:
        load_service_settings(cfg)
    for word in words:
        assert word in str(info.value)
    assert str(cfg) in str(info.value)


def test_bad_flag_value_is_rejected() -> None:
    with pytest.raises(ServiceSettingsError, match="port"):
        load_service_settings(port=70000)


def test_serve_with_a_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("jobs: {uri: sqlite:///x.db}\n")
    out = subprocess.run([sys.executable, "-m", "nxsci.cli", "serve", "--config", str(cfg)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith("nxsci serve: error:") and "jobs.uri" in lines[-1]
