"""Baseline solvers: pseudo-inverse, TV and TXM-guided TV, and weight choice without ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from nxsci.recon import (PatternPhysics, SolverError, available_methods, get_solver, method_schemas, psnr,
                         simulate_case)


def _case(size: int = 32, sampling: float = 0.25, seed: int = 0, photons: float = 1e5):
    return simulate_case(phantom="battery", size=size, sampling=sampling, seed=seed, photons=photons)


def test_registry_lists_methods_with_json_schemas() -> None:
    assert {"pinv", "tv", "guided-tv"} <= set(available_methods())
    schema = method_schemas()["tv"]["parameters"]
    assert "weight" in schema["properties"]
    assert method_schemas()["guided-tv"]["uses_txm"] is True


def test_unknown_method_and_bad_parameters_are_named() -> None:
    with pytest.raises(SolverError, match="unknown method 'magic'"):
        get_solver("magic")
    with pytest.raises(SolverError, match="invalid parameters for method 'tv'.*iterations"):
        get_solver("tv", {"iterations": -3})
    with pytest.raises(SolverError, match="extra_thing"):
        get_solver("tv", {"extra_thing": 1})


def test_pinv_recovers_noiseless_overdetermined_map_exactly() -> None:
    rng = np.random.default_rng(0)
    pats = rng.random((300, 12, 12))
    truth = rng.random((12, 12))
    phys = PatternPhysics(pats)
    y = pats.reshape(300, -1) @ truth.ravel()
    res = get_solver("pinv")(y, phys)
    assert psnr(res.x, truth) > 60
    assert res.info["rank"] == 144


@pytest.mark.parametrize("sampling", [0.25, 0.5])
def test_pinv_cv_truncation_beats_the_full_pseudo_inverse_on_noisy_data(sampling: float) -> None:
    """GCV (rank='gcv') is kept as an option but fails on exactly these cases (near-full rank)."""
    ds = _case(sampling=sampling, photons=1e4)
    phys = PatternPhysics(ds.patterns)
    auto = get_solver("pinv")(ds.signal("Ni"), phys)
    full = get_solver("pinv", {"rank": "full"})(ds.signal("Ni"), phys)
    assert auto.info["rank"] < full.info["rank"]
    assert psnr(auto.x, ds.truth("Ni")) > psnr(full.x, ds.truth("Ni")) + 3


def test_tv_weight_has_an_effect_and_tv_beats_pinv() -> None:
    ds = _case()
    phys = PatternPhysics(ds.patterns)
    y, truth = ds.signal("Ni"), ds.truth("Ni")
    good = get_solver("tv", {"weight": 1e-4})(y, phys).x
    heavy = get_solver("tv", {"weight": 1e-1})(y, phys).x
    pinv = get_solver("pinv")(y, phys).x
    assert psnr(good, truth) > psnr(heavy, truth) + 3
    assert psnr(good, truth) > psnr(pinv, truth) + 3
    assert good.min() >= 0


def test_tv_weight_is_invariant_to_the_count_scale() -> None:
    ds = _case()
    phys = PatternPhysics(ds.patterns)
    y = ds.signal("Co")
    a = get_solver("tv", {"weight": 1e-4})(y, phys).x
    b = get_solver("tv", {"weight": 1e-4})(1000.0 * y, phys).x
    np.testing.assert_allclose(b / 1000.0, a, rtol=1e-3, atol=1e-4 * float(a.max()))


def test_guided_tv_requires_a_txm_image() -> None:
    ds = _case(size=24)
    with pytest.raises(SolverError, match="needs a TXM image"):
        get_solver("guided-tv", {"weight": 1e-6})(ds.signal("Ni"), PatternPhysics(ds.patterns))


def test_admm_reaches_the_converged_optimum_pdhg_approaches() -> None:
    """Both backends minimise the same objective: long PDHG runs approach the converged ADMM solution."""
    ds = _case(size=24, sampling=0.3)
    phys = PatternPhysics(ds.patterns)
    y = ds.signal("Ni")
    admm = get_solver("tv", {"weight": 1e-4, "tolerance": 1e-6, "iterations": 20000})(y, phys).x
    short = get_solver("tv", {"weight": 1e-4, "backend": "pdhg", "iterations": 200})(y, phys).x
    long = get_solver("tv", {"weight": 1e-4, "backend": "pdhg", "iterations": 8000})(y, phys).x
    err = lambda x: float(np.linalg.norm(x - admm) / np.linalg.norm(admm))  # noqa: E731
    assert err(long) < 0.03
    assert err(long) < err(short)


def test_cross_validation_is_reported_and_needs_no_truth() -> None:
    ds = _case(size=32, sampling=0.2, seed=4)
    ds.truth_maps = None  # nothing to cheat with
    res = get_solver("tv")(ds.signal("Co"), PatternPhysics(ds.patterns))
    cv = res.info["cross_validation"]
    assert cv["rule"] == "se" and cv["folds"] == 5
    assert cv["weight"] >= cv["cv_min_weight"]  # the SE rule never regularises less than the minimum
    assert len(cv["grid"]) == len(cv["cv_loss"]) >= 6
    assert res.info["weight"] == pytest.approx(cv["weight"])


def test_batched_admm_solves_each_element_as_it_would_alone() -> None:
    """All elements share one factorisation and one pass over it per iteration; the result must not change."""
    from nxsci.recon.solvers.tv_admm import TVSystem, admm_tv, admm_tv_batch

    ds = _case(size=24, sampling=0.3)
    a = PatternPhysics(ds.patterns).numpy_matrix().astype(np.float64)
    ys = np.stack([ds.signal(e) for e in ds.elements])
    ys = ys / ys.mean(axis=1, keepdims=True)
    system = TVSystem(a, ds.image_shape)
    norm2 = float(np.linalg.norm(a, 2) ** 2)
    lams = [1e-4 * norm2, 1e-3 * norm2, 3e-5 * norm2]  # each its own weight, so each stops on its own
    together = admm_tv_batch(system, ys, lams, max_iter=3000, tol=1e-5)
    for y, lam, joint in zip(ys, lams, together):
        alone = admm_tv(system, y, lam, max_iter=3000, tol=1e-5)
        assert alone.iterations == joint.iterations
        np.testing.assert_allclose(joint.z2, alone.z2, rtol=0, atol=1e-9 * float(np.abs(alone.z2).max()))


def test_pooled_fits_on_different_row_sets_end_as_they_would_alone() -> None:
    """CV folds, full-data fits and fits submitted while others run share each pass over the patterns
    (continuous batching); every fit must still end exactly where it would alone."""
    from nxsci.recon.solvers.tv_admm import ADMMPool, TVBasis, TVSystem, admm_tv

    ds = _case(size=24, sampling=0.3)
    a = PatternPhysics(ds.patterns).numpy_matrix().astype(np.float64)
    y = ds.signal("Co") / ds.signal("Co").mean()
    norm2 = float(np.linalg.norm(a, 2) ** 2)
    train = np.random.default_rng(1).random(y.size) < 0.7
    basis = TVBasis(a, ds.image_shape)
    fold, full = TVSystem(basis, rows=train), TVSystem(basis)
    pool, got = ADMMPool(), {}

    def then_full(state: object) -> None:  # joins the pool while the fold fit at 3e-5 is still running
        got["fold"] = state
        pool.submit(full, y, 1e-4 * norm2, max_iter=3000, tol=1e-5, on_done=lambda st: got.setdefault("late", st))

    pool.submit(fold, y[train], 1e-3 * norm2, max_iter=3000, tol=1e-5, on_done=then_full)
    pool.submit(fold, y[train], 3e-5 * norm2, max_iter=3000, tol=1e-5, on_done=lambda st: got.setdefault("weak", st))
    pool.run()
    alone = {"fold": admm_tv(TVSystem(a, ds.image_shape, train), y[train], 1e-3 * norm2, max_iter=3000, tol=1e-5),
             "weak": admm_tv(TVSystem(a, ds.image_shape, train), y[train], 3e-5 * norm2, max_iter=3000, tol=1e-5),
             "late": admm_tv(TVSystem(a, ds.image_shape), y, 1e-4 * norm2, max_iter=3000, tol=1e-5)}
    assert got["fold"].iterations < got["weak"].iterations  # the late fit really overlapped the weak one
    for name, ref in alone.items():
        assert got[name].iterations == ref.iterations
        np.testing.assert_allclose(got[name].z2, ref.z2, rtol=0, atol=1e-9 * float(np.abs(ref.z2).max()))


def test_discrepancy_rule_fits_to_the_noise_level_without_truth() -> None:
    ds = _case(size=64, sampling=0.05, seed=0)
    ds.truth_maps = None  # nothing to cheat with
    phys = PatternPhysics(ds.patterns)
    ys = np.stack([ds.signal(e) for e in ds.elements])
    sigma = np.stack([ds.sigma(e) for e in ds.elements])
    found = get_solver("composition-tv", {"weight": "discrepancy"}).reconstruct_all(ys, phys, guide=ds.txm,
                                                                                      sigma=sigma)
    for y, s, res in zip(ys, sigma, found):
        assert res.info["weight_rule"] == "discrepancy" and res.info["discrepancy"]["bracketed"]
        chi2 = float(np.mean(((phys.A(res.x).astype(np.float64) - y) / s) ** 2))
        assert chi2 == pytest.approx(1.0, rel=0.1)  # the final fit leaves residuals at the noise level
    # 'auto' with uncertainties: the larger of the CV and the discrepancy weights
    auto = get_solver("composition-tv").reconstruct_all(ys, phys, guide=ds.txm, sigma=sigma)
    for res, alone in zip(auto, found):
        assert res.info["weight_rule"] == "larger of cv and discrepancy"
        cv_weight = res.info["cross_validation"]["weight"]
        assert res.info["weight"] == pytest.approx(max(cv_weight, alone.info["weight"]), rel=1e-6)
    # plain TV's 'auto' is CV alone, uncertainties or not (measured: its discrepancy weight over-regularises)
    assert get_solver("tv").reconstruct_all(ys[:1], phys, sigma=sigma[:1])[0].info["weight_rule"] == "cv"
    # without uncertainties 'auto' cross-validates; 'discrepancy' says what it needs, and when it fails
    assert get_solver("composition-tv").reconstruct_all(ys[:1], phys, guide=ds.txm)[0].info["weight_rule"] == "cv"
    with pytest.raises(SolverError, match="signals_sigma"):
        get_solver("tv", {"weight": "discrepancy"})(ys[0], phys)
    with pytest.raises(SolverError, match="uncertainties may be wrong"):  # noise overstated 1000x
        get_solver("composition-tv", {"weight": "discrepancy"}).reconstruct_all(ys[:1], phys, guide=ds.txm,
                                                                                 sigma=1e3 * sigma[:1])


def test_uncertainties_of_the_wrong_shape_or_negative_are_named() -> None:
    from nxsci.recon import DatasetError

    ds = _case(size=24)
    phys = PatternPhysics(ds.patterns)
    ys = np.stack([ds.signal(e) for e in ds.elements])
    with pytest.raises(DatasetError, match="sigma"):
        get_solver("tv", {"weight": 1e-4}).reconstruct_all(ys, phys, sigma=np.ones((2, ys.shape[1])))
    with pytest.raises(DatasetError, match=">= 0"):
        get_solver("tv", {"weight": 1e-4}).reconstruct_all(ys, phys, sigma=-np.ones_like(ys))


def test_reconstruct_uses_the_datasets_uncertainties_and_sets_unusable_ones_aside() -> None:
    from nxsci.recon import reconstruct

    ds = _case(size=32, sampling=0.25, seed=1)
    # composition TV: the method whose 'auto' weight also searches the noise level (plain TV's is CV alone)
    used = reconstruct(ds, elements=["Ni"], method="composition-tv")
    assert used.provenance["uncertainties"] == "signals_sigma used"
    assert "discrepancy" in used.solver_info["Ni"]  # the noise level was searched for
    ds.signals_sigma = np.zeros_like(ds.signals)  # e.g. a fit that reported no uncertainties
    aside = reconstruct(ds, elements=["Ni"], method="composition-tv")
    assert aside.provenance["uncertainties"].startswith("signals_sigma ignored")
    assert "discrepancy" not in aside.solver_info["Ni"] and aside.solver_info["Ni"]["weight_rule"] == "cv"
    assert aside.metrics["Ni"]["psnr"] > 20


def test_a_cancelled_solve_stops_at_once() -> None:
    """The service cancels by raising from the progress callback, which the solver calls at least every 20
    passes (not only between weight-search steps); no solver thread may outlive the call."""
    import threading

    ds = _case(size=32, sampling=0.25, seed=1)
    ys = np.stack([ds.signal(e) for e in ds.elements])
    sigma = np.stack([ds.sigma(e) for e in ds.elements])

    class Cancelled(Exception):
        pass

    def cancel(fraction: float, text: str) -> None:
        raise Cancelled(text)

    before = threading.active_count()
    with pytest.raises(Cancelled):
        get_solver("composition-tv").reconstruct_all(ys, PatternPhysics(ds.patterns), guide=ds.txm, sigma=sigma,
                                                     progress=cancel)
    assert threading.active_count() == before

    def cancel_between_steps(fraction: float, text: str) -> None:  # a heartbeat inside a weight-search step
        if "(pass " in text:
            raise Cancelled(text)

    with pytest.raises(Cancelled, match=r"\(pass 20\)$"):
        get_solver("composition-tv").reconstruct_all(ys, PatternPhysics(ds.patterns), guide=ds.txm, sigma=sigma,
                                                     progress=cancel_between_steps)
    assert threading.active_count() == before
