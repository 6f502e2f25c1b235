"""Facts about the machine and the library state that every report records (numbers depend on them)."""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["machine_info", "library_state", "loadavg", "mem_available_gb"]

ROOT = Path(__file__).resolve().parents[2]


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _meminfo_gb(field: str) -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024**2
    return None


def mem_available_gb() -> float:
    """Memory available now (GB); 4 when unknown."""
    got = _meminfo_gb("MemAvailable")
    return 4.0 if got is None else got


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def loadavg() -> list[float] | None:
    """1/5/15-minute load average: other jobs inflate wall times."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def machine_info() -> dict[str, Any]:
    """Date, host, CPU, memory, versions, BLAS and load average at start."""
    import scipy
    import torch
    from threadpoolctl import threadpool_info

    from nxsci.recon import nxsci_version

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        affinity = os.cpu_count()
    total = _meminfo_gb("MemTotal")
    return {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "memory_gb": None if total is None else round(total, 1),
        "python": platform.python_version(),
        "nxsci": nxsci_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "torch": torch.__version__,
        "corrct": _dist_version("corrct"),
        "blas": [f"{i.get('internal_api')} {i.get('version')} ({i.get('user_api')})" for i in threadpool_info()],
        "load_average_at_start": loadavg(),
        "openblas_num_threads_env": os.environ.get("OPENBLAS_NUM_THREADS"),
    }


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)


def library_state() -> str:
    """The git commit of the library and whether recon/ has uncommitted changes (they do change results)."""
    try:
        head = _git("rev-parse", "--short", "HEAD").stdout.strip()
        last = _git("log", "-1", "--format=%h", "--", "recon").stdout.strip()
        head = f"{head} (last recon/ commit {last})"
        dirty = [line for line in _git("status", "--porcelain", "--", "recon").stdout.splitlines() if line.strip()]
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"
    if not dirty:
        return f"commit {head}, recon/ clean"
    diff = subprocess.run(["git", "diff", "HEAD", "--", "recon"], cwd=ROOT, capture_output=True, timeout=10).stdout
    return (f"commit {head}, recon/ with {len(dirty)} uncommitted change(s) "
            f"({', '.join(d[3:] for d in dirty)}; diff sha256 {hashlib.sha256(diff).hexdigest()[:12]})")
