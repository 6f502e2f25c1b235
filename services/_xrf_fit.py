"""Per-element XRF intensities of every spectrum of a run, by PyMca.

Detector noise and Fano factor are calibrated once, by PyMca's non-linear fit of the sum spectrum, then
every spectrum is fitted by PyMca's fast linear fit with them fixed (the linear fit cannot fit peak
widths, and wrong widths bias every area). Configurable by :class:`XrfFitSettings`: the built-in fit
(background model, window, elements) or a PyMca fit-configuration file (``.cfg``, as PyMca's GUI saves).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from nxsci.recon import (NxsciError, SpectrumCalibration, XrfFit, detector_fwhm_keV, fit_spectra, k_lines,
                         pymca_linear_fit)

__all__ = ["XrfFitSettings", "fit_run_spectra"]


class XrfFitSettings(BaseModel):
    """How spectra are fitted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    elements: list[str] | None = Field(None, description="elements to fit (default: the run's elements)")
    background: Literal["poly", "snip"] = Field("poly", description="cubic fitted with the peaks, or SNIP strip")
    window_keV: tuple[float, float] | None = Field(None, description="fit window (default: below the lowest "
                                                                      "line to below the Compton peak)")
    calibrate: bool = Field(True, description="fit noise and Fano on the sum spectrum first")
    noise_keV: float = Field(0.10, gt=0, description="starting detector noise (FWHM, keV)")
    fano: float = Field(0.114, gt=0, description="starting Fano factor")
    pymca_config: Path | None = Field(None, description="a PyMca .cfg fit configuration instead of the built-in "
                                                         "one (its peaks, background and window are used)")

    @field_validator("window_keV")
    @classmethod
    def _window(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0 <= value[0] < value[1]:
            raise ValueError(f"window_keV must be (low, high) with 0 <= low < high, got {value}")
        return value


def _fit_with_config(spectra: np.ndarray, elements: Sequence[str], calib: SpectrumCalibration,
                     excitation_keV: float, settings: XrfFitSettings) -> XrfFit:
    """PyMca with a user's fit configuration: its detector calibration is replaced by the run's (zero,
    gain) and the excitation energy by the run's; noise and Fano calibrated on the sum spectrum."""
    from PyMca5.PyMcaIO import ConfigDict as PyMcaConfig

    path = Path(settings.pymca_config or "")
    if not path.is_file():
        raise NxsciError(f"PyMca fit configuration {path}: file not found")
    cfg = PyMcaConfig.ConfigDict()
    try:
        cfg.read(os.fspath(path))
        cfg["detector"].update(zero=calib.zero_keV, gain=calib.gain_keV, fixedzero=1, fixedgain=1)
        cfg["fit"].update(energy=[float(excitation_keV)], energyweight=[1.0], energyflag=[1], energyscatter=[0],
                          linearfitflag=0)
        peaks = cfg["peaks"]
    except (KeyError, ValueError, TypeError) as exc:
        raise NxsciError(f"PyMca fit configuration {path} is not a fit configuration ({exc})") from None
    missing = [e for e in elements if e not in peaks]
    if missing:
        raise NxsciError(f"PyMca fit configuration {path} does not fit {', '.join(missing)} (peaks: "
                         f"{', '.join(peaks)})")
    wanted = [f"{e} {peaks[e] if isinstance(peaks[e], str) else 'K'}" for e in elements]
    try:
        areas, sigma = pymca_linear_fit(cfg, spectra, wanted, calibrate=settings.calibrate)
    except ValueError as exc:
        raise NxsciError(f"PyMca fit configuration {path}: {exc}") from None
    return XrfFit(elements=list(elements), areas=areas, sigma=sigma, noise_keV=float(cfg["detector"]["noise"]),
                  fano=float(cfg["detector"]["fano"]), zero_keV=calib.zero_keV, gain_keV=calib.gain_keV)


def _poisson_sigma(fit: XrfFit, spectra: np.ndarray, excitation_keV: float) -> np.ndarray:
    """1-sigma Poisson uncertainty of each area.

    PyMca's unweighted linear fit reports unit-variance uncertainties, ``sqrt(sum_c w_c^2)`` with ``w`` the
    row of the fit's pseudo-inverse for that area; Poisson counting makes the variance
    ``sum_c w_c^2 counts_c``. ``w`` is concentrated on the element's peak channels, so the counts there
    (mean over +-1 FWHM of its K lines) stand in for ``counts_c``."""
    channels = np.arange(spectra.shape[1])
    energies = fit.zero_keV + fit.gain_keV * channels
    out = np.empty_like(fit.sigma)
    for k, element in enumerate(fit.elements):
        mask = np.zeros(spectra.shape[1], dtype=bool)
        for line in k_lines(element, excitation_keV):
            if line.rate >= 0.05:
                fwhm = float(detector_fwhm_keV(line.energy_keV, fit.noise_keV, fit.fano))
                mask |= np.abs(energies - line.energy_keV) <= fwhm
        level = spectra[:, mask].mean(axis=1) if mask.any() else np.ones(len(spectra))
        out[:, k] = fit.sigma[:, k] * np.sqrt(np.maximum(level, 1.0))
    return out


def fit_run_spectra(spectra: np.ndarray, elements: Sequence[str], *, zero_keV: float, gain_keV: float,
                    excitation_keV: float, settings: XrfFitSettings | None = None) -> XrfFit:
    """K-group areas (counts) of ``elements`` in each of ``spectra`` (N, channels), with Poisson 1-sigma
    uncertainties."""
    settings = settings or XrfFitSettings()
    data = np.asarray(spectra, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] == 0:
        raise NxsciError(f"spectra must be (N, channels) with N >= 1, got shape {data.shape}")
    chosen = list(settings.elements or elements)
    calib = SpectrumCalibration(channels=data.shape[1], zero_keV=zero_keV, gain_keV=gain_keV,
                                noise_keV=settings.noise_keV, fano=settings.fano)
    if settings.pymca_config is not None:
        fit = _fit_with_config(data, chosen, calib, excitation_keV, settings)
    else:
        fit = fit_spectra(data, chosen, calib, excitation_keV=excitation_keV, window_keV=settings.window_keV,
                          calibrate=settings.calibrate, background=settings.background)
    fit.sigma = _poisson_sigma(fit, data, excitation_keV)
    return fit
