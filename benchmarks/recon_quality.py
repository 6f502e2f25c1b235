"""Reconstruction quality vs sampling ratio (like the paper's Fig. 3C), the TXM-aware methods, and scaling.

Run ``python benchmarks/recon_quality.py`` (main run: 64x64 battery, 25/10/5 %, every method on seed 0, the
headline on seeds 0-2; ~40 min on a busy 2-core machine), ``--quick`` (smoke run, a few minutes) or
``--scaling`` (time and memory of the default method and SIREN vs image size, a separate run). Markdown
tables go to stdout and ``<out-dir>/recon_quality.md`` (``recon_scaling.md``); every number (per seed and
element, the solver info, the oracle weight searches) goes to the matching ``.json``; one progress line per
solve goes to stderr. ``main(argv)`` runs it from Python (``main(["--quick", "--out-dir", tmp])``);
importing the module runs nothing.

Cases
    Each (image, sampling, seed) is one simulated structured-illumination experiment,
    ``simulate_case(phantom=image, size=..., sampling=s, seed=k)`` (two-diffuser patterns, Poisson XRF
    counts, noisy recorded pattern frames). Different samplings of one seed share the patterns (the first N
    of the same random diffuser schedule) but not the noise realisation. Images: the battery phantom (Mn,
    Co, Ni, a TXM image and a binder particle seen only by the TXM) and natural images (single map "X").
    Table A scores ONE element map (``--element``, default Ni) on the ``--seeds``; the rows that reconstruct
    every element at once (below) are also scored on every element (Table B). Every method is scored
    against the noiseless truth map in signal units.

Methods (``--methods``; parameters not named here are the library's defaults, recorded in the JSON)
    point      raster point scanning with the same number N of measurements and the same dose (below),
               interpolated back to the full grid (cubic by default, ``--point-interp``).
    pinv       truncated-SVD pseudo-inverse, rank rule ``--pinv-rank`` (default: the library's, K-fold CV).
    tv         TV + non-negativity, library default solver (converged ADMM) with the weight chosen
               without ground truth by the library's K-fold cross-validation.
    tv-oracle  the same converged TV with the weight chosen WITH the ground truth (best PSNR) on the fixed
               log grid w = 10^(k/4), assuming PSNR is unimodal in log(w): hill-climb in quarter-decade steps
               from the previous (smaller) sampling's oracle weight; for the first sampling, in half-decade
               steps from this case's CV weight (else 1e-5), then the two quarter-decade neighbours of the
               best. Every grid point is a cold public ``tv`` call (``harness.oracle``, shared with
               robustness.py; iteration cap raised to 10 000 so weak weights converge too); the reported row
               is a fresh library solve at the chosen weight, so its time and memory are those of one solve
               (the search total is in the notes and JSON). In headline cases the oracle is searched for
               every element (the headline compares per element).
    tv-pdhg    corrct's PDHG (``backend="pdhg"``) for ``--pdhg-iterations`` (2000) at the oracle weight: the
               peers' reference, nominally converged.
    tv-under   PDHG stopped after ``--under-iterations`` (300) at the oracle weight: under-converged TV.
    guided-tv  TXM-edge-weighted TV, weight (and guidance strength) by the library's cross-validation.
  Every-element rows: one ``solver.reconstruct_all(ys (E, N), physics, guide=txm, sigma=...)`` call for all elements
  (SIREN's joint mode trains one network for all), so their time and memory are for ALL elements (‡):
    composition-tv     TV on element / TXM thickness, weight by the library's K-fold CV (default params).
    siren              SIREN, the library's defaults (whatever they are when the benchmark runs).
    siren-no-prior     SIREN with ``txm_prior=False`` (no TXM gradient term).
    siren-map          SIREN with ``output="map"`` (no composition / TXM-thickness modulation).
    siren-per-element  SIREN with ``joint=False`` (one network per element instead of one joint network).
    siren-cold         SIREN with ``warm_start="none"``.
    siren-paper        the paper's configuration (``siren-paper``) with ``steps`` cut to fit
                       ``--paper-budget-s`` per case (all elements): a 3-step probe on this case measures
                       seconds per step first (not timed in the row), then steps = budget / (s/step x
                       networks trained). The steps it got are shown in the cells ([n st]).
  Only the ablation overrides above are passed; ``--siren-set KEY=VALUE`` adds overrides to every
  ``siren`` row (smoke runs only; labels then say so). An ablation whose override equals the library's
  current default is labelled "(= default)".

Headline (battery; ``--headline-seeds``, default 0 1 2; ``--no-headline`` turns it off)
    For every sampling, headline seed and element: PSNR of the default method (``default_method(dataset)``,
    all elements in one call) minus the TV-oracle's PSNR, the minimum margin and whether every margin is
    >= 1 dB; the default method's wall time for all elements (target <= 30 s); and binder painting: the
    mean of the map over the phantom's binder mask (``battery_phantom(size, seed).binder_mask``) divided by
    its mean over the element's particles (truth > 10 % of its maximum); the truth's value is 0. Headline
    seeds not in ``--seeds`` run only the oracle and the default method.

Scaling (``--scaling``; a separate run)
    Image side ``--scaling-sizes`` (64 128 256) x N = ``--scaling-samplings`` (5 10 25 50 %) of M: wall
    time, CPU time and peak memory of the default method and of ``siren`` (``--scaling-methods``), all
    elements per call. Each cell runs in a child process (simulation untimed) that is stopped when its solve
    passes ``--scaling-budget-s``. Cells are skipped, and say why, when: the patterns alone would exceed the
    library's limit; the predicted peak memory (the method's largest measured peak plus inputs, scaled by
    N*M) exceeds ``--scaling-memory-gb``; a cell of the same method with smaller or equal N and M already
    ran out of budget (cost grows with N and M); SIREN is also skipped where its warm-start method (the
    default method with its own cross-validated parameters, which it then runs first) ran out of budget.
    Time is never extrapolated: a cell that is not skipped for these reasons runs, up to the budget.
    ``--reuse`` keeps the measured cells of an earlier scaling JSON and decides its skipped cells anew.

Cost control (never silent)
    Cross-validation multiplies the cost of a solve by folds x weights. The single-element auto-weight
    methods (tv, guided-tv) run only where N*M <= ``--cv-max-entries`` (default 1.1e7); other cells read
    "skipped (reason)". ``--cv-folds`` lowers the folds if you raise that limit. The every-element rows are
    never skipped in the main run (the default method must be measured where the headline needs it).

Dose rule for point scanning (equal dose, equal N, equal beam time)
    In the simulation a pattern of intensity P_i(r) yields expected counts sum_r P_i(r) t(r), where t is
    the truth map in signal units (counts per unit intensity per pixel). The structured-illumination run
    therefore delivers the incident dose F = sum_i sum_r P_i(r) (the recorded frames' total). The raster
    scan spends the SAME total F on its n points, D = F / n per point, all of it on one pixel (a pencil
    beam one pixel wide): point j records c_j ~ Poisson(D t(r_j)) and estimates t(r_j) = c_j / D. Since
    patterns average ~1 per pixel, D ~ M: each point gets the flux of one whole pattern, so the mean counts
    per measurement equal those of a pattern (``--photons``) and both schemes take the same beam time.
    Points lie on a regular ny x nx grid of pixel centres with ny*nx <= N, as close to N as possible with an
    aspect within 1.25 of the field's (n is reported); the scan is interpolated to H x W with scipy's
    RegularGridInterpolator (queries clamped to the scanned hull, i.e. edge replication; negatives clipped
    to 0). At 100 % every pixel is measured directly.

Timing and memory
    Wall time is ``time.perf_counter`` around one solver call (a fresh ``PatternPhysics`` per call, built
    outside the timed region; everything the solver does, e.g. the operator norm, factorisations, CV, warm
    starts and training, is inside). Every solver is first run once on a 24x24 problem so imports and
    first-call costs are not timed. BLAS and OpenMP run single-threaded (threadpoolctl) and torch uses 1
    thread; a solver that starts its own threads by default (the library's TV family may solve elements in
    parallel, one core each) keeps them, as a user would get. CPU time is reported too (CPU > wall shows
    such parallelism): on a machine shared with other jobs (load average recorded in the report) wall time
    is inflated, CPU time much less so.
    Peak memory (``--memory``): "rss" (default on Linux) = peak resident set size during the call minus
    the RSS just before it, using the kernel's resettable high-water mark (write "5" to
    /proc/self/clear_refs, read VmHWM; after gc and malloc_trim). It counts everything (numpy, LAPACK
    workspace, torch) except inputs that already exist (the dataset's pattern stack, the physics operator).
    "tracemalloc" (fallback elsewhere) counts only allocations through Python's allocators (numpy arrays;
    not LAPACK workspace or torch) and slows the solvers slightly.
"""


from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # the shared harness and this script's modules
    sys.path.insert(0, HERE)

from harness.oracle import oracle_search  # noqa: E402  (re-exported: tests and callers use them from here)
from harness.scoring import binder_ratio  # noqa: E402
from harness.tables import write_pair  # noqa: E402
from quality.config import METHODS, parse_args  # noqa: E402
from quality.point_scan import point_scan, scan_grid  # noqa: E402
from quality.report import write_report  # noqa: E402
from quality.run import run  # noqa: E402
from quality.scaling import render_scaling, run_scaling, scaling_child  # noqa: E402

__all__ = ["main", "oracle_search", "binder_ratio", "point_scan", "scan_grid", "METHODS"]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags, run the benchmark (or one scaling cell), print the markdown and write the files."""
    args = parse_args(argv)
    if args.scaling_cell is not None:
        return scaling_child(json.loads(args.scaling_cell))
    shown = list(argv) if argv is not None else sys.argv[1:]
    command = "python benchmarks/recon_quality.py" + "".join(f" {a}" for a in shown)
    with contextlib.redirect_stdout(sys.stderr):  # stray prints (e.g. corrct's import notice) stay off stdout
        report = run_scaling(args, command) if args.scaling else run(args, command)
    if args.scaling:
        md = render_scaling(report, args)
        write_pair(md, report, args.out_dir, "recon_scaling")
        stem = "recon_scaling"
    else:
        md = write_report(report, args)
        stem = "recon_quality"
    print(md)
    print(f"wrote {args.out_dir / (stem + '.md')} and {args.out_dir / (stem + '.json')} "
          f"({report['total_seconds'] / 60:.1f} min)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
