"""``nxsci export RUN_UID -o FILE.h5``: a run as an interchange file, for offline reconstruction."""

from __future__ import annotations

import os
from pathlib import Path

from nxsci.recon import check_writable, save_dataset

from ._pipeline import PipelineSettings, run_to_dataset
from ._tiled import RunCatalog

__all__ = ["export_run"]


def export_run(source: RunCatalog | str | None, uid: str, path: str | os.PathLike[str], *,
               overwrite: bool = False, settings: PipelineSettings | None = None,
               api_key: str | None = None) -> Path:
    """Write run ``uid`` as an interchange file (refusing to replace ``path`` unless ``overwrite``)."""
    check_writable(path, overwrite)  # fail before reading and fitting, not after
    dataset = run_to_dataset(source, uid, settings=settings, api_key=api_key)
    return save_dataset(dataset, path, overwrite=overwrite)
