"""An ``xrf_point_scan`` run as element maps: the raster baseline structured illumination is compared with."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ._runs import read_stream, take_rows, truth_rows
from ._tiled import CatalogError, RunCatalog, open_catalog
from ._xrf_fit import XrfFitSettings, fit_run_spectra

__all__ = ["PointScanMaps", "point_scan_maps"]


@dataclasses.dataclass
class PointScanMaps:
    """Fitted element maps of a raster, ``maps[e, i, j]`` at sample position ``(rows_px[i], cols_px[j])``
    (pixels of the camera's field, in the orientation of the sample's maps), dead-time-corrected counts
    per point; ``truth`` the simulator's expected counts at the same points."""

    uid: str
    elements: list[str]
    maps: np.ndarray
    sigma: np.ndarray
    rows_px: np.ndarray
    cols_px: np.ndarray
    truth: np.ndarray | None


def _maps(run: Any, uid: str, settings: XrfFitSettings | None) -> PointScanMaps:
    start = run.metadata["start"]
    if start.get("plan_name") != "xrf_point_scan":
        raise CatalogError(f"run {uid} is a '{start.get('plan_name')}' run, not an xrf_point_scan")
    stream = read_stream(run, "primary", ["pencil_spectrum"], optional=["pencil_truth_counts"])
    rows = np.asarray(stream.columns["grid_row"], dtype=int)
    cols = np.asarray(stream.columns["grid_column"], dtype=int)
    n_rows, n_cols = start["grid"]["shape"]
    keep = {(r, c): k for k, (r, c) in enumerate(zip(rows, cols))}  # a re-taken point: its last reading
    if len(keep) != n_rows * n_cols:
        raise CatalogError(f"run {uid} has {len(keep)} of {n_rows * n_cols} raster points")
    order = np.array([keep[(r, c)] for r in range(n_rows) for c in range(n_cols)])
    spectra = stream.arrays["pencil_spectrum"][order]
    fit = fit_run_spectra(spectra, start["elements"], zero_keV=float(start["mca"]["zero_keV"]),
                          gain_keV=float(start["mca"]["gain_keV"]), excitation_keV=float(start["energy_keV"]),
                          settings=settings)
    real = np.asarray(stream.columns["pencil_real_time"], dtype=float)[order]
    live = np.asarray(stream.columns["pencil_live_time"], dtype=float)[order]
    factor = (real / np.where(live > 0, live, real))[:, None]
    shape = (len(fit.elements), n_rows, n_cols)
    # the beam sits still at the field centre; moving the stage by +d moves the sample, so the beam probes
    # sample coordinate (beam - d): stage rows in increasing order are sample rows in decreasing order
    maps = (fit.areas * factor).T.reshape(shape)[:, ::-1, ::-1]
    sigma = (fit.sigma * factor).T.reshape(shape)[:, ::-1, ::-1]
    truth = None
    if "pencil_truth_counts" in stream.arrays:
        counts = stream.arrays["pencil_truth_counts"][order] * factor
        rows_of = truth_rows(start, fit.elements, counts.shape[1])
        if rows_of is not None:
            truth = take_rows(counts.T, rows_of).reshape(shape)[:, ::-1, ::-1]
    grid = start["grid"]
    offsets = (np.arange(n_rows) - (n_rows - 1) / 2) * float(grid["step_px"])
    rows_px = (float(grid["beam_px"][0]) - offsets)[::-1]
    cols_px = (float(grid["beam_px"][1]) - (np.arange(n_cols) - (n_cols - 1) / 2) * float(grid["step_px"]))[::-1]
    return PointScanMaps(uid=str(start["uid"]), elements=fit.elements, maps=maps, sigma=sigma, rows_px=rows_px,
                         cols_px=cols_px, truth=truth)


def point_scan_maps(source: RunCatalog | str | None, uid: str, *, settings: XrfFitSettings | None = None,
                    api_key: str | None = None) -> PointScanMaps:
    """Element maps of ``xrf_point_scan`` run ``uid`` (PyMca fit of every point's spectrum)."""
    if isinstance(source, RunCatalog):
        return _maps(source.run(uid), uid, settings)
    with open_catalog(source, api_key=api_key, create=False) as catalog:
        return _maps(catalog.run(uid), uid, settings)
