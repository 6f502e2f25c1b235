"""Joint (vectorial) TV across elements: the pool's shared TV term is exact, and the prior beats per-element TV
where elements share particles, without a TXM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nxsci.recon import PatternPhysics, psnr, reconstruct, simulate_case
from nxsci.recon.solvers.tv_admm import ADMMPool, TVBasis, TVSystem, admm_tv

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _problem() -> tuple[TVSystem, np.ndarray, float]:
    ds = simulate_case(phantom="battery", size=24, sampling=0.3, seed=0)
    a = PatternPhysics(ds.patterns).numpy_matrix().astype(np.float64)
    y = ds.signal("Co") / ds.signal("Co").mean()
    return TVSystem(TVBasis(a, ds.image_shape)), y, float(np.linalg.norm(a, 2) ** 2)


def _joint(system: TVSystem, ys: list[np.ndarray], lam: float, data_weights: list[float]) -> list[np.ndarray]:
    pool, got = ADMMPool(), {}
    group = pool.new_group()
    for e, (y, d) in enumerate(zip(ys, data_weights)):
        pool.submit(system, y, lam, group=group, data_weight=d, max_iter=10_000, tol=1e-5,
                    on_done=lambda st, e=e: got.setdefault(e, st))
    pool.run()
    assert len({got[e].iterations for e in got}) == 1  # a group iterates and finishes together
    return [got[e].z2 for e in range(len(ys))]


def test_two_identical_maps_under_one_joint_term_are_tv_at_weight_over_sqrt2() -> None:
    """|(g, g)| = sqrt(2)|g|: two copies of one problem under a joint term each solve plain TV at lam/sqrt(2)."""
    system, y, norm2 = _problem()
    lam = 1e-3 * norm2
    both = _joint(system, [y, y], lam, [1.0, 1.0])
    alone = admm_tv(system, y, lam / np.sqrt(2), max_iter=10_000, tol=1e-5).z2
    for x in both:
        assert np.abs(x - alone).max() <= 1e-4 * np.abs(alone).max()


def test_a_data_weight_divides_the_weight() -> None:
    """d/2 ||Ax - y||^2 + lam TV(x) has the minimiser of plain TV at lam/d."""
    system, y, norm2 = _problem()
    (weighted,) = _joint(system, [y], 4e-3 * norm2, [4.0])
    alone = admm_tv(system, y, 1e-3 * norm2, max_iter=10_000, tol=1e-5).z2
    assert np.abs(weighted - alone).max() <= 1e-4 * np.abs(alone).max()


@pytest.mark.slow
def test_joint_prior_beats_per_element_tv_without_a_txm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Graded particles (Ni-rich cores, Mn-rich shells: elements share particles), no TXM: the default (`auto`,
    here joint TV) gains over per-element TV with its automatic weight and loses nowhere."""
    monkeypatch.syspath_prepend(str(BENCH))
    from harness.cases import simulate_phantom
    from harness.graded import graded_phantom

    ds = simulate_phantom(graded_phantom(64, 0), sampling=0.1, seed=0)
    ds.txm = None
    default = reconstruct(ds)
    plain = reconstruct(ds, method="tv")
    gains = {el: psnr(default.map(el), ds.truth(el)) - psnr(plain.map(el), ds.truth(el)) for el in ds.elements}
    priors = {el: default.solver_info[el]["prior"] for el in ds.elements}
    assert max(gains.values()) >= 0.5, (gains, priors)
    assert min(gains.values()) >= -0.3, (gains, priors)
    assert "joint-tv" in priors.values()
    for el in ds.elements:  # the evidence is reported, and elements kept on plain TV are exactly tv's maps
        assert "evidence" in default.solver_info[el]["joint"]
        if priors[el] == "tv":
            np.testing.assert_array_equal(default.map(el), plain.map(el))
