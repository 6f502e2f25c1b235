"""Forward model: adjointness, chunking, operator norm, devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nxsci.recon import DatasetError, PatternPhysics

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_adjoint_matches_inner_products(device: str) -> None:
    rng = np.random.default_rng(1)
    phys = PatternPhysics(rng.random((30, 7, 5)), device=device)
    x = rng.random((7, 5)).astype(np.float32)
    y = rng.random(30).astype(np.float32)
    lhs = float(np.dot(phys.A(x), y))
    rhs = float(np.sum(x * phys.A_adjoint(y)))
    assert lhs == pytest.approx(rhs, rel=1e-5)


def test_chunked_products_equal_dense_ones() -> None:
    rng = np.random.default_rng(2)
    pats = rng.random((50, 6, 6)).astype(np.float32)
    dense, chunked = PatternPhysics(pats), PatternPhysics(pats, chunk_rows=7)
    x = rng.random((3, 6, 6)).astype(np.float32)
    y = rng.random((3, 50)).astype(np.float32)
    np.testing.assert_allclose(chunked.A(x), dense.A(x), rtol=1e-5)
    np.testing.assert_allclose(chunked.A_adjoint(y), dense.A_adjoint(y), rtol=1e-5)
    np.testing.assert_allclose(dense.A(x[0]), pats.reshape(50, -1) @ x[0].ravel(), rtol=1e-5)


def test_norm_matches_largest_singular_value() -> None:
    rng = np.random.default_rng(3)
    pats = rng.random((40, 8, 8))
    expected = np.linalg.norm(pats.reshape(40, -1), 2)
    assert PatternPhysics(pats).compute_norm() == pytest.approx(expected, rel=1e-3)


def test_tensors_stay_tensors_and_default_dtype_is_float32() -> None:
    phys = PatternPhysics(np.ones((4, 3, 3)))
    assert phys.matrix.dtype == torch.float32
    out = phys.A(torch.ones(3, 3))
    assert isinstance(out, torch.Tensor) and torch.allclose(out, torch.full((4,), 9.0))


def test_bad_shapes_are_named() -> None:
    phys = PatternPhysics(np.ones((4, 3, 3)))
    with pytest.raises(DatasetError, match="does not match the patterns"):
        phys.A(np.ones((4, 4)))
    with pytest.raises(DatasetError, match="5 measurements given for 4 patterns"):
        phys.A_adjoint(np.ones(5))
    with pytest.raises(DatasetError, match=r"\(N, H, W\)"):
        PatternPhysics(np.ones((3, 3)))
    if not torch.cuda.is_available():
        with pytest.raises(DatasetError, match="no CUDA device"):
            PatternPhysics(np.ones((4, 3, 3)), device="cuda")
