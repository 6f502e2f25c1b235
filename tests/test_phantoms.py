"""Phantoms: the battery sample's chemistry and geometry, natural images offline, the reference image."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from nxsci.recon.sim.phantoms import (
    LABELS,
    NATURAL_IMAGES,
    SPECIES,
    Phantom,
    battery_phantom,
    default_reference,
    natural_image,
    natural_phantom,
)


@pytest.fixture(scope="module")
def battery() -> Phantom:
    return battery_phantom(64, seed=0)


def test_battery_maps_are_valid_and_every_element_present(battery: Phantom) -> None:
    assert battery.elements == ["Mn", "Co", "Ni"]
    assert battery.maps.shape == (3, 64, 64) and battery.maps.dtype == np.float32
    assert battery.txm.shape == (64, 64) and battery.txm.dtype == np.float32
    assert np.all(battery.maps >= 0)
    for e in range(3):
        assert battery.maps[e].max() > 0.1, battery.elements[e]
    # all three species present as pure particles
    for species in ("LCO", "NMC", "LNO"):
        assert np.count_nonzero(battery.labels == LABELS.index(species)) >= 9, species


def test_txm_is_absorption_contrast(battery: Phantom) -> None:
    """Positive optical density, larger on particles; transmission = exp(-od) in (0, 1]."""
    particles = battery.maps.sum(axis=0) > 0.3
    empty = (battery.maps.sum(axis=0) == 0) & ~battery.binder_mask
    assert np.all(battery.txm > 0)
    assert battery.txm[particles].mean() > 5 * battery.txm[empty].mean()
    np.testing.assert_allclose(battery.transmission, np.exp(-battery.txm), rtol=1e-5)
    assert np.all((battery.transmission > 0) & (battery.transmission <= 1))


def test_binder_only_in_txm(battery: Phantom) -> None:
    mask = battery.binder_mask
    assert mask is not None and mask.sum() >= 10
    assert np.all(battery.maps[:, mask] == 0), "binder must carry no fluorescence"
    empty = (battery.maps.sum(axis=0) == 0) & ~mask
    assert battery.txm[mask].mean() > battery.txm[empty].mean() + 0.05, "binder must be visible in the TXM image"
    assert battery_phantom(64, seed=0, binder=False).binder_mask is None


def test_nmc_stoichiometry(battery: Phantom) -> None:
    nmc = battery.labels == LABELS.index("NMC")
    mn, co, ni = (battery.map(e)[nmc] for e in ("Mn", "Co", "Ni"))
    total = mn + co + ni
    inside = total > 0.2
    for got, el in ((ni, "Ni"), (mn, "Mn"), (co, "Co")):
        np.testing.assert_allclose(got[inside] / total[inside], SPECIES["NMC"][el], atol=0.01)
    # LCO is Co only, LNO is Ni only
    lco, lno = battery.labels == LABELS.index("LCO"), battery.labels == LABELS.index("LNO")
    assert np.all(battery.map("Mn")[lco] == 0) and np.all(battery.map("Ni")[lco] == 0)
    assert np.all(battery.map("Mn")[lno] == 0) and np.all(battery.map("Co")[lno] == 0)


def test_battery_has_texture_and_soft_edges(battery: Phantom) -> None:
    co = battery.map("Co")
    values = np.unique(np.round(co[co > 0], 4))
    assert values.size > 100, "particles should not be flat"
    edge = (co > 0) & (co < 0.2 * co.max())
    assert edge.sum() > 20, "anti-aliased edges expected"


def test_battery_deterministic_and_seed_dependent() -> None:
    a, b = battery_phantom(48, seed=3), battery_phantom(48, seed=3)
    np.testing.assert_array_equal(a.maps, b.maps)
    np.testing.assert_array_equal(a.txm, b.txm)
    c = battery_phantom(48, seed=4)
    assert not np.allclose(a.maps, c.maps)


@pytest.mark.parametrize("size", [32, 80, 512])
def test_battery_sizes(size: int) -> None:
    ph = battery_phantom(size, seed=1)
    assert ph.maps.shape == (3, size, size)
    assert all(ph.maps[e].max() > 0 for e in range(3))
    assert ph.binder_mask is not None and ph.binder_mask.any()
    assert np.all(ph.maps[:, ph.binder_mask] == 0)


def test_battery_num_particles() -> None:
    ph = battery_phantom(64, seed=2, num_particles=5)
    assert {LABELS.index(s) for s in ("LCO", "NMC", "LNO")} <= set(np.unique(ph.labels))
    with pytest.raises(ValueError):
        battery_phantom(64, num_particles=2)
    with pytest.raises(ValueError):
        battery_phantom(8)


def test_natural_images_load_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    for name in NATURAL_IMAGES:
        img = natural_image(name, 40)
        assert img.shape == (40, 40), name
        assert img.min() == 0.0 and img.max() == 1.0, name
        assert img.std() > 0.05, name
    assert natural_image("coins", (30, 50)).shape == (30, 50)
    with pytest.raises(ValueError, match="unknown natural image"):
        natural_image("nonexistent", 32)


def test_natural_phantom_txm_shares_edges() -> None:
    ph = natural_phantom("camera", 64)
    assert ph.elements == ["X"] and ph.maps.shape == (1, 64, 64)
    assert ph.binder_mask is None
    gx, gt = np.gradient(ph.maps[0]), np.gradient(ph.txm)
    mag_x, mag_t = np.hypot(*gx), np.hypot(*gt)
    assert np.corrcoef(mag_x.ravel(), mag_t.ravel())[0, 1] > 0.8
    assert not np.allclose(ph.txm / ph.txm.max(), ph.maps[0] / ph.maps[0].max(), atol=0.02), "not a plain copy"


@pytest.mark.parametrize("shape", [(64, 64), (40, 72), (17, 9)])
def test_default_reference(shape: tuple[int, int]) -> None:
    ref = default_reference(shape)
    assert ref.shape == shape
    assert ref.min() >= 0 and ref.max() == pytest.approx(1.0)
    assert ref.std() > 0.05
    np.testing.assert_array_equal(ref, default_reference(shape))
