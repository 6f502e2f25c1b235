"""PNG figures of a pattern-set analysis (the paper's Fig. 2 panels and the spectrum).

Figures are built on ``matplotlib.figure.Figure`` with an Agg canvas, never through pyplot, so they
work headless, in threads and in services without touching global state or leaking open figures.
"""

from __future__ import annotations

import pathlib

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .._errors import DatasetError
from .patterns import (
    DependenceMap,
    PatternReport,
    _as_patterns,
    _invertibility,
    _matrix,
    _reference_for,
    _Svd,
    dependence_map,
)

__all__ = ["save_pattern_figures"]

_DPI = 120
#: the dependence map is averaged over groups of distance ranks down to this many rows for display
_MAX_MAP_ROWS = 1024
#: targets used when the map has to be computed here (a figure needs fewer than the statistics)
_FIGURE_TARGETS = 256


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: pathlib.Path) -> pathlib.Path:
    fig.savefig(path, dpi=_DPI)
    fig.clear()  # drop artists (and the image data they hold) at once
    return path


def _display_rows(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Average consecutive distance ranks so a map of M - 1 rows stays a reasonable image."""
    rows = values.shape[0]
    group = max(1, -(-rows // _MAX_MAP_ROWS))
    if group == 1:
        return values, 1
    usable = (rows // group) * group
    blocks = values[:usable].reshape(rows // group, group, values.shape[1])
    with np.errstate(invalid="ignore"):
        counts = np.isfinite(blocks).sum(axis=1)
        sums = np.nansum(blocks, axis=1)
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan), group


def _pattern_grid(patterns: np.ndarray, path: pathlib.Path, max_examples: int) -> pathlib.Path:
    n = patterns.shape[0]
    picks = np.unique(np.linspace(0, n - 1, min(n, max_examples)).round().astype(int))
    cols = min(4, picks.size)
    rows = -(-picks.size // cols)
    fig = _new_figure(2.4 * cols, 2.4 * rows + 0.3)
    fig.suptitle(f"Example illumination patterns ({n} in the set)")
    for k, i in enumerate(picks):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(patterns[i], cmap="gray", interpolation="nearest")
        ax.set_title(f"pattern {i}", fontsize=9)
        ax.set_axis_off()
    return _save(fig, path)


def _dependence_figure(dmap: DependenceMap, delta: float, path: pathlib.Path) -> pathlib.Path:
    shown, group = _display_rows(dmap.values)
    fig = _new_figure(6.4, 4.8)
    ax = fig.add_subplot()
    im = ax.imshow(shown, cmap="RdBu_r", vmin=-1.0, vmax=1.0, aspect="auto", interpolation="nearest",
                   extent=(-0.5, dmap.values.shape[1] - 0.5, shown.shape[0] * group - 0.5, -0.5))
    ax.set_xlabel("target pixel index" + (" (sampled targets)" if dmap.targets.size < np.prod(dmap.image_shape)
                                          else ""))
    ax.set_ylabel("other pixels, ranked by distance to the target")
    ax.set_title(f"Dependence map: N = {dmap.num_patterns}, \u03b4 = {delta:.3g}")
    fig.colorbar(im, ax=ax, label="Pearson correlation")
    return _save(fig, path)


def _spectrum_figure(report: PatternReport, path: pathlib.Path) -> pathlib.Path:
    sv = np.asarray(report.singular_values, dtype=np.float64)
    fig = _new_figure(6.0, 4.0)
    ax = fig.add_subplot()
    positive = sv > 0
    if positive.any():
        ax.semilogy(np.arange(1, sv.size + 1)[positive], sv[positive] / sv.max(), lw=1.2)
    if 0 < report.numerical_rank < sv.size:
        ax.axvline(report.numerical_rank + 0.5, color="0.5", ls="--", lw=1, label="numerical rank")
        ax.legend(loc="lower left")
    ax.set_xlabel("index")
    ax.set_ylabel("singular value / largest")
    ax.set_title(f"Singular values (N = {report.num_patterns}, M = {int(np.prod(report.image_shape))}): "
                 f"effective rank {report.effective_rank:.1f}, numerical rank {report.numerical_rank}",
                 fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def _distance_figure(report: PatternReport, path: pathlib.Path) -> pathlib.Path:
    curve = report.correlation_vs_distance
    fig = _new_figure(6.0, 4.0)
    ax = fig.add_subplot()
    ax.plot(curve.distance, curve.correlation, marker=".", lw=1)
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_xlabel("distance between pixels (px)")
    ax.set_ylabel("mean Pearson correlation")
    ax.set_title("Pixel correlation versus distance (short range = unresolvable neighbours)", fontsize=9)
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def _dependence_count_figure(report: PatternReport, path: pathlib.Path) -> pathlib.Path:
    assert report.dependence_curve is not None
    counts, delta = report.dependence_curve
    fig = _new_figure(6.0, 4.0)
    ax = fig.add_subplot()
    ax.plot(counts, delta, lw=1.2)
    ax.axhline(0.0, color="0.5", lw=0.8, ls="--", label="point scanning")
    ax.set_xlabel("number of patterns")
    ax.set_ylabel("mean dependence \u03b4")
    ax.set_title("Mean dependence as patterns are added", fontsize=9)
    ax.legend()
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def _invertibility_figure(reference: np.ndarray, recon: np.ndarray, score: float,
                          path: pathlib.Path) -> pathlib.Path:
    fig = _new_figure(7.0, 3.6)
    lo, hi = float(reference.min()), float(reference.max())
    for k, (img, title) in enumerate([(reference, "reference $x_{ref}$"),
                                      (recon, "pinv(A) A $x_{ref}$")]):
        ax = fig.add_subplot(1, 2, k + 1)
        im = ax.imshow(img, cmap="viridis", vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    fig.colorbar(im, ax=fig.axes, shrink=0.8)
    fig.suptitle(f"Invertibility (SSIM) = {score:.3f}")
    return _save(fig, path)


def save_pattern_figures(patterns: np.ndarray, report: PatternReport, outdir: str | pathlib.Path, *,
                         dependence: DependenceMap | None = None, max_examples: int = 8) -> list[pathlib.Path]:
    """Write the analysis figures as PNGs into ``outdir`` (created; same-named files are replaced).

    ``dependence`` defaults to the map kept in ``report`` (from :func:`analyze_patterns`), else one
    with 256 sampled targets is computed. Returns the written paths.
    """
    pats = _as_patterns(patterns)
    if tuple(pats.shape[1:]) != tuple(report.image_shape) or pats.shape[0] != report.num_patterns:
        raise DatasetError(f"patterns {pats.shape} do not match the report "
                           f"({report.num_patterns} patterns of {tuple(report.image_shape)})")
    out = pathlib.Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    dmap = dependence if dependence is not None else report.dependence
    if dmap is None:
        dmap = dependence_map(pats, max_targets=_FIGURE_TARGETS)
    if report.reference_image is not None and report.pinv_image is not None:
        reference, recon = report.reference_image, report.pinv_image
    else:
        reference = _reference_for(tuple(pats.shape[1:]), None)
        recon = _invertibility(_Svd.of(_matrix(pats), None), reference)[1]

    written = [
        _pattern_grid(pats, out / "patterns_examples.png", max_examples),
        _dependence_figure(dmap, report.mean_dependence, out / "dependence_map.png"),
        _spectrum_figure(report, out / "singular_values.png"),
        _distance_figure(report, out / "correlation_vs_distance.png"),
        _invertibility_figure(reference, recon, report.invertibility, out / "invertibility.png"),
    ]
    if report.dependence_curve is not None:
        written.append(_dependence_count_figure(report, out / "mean_dependence_vs_count.png"))
    return written
