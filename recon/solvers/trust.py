"""Can an element's map be trusted? Judged from the measurements alone (no ground truth).

At low exposure an element's counts barely vary from pattern to pattern beyond what a uniform map would
give; any solver then returns a map shaped by its prior (TV's flat patches; the TXM's particles for
composition TV) rather than by the data, and nothing said so. The question asked here is the one the data
can answer: do the measurements show any structure at all, i.e. can they tell the element's map from a
uniform one? Two checks, each used when its inputs exist:

``structure_significance`` (needs the measurements' uncertainties sigma: the spectrum fit's, or Poisson for
raw counts)
    ``chi2_flat`` is the chi^2 of the best uniform map ``x = c`` (``y ~ c A 1``). ``structure_to_noise``
    ``S = (chi2_flat - N) / N`` is the variance a uniform map cannot explain, in units of the noise variance,
    and ``z = (chi2_flat - N) / sqrt(2 N)`` how many standard deviations of a chi^2 with N degrees of freedom
    the data stand from a uniform map. ``z`` orders the cases better than ``S``: at a given ``S`` more
    patterns carry more information (measured: S = 0.2 gave plain TV 1.4-3.2 dB over the best uniform map with
    1024 patterns, ~1 dB with 410). When the map itself fits the data better than the stated noise allows
    (``chi2_map < 1``), the uncertainties are too large (measured on the simulated beamline's PyMca fits at
    0.01 s exposure: chi^2/N 0.43 for a 25 dB Co map): the noise is then taken as the map's residual,
    chi^2 values are divided by ``chi2_map`` (``noise_scale`` records the factor on sigma).
``cv_significance`` (needs a cross-validation curve: the TV family with an automatic weight)
    ``cv_gain = CV_uniform / CV_map - 1``, the chosen solution's held-out error against that of a uniform map
    fitted on the same training folds (about ``S`` minus the map's own error), times ``sqrt(N / 2)``. No noise
    model at all, so wrong uncertainties cannot fool it.

A map is "not trustworthy" when every available check is below its threshold, "trusted" otherwise, and
"unknown" with neither (no uncertainties, measurements that are not raw counts, a method without a CV
curve: an assumed noise model could give confident wrong verdicts, so none is assumed).

Calibration (``benchmarks/trust_calibration.py``: 64x64, composition TV and plain TV; battery phantom at 10
to 1e5 photons per pattern, seeds 0-2 at 10 % sampling and seed 0 at 5 and 25 %; camera, shepp_logan_phantom
and coins at 10 to 1e5; 108 maps per method). The rule flags 81 of the 216 maps: in every one plain TV gains
at most 2.7 dB over the best uniform map (mostly ~0 dB: TV returns a flat map), and they include all plain-TV
maps under 13 dB PSNR but one (12.6 dB, cv_significance 3.5). The normal cases (1e5 photons) have ``z`` from
520 to 14 600 and ``cv_significance`` from 200 to 12 900, far from the thresholds. Missed at the margin:
plain-TV maps of 13-15 dB that gain 2.5-4 dB over a uniform map (z 4.3-12). ``cv_significance < 3`` alone
flags a subset of ``z < 4`` (all but 5 maps with 1.8 < z < 4), so requiring both only drops warnings at the
margin. Composition-TV maps on the natural phantoms score 24-29 dB PSNR at ``z < 4`` and are still flagged:
their phantom's TXM is a function of the element image, and a uniform composition times the TXM alone
scores ~26 dB; the measurements added nothing, and on a real sample the TXM does not know where an element
is. On the simulated beamline (48x48, 346 patterns, PyMca fits; chi^2/N of composition TV's maps 0.24-0.52
at 0.005-0.01 s exposure, i.e. sigma too large) Mn at 6 and 13 counts per pattern is flagged (16-19 dB) and
Co at 18 and 35 counts is not (composition TV 26.5-26.7 dB). There plain TV's discrepancy weight fitted the
too-large sigma (Co at 35 counts: chi^2/N 0.98, so no rescaling, z = 0): the sigma check alone would have
flagged it, the cross-validation check (8.9) kept it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import numpy as np

from .weight_selection import kfold_masks

__all__ = ["TrustRecord", "assess_trust", "trust_warning", "SIGNIFICANCE_THRESHOLD", "CV_SIGNIFICANCE_THRESHOLD"]

#: below this many standard deviations from a uniform map, a map is flagged (calibrated: module docstring)
SIGNIFICANCE_THRESHOLD = 4.0
#: the same for the cross-validated gain over a uniform map (calibrated likewise)
CV_SIGNIFICANCE_THRESHOLD = 3.0

Verdict = Literal["trusted", "not trustworthy", "unknown"]


@dataclasses.dataclass
class TrustRecord:
    """The evidence for one element's map and the verdict drawn from it (JSON-friendly via ``as_dict``)."""

    verdict: Verdict
    #: each check made: name -> {"value", "threshold"}; "not trustworthy" when all are below their threshold
    checks: dict[str, dict[str, float]]
    counts_per_pattern: float
    num_measurements: int
    #: where sigma came from: "signals_sigma", "poisson (integer counts)" or "none"
    noise: str
    #: factor applied to sigma (sqrt of chi2_map when the map fits better than the stated noise, else 1)
    noise_scale: float | None = None
    structure_to_noise: float | None = None
    structure_significance: float | None = None
    chi2_flat: float | None = None  # per measurement, best uniform map, stated sigma
    chi2_map: float | None = None  # per measurement, the map, stated sigma
    cv_gain: float | None = None
    cv_significance: float | None = None
    #: the map takes its shapes from the TXM image (composition output, TXM-guided weights)
    txm_shaped: bool = False
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in dataclasses.asdict(self).items()}


def _looks_like_counts(y: np.ndarray) -> bool:
    """Raw detector counts: non-negative integers (a spectrum fit's areas are not)."""
    return bool(y.size and np.all(y >= 0) and np.all(np.abs(y - np.round(y)) < 1e-6) and y.max() > 0)


def _uniform_level(rows: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
    """Weighted least-squares c in y ~ c * rows (rows = A 1: what a uniform unit map gives)."""
    w = np.ones_like(y) if w is None else w
    return float((w * rows) @ y) / max(float((w * rows) @ rows), 1e-300)


def _cv_gain(cv: dict[str, Any], rows: np.ndarray, y: np.ndarray, map_scale: float) -> float | None:
    """CV_uniform / CV_map - 1 on the solver's own folds (same masks, same normalisation of y)."""
    try:
        grid = np.asarray(cv["grid"], dtype=np.float64)
        loss = np.asarray(cv["cv_loss"], dtype=np.float64)
        folds, seed, weight = int(cv["folds"]), int(cv.get("seed", 0)), float(cv["weight"])
    except (KeyError, TypeError, ValueError):
        return None
    if grid.size == 0 or grid.shape != loss.shape or not np.all(np.isfinite(loss)) or not map_scale > 0:
        return None
    order = np.argsort(grid)
    at_weight = float(np.interp(math.log(weight), np.log(grid[order]), loss[order]))
    uniform = 0.0
    for held in kfold_masks(y.size, folds, seed):
        c = _uniform_level(rows[~held], y[~held])
        uniform += float(np.sum(((y[held] - c * rows[held]) / map_scale) ** 2))
    return uniform / at_weight - 1.0 if at_weight > 0 else None


def assess_trust(y: np.ndarray, uniform: np.ndarray, prediction: np.ndarray, *, sigma: np.ndarray | None = None,
                 solver_info: dict[str, Any] | None = None) -> TrustRecord:
    """The trust record of one element from its measurements ``y`` (N), what a uniform unit map predicts
    (``uniform = A 1``), what its map predicts (``prediction = A x``), the uncertainties used (None when there
    were none) and the solver's report (for its cross-validation curve)."""
    y = np.asarray(y, dtype=np.float64).ravel()
    rows = np.asarray(uniform, dtype=np.float64).ravel()
    pred = np.asarray(prediction, dtype=np.float64).ravel()
    if rows.shape != y.shape or pred.shape != y.shape:
        raise ValueError(f"{y.size} measurements but {rows.size} uniform and {pred.size} map predictions")
    n = y.size
    noise = "signals_sigma"
    if sigma is None and _looks_like_counts(y):
        sigma, noise = np.sqrt(np.maximum(y, 1.0)), "poisson (integer counts)"
    elif sigma is None:
        noise = "none"
    record = TrustRecord(verdict="unknown", checks={}, counts_per_pattern=float(y.mean()), num_measurements=n,
                         noise=noise)
    if sigma is not None:
        w = 1.0 / np.asarray(sigma, dtype=np.float64).ravel() ** 2
        c = _uniform_level(rows, y, w)
        record.chi2_flat = float(np.sum(w * (y - c * rows) ** 2)) / n
        record.chi2_map = float(np.sum(w * (y - pred) ** 2)) / n
        variance_scale = min(1.0, record.chi2_map) if record.chi2_map > 0 else 1.0
        record.noise_scale = math.sqrt(variance_scale)
        excess = record.chi2_flat / variance_scale - 1.0
        record.structure_to_noise = excess
        record.structure_significance = excess * math.sqrt(n / 2)
        record.checks["structure_significance"] = {"value": record.structure_significance,
                                                   "threshold": SIGNIFICANCE_THRESHOLD}
    info = solver_info or {}
    record.txm_shaped = info.get("output") == "composition" or "min_weight" in info
    cv = info.get("cross_validation")
    if isinstance(cv, dict):
        record.cv_gain = _cv_gain(cv, rows, y, float(info.get("map_scale", 1.0)))
        if record.cv_gain is not None:
            record.cv_significance = record.cv_gain * math.sqrt(n / 2)
            record.checks["cv_significance"] = {"value": record.cv_significance,
                                                "threshold": CV_SIGNIFICANCE_THRESHOLD}
    if not record.checks:
        record.reason = "no uncertainties and no cross-validation curve: the data's noise level is unknown"
    elif all(check["value"] < check["threshold"] for check in record.checks.values()):
        record.verdict = "not trustworthy"
        record.reason = " and ".join(_REASONS[name] for name in record.checks)
    else:
        record.verdict = "trusted"
        record.reason = "the measurements show structure well beyond their noise"
    return record


_REASONS = {"structure_significance": "the measurements are consistent with a uniform map within their noise",
            "cv_significance": "the map predicts held-out measurements hardly better than a uniform map"}


def _tenths(v: float) -> str:
    return f"{round(v, 1) or 0.0:.1f}"  # no "-0.0"


def trust_warning(element: str, record: TrustRecord) -> str | None:
    """The one-line warning for an untrustworthy map (None otherwise); starts with the element."""
    if record.verdict != "not trustworthy":
        return None
    n = record.num_measurements
    evidence = []
    if "structure_significance" in record.checks:
        check = record.checks["structure_significance"]
        evidence.append(f"structure/noise variance {record.structure_to_noise:.2g} over {n} patterns: "
                        f"{_tenths(check['value'])} sigma from uniform, {check['threshold']:g} needed")
    if "cv_significance" in record.checks:
        check = record.checks["cv_significance"]
        evidence.append(f"cross-validated gain {record.cv_gain:.2g}: {_tenths(check['value'])} sigma, "
                        f"{check['threshold']:g} needed")
    evidence.append(f"{record.counts_per_pattern:.3g} counts per pattern")
    shapes = "; its shapes come from the TXM image, not from the measurements" if record.txm_shaped else ""
    return (f"{element}: map not trustworthy: {record.reason} ({'; '.join(evidence)}){shapes} — expose longer "
            f"or use more patterns")
