"""PSNR (standard definition), SSIM and FRC resolution."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from nxsci.recon import frc, frc_resolution, psnr, ssim


def test_psnr_uses_range_squared() -> None:
    ref = np.zeros((10, 10))
    ref[0, 0] = 2.0  # range 2
    x = ref + 0.1  # MSE 0.01
    assert psnr(x, ref) == pytest.approx(10 * np.log10(4 / 0.01))
    assert psnr(ref, ref) == float("inf")


def test_ssim_is_one_for_identical_and_lower_for_noisy() -> None:
    rng = np.random.default_rng(0)
    ref = ndimage.gaussian_filter(rng.random((48, 48)), 2)
    assert ssim(ref, ref) == pytest.approx(1.0)
    assert ssim(ref + rng.normal(0, 0.05, ref.shape), ref) < 0.9


def test_frc_resolution_tracks_blur() -> None:
    rng = np.random.default_rng(1)
    truth = rng.random((96, 96))
    sharp = truth + rng.normal(0, 0.05, truth.shape)
    blurred = ndimage.gaussian_filter(truth, 3.0) + rng.normal(0, 0.01, truth.shape)
    r_sharp = frc_resolution(sharp, truth)
    r_blur = frc_resolution(blurred, truth)
    assert r_sharp < 2.5  # nearly Nyquist
    assert r_blur > 3 * r_sharp  # sigma 3 px blur: resolved period ~ 2 pi sigma / 3
    curve = frc(blurred, truth)
    assert curve.correlation[1] > 0.9 and curve.frequency.max() <= 0.5
