"""SIREN reconstruction (paper configuration and our fast one) and composition TV, the TXM-aware default."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from nxsci.recon import (DatasetError, PatternPhysics, SolverError, default_method, get_solver, method_schemas,
                         reconstruct, simulate_case)
from nxsci.recon.solvers.siren_net import SirenNet

SMALL = {"width": 48, "depth": 2, "warm_start": "none", "lr": 1e-3, "steps": 250, "patience": 400}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _speckle_case(size: int = 32, sampling: float = 0.5, seed: int = 0):
    return simulate_case(phantom="battery", size=size, sampling=sampling, seed=seed, pattern_model="speckle")


@pytest.mark.parametrize("device", DEVICES)
def test_siren_fits_a_small_phantom_above_a_psnr_bound(device: str) -> None:
    ds = _speckle_case()
    res = reconstruct(ds, method="siren", elements=["Co"], params={**SMALL, "lam": 0.0}, device=device)
    pinv = reconstruct(ds, method="pinv", elements=["Co"])
    assert res.metrics["Co"]["psnr"] > 24.0
    assert res.metrics["Co"]["psnr"] > pinv.metrics["Co"]["psnr"] + 2.0
    info = res.solver_info["Co"]
    assert 0 <= info["best_step"] <= info["steps_run"] <= SMALL["steps"]
    assert info["output"] == "composition"


def test_siren_is_reproducible_with_a_seed_and_the_seed_matters() -> None:
    ds = _speckle_case(sampling=0.3)
    params = {**SMALL, "steps": 40, "lam": 0.0}
    a = reconstruct(ds, method="siren", elements=["Ni"], params=params).maps
    b = reconstruct(ds, method="siren", elements=["Ni"], params=params).maps
    c = reconstruct(ds, method="siren", elements=["Ni"], params={**params, "seed": 1}).maps
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_lambda_pulls_the_map_gradient_towards_the_txm_gradient() -> None:
    """The paper's prior has an effect: a large lambda makes grad f match grad I_TXM far better."""
    from nxsci.recon.solvers.txm_prior import txm_gradient, txm_thickness

    ds = _speckle_case(sampling=0.3)
    base = {**SMALL, "steps": 150, "output": "map", "holdout": 0.0, "keep_last": 1}
    gy, gx = txm_gradient(ds.txm)

    def mismatch(lam: float) -> float:
        res = reconstruct(ds, method="siren", elements=["Co"], params={**base, "lam": lam})
        x = res.maps[0] / res.maps[0].mean()  # the prior compares mean-1 maps
        dy = np.zeros_like(x)
        dx = np.zeros_like(x)
        dy[:-1] = x[1:] - x[:-1]
        dx[:, :-1] = x[:, 1:] - x[:, :-1]
        return float(np.abs(dy - gy).mean() + np.abs(dx - gx).mean())

    assert txm_thickness(ds.txm).shape == ds.txm.shape
    assert mismatch(10.0) < 0.5 * mismatch(0.0)


def test_automatic_lambda_and_stopping_use_no_ground_truth() -> None:
    ds = _speckle_case(sampling=0.3)
    params = {**SMALL, "steps": 80, "lam_candidates": [0.0, 1e-2]}
    with_truth = reconstruct(ds, method="siren", elements=["Mn", "Ni"], params=params)
    blind = dataclasses.replace(ds, truth_maps=None)
    without = reconstruct(blind, method="siren", elements=["Mn", "Ni"], params=params)
    np.testing.assert_array_equal(with_truth.maps, without.maps)
    info = without.solver_info["Ni"]
    assert info["lam"] in (0.0, 1e-2) and set(info["lam_scores"]) == {"0.0", "0.01"}
    assert info["held_out_error"] is not None and info["held_out_error"] == min(info["lam_scores"].values())
    assert "psnr" not in without.metrics["Ni"]


def test_joint_and_per_element_networks_both_reconstruct_every_element() -> None:
    ds = _speckle_case(sampling=0.3)
    params = {**SMALL, "steps": 60, "lam": 0.0}
    joint = reconstruct(ds, method="siren", params=params)
    single = reconstruct(ds, method="siren", params={**params, "joint": False})
    assert joint.maps.shape == single.maps.shape == (3, 32, 32)
    assert joint.solver_info["Mn"]["joint_elements"] == 3
    assert single.solver_info["Mn"]["joint_elements"] == 1
    for el in ds.elements:  # both learn something real in 60 steps
        assert joint.metrics[el]["psnr"] > 15 and single.metrics[el]["psnr"] > 15


def test_paper_configuration_is_the_published_one() -> None:
    p = get_solver("siren-paper").params
    assert (p.width, p.depth, p.omega_0, p.omega_hidden) == (1024, 5, 30.0, 30.0)
    assert (p.lam, p.lr, p.steps, p.keep_last, p.holdout) == (1e-5, 5e-6, 20_000, 50, 0.0)
    assert p.output == "map" and p.warm_start == "none" and not p.precondition
    net = SirenNet(1, width=p.width, depth=p.depth, omega_0=p.omega_0, omega_hidden=p.omega_hidden)
    sines = [m for m in net.modules() if m.__class__.__name__ == "SineLayer"]
    assert len(sines) == 5 and isinstance(net.head, torch.nn.Linear)
    schema = method_schemas()["siren-paper"]
    assert schema["uses_txm"] and not schema["needs_txm"]


def test_paper_configuration_runs_a_few_steps_and_keeps_the_best_of_the_last() -> None:
    ds = _speckle_case(size=24, sampling=0.5)
    res = reconstruct(ds, method="siren-paper", elements=["Ni"],
                      params={"width": 64, "steps": 30, "keep_last": 10, "lr": 1e-4})
    info = res.solver_info["Ni"]
    assert 20 < info["best_step"] <= 30 and info["held_out_error"] is None


def test_siren_errors_name_the_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    ds = _speckle_case(sampling=0.3)
    phys = PatternPhysics(ds.patterns)
    solver = get_solver("siren", {**SMALL, "steps": 5})
    with pytest.raises(DatasetError, match="TXM image has shape"):
        solver(ds.signal("Ni"), phys, guide=np.ones((5, 5)))
    with pytest.raises(SolverError, match="too few patterns"):
        solver(ds.signal("Ni")[:4], PatternPhysics(ds.patterns[:4]), guide=ds.txm)
    with pytest.raises(SolverError, match="invalid parameters for method 'siren'.*lr"):
        get_solver("siren", {"lr": -1})
    monkeypatch.setattr(SirenNet, "forward", lambda self, z: torch.full((z.shape[0], 1), float("nan")))
    with pytest.raises(SolverError, match="diverged"):
        solver(ds.signal("Ni"), phys, guide=ds.txm)


def test_siren_reports_progress_with_the_data_residual() -> None:
    ds = _speckle_case(sampling=0.3)
    seen: list[tuple[float, str]] = []
    get_solver("siren", {**SMALL, "steps": 45})(ds.signal("Ni"), PatternPhysics(ds.patterns), guide=ds.txm,
                                               progress=lambda f, t: seen.append((f, t)))
    assert any("residual" in text for _, text in seen)
    fracs = [f for f, _ in seen]
    assert fracs == sorted(fracs) and fracs[-1] == pytest.approx(1.0)


@pytest.mark.slow
def test_composition_tv_beats_plain_tv_and_does_not_paint_binder() -> None:
    """The default with a TXM image: sharper than TV on every element, and binder stays empty."""
    ds = simulate_case(phantom="battery", size=48, sampling=0.1, seed=3)
    assert default_method(ds) == "auto"
    comp = reconstruct(ds, method="composition-tv")
    tv = reconstruct(ds, method="tv")
    from nxsci.recon import battery_phantom

    ph = battery_phantom(48, 3)
    particles = ph.maps.sum(axis=0) > 0.05 * ph.maps.sum(axis=0).max()
    for k, el in enumerate(ds.elements):
        assert comp.metrics[el]["psnr"] > tv.metrics[el]["psnr"] + 1.0, el
        level = comp.maps[k][particles].mean()
        assert comp.maps[k][ph.binder_mask].mean() < 0.05 * level, el
