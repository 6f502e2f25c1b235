"""Read an NxSCI run out of tiled as numpy arrays, one entry per illumination configuration.

Each stream is read once: its event table (``internal``: scalars and small arrays) in one request and each
large array (frames, spectra) in one request; reading column by column costs ~0.14 s per column. Events
are grouped by ``config_index`` keeping the *last* reading of each index, which is what bluesky means
when a pause re-takes a point (same ``seq_num``, later event).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._dataset_source import UnknownRunError, find_run
from ._tiled import CatalogError

__all__ = ["StreamData", "read_stream", "NxsciRun", "read_nxsci_run", "truth_rows", "take_rows"]


@dataclasses.dataclass
class StreamData:
    """One stream: its event-table columns and its array columns, all indexed by event."""

    columns: dict[str, np.ndarray]
    arrays: dict[str, np.ndarray]

    def __len__(self) -> int:
        lengths = [len(v) for v in (*self.columns.values(), *self.arrays.values())]
        return max(lengths, default=0)

    def get(self, key: str) -> np.ndarray:
        if key in self.arrays:
            return self.arrays[key]
        if key in self.columns:
            return self.columns[key]
        raise KeyError(key)

    def by_index(self, key: str = "config_index") -> dict[int, int]:
        """``config_index -> event position``, the last event of each index winning (re-taken points)."""
        return {int(ci): row for row, ci in enumerate(self.get(key))}


def read_stream(run: Any, name: str, arrays: Sequence[str] = (), optional: Sequence[str] = ()) -> StreamData:
    """``run[name]``: its event table's scalar columns (one request) and the named array columns (one
    request each, as stored: uint16 frames, int32 spectra). Small arrays live in the table but come back
    as text from a whole-table read, so they are read as arrays too. ``optional`` arrays may be absent."""
    if name not in run:
        raise CatalogError(f"run {run.metadata['start']['uid']} has no '{name}' stream (streams: "
                           f"{', '.join(run)})")
    stream = run[name]
    base = getattr(stream, "base", stream)
    columns: dict[str, np.ndarray] = {}
    for key in [k for k in base if k.startswith("internal")]:
        frame = base[key].read()
        for column in frame.columns:
            values = frame[column].to_numpy()
            if values.dtype.kind in "biuf":
                columns[str(column)] = values
    out: dict[str, np.ndarray] = {}
    for key in (*arrays, *optional):
        if key in stream:
            out[key] = np.asarray(stream[key].read())
            columns.pop(key, None)
        elif key in arrays:
            raise CatalogError(f"stream '{name}' has no '{key}' data")
    return StreamData(columns=columns, arrays=out)


@dataclasses.dataclass
class NxsciRun:
    """The raw data of an ``nxsci_scan`` run, aligned by configuration (row i = ``config_indices[i]``)."""

    uid: str
    start: dict[str, Any]
    stop: dict[str, Any]
    config_indices: np.ndarray
    patterns: np.ndarray                # (N, H, W) uint16 sample-out frames (from the library run if any)
    pattern_dark: np.ndarray            # (H, W) mean dark frame of the run that recorded the patterns
    pattern_exposure: float
    sample_in: np.ndarray               # (N, H, W) uint16 sample-in frames
    dark: np.ndarray                    # (H, W) mean dark frame of this run
    spectra: np.ndarray                 # (N, C) int32
    real_time: np.ndarray               # (N,) s
    live_time: np.ndarray               # (N,) s
    diffuser_positions: np.ndarray      # (N, 4) mm: diffuser1 x, y, diffuser2 x, y (sample-in readbacks)
    truth_shifts: np.ndarray | None     # (N, 2) px
    truth_counts: np.ndarray | None     # (N, E) expected K counts (live time)
    truth_maps: np.ndarray | None       # (E, H, W) model units
    truth_signal_scale: np.ndarray | None  # (E,)

    @property
    def elements(self) -> list[str]:
        return [str(e) for e in self.start["elements"]]


def truth_rows(start: Mapping[str, Any], elements: Sequence[str], stored: int) -> list[int | None] | None:
    """Where each of ``elements`` sits in a simulated run's truth arrays (``truth_maps``, ``truth_counts``, of
    ``stored`` elements), or None where the simulated sample has none of it (its true map is zero).

    The simulated sample names its elements in the start document (``sample.elements``); runs recorded before
    that hold truth in the run's own element order. None when neither tells."""
    names = (start.get("sample") or {}).get("elements")
    if names is None:
        names = list(start.get("elements") or [])
        if len(names) != stored or list(elements) != names:
            return None
    names = [str(e) for e in names]
    return [names.index(e) if e in names else None for e in elements]


def take_rows(stack: np.ndarray, rows: Sequence[int | None]) -> np.ndarray:
    """``stack[rows]`` along the first axis, zeros for ``None`` (an element the simulated sample lacks)."""
    return np.stack([stack[r] if r is not None else np.zeros_like(stack[0]) for r in rows])


def _mean_dark(run: Any, uid: str) -> np.ndarray:
    dark = read_stream(run, "dark", ["camera_image"]).arrays["camera_image"]
    if dark.ndim != 3 or len(dark) == 0:
        raise CatalogError(f"run {uid} has no dark frames")
    return dark.astype(np.float64).mean(axis=0)


def read_nxsci_run(runs: Any, uid: str) -> NxsciRun:
    """Everything the pipeline needs from run ``uid`` (and its pattern library, if it used one)."""
    try:
        run = find_run(runs, uid)[1]
    except UnknownRunError:
        raise CatalogError(f"no run '{uid}' in the catalog") from None
    start: Mapping[str, Any] = run.metadata["start"]
    stop: Mapping[str, Any] = run.metadata.get("stop") or {}
    uid = str(start["uid"])
    if start.get("plan_name") != "nxsci_scan":
        raise CatalogError(f"run {uid} is a '{start.get('plan_name')}' run; the pipeline turns nxsci_scan runs "
                           f"into datasets")
    primary = read_stream(run, "primary", ["camera_image", "vortex_mca_spectrum"],
                          optional=["truth_shift", "truth_counts"])
    dark = _mean_dark(run, uid)
    library_uid = start.get("pattern_library")
    if library_uid:
        try:
            library = find_run(runs, str(library_uid))[1]
        except UnknownRunError:
            raise CatalogError(f"run {uid} uses pattern library {library_uid}, which is not in the catalog") from None
        pattern_stream = read_stream(library, "pattern", ["camera_image"])
        pattern_dark = _mean_dark(library, str(library_uid))
        pattern_exposure = float(library.metadata["start"]["exposure"])
    else:
        pattern_stream = read_stream(run, "pattern", ["camera_image"])
        pattern_dark = dark
        pattern_exposure = float(start["exposure"])
    in_rows, out_rows = primary.by_index(), pattern_stream.by_index()
    indices = np.array(sorted(set(in_rows) & set(out_rows)), dtype=np.int64)
    if indices.size == 0:
        raise CatalogError(f"run {uid} has no configuration with both a pattern and a sample-in acquisition "
                           f"(exit status: {stop.get('exit_status', 'still running')})")
    rin = np.array([in_rows[i] for i in indices])
    rout = np.array([out_rows[i] for i in indices])
    cols = primary.columns
    truth_shifts = truth_counts = truth_maps = scale = None
    if "truth_shift" in primary.arrays:
        truth_shifts = primary.arrays["truth_shift"].astype(np.float64)[rin]
        truth_counts = primary.arrays["truth_counts"].astype(np.float64)[rin]
    if "truth_maps" in run:
        maps_stream = read_stream(run, "truth_maps", ["truth_maps", "truth_signal_scale"])
        truth_maps = maps_stream.arrays["truth_maps"][-1].astype(np.float64)
        scale = np.asarray(maps_stream.arrays["truth_signal_scale"][-1], dtype=np.float64)
    diffusers = np.stack([np.asarray(cols[k], dtype=np.float64)[rin]
                          for k in ("diffuser1_x", "diffuser1_y", "diffuser2_x", "diffuser2_y")], axis=1)
    return NxsciRun(
        uid=uid, start=dict(start), stop=dict(stop), config_indices=indices,
        patterns=pattern_stream.arrays["camera_image"][rout], pattern_dark=pattern_dark,
        pattern_exposure=pattern_exposure,
        sample_in=primary.arrays["camera_image"][rin], dark=dark,
        spectra=primary.arrays["vortex_mca_spectrum"][rin],
        real_time=np.asarray(cols["vortex_elapsed_real"], dtype=np.float64)[rin],
        live_time=np.asarray(cols["vortex_elapsed_live"], dtype=np.float64)[rin],
        diffuser_positions=diffusers, truth_shifts=truth_shifts, truth_counts=truth_counts,
        truth_maps=truth_maps, truth_signal_scale=scale)
