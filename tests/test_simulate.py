"""Simulator: pattern statistics, the two-diffuser model, signals consistent with PatternPhysics, datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nxsci.recon.data.dataset import load_dataset, save_dataset
from nxsci.recon.sim.phantoms import battery_phantom
from nxsci.recon.physics.forward import PatternPhysics
from nxsci.recon.sim.simulate import (
    TwoDiffuserModel,
    shift_patterns,
    signal_scale,
    simulate_case,
    simulate_dataset,
    simulate_signals,
    speckle_patterns,
)


def mean_dependence(patterns: np.ndarray) -> float:
    """The paper's delta: mean Pearson correlation between distinct (flattened) patterns."""
    c = np.corrcoef(patterns.reshape(len(patterns), -1))
    n = len(patterns)
    return float((c.sum() - np.trace(c)) / (n * (n - 1)))


def autocorrelation_width(patterns: np.ndarray) -> float:
    """Lag (px) where the mean normalised autocorrelation along x falls to 1/e (linear interpolation)."""
    p = patterns - patterns.mean(axis=(1, 2), keepdims=True)
    f = np.fft.rfft(p, axis=2)
    ac = np.fft.irfft(np.abs(f) ** 2, n=p.shape[2], axis=2).mean(axis=(0, 1))
    ac /= ac[0]
    below = int(np.argmax(ac < np.exp(-1)))
    return below - 1 + (ac[below - 1] - np.exp(-1)) / (ac[below - 1] - ac[below])


# -- speckle -----------------------------------------------------------------------------------------


def test_speckle_basic_statistics() -> None:
    p = speckle_patterns(50, (32, 40), 2.0, seed=1)
    assert p.shape == (50, 32, 40) and p.dtype == np.float32
    assert np.all(p >= 0)
    assert p.mean() == pytest.approx(1.0, rel=0.1)
    # fully developed speckle: contrast std/mean ~ 1
    assert p.std() / p.mean() == pytest.approx(1.0, rel=0.15)
    np.testing.assert_array_equal(p, speckle_patterns(50, (32, 40), 2.0, seed=1))
    np.testing.assert_array_equal(p[:20], speckle_patterns(20, (32, 40), 2.0, seed=1))
    assert not np.allclose(p, speckle_patterns(50, (32, 40), 2.0, seed=2))


def test_speckle_feature_size_sets_correlation_width() -> None:
    white = speckle_patterns(40, (48, 48), 0.0, seed=0)
    assert white.mean() == pytest.approx(1.0, rel=0.05)
    neighbour = np.corrcoef(white[:, :, :-1].ravel(), white[:, :, 1:].ravel())[0, 1]
    assert abs(neighbour) < 0.03
    widths = [autocorrelation_width(speckle_patterns(40, (48, 48), fs, seed=0)) for fs in (1.0, 2.0, 4.0)]
    assert widths[0] < widths[1] < widths[2]
    # Gaussian intensity autocorrelation of standard deviation feature_size: 1/e at sqrt(2) x feature_size
    for w, fs in zip(widths, (1.0, 2.0, 4.0)):
        assert w == pytest.approx(np.sqrt(2) * fs, rel=0.25)


def test_speckle_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        speckle_patterns(0, (8, 8), 1.0)
    with pytest.raises(ValueError):
        speckle_patterns(3, (8, 8), -1.0)


# -- two-diffuser model ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> TwoDiffuserModel:
    return TwoDiffuserModel((64, 64), seed=0)


def test_two_diffuser_reproducible(model: TwoDiffuserModel) -> None:
    a = model.pattern((10.25, 33.5), (100.75, 7.125))
    assert a.shape == (64, 64) and a.dtype == np.float32 and np.all(a >= 0)
    model.pattern((50.0, 50.0), (3.0, 4.0))  # going elsewhere and coming back
    np.testing.assert_array_equal(a, model.pattern((10.25, 33.5), (100.75, 7.125)))
    np.testing.assert_array_equal(a, TwoDiffuserModel((64, 64), seed=0).pattern((10.25, 33.5), (100.75, 7.125)))
    assert not np.allclose(a, TwoDiffuserModel((64, 64), seed=1).pattern((10.25, 33.5), (100.75, 7.125)))
    # the screens are periodic: a whole period is the same position
    sy, sx = model.screen_shape
    np.testing.assert_allclose(a, model.pattern((10.25 + sy, 33.5 - sx), (100.75, 7.125)), rtol=1e-5, atol=1e-6)


def test_two_diffuser_continuous(model: TwoDiffuserModel) -> None:
    p2 = (17.3, 90.1)
    base = model.pattern((12.0, 40.0), p2).astype(np.float64)
    spread = base.std()

    def change(dy: float, dx: float) -> float:
        return float(np.abs(model.pattern((12.0 + dy, 40.0 + dx), p2) - base).max() / spread)

    small, smaller = change(0.01, 0.01), change(0.001, 0.001)
    assert small < 0.05
    assert smaller < small / 5  # shrinks with the step: no jumps
    assert change(-1e-6, -1e-6) < 1e-3  # across an integer position boundary
    assert change(3.0, 3.0) > 0.3  # while a real move changes the pattern
    # the second diffuser is continuous too
    q = model.pattern((12.0, 40.0), (p2[0] + 0.005, p2[1] - 0.005))
    assert np.abs(q - base).max() / spread < 0.05


def test_two_diffuser_mean_dependence_like_recorded(model: TwoDiffuserModel) -> None:
    schedule = model.random_schedule(100, seed=0)
    assert schedule.shape == (100, 2, 2)
    np.testing.assert_array_equal(schedule, model.random_schedule(100, seed=0))
    patterns = model.patterns(schedule)
    assert patterns.shape == (100, 64, 64)
    assert patterns.mean() == pytest.approx(1.0, rel=0.1)
    delta = mean_dependence(patterns)
    assert 0.3 <= delta <= 0.5, delta
    # without the static structure and envelope, the patterns decorrelate
    free = TwoDiffuserModel((64, 64), seed=0, static_fraction=0.0, envelope_sigma=None)
    assert mean_dependence(free.patterns(schedule[:40])) < 0.1


def test_two_diffuser_rejects_bad_input(model: TwoDiffuserModel) -> None:
    with pytest.raises(ValueError):
        model.patterns(np.zeros((3, 2)))
    with pytest.raises(ValueError):
        model.pattern((np.nan, 0.0), (0.0, 0.0))
    with pytest.raises(ValueError):
        TwoDiffuserModel((32, 32), static_fraction=1.0)


# -- signals -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_case() -> tuple[np.ndarray, np.ndarray]:
    maps = battery_phantom(32, seed=0).maps
    patterns = speckle_patterns(300, (32, 32), 1.5, seed=3)
    return maps, patterns


def test_noiseless_signals_are_the_physics(small_case: tuple[np.ndarray, np.ndarray]) -> None:
    maps, patterns = small_case
    signals, sigma = simulate_signals(maps, patterns, photons=1e4, noise=False)
    a_x = PatternPhysics(patterns, dtype=torch.float64).A(maps.astype(np.float64)).T
    scale = signal_scale(a_x, 1e4)
    np.testing.assert_allclose(signals, scale * a_x, rtol=1e-12)
    np.testing.assert_allclose(signals, scale * PatternPhysics(patterns).A(maps).T, rtol=1e-5)  # the solvers' float32
    assert signals.mean(axis=0).max() == pytest.approx(1e4)  # the strongest element averages `photons`
    np.testing.assert_allclose(sigma, np.sqrt(np.maximum(scale * a_x, 1.0)))
    # one factor for all elements: the ratios between elements are those of A x
    np.testing.assert_allclose(signals[:, 0] / signals[:, 2], a_x[:, 0] / a_x[:, 2], rtol=1e-10)
    single, _ = simulate_signals(maps[1], patterns, photons=1e4, noise=False)
    assert single.shape == (300, 1)


def test_poisson_noise_matches_sigma(small_case: tuple[np.ndarray, np.ndarray]) -> None:
    maps, patterns = small_case
    background = 200.0
    clean, _ = simulate_signals(maps, patterns, photons=500.0, background=background, noise=False)
    z = []
    for seed in range(4):
        noisy, sigma = simulate_signals(maps, patterns, photons=500.0, background=background, seed=seed)
        np.testing.assert_array_equal(noisy + background, np.round(noisy + background))  # integer counts
        z.append((noisy - clean) / sigma)
    zz = np.concatenate(z).ravel()
    assert abs(zz.mean()) < 0.06  # background subtracted: unbiased
    assert zz.std() == pytest.approx(1.0, abs=0.06)
    a, _ = simulate_signals(maps, patterns, photons=500.0, seed=7)
    b, _ = simulate_signals(maps, patterns, photons=500.0, seed=7)
    np.testing.assert_array_equal(a, b)


def test_shifted_signals_use_shifted_patterns(small_case: tuple[np.ndarray, np.ndarray]) -> None:
    maps, patterns = small_case
    rng = np.random.default_rng(0)
    shifts = rng.normal(0, 1.5, (len(patterns), 2))
    moved, _ = simulate_signals(maps, patterns, photons=1e4, shifts=shifts, noise=False)
    eff = shift_patterns(patterns, shifts)
    a_x = PatternPhysics(eff, dtype=torch.float64).A(maps.astype(np.float64)).T
    np.testing.assert_allclose(moved, signal_scale(a_x, 1e4) * a_x, rtol=1e-12)
    still, _ = simulate_signals(maps, patterns, photons=1e4, noise=False)
    assert np.abs(moved - still).mean() > 0.01 * np.abs(still).mean()
    # convention: pattern_i(r + s_i), checked on an integer shift away from the edges
    eff_int = shift_patterns(patterns[:1], np.array([[2.0, -3.0]]))[0]
    np.testing.assert_allclose(eff_int[5:-5, 5:-5], patterns[0][7:-3, 2:-8], atol=1e-5)


# -- datasets ----------------------------------------------------------------------------------------


def test_dataset_round_trip(tmp_path: Path) -> None:
    ph = battery_phantom(32, seed=1)
    truth = TwoDiffuserModel((32, 32), seed=2)
    patterns = truth.patterns(truth.random_schedule(120, seed=0))
    ds = simulate_dataset(ph, patterns, photons=1e4, background=10.0, seed=5, shift_sigma=1.0)
    assert ds.elements == ["Mn", "Co", "Ni"]
    assert ds.signals.shape == (120, 3) and ds.signals_sigma is not None
    assert ds.sample_in is not None and ds.sample_in.shape == patterns.shape
    assert ds.truth_shifts is not None and 0.7 < ds.truth_shifts.std() < 1.3
    np.testing.assert_allclose(ds.truth_maps, ph.maps * ds.attrs["signal_scale"], rtol=1e-6)
    np.testing.assert_array_equal(ds.txm, ph.txm)
    # the stored patterns are noisy recordings of the true ones (1000 counts per unit intensity)
    resid = ds.patterns - patterns
    assert np.var(resid) == pytest.approx(np.mean(patterns) / 1000.0, rel=0.1)
    path = save_dataset(ds, tmp_path / "sim.h5")
    back = load_dataset(path)
    for name in ("patterns", "signals", "signals_sigma", "txm", "sample_in", "truth_maps", "truth_shifts"):
        np.testing.assert_array_equal(getattr(back, name), getattr(ds, name), err_msg=name)
    assert back.elements == ds.elements
    np.testing.assert_array_equal(back.metadata["pattern_index"], np.arange(120))
    assert back.attrs["phantom"] == "battery" and back.attrs["photons"] == 1e4 and back.attrs["seed"] == 5


def test_dataset_sample_in_frames_follow_shifts() -> None:
    ph = battery_phantom(32, seed=0)
    patterns = speckle_patterns(6, (32, 32), 2.0, seed=0)
    ds = simulate_dataset(ph, patterns, seed=1, shift_sigma=2.0, frame_photons=None)
    np.testing.assert_array_equal(ds.patterns, patterns)  # noiseless frames on request
    from scipy import ndimage

    for i in range(6):
        moved = ndimage.shift(ph.transmission.astype(np.float64), ds.truth_shifts[i], order=3, mode="nearest")
        np.testing.assert_allclose(ds.sample_in[i], patterns[i] * moved, rtol=1e-5, atol=1e-6)
    plain = simulate_dataset(ph, patterns, seed=1)
    assert plain.sample_in is None and np.all(plain.truth_shifts == 0)


def test_simulate_case() -> None:
    ds = simulate_case(size=32, sampling=0.1, seed=3)
    assert ds.num_patterns == round(0.1 * 32 * 32) and ds.image_shape == (32, 32)
    assert ds.metadata["diffuser_positions"].shape == (ds.num_patterns, 2, 2)
    assert ds.attrs["pattern_model"] == "two-diffuser" and ds.attrs["seed"] == 3
    np.testing.assert_allclose(ds.truth_maps, battery_phantom(32, seed=3).maps * ds.attrs["signal_scale"], rtol=1e-6)
    again = simulate_case(size=32, sampling=0.1, seed=3)
    np.testing.assert_array_equal(ds.signals, again.signals)
    np.testing.assert_array_equal(ds.patterns, again.patterns)
    nat = simulate_case(phantom="coins", size=24, sampling=0.2, pattern_model="speckle", feature_size=1.0,
                        shift_sigma=0.5)
    assert nat.elements == ["X"] and nat.sample_in is not None
    white = simulate_case(size=32, sampling=0.05, pattern_model="random")
    assert white.attrs["feature_size"] == 0.0


@pytest.mark.parametrize("kwargs, match", [
    ({"phantom": "nope"}, "unknown phantom"),
    ({"pattern_model": "laser"}, "unknown pattern model"),
    ({"sampling": 0.0}, "sampling"),
    ({"sampling": 10.0}, "sampling"),
    ({"feature_size": -1.0}, "feature_size"),
])
def test_simulate_case_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        simulate_case(size=32, **kwargs)  # type: ignore[arg-type]
