"""Pattern-set measures (nxsci.recon.analysis.patterns) and their figures (nxsci.recon.analysis.pattern_figures)."""

from __future__ import annotations

import itertools
import json
import pathlib
from collections.abc import Iterator

import numpy as np
import pytest
from scipy import ndimage

from nxsci.recon._errors import DatasetError
from nxsci.recon.analysis.pattern_figures import save_pattern_figures
from nxsci.recon.analysis.patterns import (
    DependenceMap,
    PatternReport,
    analyze_patterns,
    correlation_vs_distance,
    dependence_map,
    effective_rank,
    invertibility,
    mean_dependence,
    mean_dependence_curve,
    numerical_rank,
    pinv_reconstruct,
    singular_values,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread() -> Iterator[None]:
    """These SVDs are small; on busy shared cores OpenBLAS's spinning threads make them ~30x slower."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def smooth_speckle(n: int, shape: tuple[int, int], seed: int, grain: float = 2.0) -> np.ndarray:
    """Gaussian-filtered uniform random fields (the paper's simulated patterns), positive intensities."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.random((n, *shape)), (0, grain, grain))
    return (field - field.min() + 0.1).astype(np.float32)


def blob_image(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A particle-like test image in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    img = np.zeros(shape)
    for _ in range(6):
        cy, cx, r = rng.uniform(0, shape[0]), rng.uniform(0, shape[1]), rng.uniform(2, 6)
        img += rng.uniform(0.3, 1.0) * (((yy - cy) ** 2 + (xx - cx) ** 2) < r**2)
    img = ndimage.gaussian_filter(img, 0.7)
    return img / img.max()


def brute_force_delta(patterns: np.ndarray) -> float:
    c = np.corrcoef(patterns.reshape(len(patterns), -1).astype(np.float64))
    n = len(c)
    return float((c.sum() - np.trace(c)) / (n * (n - 1)))


# -- mean dependence ----------------------------------------------------------------------------------
def test_identical_patterns_are_fully_dependent() -> None:
    one = smooth_speckle(1, (16, 16), seed=0)
    assert mean_dependence(np.repeat(one, 5, axis=0)) == pytest.approx(1.0, abs=1e-12)
    # Pearson ignores gain and offset: scaled copies are still the same pattern
    scaled = np.concatenate([one, 3 * one + 7, 0.5 * one])
    assert mean_dependence(scaled) == pytest.approx(1.0, abs=1e-9)


def test_independent_white_noise_has_near_zero_dependence() -> None:
    m = 32 * 32
    noise = np.random.default_rng(1).random((40, 32, 32))
    assert abs(mean_dependence(noise)) < 3 / np.sqrt(m)


def test_mean_dependence_equals_brute_force_corrcoef() -> None:
    patterns = smooth_speckle(9, (12, 10), seed=2, grain=3.0)
    patterns[3] = -patterns[0] + 5  # an anti-correlated pair
    expected = brute_force_delta(patterns)
    assert mean_dependence(patterns) == pytest.approx(expected, abs=1e-10)
    # and directly from the definition: mean over i != j
    a = patterns.reshape(9, -1).astype(np.float64)
    pairs = [np.corrcoef(a[i], a[j])[0, 1] for i, j in itertools.permutations(range(9), 2)]
    assert mean_dependence(patterns) == pytest.approx(np.mean(pairs), abs=1e-10)


def test_blocked_mean_dependence_equals_unblocked() -> None:
    patterns = smooth_speckle(23, (16, 16), seed=3)
    whole = mean_dependence(patterns)
    for block in (1, 4, 7):
        assert mean_dependence(patterns, block_rows=block) == pytest.approx(whole, abs=1e-12)
    counts, curve = mean_dependence_curve(patterns, block_rows=5)
    assert counts[0] == 2 and counts[-1] == 23
    assert curve[-1] == pytest.approx(whole, abs=1e-12)
    assert curve[6] == pytest.approx(brute_force_delta(patterns[:8]), abs=1e-10)


def test_mean_dependence_needs_two_varying_patterns() -> None:
    with pytest.raises(DatasetError, match="at least 2"):
        mean_dependence(np.ones((1, 8, 8)))
    flat = smooth_speckle(3, (8, 8), seed=4)
    flat[1] = 2.0
    with pytest.raises(DatasetError, match=r"\[1\] are constant"):
        mean_dependence(flat)
    with pytest.raises(DatasetError, match=r"\(N, H, W\)"):
        mean_dependence(np.ones((4, 64)))
    with pytest.raises(DatasetError, match="NaN"):
        mean_dependence(np.full((3, 4, 4), np.nan))


# -- dependence map -----------------------------------------------------------------------------------
def test_dependence_map_is_sorted_by_distance_and_matches_corrcoef() -> None:
    patterns = smooth_speckle(60, (10, 12), seed=5)
    dmap = dependence_map(patterns)
    m = 10 * 12
    assert isinstance(dmap, DependenceMap)
    assert dmap.values.shape == dmap.distances.shape == (m - 1, m)
    np.testing.assert_array_equal(dmap.targets, np.arange(m))
    assert (np.diff(dmap.distances, axis=0) >= 0).all()
    assert dmap.distances.min() == pytest.approx(1.0)
    # column t against a brute-force pixel correlation matrix
    pixel_corr = np.corrcoef(patterns.reshape(60, -1).T.astype(np.float64))
    t = 37
    ty, tx = divmod(t, 12)
    yy, xx = np.divmod(np.arange(m), 12)
    others = np.array([k for k in range(m) if k != t])
    dist = np.hypot(yy[others] - ty, xx[others] - tx)
    np.testing.assert_allclose(np.sort(dist), dmap.distances[:, t], atol=1e-5)
    # same multiset of correlations at each distance (ties may be ordered differently)
    for d in np.unique(np.round(dist, 4))[:5]:
        want = np.sort(pixel_corr[t, others][np.isclose(dist, d)])
        got = np.sort(dmap.values[:, t][np.isclose(dmap.distances[:, t], d)])
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_speckle_neighbours_are_more_correlated_than_far_pixels() -> None:
    patterns = smooth_speckle(200, (24, 24), seed=6, grain=2.0)
    dmap = dependence_map(patterns, max_targets=64, seed=1)
    assert dmap.targets.size == 64 and (np.diff(dmap.targets) > 0).all()
    near = np.nanmean(dmap.values[:4])  # the four nearest neighbours
    far = np.nanmean(np.abs(dmap.values[-100:]))
    assert near > 0.8 and far < 0.2 and near > far + 0.5
    curve = correlation_vs_distance(dmap)
    assert curve.distance[0] == pytest.approx(1.0, abs=0.3)
    assert curve.correlation[0] > curve.correlation[5] > curve.correlation[10]
    # sampling is deterministic
    np.testing.assert_array_equal(dependence_map(patterns, max_targets=64, seed=1).targets, dmap.targets)


def test_dependence_map_blocks_do_not_change_the_result() -> None:
    patterns = smooth_speckle(30, (9, 9), seed=7)
    whole = dependence_map(patterns)
    blocked = dependence_map(patterns, block_targets=7)
    np.testing.assert_allclose(blocked.values, whole.values, atol=1e-6)


# -- spectrum, pinv, invertibility -----------------------------------------------------------------------
def test_singular_values_and_ranks() -> None:
    patterns = smooth_speckle(12, (8, 8), seed=8)
    sv = singular_values(patterns)
    np.testing.assert_allclose(sv, np.linalg.svd(patterns.reshape(12, -1).astype(np.float64),
                                                 compute_uv=False), rtol=1e-10)
    assert (np.diff(sv) <= 0).all()
    assert numerical_rank(sv, (12, 64)) == 12
    repeated = np.concatenate([patterns[:4]] * 3)
    assert numerical_rank(singular_values(repeated), (12, 64)) == 4
    assert effective_rank(np.ones(10)) == pytest.approx(10.0)
    assert effective_rank(np.array([5.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert 1.0 < effective_rank(sv) < 12.0
    with pytest.raises(DatasetError):
        effective_rank(np.array([]))


def test_pinv_reconstruct_inverts_a_full_rank_set_and_handles_batches() -> None:
    shape = (8, 8)
    patterns = np.random.default_rng(9).random((64, *shape))
    x = blob_image(shape, seed=1)
    y = patterns.reshape(64, -1) @ x.ravel()
    np.testing.assert_allclose(pinv_reconstruct(patterns, y), x, atol=1e-8)
    batch = pinv_reconstruct(patterns, np.stack([y, 2 * y]))
    assert batch.shape == (2, *shape)
    np.testing.assert_allclose(batch[1], 2 * x, atol=1e-8)
    with pytest.raises(DatasetError, match="y must have shape"):
        pinv_reconstruct(patterns, y[:-1])


def test_point_scan_is_perfectly_invertible() -> None:
    shape = (24, 24)
    point_scan = np.eye(24 * 24).reshape(-1, *shape)
    ref = blob_image(shape, seed=2)
    assert invertibility(point_scan, ref) == pytest.approx(1.0, abs=1e-9)
    assert mean_dependence(point_scan) == pytest.approx(-1.0 / (24 * 24 - 1), abs=1e-12)


def test_invertibility_grows_with_the_number_of_random_patterns() -> None:
    shape = (24, 24)
    m = 24 * 24
    ref = blob_image(shape, seed=3)
    patterns = np.random.default_rng(10).random((m // 2, *shape))
    few = invertibility(patterns[: m // 10], ref)
    many = invertibility(patterns, ref)
    assert few < many - 0.1, (few, many)
    with pytest.raises(DatasetError, match="does not match"):
        invertibility(patterns, ref[:-1])


def test_invertibility_default_reference() -> None:
    patterns = np.random.default_rng(11).random((200, 24, 24))
    score = invertibility(patterns)
    assert -1.0 <= score <= 1.0
    assert invertibility(np.eye(24 * 24).reshape(-1, 24, 24)) == pytest.approx(1.0, abs=1e-9)


# -- report and figures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def report_case() -> tuple[np.ndarray, PatternReport]:
    patterns = smooth_speckle(120, (24, 24), seed=12)
    return patterns, analyze_patterns(patterns, blob_image((24, 24), seed=4), max_targets=128)


def test_analyze_patterns_report(report_case: tuple[np.ndarray, PatternReport]) -> None:
    patterns, report = report_case
    assert report.num_patterns == 120 and report.image_shape == (24, 24)
    assert report.sampling_ratio == pytest.approx(120 / 576)
    assert report.mean_dependence == pytest.approx(brute_force_delta(patterns), abs=1e-9)
    assert report.invertibility == pytest.approx(invertibility(patterns, blob_image((24, 24), seed=4)), abs=1e-9)
    assert report.numerical_rank == 120
    assert 1.0 < report.effective_rank <= 120.0
    data = report.to_dict()
    text = json.dumps(data, allow_nan=False)  # strictly JSON
    assert len(text) < 8000
    assert data["numerical_rank"] == 120 and data["image_shape"] == [24, 24]
    curve = data["correlation_vs_distance"]
    assert curve["distance_px"][0] == pytest.approx(1.0, abs=0.3) and curve["correlation"][0] > 0.5
    assert data["mean_dependence_vs_count"]["num_patterns"][-1] == 120


def test_save_pattern_figures_writes_pngs(report_case: tuple[np.ndarray, PatternReport],
                                          tmp_path: pathlib.Path) -> None:
    patterns, report = report_case
    paths = save_pattern_figures(patterns, report, tmp_path / "figs")
    names = {p.name for p in paths}
    assert {"patterns_examples.png", "dependence_map.png", "singular_values.png",
            "correlation_vs_distance.png", "invertibility.png"} <= names
    for p in paths:
        assert p.parent == tmp_path / "figs"
        assert p.read_bytes()[:8] == PNG_SIGNATURE
    # an explicit (smaller) map is used as given
    small = dependence_map(patterns, max_targets=16)
    again = save_pattern_figures(patterns, report, tmp_path / "figs2", dependence=small)
    assert all(p.read_bytes()[:8] == PNG_SIGNATURE for p in again)
    with pytest.raises(DatasetError, match="do not match"):
        save_pattern_figures(patterns[:10], report, tmp_path / "bad")
