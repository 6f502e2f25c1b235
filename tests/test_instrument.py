"""The instrument model behind every simulated device (nxsci.devices.sim.InstrumentModel)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from nxsci.devices.sim import InstrumentModel, SampleParams, SimulationParams, VortexParams
from nxsci.recon import NxsciError, PatternPhysics, estimate_shift, fit_spectra, k_lines


@pytest.fixture(scope="module")
def model() -> InstrumentModel:
    return InstrumentModel(SimulationParams(image_size=48))


def _fresh(**kw: object) -> InstrumentModel:
    return InstrumentModel(SimulationParams(image_size=48, **kw))  # type: ignore[arg-type]


def test_pattern_returns_exactly_and_moves_continuously(model: InstrumentModel) -> None:
    m = _fresh()
    m.set_position("diffuser1.x", 1.234)
    m.set_position("diffuser2.y", -0.5)
    first = m.illumination().copy()
    m.set_position("diffuser1.x", 3.0)
    other = m.illumination().copy()
    m.set_position("diffuser1.x", 1.234)
    assert np.array_equal(m.illumination(), first)  # back to the position: the same pattern, bit for bit
    assert np.corrcoef(first.ravel(), other.ravel())[0, 1] < 0.9
    m.set_position("diffuser1.x", 1.234 + 1e-5)  # 0.01 px of travel: nearly the same pattern
    assert np.abs(m.illumination() - first).max() < 0.01 * first.max()


def test_condenser_pinhole_and_zone_plate_act_on_the_beam() -> None:
    m = _fresh()
    aligned = m.illumination().mean()
    m.set_position("condenser.x", 0.03)  # 30 um off the pinhole
    assert m.illumination().mean() < 0.5 * aligned
    m.set_position("pinhole.x", 0.03)  # pinhole follows the focus: flux back, envelope moved
    assert m.illumination().mean() == pytest.approx(aligned, rel=0.3)
    m.set_position("condenser.x", 0.0)
    m.set_position("pinhole.x", 0.0)
    sharp = m.camera_expected(0.1)
    m.set_position("zone_plate.z", 0.01)  # defocus blurs the camera image, not the light on the sample
    assert m.camera_expected(0.1).std() < 0.8 * sharp.std()
    assert np.allclose(m.illumination().mean(), aligned)


def test_sample_stage_lands_with_a_repeatability_error() -> None:
    m = _fresh()
    shifts = []
    for _ in range(6):
        for x in (1.0, 0.0):  # out and back in
            m.set_position("sample_stage.x", x)
            m.arrive("sample_stage.x")
        shifts.append(m.sample_shift_px())
    dx = np.array([s[1] for s in shifts])
    assert 0.05 < np.std(dx) < 3.0  # sub-pixel to a few pixels, different every time
    assert len(set(np.round(dx, 6))) == len(dx)
    assert m.ground_truth().shift_px == shifts[-1]
    # the stage error is what registration measures: sample-in vs sample-out frames
    m.set_position("sample_stage.x", 1.0)
    out = m.camera_expected(1.0)
    m.set_position("sample_stage.x", 0.0)
    inside = m.camera_expected(1.0)
    ref = m.sample_density((0.0, 0.0))
    measured = estimate_shift(ref, -np.log(inside / out))
    assert np.allclose(measured, m.sample_shift_px(), atol=0.25)


def test_camera_frames_are_uint16_with_noise_dark_and_absorption() -> None:
    m = _fresh()
    m.set_position("sample_stage.x", 1.0)
    m.arrive("sample_stage.x")
    out = m.camera_frame(0.5)
    assert out.dtype == np.uint16 and out.shape == (48, 48)
    m.set_position("sample_stage.x", 0.0)
    m.arrive("sample_stage.x")
    inside = m.camera_frame(0.5)
    dense = m.sample_density() > 0.3
    assert (inside[dense] / out[dense]).mean() < 0.85  # the sample absorbs
    assert (inside[~dense] / out[~dense]).mean() > 0.9
    again = m.camera_frame(0.5)
    assert not np.array_equal(inside, again)  # photon noise
    expected = m.camera_expected(0.5) + m.params.camera.offset
    assert abs(float(inside.mean()) - float(expected.mean())) < 0.02 * float(expected.mean())
    m.set_shutter(False)
    dark = m.camera_frame(2.0)
    c = m.params.camera
    assert dark.mean() == pytest.approx(c.offset + c.dark_counts_per_s * 2.0, rel=0.05)
    assert m.camera_frame(0.0).mean() == pytest.approx(c.offset, abs=1.0)


def test_vortex_counts_are_the_forward_model_of_the_maps() -> None:
    """Element rates = xrf_cps x sensitivity x A x / M with A = recon's PatternPhysics of the light."""
    m = _fresh()
    schedule = np.random.default_rng(0).uniform(-5, 5, (12, 4))
    lights, rates = [], []
    for row in schedule:
        for axis, v in zip(("diffuser1.x", "diffuser1.y", "diffuser2.x", "diffuser2.y"), row):
            m.set_position(axis, v)
        lights.append(m.illumination())
        rates.append([m.element_rates()[e] for e in m.elements])
    a = PatternPhysics(np.array(lights), dtype=torch.float64).A(m.sample.maps.astype(np.float64)).T  # (N, E)
    scale = np.array([m.params.vortex.xrf_cps * m.relative_sensitivity[e] for e in m.elements]) / 48**2
    assert np.allclose(np.array(rates), a * scale, rtol=1e-9)
    m.set_position("sample_stage.x", 1.0)  # sample out: no fluorescence
    assert all(v == 0 for v in m.element_rates().values())


def test_spectrum_peaks_dead_time_and_presets(model: InstrumentModel) -> None:
    reading = model.vortex_acquire(real_time=20.0)
    cal = model.calibration
    energies = cal.energies()
    assert reading.spectrum.dtype == np.int32 and reading.spectrum.shape == (cal.channels,)
    for element in model.elements:
        ka1 = next(line.energy_keV for line in k_lines(element, 9.0) if line.name == "KL3")
        window = np.abs(energies - ka1) < 0.12
        peak = energies[window][np.argmax(reading.spectrum[window])]
        assert abs(peak - ka1) <= 3 * cal.gain_keV
    scatter = np.abs(energies - 8.95) < 0.25  # elastic at 9 keV, Compton (90 deg) at 8.84 keV
    assert 8.8 < energies[scatter][np.argmax(reading.spectrum[scatter])] < 9.03
    only_elastic = _fresh(vortex=VortexParams(compton_cps=0.0)).vortex_acquire(real_time=20.0).spectrum
    assert abs(energies[scatter][np.argmax(only_elastic[scatter])] - 9.0) <= 2 * cal.gain_keV
    assert reading.real_time == 20.0 and 0 < reading.live_time < reading.real_time
    tau = model.params.vortex.dead_time_us * 1e-6
    assert reading.live_time / reading.real_time == pytest.approx(np.exp(-reading.input_count_rate * tau))
    assert reading.dead_time_percent == pytest.approx(100 * (1 - reading.live_time / reading.real_time))
    live = model.vortex_acquire(live_time=5.0)
    assert live.live_time == 5.0 and live.real_time > 5.0
    assert reading.spectrum.sum() == pytest.approx(reading.output_count_rate * reading.real_time, rel=0.02)


def test_pymca_fit_recovers_the_simulated_element_intensities_within_two_percent() -> None:
    m = _fresh()
    spectra, truth = [], []
    for x in np.linspace(0.0, 4.0, 6):
        m.set_position("diffuser1.x", x)
        m.set_position("diffuser2.y", -x)
        reading = m.vortex_acquire(real_time=60.0)
        spectra.append(reading.spectrum)
        truth.append([reading.element_counts[e] for e in m.elements])
    fit = fit_spectra(np.array(spectra), m.elements, m.calibration, excitation_keV=m.params.energy_keV)
    rel = fit.areas / np.array(truth) - 1
    assert np.max(np.abs(rel)) < 0.02, rel


def test_samples_from_image_and_hdf5_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from skimage import io

    img = (np.outer(np.hanning(40), np.hanning(40)) * 255).astype(np.uint8)
    io.imsave(tmp_path / "s.png", img, check_contrast=False)
    m = InstrumentModel(SimulationParams(image_size=32, sample=SampleParams(phantom=str(tmp_path / "s.png"),
                                                                            element="Co")))
    assert m.elements == ["Co"] and m.sample.maps.shape == (1, 32, 32)
    maps = np.zeros((2, 32, 32))
    maps[0, 8:16, 8:16] = 1.0
    maps[1, 20:28, 4:12] = 0.5
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f.create_dataset("maps", data=maps).attrs["elements"] = ["Mn", "Ni"]
    m = InstrumentModel(SimulationParams(image_size=32, sample=SampleParams(phantom=str(tmp_path / "s.h5"))))
    assert m.elements == ["Mn", "Ni"] and np.allclose(m.sample.maps, maps)
    with pytest.raises(NxsciError, match="neither"):
        InstrumentModel(SimulationParams(image_size=32, sample=SampleParams(phantom=str(tmp_path / "nope.h5"))))
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f.create_dataset("maps", data=maps)
    with pytest.raises(NxsciError, match="elements"):
        InstrumentModel(SimulationParams(image_size=32, sample=SampleParams(phantom=str(tmp_path / "bad.h5"))))


def test_ground_truth_logs_every_acquisition() -> None:
    m = _fresh()
    m.camera_frame(0.1)
    m.vortex_acquire(real_time=0.1)
    truth = m.ground_truth()
    assert [a["kind"] for a in truth.acquisitions] == ["camera", "vortex"]
    assert truth.maps.shape == (3, 48, 48) and truth.elements == ["Mn", "Co", "Ni"]
    assert set(truth.acquisitions[1]["element_counts"]) == {"Mn", "Co", "Ni"}  # type: ignore[arg-type]
