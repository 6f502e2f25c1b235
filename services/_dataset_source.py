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
import re
from collections.abc import Callable
from typing import Any, Protocol

from nxsci.recon import Dataset, NxsciError, default_method, simulate_case

__all__ = ["DatasetSource", "RunInfo", "UnknownRunError", "NoXrfDataError", "RunReferenceError",
           "UnusableRunError", "RunStillOpenError", "CatalogUnavailableError", "PipelineSource",
           "SimulatedRunSource", "make_source", "check_run_reference", "find_run", "MIN_RUN_PREFIX"]

#: a run reference is a full run uid or a unique prefix of one with at least this many characters (like git)
MIN_RUN_PREFIX = 8
#: longer references are refused before the catalog is asked
MAX_RUN_REFERENCE = 128
#: what bluesky's uids are made of (uuid4: hex digits and '-'); also keeps SQL LIKE wildcards out
_REFERENCE_CHARS = re.compile(r"[0-9A-Za-z-]+")
#: how many prefix matches are fetched to tell a unique prefix from an ambiguous one
_PREFIX_PROBE = 10
_RULE = f"give the run's uid or a unique prefix of it (at least {MIN_RUN_PREFIX} characters)"


class RunReferenceError(NxsciError, ValueError):
    """The run reference is malformed (not a uid or a long enough prefix) or matches several runs."""


class UnknownRunError(NxsciError, LookupError):
    """No run in the catalog has this uid (or a uid starting with this prefix)."""


class CatalogUnavailableError(NxsciError, RuntimeError):
    """The catalog could not be searched (unreachable, or it answered with an error)."""


class UnusableRunError(NxsciError, ValueError):
    """The run exists but cannot be reconstructed (yet)."""


class NoXrfDataError(UnusableRunError):
    """The run exists but carries no XRF data to reconstruct from."""


class RunStillOpenError(UnusableRunError):
    """The run has no stop document yet: its data are not complete."""


class RunInfo(dict):
    """What a request is checked against: ``uid`` (the full uid), ``elements`` (list), ``plan_name``,
    ``default_method``."""


class DatasetSource(Protocol):
    def describe(self, run_uid: str) -> RunInfo:
        """Cheap check at request time (resolves a uid prefix); raises :class:`RunReferenceError`,
        :class:`UnknownRunError`, :class:`UnusableRunError` or :class:`CatalogUnavailableError`."""

    def load(self, run_uid: str, progress: Callable[[float, str], None] | None = None) -> Dataset:
        """The run as a dataset (may take a while: registration, spectrum fitting)."""


def _shown(ref: object, limit: int = 60) -> str:
    """A reference quoted on one line (repr escapes newlines), cut to ``limit`` characters."""
    text = repr(ref)
    return text if len(text) <= limit else text[:limit - 4] + "...'"


def check_run_reference(ref: object) -> str:
    """``ref`` if it is well-formed: letters, digits and '-', a full uid or a prefix of at least
    :data:`MIN_RUN_PREFIX` characters. Scan ids are refused: they restart with every RunEngine."""
    if not isinstance(ref, str) or not ref:
        raise RunReferenceError(f"run_uid must be a non-empty string: {_RULE}")
    if len(ref) > MAX_RUN_REFERENCE:
        raise RunReferenceError(f"run_uid is too long ({len(ref)} characters > {MAX_RUN_REFERENCE}): {_RULE}")
    if any(c.isspace() for c in ref):
        raise RunReferenceError(f"run_uid {_shown(ref)} contains whitespace: {_RULE}")
    if "/" in ref:
        raise RunReferenceError(f"run_uid {_shown(ref)} contains '/': {_RULE}, not a path")
    if not _REFERENCE_CHARS.fullmatch(ref):
        raise RunReferenceError(f"run_uid {_shown(ref)} has characters other than letters, digits and '-': {_RULE}")
    if ref.isdigit() and len(ref) < MIN_RUN_PREFIX:
        raise RunReferenceError(f"run_uid {_shown(ref)} looks like a scan id; scan ids are not accepted (they "
                                f"restart with every RunEngine and are not unique): {_RULE}")
    if len(ref) < MIN_RUN_PREFIX:
        raise RunReferenceError(f"run_uid {_shown(ref)} is too short ({len(ref)} characters): {_RULE}")
    return ref


def _start(node: Any) -> dict[str, Any]:
    return dict(node.metadata.get("start") or {})


def _uid_matches(raw: Any, ref: str) -> list[tuple[str, Any]]:
    """Runs whose start uid is ``ref`` (all of them), else those whose uid starts with it (a few)."""
    from tiled.queries import Key, Like

    exact = list(raw.search(Key("start.uid") == ref).items().head(2))
    if exact:
        return exact
    if getattr(raw, "is_sql", True):
        query: Any = Like("start.uid", f"{ref}%")
    else:  # a MongoDB-backed catalog of runs: the plugin's own partial-uid query
        from bluesky_tiled_plugins.queries import PartialUID

        query = PartialUID(ref)
    found = raw.search(query).items().head(_PREFIX_PROBE)
    # SQLite's LIKE ignores case: keep what really starts with the reference
    return [(key, node) for key, node in found if str(_start(node).get("uid", key)).startswith(ref)]


def find_run(raw: Any, ref: object) -> tuple[str, Any]:
    """The full uid and node of the run that ``ref`` names (a full uid or a unique prefix of one).

    Looked up with tiled searches on ``start.uid``, never through the runs container's ``[]``, which
    treats integers as scan ids and raises ``ValueError`` for short strings."""
    ref = check_run_reference(ref)
    try:
        matches = _uid_matches(raw, ref)
    except Exception as exc:  # the catalog, not the request: one line, no traceback
        raise CatalogUnavailableError(f"cannot search the run catalog for run_uid {_shown(ref)}: "
                                      f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                                      ) from None
    if not matches:
        note = " (scan ids are not accepted: they restart with every RunEngine)" if ref.isdigit() else ""
        raise UnknownRunError(f"unknown run '{ref}': not in the catalog (no run uid is or starts with it){note}")
    if len(matches) > 1:
        uids = sorted({str(_start(node).get("uid", key)) for key, node in matches})
        more = "" if len(matches) < _PREFIX_PROBE else ", ..."
        raise RunReferenceError(f"run_uid '{ref}' matches several runs ({', '.join(u[:13] + '...' for u in uids)}"
                                f"{more}): give more characters of the uid")
    key, node = matches[0]
    return str(_start(node).get("uid", key)), node


def _require_finished(node: Any, uid: str) -> dict[str, Any]:
    """The run's stop document; a run without one is still being written (or its writer died)."""
    stop = node.metadata.get("stop")
    if not stop:
        raise RunStillOpenError(f"run '{uid}' is still running (no stop document yet): submit it after it ends")
    return dict(stop)


class PipelineSource:
    """Runs of the ``nxsci_scan`` plan: frames and spectra -> dataset via the issue-5 pipeline."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def describe(self, run_uid: str) -> RunInfo:
        uid, node = find_run(self.raw, run_uid)
        start = _start(node)
        elements = start.get("elements")
        plan = start.get("plan_name", "unknown plan")
        if not start.get("nxsci_run") or not elements:
            raise NoXrfDataError(f"run '{uid}' ({plan}) has no XRF data: not an nxsci_scan run with Vortex spectra")
        if plan != "nxsci_scan":
            raise NoXrfDataError(f"run '{uid}' is a '{plan}' run: the service reconstructs nxsci_scan runs")
        stop = _require_finished(node, uid)
        self._require_events(uid, start, stop)
        if "primary" not in node:
            raise NoXrfDataError(f"run '{uid}' has no usable data: no 'primary' stream (sample-in acquisitions)")
        return RunInfo(uid=uid, elements=[str(e) for e in elements], plan_name=plan,
                       default_method="auto")

    @staticmethod
    def _require_events(uid: str, start: dict[str, Any], stop: dict[str, Any]) -> None:
        """Dark frames, patterns (here or in a library run) and sample-in events, counted in the stop
        document (no data read): an acquisition aborted before its first configuration has nothing to fit."""
        counts = stop.get("num_events")
        if not isinstance(counts, dict):  # another writer: the pipeline finds out when the job runs
            return
        status = stop.get("exit_status", "unknown")
        needed = {"primary": "sample-in acquisitions", "dark": "dark frames"}
        if not start.get("pattern_library"):
            needed["pattern"] = "patterns (sample-out frames)"
        for stream, what in needed.items():
            if not counts.get(stream):
                raise NoXrfDataError(f"run '{uid}' has no usable data: no {what} ('{stream}' events; the run "
                                     f"ended with exit status '{status}')")

    def load(self, run_uid: str, progress: Callable[[float, str], None] | None = None) -> Dataset:
        uid = self.describe(run_uid)["uid"]
        try:
            from . import run_to_dataset  # type: ignore[attr-defined]  # the issue-5 pipeline
        except ImportError as exc:
            raise NxsciError("this installation has no run -> dataset pipeline (nxsci.services.run_to_dataset); "
                             "use source: simulated") from exc
        if progress:
            progress(0.0, "registration and XRF fitting")
        return run_to_dataset(self.raw, uid)


@functools.lru_cache(maxsize=8)
def _simulate(items: tuple[tuple[str, Any], ...]) -> Dataset:
    return simulate_case(**dict(items))


class SimulatedRunSource:
    """Runs whose start document has ``nxsci_simulation: {size, sampling, seed, ...}``."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def _sim_args(self, run_uid: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
        uid, node = find_run(self.raw, run_uid)
        start = _start(node)
        sim = start.get("nxsci_simulation")
        if not isinstance(sim, dict):
            raise NoXrfDataError(f"run '{uid}' ({start.get('plan_name', 'unknown plan')}) has no XRF data "
                                 "(no 'nxsci_simulation' in its start document)")
        _require_finished(node, uid)  # like a measured run: only a finished run is reconstructed
        return uid, start, sim

    def describe(self, run_uid: str) -> RunInfo:
        uid, start, sim = self._sim_args(run_uid)
        try:
            ds = _simulate(tuple(sorted(sim.items())))
        except (TypeError, ValueError) as exc:
            raise NoXrfDataError(f"run '{uid}': invalid nxsci_simulation ({exc})") from exc
        return RunInfo(uid=uid, elements=list(ds.elements), plan_name=start.get("plan_name"),
                       default_method=default_method(ds))

    def load(self, run_uid: str, progress: Callable[[float, str], None] | None = None) -> Dataset:
        _, _, sim = self._sim_args(run_uid)
        if progress:
            progress(0.0, "simulating the run's dataset")
        return _simulate(tuple(sorted(sim.items())))


def make_source(kind: str, raw: Any) -> DatasetSource:
    if kind == "simulated":
        return SimulatedRunSource(raw)
    return PipelineSource(raw)
