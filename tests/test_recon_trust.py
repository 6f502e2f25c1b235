"""Can a map be trusted? Judged from the data alone, reported with the result and kept in its file."""

from __future__ import annotations

import dataclasses
import json

import h5py
import numpy as np
import pytest

from nxsci.recon import (PatternPhysics, assess_trust, load_result, reconstruct, save_result, simulate_case,
                         trust_warning)
from nxsci.recon.solvers.trust import CV_SIGNIFICANCE_THRESHOLD, SIGNIFICANCE_THRESHOLD


def _uniform_and_structured(n: int = 300, m: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(A 1, A x) for random patterns and a map with one bright quarter (the structure a map should show)."""
    rng = np.random.default_rng(seed)
    a = rng.exponential(1.0, (n, m))
    x = np.ones(m)
    x[: m // 4] = 4.0
    return a.sum(axis=1), a @ x


def test_data_consistent_with_a_uniform_map_are_flagged() -> None:
    uniform, structured = _uniform_and_structured()
    rng = np.random.default_rng(1)
    expected = 0.05 * structured  # ~10 counts per pattern: the structure drowns in Poisson noise
    y = rng.poisson(expected).astype(np.float64)
    record = assess_trust(y, uniform, expected, sigma=np.sqrt(np.maximum(expected, 1.0)))
    assert record.verdict == "not trustworthy" and set(record.checks) == {"structure_significance"}
    assert record.structure_significance < SIGNIFICANCE_THRESHOLD and abs(record.chi2_flat - 1.0) < 0.3
    line = trust_warning("Mn", record)
    assert line is not None and line.startswith("Mn: map not trustworthy: the measurements are consistent "
                                                "with a uniform map within their noise")
    assert "counts per pattern" in line


def test_data_with_structure_well_above_the_noise_are_trusted() -> None:
    uniform, structured = _uniform_and_structured()
    rng = np.random.default_rng(1)
    expected = 100.0 * structured
    y = rng.poisson(expected).astype(np.float64)
    record = assess_trust(y, uniform, expected, sigma=np.sqrt(expected))
    assert record.verdict == "trusted" and record.structure_significance > 10 * SIGNIFICANCE_THRESHOLD
    assert trust_warning("Co", record) is None
    json.dumps(record.as_dict())


def test_overestimated_uncertainties_do_not_hide_real_structure() -> None:
    """A spectrum fit's sigma 1.6x too large makes even structured data look like noise against a uniform map
    (chi2_flat/N < 1); the map's own residual shows the noise is smaller, and that is the scale used."""
    uniform, structured = _uniform_and_structured()
    rng = np.random.default_rng(4)
    expected = 0.8 * structured  # ~160 counts per pattern
    y = rng.poisson(expected).astype(np.float64)
    sigma = 1.6 * np.sqrt(expected)
    naive_chi2_flat = np.mean(((y - uniform * (uniform @ y) / (uniform @ uniform)) / sigma) ** 2)
    assert naive_chi2_flat < 1.0  # taken at face value: "consistent with a uniform map"
    record = assess_trust(y, uniform, expected, sigma=sigma)
    assert record.chi2_map < 0.5 and record.noise_scale == pytest.approx(np.sqrt(record.chi2_map))
    assert record.verdict == "trusted" and record.structure_significance > SIGNIFICANCE_THRESHOLD


def test_without_uncertainties_integer_counts_get_poisson_and_anything_else_no_verdict() -> None:
    uniform, structured = _uniform_and_structured()
    counts = np.random.default_rng(2).poisson(0.05 * structured).astype(np.float64)
    as_counts = assess_trust(counts, uniform, 0.05 * structured)
    assert as_counts.noise == "poisson (integer counts)" and as_counts.verdict == "not trustworthy"
    areas = assess_trust(counts * 0.37, uniform, 0.37 * 0.05 * structured)  # fitted areas: unknown noise
    assert areas.noise == "none" and areas.verdict == "unknown" and trust_warning("Ni", areas) is None


def test_without_uncertainties_the_cross_validation_gain_decides() -> None:
    """No sigma, no counts: a held-out loss at the chosen weight barely below a uniform map's is flagged."""
    uniform, structured = _uniform_and_structured()
    y = 0.37 * np.random.default_rng(3).poisson(0.05 * structured)
    from nxsci.recon.solvers.weight_selection import kfold_masks

    flat = 0.0
    for held in kfold_masks(y.size, 5, 0):
        c = (uniform[~held] @ y[~held]) / (uniform[~held] @ uniform[~held])
        flat += float(np.sum((y[held] - c * uniform[held]) ** 2))
    info = {"map_scale": 1.0, "cross_validation": {"grid": [1e-4, 1e-3], "cv_loss": [flat * 0.99, flat * 0.97],
                                                   "folds": 5, "seed": 0, "weight": 1e-3}}
    record = assess_trust(y, uniform, y, solver_info=info)
    assert set(record.checks) == {"cv_significance"} and record.cv_gain == pytest.approx(1 / 0.97 - 1)
    assert record.cv_significance == pytest.approx(record.cv_gain * np.sqrt(y.size / 2))
    assert record.verdict == "not trustworthy" and record.cv_significance < CV_SIGNIFICANCE_THRESHOLD
    assert trust_warning("X", record).startswith("X: map not trustworthy: the map predicts held-out")


@pytest.fixture(scope="module")
def weak_and_normal() -> tuple:
    """Composition TV (the TXM-shaped prior: the case where a map looks good without data behind it) on a
    32x32 natural-image case at 10 and at 1e5 photons per pattern."""
    cases = {}
    for photons in (10.0, 1e5):
        ds = simulate_case(phantom="camera", size=32, sampling=0.25, seed=0, photons=photons)
        cases[photons] = reconstruct(ds, method="composition-tv")
    return cases[10.0], cases[1e5]


def test_a_weak_case_is_warned_about_and_a_normal_one_is_not(weak_and_normal: tuple) -> None:
    weak, normal = weak_and_normal
    assert weak.trust["X"]["verdict"] == "not trustworthy"
    assert len(weak.warnings) == 1 and weak.warnings[0].startswith("X: map not trustworthy")
    assert "its shapes come from the TXM image" in weak.warnings[0]  # composition TV: the TXM's shapes
    assert normal.trust["X"]["verdict"] == "trusted" and normal.warnings == []
    assert normal.trust["X"]["structure_significance"] > 100 * SIGNIFICANCE_THRESHOLD
    summary = weak.summary()
    assert summary["warnings"] == weak.warnings and summary["trust"]["X"]["verdict"] == "not trustworthy"
    json.dumps(summary)


def test_the_warning_survives_the_result_file(weak_and_normal: tuple, tmp_path) -> None:
    weak, _ = weak_and_normal
    back = load_result(save_result(weak, tmp_path / "weak.h5"))
    assert back.warnings == weak.warnings
    assert back.trust["X"]["verdict"] == "not trustworthy"
    assert back.trust["X"]["structure_significance"] == pytest.approx(weak.trust["X"]["structure_significance"])


def test_result_files_written_before_trust_still_load(weak_and_normal: tuple, tmp_path) -> None:
    path = save_result(weak_and_normal[1], tmp_path / "old.h5")
    with h5py.File(path, "a") as f:
        del f.attrs["trust"], f.attrs["warnings"]
    old = load_result(path)
    assert old.warnings == [] and old.trust == {} and old.elements == ["X"]


@pytest.mark.parametrize("photons, verdict", [(10.0, "not trustworthy"), (1e5, "trusted")])
def test_without_uncertainties_fitted_areas_are_judged_by_cross_validation(photons: float, verdict: str) -> None:
    """No sigma and no raw counts (fitted areas in arbitrary units): the TV family's own CV curve decides."""
    ds = simulate_case(phantom="camera", size=32, sampling=0.25, seed=0, photons=photons)
    areas = dataclasses.replace(ds, signals=ds.signals * 0.37, signals_sigma=None)
    res = reconstruct(areas, method="tv")
    record = res.trust["X"]
    assert record["noise"] == "none" and set(record["checks"]) == {"cv_significance"}
    assert record["verdict"] == verdict and bool(res.warnings) == (verdict == "not trustworthy")


def test_a_spectrum_fit_with_too_large_uncertainties_gets_no_false_warning() -> None:
    """A structured 32x32 case whose sigma is 1.6x too large (as PyMca's were at 0.01 s exposure on the
    simulated beamline) is trusted: the map's residual rescales the noise, and its CV curve agrees."""
    ds = simulate_case(phantom="battery", size=32, sampling=0.25, seed=0, photons=30)
    inflated = dataclasses.replace(ds, signals_sigma=1.6 * ds.signals_sigma)
    res = reconstruct(inflated, elements=["Ni"], method="composition-tv")
    record = res.trust["Ni"]
    assert record["chi2_flat"] < 1.0 and record["chi2_map"] < 0.6  # at face value: a uniform map explains them
    assert record["verdict"] == "trusted" and res.warnings == []
    assert all(check["value"] > check["threshold"] for check in record["checks"].values())


def test_trust_uses_the_registered_patterns_prediction() -> None:
    """The record's chi^2 of the map is the one the solver reached (~1 at the discrepancy weight)."""
    ds = simulate_case(phantom="camera", size=32, sampling=0.25, seed=1, photons=1e4)
    res = reconstruct(ds, method="tv")
    chi2_map = res.trust["X"]["chi2_map"]
    y, sigma = ds.signal("X"), ds.sigma("X")
    pred = PatternPhysics(ds.patterns).A(res.map("X"))
    assert chi2_map == pytest.approx(float(np.mean(((y - pred) / sigma) ** 2)), rel=1e-4)
    assert 0.5 < chi2_map < 2.0
