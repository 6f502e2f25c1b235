"""Reconstruction results: element maps plus the method, parameters, metrics and provenance behind them.

Result file layout (``nxsci_format = "1"``, ``kind = "result"``)::

    /maps                   float32 (E, H, W)   attrs: elements
    /  attrs                method, parameters (JSON, per element), metrics (JSON, per element),
                            solver_info (JSON, per element), timings (JSON), trust (JSON, per element),
                            warnings (JSON list of strings; both absent in files written before them)
    /provenance  attrs      input_file, input_sha256, nxsci_version, created, run_uid (when from a run)
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .dataset import FORMAT_VERSION, atomic_h5_write, check_writable, nxsci_version, open_h5
from .._errors import DatasetError

__all__ = ["ReconResult", "save_result", "load_result", "file_sha256"]

#: root attributes stored as JSON; the ones added later may be missing from older files (then empty)
_JSON_ATTRS = ("parameters", "metrics", "solver_info", "timings", "trust", "warnings")
_ADDED_LATER = ("trust", "warnings")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)
    return obj


@dataclasses.dataclass
class ReconResult:
    """Maps of several elements reconstructed with one method."""

    maps: np.ndarray
    elements: list[str]
    method: str
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    solver_info: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: per element: can its map be trusted, judged from the data alone (``TrustRecord.as_dict()``)
    trust: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    #: what a user must know before using the maps, one line each, starting with the element
    warnings: list[str] = dataclasses.field(default_factory=list)

    def priors(self) -> dict[str, dict[str, Any]]:
        """Per element, the prior its map was made with and why (``auto`` chooses one per element): ``prior``,
        ``reason``, the held-out evidence (``significance`` in standard errors, ``pooled_significance``) and
        the TXM's estimated ``txm_offset_px`` / ``txm_blur_px`` / ``txm_noise`` (fraction of its range, before
        denoising) where they exist."""
        out: dict[str, dict[str, Any]] = {}
        for element in self.elements:
            info = self.solver_info.get(element, {})
            choice = info.get("model_choice") or {}
            entry: dict[str, Any] = {"prior": info.get("prior", self.method)}
            if "reason" in choice:
                entry["reason"] = choice["reason"]
            for key in ("significance", "pooled_significance"):
                if key in choice:
                    entry[key] = choice[key]
            for key in ("txm_offset_px", "txm_realigned", "txm_blur_px", "txm_noise"):
                if key in info:
                    entry[key] = info[key]
            out[element] = _jsonable(entry)
        return out

    def map(self, element: str) -> np.ndarray:
        if element not in self.elements:
            raise DatasetError(f"unknown element '{element}': result has {', '.join(self.elements)}")
        return self.maps[self.elements.index(element)]

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary (no arrays): what a report or REST response shows."""
        return _jsonable({"method": self.method, "elements": self.elements, "parameters": self.parameters,
                          "metrics": self.metrics, "timings": self.timings, "provenance": self.provenance,
                          "solver_info": self.solver_info, "trust": self.trust, "warnings": self.warnings,
                          "priors": self.priors()})


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_result(result: ReconResult, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write a result file atomically; refuses to replace an existing file unless ``overwrite``."""
    p = check_writable(path, overwrite)

    def write(f: h5py.File) -> None:
        f.attrs["nxsci_format"] = FORMAT_VERSION
        f.attrs["kind"] = "result"
        f.attrs["method"] = result.method
        for key in _JSON_ATTRS:
            f.attrs[key] = json.dumps(_jsonable(getattr(result, key)))
        d = f.create_dataset("maps", data=np.asarray(result.maps, dtype=np.float32))
        d.attrs["elements"] = np.array(result.elements, dtype=h5py.string_dtype())
        g = f.create_group("provenance")
        prov = {"nxsci_version": nxsci_version(), "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
                **result.provenance}
        for k, v in prov.items():
            g.attrs[k] = v if isinstance(v, (str, int, float)) else json.dumps(_jsonable(v))

    atomic_h5_write(p, write)
    return p


def load_result(path: str | os.PathLike[str]) -> ReconResult:
    p = Path(path)
    with open_h5(p) as f:
        if f.attrs.get("kind") not in ("result", b"result") or "maps" not in f:
            raise DatasetError(f"{p}: not an nxsci result file")
        maps = np.asarray(f["maps"][()])
        elements = [e.decode() if isinstance(e, bytes) else str(e) for e in f["maps"].attrs["elements"]]
        loads = {k: json.loads(f.attrs[k]) for k in _JSON_ATTRS if k in f.attrs or k not in _ADDED_LATER}
        prov = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f["provenance"].attrs.items()}
        method = str(f.attrs["method"])
    return ReconResult(maps=maps, elements=elements, method=method, provenance=prov, **loads)
