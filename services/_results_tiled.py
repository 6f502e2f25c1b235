"""Reconstruction results in tiled: ``<results>/<job id>`` holds one array per element and ``maps``.

The container's metadata is the provenance: run uid (always the full uid), job id, method, parameters,
elements, metrics, warnings (maps not to be trusted), timings, solver information (chosen weights, CV
curves), nxsci version and creation time. Each element
array carries its own metrics, so a viewer needs nothing else.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np

from nxsci.recon import ReconResult
from nxsci.recon.data.dataset import nxsci_version

__all__ = ["results_container", "write_result", "read_element_map"]


def results_container(client: Any, name: str) -> Any:
    """The results container, created on first use."""
    if name not in client:
        try:
            client.create_container(name, metadata={"description": "nxsci reconstructions, one per job"})
        except Exception:  # another process created it first
            if name not in client:
                raise
    return client[name]


def write_result(container: Any, job_id: str, run_uid: str, result: ReconResult,
                 extra: dict[str, Any] | None = None) -> str:
    """Write maps + provenance under ``job_id`` (replacing a partial earlier attempt); returns its URI."""
    if job_id in container:
        container[job_id].delete(recursive=True)
    summary = result.summary()
    metadata = {"run_uid": run_uid, "job_id": job_id, "nxsci_version": nxsci_version(),
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(), **summary,
                "warnings": [str(w) for w in getattr(result, "warnings", None) or []], **(extra or {})}
    node = container.create_container(job_id, metadata=metadata)
    maps = np.asarray(result.maps, dtype=np.float32)
    node.write_array(maps, key="maps", dims=["element", "y", "x"],
                     metadata={"elements": list(result.elements)})
    for element, image in zip(result.elements, maps):
        node.write_array(np.ascontiguousarray(image), key=element, dims=["y", "x"],
                         metadata={"element": element, "metrics": summary["metrics"].get(element, {})})
    return node.uri


def read_element_map(container: Any, job_id: str, element: str) -> np.ndarray:
    return np.asarray(container[job_id][element].read())
