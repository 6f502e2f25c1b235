"""The forward model ``y = A x`` as an object (deepinv's physics style).

``A`` holds one vectorised illumination pattern per row. The same object serves the simulator and
every solver, so simulation and reconstruction agree by construction. Products are chunked over rows so
that a large N x M matrix never needs a second full-size temporary.
"""

from __future__ import annotations

import contextlib
import math
from typing import overload

import numpy as np
import torch

from .._errors import DatasetError

__all__ = ["PatternPhysics", "resolve_device", "single_threaded_blas"]

ArrayLike = np.ndarray | torch.Tensor

#: rows per chunk are picked so that one chunk's temporary stays below this many bytes
_CHUNK_BYTES = 256 * 1024**2


def single_threaded_blas() -> contextlib.AbstractContextManager[object]:
    """Iterative solvers make thousands of small BLAS calls; BLAS threads fighting over a busy 2-core
    machine made them 10-30x slower (measured), so solvers run them single-threaded."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/"auto" -> CUDA when present, else CPU; a clear error when CUDA is asked for but absent."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DatasetError("device 'cuda' requested but no CUDA device is available (use --device cpu)")
    return dev


class PatternPhysics:
    """Dense structured-illumination operator: ``A(x)`` sums each pattern weighted by the map ``x``.

    ``x`` is an image ``(H, W)`` or a batch ``(B, H, W)``; ``A(x)`` returns ``(N,)`` or ``(B, N)``.
    ``A_adjoint`` maps measurements back to images. numpy in -> numpy out; tensors stay on their device.
    """

    def __init__(self, patterns: ArrayLike, *, device: str | torch.device | None = "cpu",
                 dtype: torch.dtype = torch.float32, chunk_rows: int | None = None) -> None:
        t = torch.as_tensor(np.asarray(patterns) if isinstance(patterns, np.ndarray) else patterns)
        if t.ndim != 3:
            raise DatasetError(f"patterns must have shape (N, H, W), got {tuple(t.shape)}")
        if t.numel() == 0:
            raise DatasetError("patterns are empty")
        self.device = resolve_device(device)
        self.dtype = dtype
        self.img_shape: tuple[int, int] = (int(t.shape[1]), int(t.shape[2]))
        self.matrix: torch.Tensor = t.reshape(t.shape[0], -1).to(device=self.device, dtype=dtype).contiguous()
        if not bool(torch.isfinite(self.matrix).all()):
            raise DatasetError("patterns contain NaN or infinite values")
        row_bytes = self.matrix.shape[1] * self.matrix.element_size()
        self.chunk_rows = chunk_rows or max(1, _CHUNK_BYTES // max(row_bytes, 1))
        self._norm: float | None = None

    # -- sizes ------------------------------------------------------------------------
    @property
    def num_patterns(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def num_pixels(self) -> int:
        return int(self.matrix.shape[1])

    def to(self, device: str | torch.device) -> "PatternPhysics":
        return PatternPhysics(self.matrix.reshape(-1, *self.img_shape), device=device, dtype=self.dtype,
                              chunk_rows=self.chunk_rows)

    def numpy_matrix(self) -> np.ndarray:
        """``A`` as a float32 numpy array (N, M) on the host."""
        return self.matrix.detach().to("cpu", torch.float32).numpy()

    # -- products ---------------------------------------------------------------------
    def _as_tensor(self, v: ArrayLike) -> tuple[torch.Tensor, bool]:
        if isinstance(v, torch.Tensor):
            return v.to(self.dtype), False
        return torch.as_tensor(np.asarray(v), dtype=self.dtype, device=self.device), True

    def _chunked(self, rows_first: bool, v: torch.Tensor) -> torch.Tensor:
        a = self.matrix
        if a.shape[0] <= self.chunk_rows:
            return v @ a.T if rows_first else v @ a
        if rows_first:  # (B, M) -> (B, N)
            return torch.cat([v @ a[i:i + self.chunk_rows].T for i in range(0, a.shape[0], self.chunk_rows)], dim=-1)
        out = torch.zeros(v.shape[0], a.shape[1], dtype=v.dtype, device=v.device)  # (B, N) -> (B, M)
        for i in range(0, a.shape[0], self.chunk_rows):
            out += v[:, i:i + self.chunk_rows] @ a[i:i + self.chunk_rows]
        return out

    @overload
    def A(self, x: np.ndarray) -> np.ndarray: ...
    @overload
    def A(self, x: torch.Tensor) -> torch.Tensor: ...
    def A(self, x: ArrayLike) -> ArrayLike:
        """Measurements of map(s) ``x``: ``(H, W) -> (N,)``, ``(B, H, W) -> (B, N)``."""
        t, was_numpy = self._as_tensor(x)
        if tuple(t.shape[-2:]) != self.img_shape:
            raise DatasetError(f"image shape {tuple(t.shape[-2:])} does not match the patterns {self.img_shape}")
        flat = t.reshape(-1, self.num_pixels)
        y = self._chunked(True, flat)
        y = y.reshape(*t.shape[:-2], self.num_patterns)
        return y.cpu().numpy() if was_numpy else y

    @overload
    def A_adjoint(self, y: np.ndarray) -> np.ndarray: ...
    @overload
    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor: ...
    def A_adjoint(self, y: ArrayLike) -> ArrayLike:
        """Back-projection ``A^T y``: ``(N,) -> (H, W)``, ``(B, N) -> (B, H, W)``."""
        t, was_numpy = self._as_tensor(y)
        if t.shape[-1] != self.num_patterns:
            raise DatasetError(f"{t.shape[-1]} measurements given for {self.num_patterns} patterns")
        flat = t.reshape(-1, self.num_patterns)
        x = self._chunked(False, flat).reshape(*t.shape[:-1], *self.img_shape)
        return x.cpu().numpy() if was_numpy else x

    def A_dagger(self, y: ArrayLike, rcond: float = 1e-6) -> np.ndarray:
        """Least-squares / minimum-norm solution (a plain pseudo-inverse; see the solvers for regularised ones)."""
        a = self.numpy_matrix().astype(np.float64)
        yy = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y, dtype=np.float64)
        x, *_ = np.linalg.lstsq(a, yy, rcond=rcond)
        return x.reshape(self.img_shape)

    def compute_norm(self, *, max_iter: int = 100, tol: float = 1e-6, seed: int = 0) -> float:
        """Operator norm ``||A||_2`` (largest singular value) by power iteration on ``A^T A``; cached."""
        if self._norm is not None:
            return self._norm
        g = torch.Generator(device="cpu").manual_seed(seed)
        v = torch.randn(1, self.num_pixels, generator=g, dtype=self.dtype).to(self.device)
        v /= v.norm()
        lam = 0.0
        for _ in range(max_iter):
            w = self._chunked(False, self._chunked(True, v))
            new = float(w.norm())
            if new == 0.0:
                break
            v = w / new
            if abs(new - lam) <= tol * new:
                lam = new
                break
            lam = new
        self._norm = math.sqrt(lam)
        return self._norm
