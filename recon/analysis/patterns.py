"""How good is a set of illumination patterns? The paper's measures, computed at full scale.

``A`` is the N x M sensing matrix whose rows are the vectorised patterns (``patterns`` is ``(N, H, W)``).

* mean dependence ``delta``: mean Pearson correlation between two distinct rows (patterns); small is
  good, 0 for point scanning.
* dependence map: for a target pixel, the correlation (over the N patterns) of its intensity with
  every other pixel's, ordered by distance to the target; one column per target.
* invertibility: ``SSIM(pinv(A) A x_ref, x_ref)``; 1 means the patterns lose nothing of ``x_ref``.
* singular-value spectrum, entropy-based effective rank (Roy & Vetterli 2007) and numerical rank.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from .._errors import DatasetError
from .metrics import ssim

__all__ = [
    "DependenceMap",
    "DistanceCurve",
    "PatternReport",
    "analyze_patterns",
    "correlation_vs_distance",
    "dependence_map",
    "effective_rank",
    "invertibility",
    "mean_dependence",
    "mean_dependence_curve",
    "numerical_rank",
    "pinv_reconstruct",
    "singular_values",
]

#: float64 temporaries (row blocks, correlation blocks) are kept below this many bytes
_BLOCK_BYTES = 64 * 1024**2
#: points kept in the short lists of PatternReport.to_dict()
_JSON_POINTS = 48


# -- validation ---------------------------------------------------------------------------------------
def _as_patterns(patterns: np.ndarray, *, min_patterns: int = 1) -> np.ndarray:
    arr = np.asarray(patterns)
    if arr.ndim != 3:
        raise DatasetError(f"patterns must have shape (N, H, W), got {arr.shape}")
    if arr.size == 0:
        raise DatasetError(f"patterns are empty: shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise DatasetError(f"patterns must be real-valued, got dtype {arr.dtype}")
    if arr.shape[0] < min_patterns:
        raise DatasetError(f"at least {min_patterns} patterns are needed, got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        raise DatasetError("patterns contain NaN or infinite values")
    return arr


def _rows_per_block(row_len: int, block_rows: int | None) -> int:
    if block_rows is not None:
        if block_rows < 1:
            raise DatasetError(f"block size must be >= 1, got {block_rows}")
        return int(block_rows)
    return max(1, _BLOCK_BYTES // (8 * max(row_len, 1)))


def _matrix(patterns: np.ndarray) -> np.ndarray:
    return patterns.reshape(patterns.shape[0], -1)


# -- mean dependence ----------------------------------------------------------------------------------
def _standardised_row_sums(a: np.ndarray, block_rows: int | None) -> np.ndarray:
    """Running sums ``S_n = sum_{i<=n} z_i`` of standardised rows, evaluated after each row block.

    Returns the cumulative sum vectors' squared norms per row: ``|S_n|^2`` for n = 1..N.
    """
    n, m = a.shape
    step = _rows_per_block(m, block_rows)
    total = np.zeros(m, dtype=np.float64)
    sq_norms = np.empty(n, dtype=np.float64)
    for start in range(0, n, step):
        z = np.array(a[start:start + step], dtype=np.float64)
        z -= z.mean(axis=1, keepdims=True)
        std = np.sqrt(np.mean(z * z, axis=1))
        flat = np.nonzero(std <= 1e-12 * np.maximum(np.abs(a[start:start + step]).max(axis=1), 1.0))[0]
        if flat.size:
            bad = (flat + start)[:10].tolist()
            raise DatasetError(f"pattern(s) {bad} are constant: their Pearson correlation is undefined")
        z /= std[:, None]
        cums = np.cumsum(z, axis=0) + total
        sq_norms[start:start + z.shape[0]] = np.einsum("ij,ij->i", cums, cums)
        total = cums[-1]
    return sq_norms


def mean_dependence(patterns: np.ndarray, *, block_rows: int | None = None) -> float:
    """The paper's ``delta``: mean over ``i != j`` of the Pearson correlation of patterns ``i`` and ``j``.

    With ``z_i`` the standardised rows, ``sum_ij corr_ij = |sum_i z_i|^2 / M`` and the diagonal sums to
    N, so ``delta = (|sum_i z_i|^2 / M - N) / (N (N - 1))`` exactly: O(N M) time and one M-vector of
    memory, where forming the N x N Gram matrix would cost O(N^2 M). Rows are standardised in float64
    blocks of ``block_rows`` (default: ~64 MB).
    """
    a = _matrix(_as_patterns(patterns, min_patterns=2))
    n, m = a.shape
    sq = _standardised_row_sums(a, block_rows)[-1]
    return float((sq / m - n) / (n * (n - 1)))


def mean_dependence_curve(patterns: np.ndarray, *, block_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``delta`` of the first n patterns for n = 2..N (the paper's Fig. 2E), in one O(N M) pass.

    Shows whether adding patterns still brings new information (delta keeps falling) or saturates.
    """
    a = _matrix(_as_patterns(patterns, min_patterns=2))
    n, m = a.shape
    sq = _standardised_row_sums(a, block_rows)
    counts = np.arange(2, n + 1)
    return counts, (sq[1:] / m - counts) / (counts * (counts - 1.0))


# -- dependence map -----------------------------------------------------------------------------------
@dataclasses.dataclass
class DependenceMap:
    """Pixel-pixel correlations over the pattern set, each column ordered by distance to its target.

    ``values[k, t]``: Pearson correlation between target ``targets[t]`` (a raster index into the
    ``image_shape`` image) and its k-th nearest other pixel, at distance ``distances[k, t]`` (px).
    Ties in distance keep raster order. NaN where a pixel never changes over the patterns.
    """

    values: np.ndarray  # (M - 1, T) float32
    distances: np.ndarray  # (M - 1, T) float32
    targets: np.ndarray  # (T,) int64
    image_shape: tuple[int, int]
    num_patterns: int

    def curve(self, *, bin_width: float = 1.0) -> "DistanceCurve":
        """Mean correlation versus distance; see :func:`correlation_vs_distance`."""
        return correlation_vs_distance(self, bin_width=bin_width)


@dataclasses.dataclass
class DistanceCurve:
    """Mean correlation of pixel pairs per distance bin: ``distance`` is the bins' mean distance (px)."""

    distance: np.ndarray
    correlation: np.ndarray
    count: np.ndarray  # pixel pairs per bin


def _select_targets(num_pixels: int, max_targets: int, seed: int) -> np.ndarray:
    if max_targets < 1:
        raise DatasetError(f"max_targets must be >= 1, got {max_targets}")
    if num_pixels <= max_targets:
        return np.arange(num_pixels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(num_pixels, size=max_targets, replace=False)).astype(np.int64)


def _column_moments(a: np.ndarray, block_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel mean and standard deviation over the patterns (two passes, float64, row blocks)."""
    n, m = a.shape
    total = np.zeros(m)
    for start in range(0, n, block_rows):
        total += a[start:start + block_rows].sum(axis=0, dtype=np.float64)
    mean = total / n
    sq = np.zeros(m)
    for start in range(0, n, block_rows):
        d = a[start:start + block_rows].astype(np.float64) - mean
        sq += np.einsum("ij,ij->j", d, d)
    return mean, np.sqrt(sq / n)


def dependence_map(patterns: np.ndarray, *, max_targets: int = 1024, seed: int = 0,
                   block_targets: int | None = None) -> DependenceMap:
    """The paper's dependence map (Fig. 2D) for up to ``max_targets`` target pixels.

    When the image has more pixels than ``max_targets`` a random subset (fixed by ``seed``, kept in
    raster order) is used: the map's statistics, not each pixel, are what is read from it. Covariances
    are accumulated over row blocks and target blocks, so memory stays near the (M - 1, T) output.
    """
    pats = _as_patterns(patterns, min_patterns=2)
    n, h, w = pats.shape
    m = h * w
    a = _matrix(pats)
    targets = _select_targets(m, max_targets, seed)
    rows = _rows_per_block(m, None)
    mean, std = _column_moments(a, rows)
    tiny = 1e-12 * max(float(np.abs(mean).max()), 1.0)
    inv_std = np.where(std > tiny, 1.0 / np.where(std > tiny, std, 1.0), np.nan)

    t_step = _rows_per_block(m, block_targets)
    yy, xx = np.divmod(np.arange(m), w)
    values = np.empty((m - 1, targets.size), dtype=np.float32)
    distances = np.empty((m - 1, targets.size), dtype=np.float32)
    for t0 in range(0, targets.size, t_step):
        block = targets[t0:t0 + t_step]
        cov = np.zeros((block.size, m))
        for start in range(0, n, rows):
            d = a[start:start + rows].astype(np.float64) - mean
            cov += d[:, block].T @ d
        corr = cov / n * inv_std[block, None] * inv_std[None, :]
        for k, target in enumerate(block):
            d2 = (yy - yy[target]) ** 2 + (xx - xx[target]) ** 2
            order = np.argsort(d2, kind="stable")[1:]  # order[0] is the target itself (distance 0)
            values[:, t0 + k] = corr[k, order]
            distances[:, t0 + k] = np.sqrt(d2[order])
    return DependenceMap(values=values, distances=distances, targets=targets, image_shape=(h, w),
                         num_patterns=n)


def correlation_vs_distance(dmap: DependenceMap, *, bin_width: float = 1.0) -> DistanceCurve:
    """Mean correlation versus distance, pooled over targets: a 1-D summary of the dependence map.

    Bins are ``bin_width`` wide and centred on its multiples (distance 1 and sqrt(2) share bin 1 for
    the default width). High values at short range mean neighbouring pixels cannot be told apart.
    """
    if bin_width <= 0:
        raise DatasetError(f"bin_width must be > 0, got {bin_width}")
    d = dmap.distances.ravel().astype(np.float64)
    v = dmap.values.ravel().astype(np.float64)
    ok = np.isfinite(v)
    idx = np.floor(d[ok] / bin_width + 0.5).astype(np.int64)
    count = np.bincount(idx)
    keep = count > 0
    sums = np.bincount(idx, weights=v[ok], minlength=count.size)
    dsum = np.bincount(idx, weights=d[ok], minlength=count.size)
    return DistanceCurve(distance=dsum[keep] / count[keep], correlation=sums[keep] / count[keep],
                         count=count[keep])


# -- spectrum, pseudo-inverse, invertibility -------------------------------------------------------------
def _default_rtol(shape: tuple[int, ...]) -> float:
    return max(shape) * float(np.finfo(np.float64).eps)


def singular_values(patterns: np.ndarray) -> np.ndarray:
    """Singular values of ``A`` (float64, descending)."""
    a = _matrix(_as_patterns(patterns)).astype(np.float64)
    return np.linalg.svd(a, compute_uv=False)


def effective_rank(sv: np.ndarray) -> float:
    """Entropy-based effective rank (Roy & Vetterli 2007): ``exp(H(p))``, ``p = sv / sum(sv)``.

    Between 1 (one dominant direction) and the number of non-zero singular values (flat spectrum):
    how many independent measurements the patterns are really worth.
    """
    s = np.asarray(sv, dtype=np.float64).ravel()
    if s.size == 0 or not np.isfinite(s).all() or (s < 0).any():
        raise DatasetError("singular values must be a non-empty array of finite, non-negative numbers")
    total = s.sum()
    if total == 0.0:
        return 0.0
    p = s[s > 0] / total
    return float(np.exp(-np.sum(p * np.log(p))))


def numerical_rank(sv: np.ndarray, matrix_shape: tuple[int, int], *, rtol: float | None = None) -> int:
    """Count of singular values above ``max(sv) * rtol`` (default ``rtol = max(N, M) * eps``, as numpy)."""
    s = np.asarray(sv, dtype=np.float64).ravel()
    if s.size == 0 or s.max() <= 0:
        return 0
    tol = s.max() * (_default_rtol(tuple(matrix_shape)) if rtol is None else float(rtol))
    return int(np.count_nonzero(s > tol))


@dataclasses.dataclass
class _Svd:
    u: np.ndarray
    s: np.ndarray
    vt: np.ndarray
    rank: int  # singular values kept by the pseudo-inverse

    @classmethod
    def of(cls, a: np.ndarray, rcond: float | None) -> "_Svd":
        u, s, vt = np.linalg.svd(a.astype(np.float64), full_matrices=False)
        cutoff = (s[0] if s.size else 0.0) * (_default_rtol(a.shape) if rcond is None else float(rcond))
        return cls(u=u, s=s, vt=vt, rank=int(np.count_nonzero(s > cutoff)))

    def solve(self, y: np.ndarray) -> np.ndarray:
        """``pinv(A) y`` for y of shape (N,) or (N, B)."""
        k = self.rank
        coef = (self.u[:, :k].T @ y) / (self.s[:k, None] if y.ndim == 2 else self.s[:k])
        return self.vt[:k].T @ coef

    def project(self, x: np.ndarray) -> np.ndarray:
        """``pinv(A) A x``: the part of ``x`` the patterns can see (orthogonal projection on row space)."""
        vk = self.vt[:self.rank]
        return vk.T @ (vk @ x)


def pinv_reconstruct(patterns: np.ndarray, y: np.ndarray, rcond: float | None = None) -> np.ndarray:
    """Minimum-norm least-squares map ``pinv(A) y`` via SVD, the paper's baseline.

    ``y`` is ``(N,)`` -> ``(H, W)`` or ``(B, N)`` -> ``(B, H, W)``. Singular values below
    ``rcond * max(sv)`` are dropped (default ``max(N, M) * eps``: only numerically zero ones).
    """
    pats = _as_patterns(patterns)
    n, h, w = pats.shape
    yy = np.asarray(y, dtype=np.float64)
    if yy.ndim not in (1, 2) or yy.shape[-1] != n:
        raise DatasetError(f"y must have shape ({n},) or (B, {n}) for {n} patterns, got {yy.shape}")
    if not np.isfinite(yy).all():
        raise DatasetError("y contains NaN or infinite values")
    svd = _Svd.of(_matrix(pats), rcond)
    x = svd.solve(yy if yy.ndim == 1 else yy.T)
    return x.reshape(h, w) if yy.ndim == 1 else x.T.reshape(-1, h, w)


def _reference_for(shape: tuple[int, int], reference: np.ndarray | None) -> np.ndarray:
    if reference is None:
        from ..sim.phantoms import default_reference  # lazy: only this default needs the phantom module

        return np.asarray(default_reference(shape), dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if ref.shape != shape:
        raise DatasetError(f"reference image {ref.shape} does not match the patterns' image shape {shape}")
    if not np.isfinite(ref).all():
        raise DatasetError("reference image contains NaN or infinite values")
    return ref


def _invertibility(svd: _Svd, ref: np.ndarray) -> tuple[float, np.ndarray]:
    recon = svd.project(ref.ravel()).reshape(ref.shape)
    return ssim(recon, ref), recon


def invertibility(patterns: np.ndarray, reference: np.ndarray | None = None) -> float:
    """SSIM between ``pinv(A) A x_ref`` and ``x_ref`` (paper's definition; 1 = nothing lost, noise-free).

    ``reference`` defaults to a fixed battery-like image (``sim.phantoms.default_reference``) so numbers
    are comparable between pattern sets of the same image size.
    """
    pats = _as_patterns(patterns)
    ref = _reference_for(pats.shape[1:], reference)
    return _invertibility(_Svd.of(_matrix(pats), None), ref)[0]


# -- report -------------------------------------------------------------------------------------------
def _json_float(value: float) -> float | None:
    v = float(value)
    return v if math.isfinite(v) else None


def _log_spaced_indices(size: int, points: int = _JSON_POINTS) -> np.ndarray:
    """Indices dense at the start and sparse at the end: keeps short-range detail and the far tail."""
    if size <= points:
        return np.arange(size)
    return np.unique(np.round(np.geomspace(1, size, points)).astype(int) - 1)


@dataclasses.dataclass
class PatternReport:
    """Summary of a pattern set; ``to_dict()`` gives the JSON-friendly part.

    The array fields after ``dependence_curve`` are kept for figures and are not serialised.
    """

    num_patterns: int
    image_shape: tuple[int, int]
    sampling_ratio: float  # N / M
    mean_dependence: float
    invertibility: float
    effective_rank: float
    numerical_rank: int
    singular_values: np.ndarray
    correlation_vs_distance: DistanceCurve
    dependence_curve: tuple[np.ndarray, np.ndarray] | None = None  # (n, delta of the first n patterns)
    reference_image: np.ndarray | None = dataclasses.field(default=None, repr=False)
    pinv_image: np.ndarray | None = dataclasses.field(default=None, repr=False)
    dependence: DependenceMap | None = dataclasses.field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        sv = np.asarray(self.singular_values, dtype=np.float64)
        curve = self.correlation_vs_distance
        pick = _log_spaced_indices(curve.distance.size)
        out: dict[str, Any] = {
            "num_patterns": int(self.num_patterns),
            "image_shape": [int(self.image_shape[0]), int(self.image_shape[1])],
            "sampling_ratio": float(self.sampling_ratio),
            "mean_dependence": _json_float(self.mean_dependence),
            "invertibility": _json_float(self.invertibility),
            "effective_rank": float(self.effective_rank),
            "numerical_rank": int(self.numerical_rank),
            "singular_value_max": float(sv.max()) if sv.size else 0.0,
            "condition_number": _json_float(sv.max() / sv[self.numerical_rank - 1])
            if self.numerical_rank > 0 else None,
            "singular_values_head": [float(v) for v in sv[:16]],
            "correlation_vs_distance": {
                "distance_px": [round(float(v), 3) for v in curve.distance[pick]],
                "correlation": [_json_float(round(float(v), 4)) for v in curve.correlation[pick]],
            },
        }
        if self.dependence_curve is not None:
            counts, delta = self.dependence_curve
            pick = _log_spaced_indices(len(counts))
            out["mean_dependence_vs_count"] = {"num_patterns": [int(c) for c in counts[pick]],
                                               "mean_dependence": [_json_float(round(float(d), 5))
                                                                   for d in delta[pick]]}
        return out


def analyze_patterns(patterns: np.ndarray, reference: np.ndarray | None = None, *,
                     max_targets: int = 1024) -> PatternReport:
    """All measures of a pattern set from one SVD and one dependence map (needs N >= 2)."""
    pats = _as_patterns(patterns, min_patterns=2)
    n, h, w = pats.shape
    ref = _reference_for((h, w), reference)
    a = _matrix(pats)
    svd = _Svd.of(a, None)
    inv, recon = _invertibility(svd, ref)
    dmap = dependence_map(pats, max_targets=max_targets)
    counts, delta = mean_dependence_curve(pats)
    return PatternReport(
        num_patterns=n,
        image_shape=(h, w),
        sampling_ratio=n / (h * w),
        mean_dependence=float(delta[-1]),
        invertibility=inv,
        effective_rank=effective_rank(svd.s),
        numerical_rank=numerical_rank(svd.s, a.shape),
        singular_values=svd.s,
        correlation_vs_distance=correlation_vs_distance(dmap),
        dependence_curve=(counts, delta),
        reference_image=ref,
        pinv_image=recon,
        dependence=dmap,
    )
