"""Sub-pixel registration of illumination patterns to the sample (nxsci.recon.physics.registration)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from nxsci.recon._errors import DatasetError
from nxsci.recon.physics.registration import (
    RegistrationResult,
    apply_shifts,
    estimate_pattern_shifts,
    estimate_shift,
    register_patterns,
    transmission_estimate,
)

SIDE = 64
MARGIN = 8  # the scene is drawn larger so that shifted frames bring real content in at the edges
MAX_SHIFT = 3.0
PHOTONS = 1000.0  # mean counts per pixel on the camera frames


def particle_thickness(shape: tuple[int, int], rng: np.random.Generator, *, count: int = 12,
                       inset: float = 0.0) -> np.ndarray:
    """Overlapping smooth spheres (a powder of cathode particles), projected thickness in px."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    thickness = np.zeros(shape)
    for _ in range(count):
        cy, cx = rng.uniform(inset, h - inset), rng.uniform(inset, w - inset)
        radius = rng.uniform(3.0, 9.0)
        thickness += radius * np.sqrt(np.clip(1.0 - ((yy - cy) ** 2 + (xx - cx) ** 2) / radius**2, 0.0, None))
    return ndimage.gaussian_filter(thickness, 1.0)


def speckle(n: int, shape: tuple[int, int], rng: np.random.Generator, *, grain: float = 2.0) -> np.ndarray:
    """Partially developed speckle: |Gaussian-filtered complex field|^2 on a 20 % background, mean ~1.2."""
    field = rng.normal(size=(n, *shape)) + 1j * rng.normal(size=(n, *shape))
    field = ndimage.gaussian_filter(field.real, (0, grain, grain)) + 1j * ndimage.gaussian_filter(
        field.imag, (0, grain, grain))
    intensity = np.abs(field) ** 2
    return 0.2 + intensity / intensity.mean(axis=(1, 2), keepdims=True)


def crop(big: np.ndarray) -> np.ndarray:
    return big[..., MARGIN:-MARGIN, MARGIN:-MARGIN]


def displaced(big: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """The scene moved by ``shift`` and seen through the camera's field of view: big(r - s), cropped."""
    return crop(ndimage.shift(big, shift, order=3, mode="nearest"))


class Acquisition:
    """A simulated pattern-registration acquisition with known sample displacements."""

    def __init__(self, n: int, seed: int, *, noisy: bool) -> None:
        rng = np.random.default_rng(seed)
        big_shape = (SIDE + 2 * MARGIN, SIDE + 2 * MARGIN)
        self.transmission_big = np.exp(-0.08 * particle_thickness(big_shape, rng))
        # element map: particles well inside the field of view, so no signal leaves it when shifted
        self.element_big = particle_thickness(big_shape, rng, count=6, inset=MARGIN + 12.0)
        self.reference = crop(self.transmission_big)
        self.element = crop(self.element_big)
        self.shifts = rng.uniform(-MAX_SHIFT, MAX_SHIFT, size=(n, 2))
        self.patterns_true = speckle(n, (SIDE, SIDE), rng)
        t_shifted = np.stack([displaced(self.transmission_big, s) for s in self.shifts])
        sample_in = self.patterns_true * t_shifted
        patterns = self.patterns_true
        if noisy:
            patterns = rng.poisson(patterns * PHOTONS) / PHOTONS
            sample_in = rng.poisson(sample_in * PHOTONS) / PHOTONS
        self.patterns = patterns.astype(np.float32)
        self.sample_in = sample_in.astype(np.float32)
        # XRF signal: pattern_i(r) * x(r - s_i), summed over the field of view
        self.signal = np.array([(p * displaced(self.element_big, s)).sum()
                                for p, s in zip(self.patterns_true, self.shifts)])


@pytest.fixture(scope="module")
def clean() -> Acquisition:
    return Acquisition(16, seed=11, noisy=False)


@pytest.fixture(scope="module")
def noisy() -> Acquisition:
    return Acquisition(16, seed=12, noisy=True)


# -- estimate_shift ----------------------------------------------------------------------------------
@pytest.mark.parametrize("noise", [False, True])
def test_estimate_shift_recovers_known_subpixel_shifts(noise: bool) -> None:
    rng = np.random.default_rng(3)
    big = np.exp(-0.08 * particle_thickness((SIDE + 2 * MARGIN,) * 2, rng))
    reference = crop(big)
    errors = []
    for shift in rng.uniform(-MAX_SHIFT, MAX_SHIFT, size=(10, 2)):
        moving = displaced(big, shift)
        if noise:
            moving = rng.poisson(moving * PHOTONS) / PHOTONS
        errors.append(np.abs(estimate_shift(reference, moving) - shift).max())
    assert max(errors) <= (0.3 if noise else 0.1), errors


def test_estimate_shift_sign_matches_ndimage_shift() -> None:
    rng = np.random.default_rng(4)
    big = np.exp(-0.08 * particle_thickness((SIDE + 2 * MARGIN,) * 2, rng))
    moving = displaced(big, np.array([2.0, -1.0]))  # content moved down 2 px and left 1 px
    s = estimate_shift(crop(big), moving)
    assert s.shape == (2,)
    np.testing.assert_allclose(s, [2.0, -1.0], atol=0.05)


def test_estimate_shift_without_window_still_finds_integer_shift() -> None:
    rng = np.random.default_rng(5)
    big = np.exp(-0.08 * particle_thickness((SIDE + 2 * MARGIN,) * 2, rng))
    s = estimate_shift(crop(big), displaced(big, np.array([-2.0, 3.0])), window=False)
    np.testing.assert_allclose(s, [-2.0, 3.0], atol=0.5)


# -- estimate_pattern_shifts --------------------------------------------------------------------------
@pytest.mark.parametrize("case,tolerance", [("clean", 0.1), ("noisy", 0.3)])
def test_pattern_shifts_with_txm_reference(case: str, tolerance: float, request: pytest.FixtureRequest) -> None:
    acq: Acquisition = request.getfixturevalue(case)
    est = estimate_pattern_shifts(acq.patterns, acq.sample_in, acq.reference)
    assert est.shape == (len(acq.shifts), 2)
    err = np.abs(est - acq.shifts).max()
    assert err <= tolerance, err


@pytest.mark.parametrize("case,tolerance", [("clean", 0.1), ("noisy", 0.3)])
def test_pattern_shifts_without_reference_up_to_a_global_offset(case: str, tolerance: float,
                                                                 request: pytest.FixtureRequest) -> None:
    acq: Acquisition = request.getfixturevalue(case)
    est = estimate_pattern_shifts(acq.patterns, acq.sample_in)
    # without a TXM image the frame is the first frame's sample position (to within the median's error)
    offset = np.median(est - acq.shifts, axis=0)
    np.testing.assert_allclose(offset, -acq.shifts[0], atol=tolerance)
    err = np.abs(est - acq.shifts - offset).max()
    assert err <= tolerance, err


def test_transmission_estimate_divides_out_the_pattern_and_fills_dark_pixels() -> None:
    rng = np.random.default_rng(6)
    pattern = speckle(1, (SIDE, SIDE), rng)[0] - 0.2  # fully developed: some pixels are ~0
    transmission = np.exp(-0.08 * particle_thickness((SIDE, SIDE), rng))
    estimate = transmission_estimate(pattern, pattern * transmission)
    assert np.isfinite(estimate).all()
    bright = pattern > 0.05 * pattern.mean()
    assert (~bright).any()
    np.testing.assert_allclose(estimate[bright], transmission[bright], rtol=1e-9)
    assert np.abs(estimate - transmission).max() < 0.5 * np.ptp(transmission)


# -- apply_shifts / register_patterns -------------------------------------------------------------------
def _relative_signal_error(predicted: np.ndarray, signal: np.ndarray) -> float:
    """Error relative to the signal's variation across patterns (the mean alone carries no image)."""
    return float(np.linalg.norm(predicted - signal) / np.linalg.norm(signal - signal.mean()))


@pytest.mark.parametrize("case", ["clean", "noisy"])
def test_registered_patterns_reproduce_the_signal_of_the_displaced_sample(case: str,
                                                                          request: pytest.FixtureRequest) -> None:
    acq: Acquisition = request.getfixturevalue(case)
    result = register_patterns(acq.patterns, acq.sample_in, acq.reference)
    assert isinstance(result, RegistrationResult)
    assert result.patterns.dtype == np.float32 and result.patterns.shape == acq.patterns.shape
    x = acq.element.ravel()
    unregistered = _relative_signal_error(acq.patterns.reshape(-1, x.size) @ x, acq.signal)
    registered = _relative_signal_error(result.patterns.reshape(-1, x.size) @ x, acq.signal)
    assert registered < 0.25 * unregistered, (registered, unregistered)
    if case == "clean":
        assert registered < 0.05, registered


def test_apply_shifts_round_trip_and_identity() -> None:
    rng = np.random.default_rng(7)
    patterns = speckle(3, (SIDE, SIDE), rng).astype(np.float32)
    same = apply_shifts(patterns, np.zeros((3, 2)))
    np.testing.assert_allclose(same, patterns, atol=1e-5)
    shifts = np.array([[1.0, 0.0], [0.0, -2.0], [1.5, 0.5]])
    moved = apply_shifts(patterns, shifts)
    # pattern_i'(r) = pattern_i(r + s_i): an integer shift is a pure relabelling of pixels
    np.testing.assert_allclose(moved[0, :-1], patterns[0, 1:], atol=1e-5)
    np.testing.assert_allclose(moved[1, :, 2:], patterns[1, :, :-2], atol=1e-5)
    back = apply_shifts(moved, -shifts)
    interior = (slice(None), slice(4, -4), slice(4, -4))
    np.testing.assert_allclose(back[interior], patterns[interior], atol=0.05 * float(patterns.std()))


def test_register_patterns_without_reference_returns_the_median_reference(noisy: Acquisition) -> None:
    result = register_patterns(noisy.patterns[:6], noisy.sample_in[:6])
    assert result.reference is not None and result.reference.shape == (SIDE, SIDE)
    assert result.shifts.shape == (6, 2)


# -- bad input -------------------------------------------------------------------------------------------
def test_bad_inputs_raise_dataset_error(clean: Acquisition) -> None:
    p, s, ref = clean.patterns, clean.sample_in, clean.reference
    with pytest.raises(DatasetError, match="shape"):
        estimate_shift(ref, ref[:-1])
    with pytest.raises(DatasetError, match="2-D"):
        estimate_shift(p, ref)
    with pytest.raises(DatasetError, match="NaN"):
        estimate_shift(ref, np.where(ref > ref.mean(), np.nan, ref))
    with pytest.raises(DatasetError, match="constant"):
        estimate_shift(ref, np.ones_like(ref))
    with pytest.raises(DatasetError, match=r"\(N, H, W\)"):
        estimate_pattern_shifts(p[0], s[0])
    with pytest.raises(DatasetError, match="differ in shape"):
        estimate_pattern_shifts(p, s[:-1])
    with pytest.raises(DatasetError, match="reference"):
        estimate_pattern_shifts(p, s, ref[:, :-2])
    bad = s.copy()
    bad[3, 5, 5] = np.nan
    with pytest.raises(DatasetError, match=r"NaN.*frames \[3\]"):
        estimate_pattern_shifts(p, bad, ref)
    with pytest.raises(DatasetError, match="shifts"):
        apply_shifts(p, np.zeros((len(p), 3)))
    with pytest.raises(DatasetError, match="NaN"):
        apply_shifts(p, np.full((len(p), 2), np.nan))
    with pytest.raises(DatasetError, match="constant"):
        estimate_pattern_shifts(p, p, ref)  # no sample in the beam
