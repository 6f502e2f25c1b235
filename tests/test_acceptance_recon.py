"""Issue-level quality targets on simulated 64x64 battery phantoms (slow; CI runs them all).

- TV with its automatic weight (no ground truth) is within 1 dB PSNR of TV at the best weight picked
  with the ground truth (converged solves, a fine log grid).
- TXM-guided TV beats TV when the TXM image shares the maps' edges.
"""

from __future__ import annotations

import numpy as np
import pytest

from nxsci.recon import PatternPhysics, get_solver, psnr, simulate_case

ORACLE_GRID = np.geomspace(1e-6, 1e-2, 17)  # quarter decades


def _oracle_psnr(method: str, y: np.ndarray, phys: PatternPhysics, truth: np.ndarray, txm: np.ndarray) -> float:
    return max(psnr(get_solver(method, {"weight": float(w)})(y, phys, guide=txm).x, truth) for w in ORACLE_GRID)


@pytest.mark.slow
@pytest.mark.parametrize(("sampling", "seed", "element"), [(0.05, 31, "Co"), (0.25, 32, "Ni")])
def test_auto_tv_is_within_1db_of_oracle_tv(sampling: float, seed: int, element: str) -> None:
    ds = simulate_case(phantom="battery", size=64, sampling=sampling, seed=seed)
    phys = PatternPhysics(ds.patterns)
    y, truth = ds.signal(element), ds.truth(element)
    oracle = _oracle_psnr("tv", y, phys, truth, ds.txm)
    auto = psnr(get_solver("tv")(y, phys).x, truth)
    assert auto >= oracle - 1.0, f"auto {auto:.2f} dB vs oracle {oracle:.2f} dB"


@pytest.mark.slow
def test_guided_tv_beats_tv_when_the_txm_shares_the_edges() -> None:
    ds = simulate_case(phantom="coins", size=64, sampling=0.1, seed=33)
    phys = PatternPhysics(ds.patterns)
    y, truth = ds.signal("X"), ds.truth("X")
    tv = psnr(get_solver("tv")(y, phys).x, truth)
    guided = get_solver("guided-tv")(y, phys, guide=ds.txm)
    assert psnr(guided.x, truth) > tv + 0.5
    assert guided.info["min_weight"] < 1.0  # cross-validation chose to trust the TXM
