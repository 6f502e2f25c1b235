"""Raw run -> interchange dataset: the step between the beamline and every reconstruction.

1. Dark subtraction: every frame minus the mean dark frame of the run that recorded it.
2. Flat normalisation: each sample-in frame divided by its own configuration's sample-out frame (the flat
   field of that illumination) is the sample's transmission; the TXM image is its optical density.
3. Registration: the sample displacement under every pattern by sub-pixel cross-correlation of those
   transmissions (recon's ``register_patterns``). The frame of the dataset is the *mean* sample position
   (displacements sum to zero), so the TXM image and the recorded displacements agree and
   ``reconstruct()`` re-finds the same displacements against the TXM image.
4. XRF: PyMca areas of every spectrum (noise/Fano calibrated once on the sum spectrum, then the fast
   linear fit), dead-time corrected (x real/live time) into the signals ``y``.

``y = A x`` then holds with A the dark-subtracted patterns (counts) and y in dead-time-corrected counts.
A simulated run also carries its truth, expressed in the same frame and units (maps x the simulator's
signal scale, displacements relative to the mean position) so that results can be scored.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage

from nxsci.recon import Dataset, register_patterns

from ._runs import NxsciRun, read_nxsci_run, take_rows, truth_rows
from ._settings import TiledSettings
from ._tiled import RUNS_SPEC, RunCatalog, open_catalog, runs_container
from ._xrf_fit import XrfFitSettings, fit_run_spectra

__all__ = ["PipelineSettings", "run_to_dataset", "nxsci_run_to_dataset", "PipelineReport"]

logger = logging.getLogger(__name__)

#: transmissions below this are clipped before the logarithm (a pixel that saw no light)
_MIN_TRANSMISSION = 1e-3


class PipelineSettings(BaseModel):
    """How a run becomes a dataset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    xrf: XrfFitSettings = XrfFitSettings()
    registration: bool = Field(True, description="estimate the sample displacement under every pattern")
    keep_spectra: bool = Field(True, description="store the raw spectra in the dataset")
    keep_sample_in: bool = Field(True, description="store the sample-in frames (reconstruct() registers with them)")


class PipelineReport(BaseModel):
    """What the pipeline did, in numbers (kept in the dataset's ``pipeline`` attribute as JSON)."""

    run_uid: str
    num_configurations: int
    planned_configurations: int
    exit_status: str
    pattern_library: str | None
    fit_spectra_per_s: float
    xrf_noise_keV: float
    xrf_fano: float
    mean_shift_px: float
    saturated_fraction: float
    timings_s: dict[str, float]


def _saturated_fraction(*frames: np.ndarray) -> float:
    """Share of camera pixels at the top of their integer range (clipped: the counts there are unknown)."""
    total = hits = 0
    for stack in frames:
        if np.issubdtype(stack.dtype, np.integer):
            hits += int(np.count_nonzero(stack == np.iinfo(stack.dtype).max))
            total += stack.size
    return hits / total if total else 0.0


def _transmission_reference(patterns: np.ndarray, sample_in: np.ndarray, register: bool
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Displacements (N, 2) relative to the mean sample position, and the transmission image there."""
    n = patterns.shape[0]
    if not register:
        ratio = np.clip(sample_in / np.where(patterns > 0, patterns, 1.0), _MIN_TRANSMISSION, None)
        return np.zeros((n, 2)), np.median(ratio, axis=0)
    reg = register_patterns(patterns, sample_in)
    shifts = reg.shifts - reg.shifts.mean(axis=0)
    # the median reference sits at (about) the first frames' position: move it to the mean position
    reference = ndimage.shift(np.asarray(reg.reference, dtype=np.float64), reg.shifts.mean(axis=0), order=3,
                              mode="nearest")
    return shifts, reference


def nxsci_run_to_dataset(raw: NxsciRun, settings: PipelineSettings | None = None) -> tuple[Dataset, PipelineReport]:
    """The dataset (and a report) from a run already read out of the catalog."""
    settings = settings or PipelineSettings()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    exposure = float(raw.start["exposure"])
    saturated = _saturated_fraction(raw.patterns, raw.sample_in)
    if saturated > 0:
        logger.warning("run %s: %.3g %% of the camera pixels are saturated; patterns and the TXM image are "
                       "wrong there (shorter exposure or less flux)", raw.uid, 100 * saturated)
    # 1. dark subtraction; patterns recorded with another exposure (a library) scaled to this one
    patterns = (raw.patterns.astype(np.float64) - raw.pattern_dark) * (exposure / raw.pattern_exposure)
    sample_in = raw.sample_in.astype(np.float64) - raw.dark
    timings["dark_s"] = time.perf_counter() - t0
    # 2 + 3. flat normalisation and registration
    t1 = time.perf_counter()
    shifts, reference = _transmission_reference(patterns, sample_in, settings.registration)
    txm = -np.log(np.clip(reference, _MIN_TRANSMISSION, None))
    timings["registration_s"] = time.perf_counter() - t1
    # 4. XRF fit, dead-time correction
    t2 = time.perf_counter()
    mca = raw.start["mca"]
    fit = fit_run_spectra(raw.spectra, raw.elements, zero_keV=float(mca["zero_keV"]), gain_keV=float(mca["gain_keV"]),
                          excitation_keV=float(raw.start["energy_keV"]), settings=settings.xrf)
    fit_s = time.perf_counter() - t2
    timings["xrf_fit_s"] = fit_s
    live = np.where(raw.live_time > 0, raw.live_time, raw.real_time)
    dead_time = (raw.real_time / live)[:, None]
    signals, sigma = fit.areas * dead_time, fit.sigma * dead_time

    metadata: dict[str, np.ndarray] = {
        "config_index": raw.config_indices, "diffuser_positions": raw.diffuser_positions,
        "shifts": shifts, "real_time": raw.real_time, "live_time": raw.live_time, "fitted_counts": fit.areas}
    truth_maps = truth_shifts = None
    if raw.truth_shifts is not None:
        origin = raw.truth_shifts.mean(axis=0)  # the dataset frame: the mean sample position
        truth_shifts = raw.truth_shifts - origin
        rows = truth_rows(raw.start, fit.elements, len(raw.truth_counts[0]) if raw.truth_counts is not None else 0)
        if rows is None:
            logger.warning("run %s: its simulated truth does not say which elements it holds; the dataset "
                           "carries none", raw.uid)
        if rows is not None and raw.truth_counts is not None:
            metadata["truth_counts"] = take_rows(raw.truth_counts.T, rows).T
        if rows is not None and raw.truth_maps is not None and raw.truth_signal_scale is not None:
            scaled = take_rows(raw.truth_maps * raw.truth_signal_scale[:, None, None], rows)
            truth_maps = np.stack([ndimage.shift(m, origin, order=1, mode="constant") for m in scaled])
    report = PipelineReport(
        run_uid=raw.uid, num_configurations=int(len(raw.config_indices)),
        planned_configurations=len(raw.start.get("configurations") or []),
        exit_status=str(raw.stop.get("exit_status", "unknown")), pattern_library=raw.start.get("pattern_library"),
        fit_spectra_per_s=float(len(raw.spectra) / fit_s) if fit_s > 0 else float("inf"),
        xrf_noise_keV=fit.noise_keV, xrf_fano=fit.fano,
        mean_shift_px=float(np.hypot(*shifts.T).mean()) if len(shifts) else 0.0, saturated_fraction=saturated,
        timings_s=timings)
    attrs: dict[str, Any] = {
        "source": "tiled", "run_uid": raw.uid, "plan_name": str(raw.start.get("plan_name")),
        "scan_id": int(raw.start.get("scan_id", 0) or 0), "exposure_s": exposure,
        "energy_keV": float(raw.start["energy_keV"]), "sample": json.dumps(raw.start.get("sample", {})),
        "exit_status": report.exit_status, "pattern_library": raw.start.get("pattern_library") or "",
        "pipeline": report.model_dump_json(), "pipeline_settings": settings.model_dump_json(),
    }
    dataset = Dataset(
        patterns=patterns.astype(np.float32), signals=signals, elements=fit.elements, txm=txm.astype(np.float32),
        signals_sigma=sigma, sample_in=sample_in.astype(np.float32) if settings.keep_sample_in else None,
        spectra=raw.spectra if settings.keep_spectra else None,
        spectra_attrs={"energy_zero_keV": fit.zero_keV, "energy_gain_keV": fit.gain_keV},
        dark=raw.dark.astype(np.float32), metadata=metadata, truth_maps=truth_maps, truth_shifts=truth_shifts,
        attrs=attrs)
    return dataset, report


def run_to_dataset(source: Any, uid: str, *, settings: PipelineSettings | None = None,
                   api_key: str | None = None) -> Dataset:
    """The interchange dataset of ``nxsci_scan`` run ``uid``.

    ``source``: an open :class:`RunCatalog`; a tiled client (the runs container itself, or a catalog root
    holding one); a tiled URI; or None (``NXSCI_TILED_URI``, else the embedded catalog). The pipeline's
    report is in ``dataset.attrs["pipeline"]`` (JSON).
    """
    if isinstance(source, RunCatalog):
        return nxsci_run_to_dataset(read_nxsci_run(source.runs, uid), settings)[0]
    if source is None or isinstance(source, str):
        with open_catalog(source, api_key=api_key, create=False) as catalog:
            raw = read_nxsci_run(catalog.runs, uid)
        return nxsci_run_to_dataset(raw, settings)[0]
    specs = {getattr(s, "name", s) for s in getattr(source, "specs", [])}
    runs = source if RUNS_SPEC[0] in specs else runs_container(source, TiledSettings().runs_node, create=False)
    return nxsci_run_to_dataset(read_nxsci_run(runs, uid), settings)[0]
