"""Dataset -> element maps: registration, one solver per element, metrics and provenance.

This is the function the CLI, the demo and the reconstruction service all call, so they agree on what
a reconstruction of an interchange dataset means.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._errors import DatasetError, SolverError
from ._progress import fraction_progress
from .analysis.metrics import frc_resolution, psnr, ssim
from .data.dataset import Dataset
from .data.results import ReconResult
from .physics.forward import PatternPhysics, resolve_device
from .solvers.base import SolverResult, check_sigma
from .solvers.registry import get_solver
from .solvers.trust import assess_trust, trust_warning

__all__ = ["reconstruct", "default_method", "ElementProgress"]

#: called with (elements being solved, fraction of the solve done, status text)
ElementProgress = Callable[[str, float, str], None]


def default_method(dataset: Dataset) -> str:
    """``auto``: per element, composition TV with the (re-aligned) TXM where held-out measurements support
    it, plain TV otherwise (and plain TV without a TXM). Composition TV alone wins by several dB when its TXM
    is right and loses by up to 18 dB when it is a few pixels off or of another contrast (robustness
    benchmark); ``auto`` keeps the first and avoids the second."""
    return "auto"


def _registered_patterns(dataset: Dataset, register: bool | None, progress: bool) -> tuple[np.ndarray, dict[str, Any]]:
    if register is False or (register is None and dataset.sample_in is None):
        return dataset.patterns, {"registered": False}
    if dataset.sample_in is None:
        raise SolverError("registration requested but the dataset has no 'sample_in' frames")
    from .physics.registration import register_patterns

    reference = None if dataset.txm is None else np.exp(-dataset.txm.astype(np.float64))
    reg = register_patterns(dataset.patterns, dataset.sample_in, reference, progress=progress)
    mags = np.hypot(reg.shifts[:, 0], reg.shifts[:, 1])
    info: dict[str, Any] = {"registered": True, "mean_shift_px": float(mags.mean()), "max_shift_px": float(mags.max())}
    if dataset.truth_shifts is not None:
        err = np.hypot(*(reg.shifts - dataset.truth_shifts).T)
        info["shift_error_rms_px"] = float(np.sqrt(np.mean(err**2)))
    return reg.patterns, info


def _metrics(x: np.ndarray, y: np.ndarray, physics: PatternPhysics, truth: np.ndarray | None) -> dict[str, float]:
    pred = physics.A(x.astype(np.float32)).astype(np.float64)
    out: dict[str, float] = {"residual": float(np.linalg.norm(pred - y) / max(np.linalg.norm(y), 1e-300))}
    if truth is not None:
        out["psnr"] = psnr(x, truth)
        out["ssim"] = ssim(x, truth)
        out["frc_px"] = frc_resolution(x, truth)
    return out


def reconstruct(dataset: Dataset, *, method: str | None = None, elements: Sequence[str] | None = None,
                params: dict[str, Any] | None = None, device: str | None = "cpu", register: bool | None = None,
                progress: bool | ElementProgress = False) -> ReconResult:
    """Reconstruct the requested elements of ``dataset`` (all by default) with one method.

    ``register=None`` registers the patterns when sample-in frames are present. ``progress=True`` shows a
    tqdm bar; a callable receives ``(elements, fraction, text)`` instead (the service uses it).
    """
    chosen = dataset.select_elements(elements)
    method = method or default_method(dataset)
    solver = get_solver(method, params)
    if solver.needs_guide() and dataset.txm is None:
        raise SolverError(f"method '{method}' needs a TXM image but the dataset has no 'txm'")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    patterns, reg_info = _registered_patterns(dataset, register, progress is True)
    timings["registration_s"] = time.perf_counter() - t0
    physics = PatternPhysics(patterns, device=resolve_device(device))
    ys = np.stack([dataset.signal(element) for element in chosen])
    sigma, sigma_note = _usable_sigma(dataset, chosen)
    t1 = time.perf_counter()
    callback, bar = _progress_for(", ".join(chosen), progress)
    try:
        results = solver.reconstruct_all(ys, physics, guide=dataset.txm, sigma=sigma, progress=callback)
    finally:
        if bar is not None:
            bar.close()
    timings["solve_s"] = time.perf_counter() - t1
    for element, res in zip(chosen, results):  # a joint (all-element) solve reports its shared time
        timings[f"{element}_s"] = float(res.info.get("seconds", timings["solve_s"] / len(chosen)))
    maps = np.stack([res.x for res in results]).astype(np.float32)
    infos = {element: res.info for element, res in zip(chosen, results)}
    metrics = {element: _metrics(res.x, y, physics, dataset.truth(element))
               for element, res, y in zip(chosen, results, ys)}
    trust, warnings = _trust(chosen, ys, sigma, physics, results)
    # what the solver itself has to say (a TXM rejected or re-aligned), first: it explains the maps
    warnings = [f"{element}: {line}" for element, res in zip(chosen, results)
                for line in res.info.get("warnings", [])] + warnings
    timings["total_s"] = time.perf_counter() - t0
    return ReconResult(maps=maps, elements=chosen, method=method, parameters=solver.params.model_dump(),
                       metrics=metrics, solver_info=infos, timings=timings, trust=trust, warnings=warnings,
                       provenance={"registration": reg_info, "num_patterns": dataset.num_patterns,
                                   "uncertainties": sigma_note,
                                   "image_shape": list(dataset.image_shape), "device": str(physics.device)})


def _trust(elements: Sequence[str], ys: np.ndarray, sigma: np.ndarray | None, physics: PatternPhysics,
           results: Sequence[SolverResult]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Each element's trust record (from the data alone) and the warnings for maps that cannot be trusted."""
    uniform = physics.A(np.ones(physics.img_shape, dtype=np.float32)).astype(np.float64)
    records: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    for k, (element, res) in enumerate(zip(elements, results)):
        prediction = physics.A(np.asarray(res.x, dtype=np.float32)).astype(np.float64)
        record = assess_trust(ys[k], uniform, prediction, sigma=None if sigma is None else sigma[k],
                              solver_info=res.info)
        records[element] = record.as_dict()
        line = trust_warning(element, record)
        if line is not None:
            warnings.append(line)
    return records, warnings


def _usable_sigma(dataset: Dataset, chosen: Sequence[str]) -> tuple[np.ndarray | None, str]:
    """The measurements' uncertainties when they can be used. They only help choose regularisation weights,
    so ones the solvers would refuse (``check_sigma``) are set aside with a note instead of failing the job."""
    if dataset.signals_sigma is None:
        return None, "none in the dataset"
    sigma = np.stack([dataset.sigma(element) for element in chosen])
    try:
        return check_sigma(sigma, sigma.shape), "signals_sigma used"
    except DatasetError as exc:
        return None, f"signals_sigma ignored ({exc}): weights chosen without them"


def _progress_for(label: str, progress: bool | ElementProgress) -> tuple[Any, Any]:
    """The solver's progress callback and what to close afterwards: the caller's callable, or a bar on a
    terminal and a few plain lines otherwise (a log must not fill with redrawn bars)."""
    if callable(progress):
        return (lambda frac, text: progress(label, frac, text)), None
    if not progress:
        return None, None
    shown = fraction_progress(label)
    return shown.update, shown
