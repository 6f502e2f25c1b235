"""XRF line data, spectrum synthesis and the PyMca fit (nxsci.recon.physics.xrf)."""

from __future__ import annotations

import numpy as np
import pytest

from nxsci.recon import (NxsciError, SpectrumCalibration, compton_energy_keV, detector_fwhm_keV, fit_spectra,
                         k_lines, synthesize_spectrum)

# Ka1 energies (keV) from standard tables (Bearden/Deslattes); PyMca's must agree within 2 eV
KA1 = {"Mn": 5.8987, "Co": 6.9303, "Ni": 7.4782}


@pytest.mark.parametrize("element", sorted(KA1))
def test_k_lines_come_from_pymca_and_are_normalised(element: str) -> None:
    lines = {line.name: line for line in k_lines(element, 9.0)}
    assert abs(lines["KL3"].energy_keV - KA1[element]) < 0.002
    assert sum(line.rate for line in lines.values()) == pytest.approx(1.0)
    assert lines["KL3"].rate > lines["KL2"].rate > lines["KM3"].rate  # Ka1 > Ka2 > Kb1


def test_lines_below_the_edge_are_an_error() -> None:
    with pytest.raises(NxsciError, match="not excited"):
        k_lines("Ni", 8.0)  # Ni K edge is 8.333 keV
    with pytest.raises(NxsciError, match="unknown element"):
        k_lines("Xx", 9.0)


def test_synthesized_peaks_sit_at_the_line_energies_with_the_detector_width() -> None:
    cal = SpectrumCalibration()
    spectrum = synthesize_spectrum(cal, {"Co": 1e5}, excitation_keV=9.0)
    assert spectrum.sum() == pytest.approx(1e5, rel=1e-6)
    energies = cal.energies()
    peak = energies[np.argmax(spectrum)]
    assert abs(peak - KA1["Co"]) <= cal.gain_keV  # Ka1+Ka2 blend peaks within a channel of Ka1
    # FWHM of the blended Ka peak: at least the single-line FWHM of the detector model
    half = spectrum > spectrum.max() / 2
    fwhm = half.sum() * cal.gain_keV
    assert fwhm == pytest.approx(float(detector_fwhm_keV(6.93, cal.noise_keV, cal.fano)), abs=0.03)
    elastic = synthesize_spectrum(cal, {}, excitation_keV=9.0, elastic_counts=1e4)
    compton = synthesize_spectrum(cal, {}, excitation_keV=9.0, compton_counts=1e4)
    assert abs(energies[np.argmax(elastic)] - 9.0) <= cal.gain_keV
    assert abs(energies[np.argmax(compton)] - compton_energy_keV(9.0)) <= cal.gain_keV
    assert compton.max() < elastic.max()  # Doppler-broadened


def test_pymca_fit_recovers_known_areas_within_two_percent() -> None:
    cal = SpectrumCalibration()
    rng = np.random.default_rng(1)
    truth = np.column_stack([rng.uniform(5e4, 1e5, 8), rng.uniform(1e5, 2e5, 8), rng.uniform(1e5, 3e5, 8)])
    spectra = np.array([rng.poisson(synthesize_spectrum(cal, dict(zip(("Mn", "Co", "Ni"), row)), excitation_keV=9.0,
                                                        elastic_counts=3e4, compton_counts=5e4,
                                                        background_counts=5e4)) for row in truth])
    fit = fit_spectra(spectra, ["Mn", "Co", "Ni"], cal, excitation_keV=9.0)
    assert fit.areas.shape == (8, 3)
    assert np.max(np.abs(fit.areas / truth - 1)) < 0.02
    assert fit.noise_keV == pytest.approx(cal.noise_keV, rel=0.1)


def test_fit_rejects_bad_input() -> None:
    cal = SpectrumCalibration(channels=1024)
    with pytest.raises(NxsciError, match="channels"):
        fit_spectra(np.zeros((2, 100)), ["Ni"], cal, excitation_keV=9.0)
    with pytest.raises(NxsciError, match="NaN"):
        fit_spectra(np.full(1024, np.nan), ["Ni"], cal, excitation_keV=9.0)
    with pytest.raises(NxsciError, match="background"):
        fit_spectra(np.ones(1024), ["Ni"], cal, excitation_keV=9.0, background="spline")
