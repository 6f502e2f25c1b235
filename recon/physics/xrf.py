"""XRF spectra: emission lines from PyMca's element data, a detector response model, and the PyMca fit.

The simulator (``nxsci.devices.sim``) builds spectra with :func:`synthesize_spectrum` and the pipeline
fits them with :func:`fit_spectra`; both take their line energies, relative line rates and peak widths
from PyMca (the same ``Elements`` tables and the same ``FWHM^2 = noise^2 + 3.85 eV * fano * E * 2.3548^2``
detector model), so a fit of a simulated spectrum measures the simulator's element intensities rather
than a mismatch of two line tables. Intensities are areas of whole K groups (Ka + Kb), in counts.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._errors import NxsciError, UnknownElementError

__all__ = [
    "XrfLine",
    "SpectrumCalibration",
    "XrfFit",
    "k_lines",
    "k_edge_keV",
    "fluorescence_sensitivity",
    "compton_energy_keV",
    "detector_fwhm_keV",
    "gaussian_lines",
    "synthesize_spectrum",
    "fit_spectra",
    "pymca_linear_fit",
]

#: pair-creation energy of silicon in keV (PyMca's constant in the FWHM model)
_SI_PAIR_KEV = 0.00385
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
_ELECTRON_REST_KEV = 510.998950


@dataclasses.dataclass(frozen=True)
class XrfLine:
    """One emission line: IUPAC name (e.g. ``KL3`` = Ka1), energy in keV, rate within its group (sums to 1)."""

    name: str
    energy_keV: float
    rate: float


@dataclasses.dataclass(frozen=True)
class SpectrumCalibration:
    """MCA energy axis and detector resolution: ``E(ch) = zero + gain * ch`` (keV), FWHM noise and Fano factor."""

    channels: int = 2048
    zero_keV: float = 0.0
    gain_keV: float = 0.01
    noise_keV: float = 0.10
    fano: float = 0.114

    def energies(self) -> np.ndarray:
        """Energy (keV) at the centre of each channel."""
        return self.zero_keV + self.gain_keV * np.arange(self.channels, dtype=np.float64)

    def channel(self, energy_keV: float) -> float:
        return (float(energy_keV) - self.zero_keV) / self.gain_keV


@functools.lru_cache(maxsize=1)
def _elements_module():  # type: ignore[no-untyped-def]
    from PyMca5.PyMcaPhysics.xrf import Elements

    return Elements


def _element_data(element: str) -> dict[str, Any]:
    table = _elements_module().Element
    if element not in table:
        raise UnknownElementError(f"unknown element '{element}' (not in PyMca's element table)")
    return table[element]


def k_edge_keV(element: str) -> float:
    """K-shell binding energy (keV) from PyMca's tables."""
    return float(_element_data(element)["binding"]["K"])


@functools.lru_cache(maxsize=64)
def k_lines(element: str, excitation_keV: float | None = None) -> tuple[XrfLine, ...]:
    """The K lines of ``element`` (PyMca ``Elements``), rates normalised to 1 within the group.

    With ``excitation_keV`` below the K edge there is no K emission: that is an error, because a
    simulation or fit would silently return zeros.
    """
    data = _element_data(element)
    if excitation_keV is not None and excitation_keV <= k_edge_keV(element):
        raise NxsciError(f"{element} K lines are not excited at {excitation_keV} keV "
                         f"(K edge {k_edge_keV(element):.3f} keV)")
    lines = [(name, float(data[name]["energy"]), float(data[name]["rate"])) for name in data["K xrays"]
             if float(data[name]["rate"]) > 0]
    total = sum(r for _, _, r in lines)
    return tuple(XrfLine(n, e, r / total) for n, e, r in lines)


def fluorescence_sensitivity(element: str, excitation_keV: float) -> float:
    """K fluorescence photons per incident photon per unit areal mass (cm^2/g), up to geometry:
    photoelectric cross-section at the excitation energy x K-shell share (1 - 1/jump) x K fluorescence
    yield. Relative values set the element ratios of simulated spectra."""
    elements = _elements_module()
    data = _element_data(element)
    k_lines(element, excitation_keV)  # raises below the edge
    tau = float(elements.getMaterialMassAttenuationCoefficients(element, 1.0, float(excitation_keV))["photo"][0])
    # K-shell share of the photo cross-section just above the edge: ratio of the cross-sections across it
    edge = k_edge_keV(element)
    above = float(elements.getMaterialMassAttenuationCoefficients(element, 1.0, edge * 1.001)["photo"][0])
    below = float(elements.getMaterialMassAttenuationCoefficients(element, 1.0, edge * 0.999)["photo"][0])
    k_share = 1.0 - below / above if above > below > 0 else 0.85
    return tau * k_share * float(data["omegak"])


def compton_energy_keV(energy_keV: float, angle_deg: float = 90.0) -> float:
    """Energy of a photon Compton-scattered by ``angle_deg``."""
    e = float(energy_keV)
    return e / (1.0 + e / _ELECTRON_REST_KEV * (1.0 - math.cos(math.radians(angle_deg))))


def detector_fwhm_keV(energy_keV: np.ndarray | float, noise_keV: float, fano: float) -> np.ndarray:
    """PyMca's detector resolution: ``FWHM^2 = noise^2 + 0.00385 keV * fano * E * 2.3548^2``."""
    e = np.asarray(energy_keV, dtype=np.float64)
    return np.sqrt(noise_keV**2 + _SI_PAIR_KEV * fano * e * _FWHM_PER_SIGMA**2)


def gaussian_lines(calib: SpectrumCalibration, energies_keV: Sequence[float], areas: Sequence[float],
                   extra_sigma_keV: float = 0.0) -> np.ndarray:
    """Expected counts per channel of Gaussian peaks with the given areas (counts), integrated over each
    channel's width so that the sum over channels equals the area (for peaks inside the range)."""
    from scipy.special import erf

    edges = calib.zero_keV + calib.gain_keV * (np.arange(calib.channels + 1, dtype=np.float64) - 0.5)
    out = np.zeros(calib.channels)
    for energy, area in zip(energies_keV, areas):
        if area == 0:
            continue
        sigma = math.hypot(float(detector_fwhm_keV(energy, calib.noise_keV, calib.fano)) / _FWHM_PER_SIGMA,
                           extra_sigma_keV)
        cdf = 0.5 * (1.0 + erf((edges - energy) / (math.sqrt(2.0) * sigma)))
        out += float(area) * np.diff(cdf)
    return out


def synthesize_spectrum(calib: SpectrumCalibration, element_counts: Mapping[str, float], *,
                        excitation_keV: float, elastic_counts: float = 0.0, compton_counts: float = 0.0,
                        compton_angle_deg: float = 90.0, compton_broadening_keV: float = 0.06,
                        background_counts: float = 0.0) -> np.ndarray:
    """Expected counts per channel (float64, no noise) of one spectrum.

    ``element_counts`` are K-group areas in counts, shared over the K lines by PyMca's rates; elastic
    and Compton scatter sit at the excitation energy and its 90-degree Compton energy (Compton Doppler
    broadened); the continuum (``background_counts`` in total) falls off exponentially from low energy
    to the elastic line, the shape of incomplete charge collection plus scatter in the sample.
    """
    energies: list[float] = []
    areas: list[float] = []
    for element, counts in element_counts.items():
        if counts < 0 or not math.isfinite(counts):
            raise ValueError(f"element counts must be finite and >= 0, got {element}: {counts}")
        for line in k_lines(element, excitation_keV):
            energies.append(line.energy_keV)
            areas.append(counts * line.rate)
    spectrum = gaussian_lines(calib, energies, areas)
    spectrum += gaussian_lines(calib, [excitation_keV], [elastic_counts])
    spectrum += gaussian_lines(calib, [compton_energy_keV(excitation_keV, compton_angle_deg)], [compton_counts],
                               extra_sigma_keV=compton_broadening_keV)
    if background_counts > 0:
        e = calib.energies()
        shape = np.where((e > 1.0) & (e < excitation_keV), np.exp(-e / 3.0) + 0.02, 0.0)
        if shape.sum() > 0:
            spectrum += background_counts * shape / shape.sum()
    return spectrum


# -- PyMca fit ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class XrfFit:
    """Fitted K-group areas ``(N, E)`` (counts), their 1-sigma errors, and the detector parameters used."""

    elements: list[str]
    areas: np.ndarray
    sigma: np.ndarray
    noise_keV: float
    fano: float
    zero_keV: float
    gain_keV: float


def _pymca_config(calib: SpectrumCalibration, elements: Sequence[str], excitation_keV: float,
                  window_keV: tuple[float, float], background: str) -> dict[str, Any]:
    from PyMca5.PyMcaDataDir import PYMCA_DATA_DIR
    from PyMca5.PyMcaIO import ConfigDict

    cfg = ConfigDict.ConfigDict()
    cfg.read(os.path.join(PYMCA_DATA_DIR, "McaTheory.cfg"))
    cfg["detector"].update(zero=calib.zero_keV, gain=calib.gain_keV, noise=calib.noise_keV, fano=calib.fano,
                           fixedzero=1, fixedgain=1, fixednoise=0, fixedfano=0)
    lo, hi = (int(round(calib.channel(e))) for e in window_keV)
    cfg["fit"].update(xmin=max(lo, 0), xmax=min(hi, calib.channels - 1), energy=[float(excitation_keV)],
                      energyweight=[1.0], energyflag=[1], energyscatter=[0], linearfitflag=0, hypermetflag=1,
                      escapeflag=0, sumflag=0, scatterflag=0)
    if background == "poly":  # a cubic in the window, fitted with the peaks
        cfg["fit"].update(stripflag=0, continuum=4, linpolorder=3)
    elif background == "snip":  # stripped before the fit; biased ~1 % high on noisy spectra (measured)
        cfg["fit"].update(stripflag=1, stripalgorithm=1, snipwidth=30, continuum=0)
    else:
        raise NxsciError(f"unknown XRF background model '{background}' (poly | snip)")
    cfg["peaks"] = {str(e): "K" for e in elements}
    for value in cfg["attenuators"].values():
        value[0] = 0
    return cfg


def _calibrate_width(cfg: dict[str, Any], channels: np.ndarray, spectrum: np.ndarray) -> tuple[float, float]:
    """Noise and Fano from one non-linear fit of a (sum) spectrum: the fast linear fit keeps them fixed."""
    from PyMca5.PyMcaPhysics.xrf import ClassMcaTheory

    theory = ClassMcaTheory.McaTheory()
    theory.configure(cfg)
    theory.setData(x=channels, y=spectrum, xmin=cfg["fit"]["xmin"], xmax=cfg["fit"]["xmax"])
    theory.estimate()
    fitresult, _ = theory.startfit(digest=1)
    names, values = list(theory.PARAMETERS), list(fitresult[0])
    return float(values[names.index("Noise")]), float(values[names.index("Fano")])


def fit_spectra(spectra: np.ndarray, elements: Sequence[str], calib: SpectrumCalibration, *,
                excitation_keV: float, window_keV: tuple[float, float] | None = None,
                calibrate: bool = True, background: str = "poly") -> XrfFit:
    """K-group areas of ``elements`` in each spectrum ``(N, channels)`` (or one ``(channels,)``) by PyMca.

    With ``calibrate`` the detector noise and Fano factor are first fitted (non-linear ``McaTheory``) on
    the sum spectrum, then every spectrum is fitted linearly (``FastXRFLinearFit``) with them fixed and a
    background fitted with the peaks (``"poly"``: a cubic over the window, unbiased on simulated spectra;
    ``"snip"``: SNIP stripping, ~1 % high on noisy ones). The linear fit keeps the peak widths fixed, so
    wrong widths would bias every area. The window defaults to 1 keV below the lowest line to just below
    the Compton peak.
    """
    data = np.asarray(spectra, dtype=np.float64)
    single = data.ndim == 1
    if single:
        data = data[None]
    if data.ndim != 2 or data.shape[1] != calib.channels:
        raise NxsciError(f"spectra must be (N, {calib.channels}) channels, got {np.asarray(spectra).shape}")
    if not np.all(np.isfinite(data)):
        raise NxsciError("spectra contain NaN or infinite values")
    elements = [str(e) for e in elements]
    if not elements:
        raise NxsciError("no elements to fit")
    lines = [line for e in elements for line in k_lines(e, excitation_keV)]
    if window_keV is None:
        top = compton_energy_keV(excitation_keV) - 4.0 * float(
            detector_fwhm_keV(excitation_keV, calib.noise_keV, calib.fano)) / _FWHM_PER_SIGMA
        window_keV = (min(line.energy_keV for line in lines) - 1.0,
                      max(top, max(line.energy_keV for line in lines) + 0.15))
    cfg = _pymca_config(calib, elements, excitation_keV, window_keV, background)
    areas, sigma = pymca_linear_fit(cfg, data, [f"{e} K" for e in elements], calibrate=calibrate)
    return XrfFit(elements=elements, areas=areas, sigma=sigma, noise_keV=float(cfg["detector"]["noise"]),
                  fano=float(cfg["detector"]["fano"]), zero_keV=calib.zero_keV, gain_keV=calib.gain_keV)


def pymca_linear_fit(cfg: dict[str, Any], spectra: np.ndarray, groups: Sequence[str], *,
                     calibrate: bool) -> tuple[np.ndarray, np.ndarray]:
    """Areas and 1-sigma (unit-variance) uncertainties ``(N, len(groups))`` of PyMca fit ``groups``
    (e.g. ``"Ni K"``) in every spectrum, by ``FastXRFLinearFit`` with ``cfg``.

    With ``calibrate`` the detector noise and Fano factor in ``cfg`` are first replaced by one non-linear
    fit of the sum spectrum (the linear fit keeps peak widths fixed; wrong widths bias every area).
    A group the configuration does not fit raises ``ValueError`` naming the groups it does fit.
    """
    from PyMca5.PyMcaPhysics.xrf.FastXRFLinearFit import FastXRFLinearFit

    if calibrate:
        noise, fano = _calibrate_width(cfg, np.arange(spectra.shape[1], dtype=np.float64), spectra.sum(axis=0))
        cfg["detector"].update(noise=noise, fano=fano)
    fit = FastXRFLinearFit()
    fit.setFitConfiguration(cfg)
    out = fit.fitMultipleSpectra(y=spectra, weight=0, refit=1, concentrations=0)
    labels = list(out.labels("parameters"))
    params = np.asarray(out["parameters"], dtype=np.float64).reshape(len(labels), -1)
    uncert = np.asarray(out["uncertainties"], dtype=np.float64).reshape(len(labels), -1)
    missing = [g for g in groups if g not in labels]
    if missing:
        raise ValueError(f"fit groups {labels}, expected {list(groups)}")
    index = [labels.index(g) for g in groups]
    return params[index].T.copy(), uncert[index].T.copy()
