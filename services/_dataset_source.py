"""Where the service gets a reconstructable :class:`~nxsci.recon.Dataset` for a run uid.

The job runner depends only on the small :class:`DatasetSource` protocol:

* :class:`PipelineSource` — the real one: the run's frames and spectra in the tiled catalog, turned into a
  dataset by the issue-5 pipeline (registration + PyMca fitting, ``nxsci.services.run_to_dataset``);
* :class:`SimulatedRunSource` — runs whose start document carries ``nxsci_simulation`` (keyword arguments
  of :func:`nxsci.recon.simulate_case`); used by tests and demos to exercise the whole service with a real
  catalog without acquiring frames.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol

from nxsci.recon import Dataset, NxsciError, default_method, simulate_case

__all__ = ["DatasetSource", "RunInfo", "UnknownRunError", "NoXrfDataError", "PipelineSource",
           "SimulatedRunSource", "make_source"]


class UnknownRunError(NxsciError, LookupError):
    """The run uid is not in the catalog."""


class NoXrfDataError(NxsciError, ValueError):
    """The run exists but carries no XRF data to reconstruct from."""


class RunInfo(dict):
    """What a request is checked against: ``elements`` (list), ``plan_name``, ``default_method``."""


class DatasetSource(Protocol):
    def describe(self, run_uid: str) -> RunInfo:
        """Cheap check at request time; raises :class:`UnknownRunError` / :class:`NoXrfDataError`."""

    def load(self, run_uid: str, progress: Callable[[float, str], None] | None = None) -> Dataset:
        """The run as a dataset (may take a while: registration, spectrum fitting)."""


def _run_node(raw: Any, run_uid: str) -> Any:
    if not isinstance(run_uid, str) or not run_uid.strip() or "/" in run_uid:
        raise UnknownRunError(f"run_uid must be a run's uid, got {run_uid!r}")
    try:
        return raw[run_uid]
    except KeyError:
        raise UnknownRunError(f"unknown run '{run_uid}': not in the catalog") from None


def _start(node: Any) -> dict[str, Any]:
    return dict(node.metadata.get("start") or {})


class PipelineSource:
    """Runs of the ``nxsci_scan`` plan: frames and spectra -> dataset via the issue-5 pipeline."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def describe(self, run_uid: str) -> RunInfo:
        node = _run_node(self.raw, run_uid)
        start = _start(node)
        elements = start.get("elements")
        if not start.get("nxsci_run") or not elements or "primary" not in node:
            raise NoXrfDataError(f"run '{run_uid}' ({start.get('plan_name', 'unknown plan')}) has no XRF data: "
                                 "not an nxsci_scan run with Vortex spectra")
        return RunInfo(elements=[str(e) for e in elements], plan_name=start.get("plan_name"),
                       default_method="composition-tv")  # an nxsci_scan run has a TXM image

    def load(self, run_uid: str, progress: Callable[[float, str], None] | None = None) -> Dataset:
        self.describe(run_uid)
        try:
            from . import run_to_dataset  # type: ignore[attr-defined]  # the issue-5 pipeline
        except ImportError as exc:
            raise NxsciError("this installation has no run -> dataset pipeline (nxsci.services.run_to_dataset); "
                             "use source: simulated") from exc
        if progress:
            progress(0.0, "registration and XRF fitting")
        return run_to_dataset(self.raw, run_uid)


@functools.lru_cache(maxsize=8)
def _simulate(items: tuple[tuple[str, Any], ...]) -> Dataset:
    return simulate_case(**dict(items))


class SimulatedRunSource:
    """Runs whose start document has ``nxsci_simulation: {size, sampling, seed, ...}``."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def _sim_args(self, run_uid: str) -> tuple[dict[str, Any], dict[str, Any]]:
        node = _run_node(self.raw, run_uid)
        start = _start(node)
        sim = start.get("nxsci_simulation")
        if not isinstance(sim, dict):
            raise NoXrfDataError(f"run '{run_uid}' ({start.get('plan_name', 'unknown plan')}) has no XRF data "
                                 "(no 'nxsci_simulation' in its start document)")
        return start, sim

    def describe(self, run_uid: str) -> RunInfo:
        start, sim = self._sim_args(run_uid)
        try:
            ds = _simulate(tuple(sorted(sim.items())))
        except TypeError as exc:
            raise NoXrfDataError(f"run '{run_uid}': invalid nxsci_simulation ({exc})") from exc
        return RunInfo(elements=list(ds.elements), plan_name=start.get("plan_name"),
                       default_method=default_method(ds))

    def load(self, run_uid: str, progress: Callable[[float, str], None] | None = None) -> Dataset:
        _, sim = self._sim_args(run_uid)
        if progress:
            progress(0.0, "simulating the run's dataset")
        return _simulate(tuple(sorted(sim.items())))


def make_source(kind: str, raw: Any) -> DatasetSource:
    if kind == "simulated":
        return SimulatedRunSource(raw)
    return PipelineSource(raw)
