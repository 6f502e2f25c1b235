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
               best. Grid points share one factorisation and warm-start each other (the way the library's
               own CV evaluates weights; falls back to independent solver calls if that internal API
               changes); the reported row is a fresh, cold library solve at the chosen weight, so its time
               and memory are those of one solve (the search total is in the notes and JSON). In headline
               cases the oracle is searched for every element (the headline compares per element).
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

import argparse
import contextlib
import ctypes
import datetime as _dt
import gc
import json
import math
import os
import platform
import sys
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: rows that reconstruct every element in one ``reconstruct_all`` call: library method, ablation overrides
ALL_ELEMENT_ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "composition-tv": ("composition-tv", {}),
    "siren": ("siren", {}),
    "siren-no-prior": ("siren", {"txm_prior": False}),
    "siren-map": ("siren", {"output": "map"}),
    "siren-per-element": ("siren", {"joint": False}),
    "siren-cold": ("siren", {"warm_start": "none"}),
    "siren-paper": ("siren-paper", {}),  # steps: from --paper-budget-s, per case
}
METHODS: tuple[str, ...] = ("point", "pinv", "tv", "tv-oracle", "tv-pdhg", "tv-under", "guided-tv",
                            *ALL_ELEMENT_ROWS)
CV_METHODS = ("tv", "guided-tv")
DEFAULTS: dict[str, Any] = {"size": 64, "samplings": [25.0, 10.0, 5.0], "images": ["battery"], "seeds": [0],
                            "headline_seeds": [0, 1, 2]}
QUICK: dict[str, Any] = {"size": 48, "samplings": [25.0, 5.0], "images": ["battery"], "seeds": [0],
                         "headline_seeds": [0]}
SCALING_DEFAULTS: dict[str, Any] = {"scaling_sizes": [64, 128, 256], "scaling_samplings": [5.0, 10.0, 25.0, 50.0]}
#: the quality target of the headline: default method >= TV-oracle + 1 dB, <= 30 s for all elements
TARGET_MARGIN_DB = 1.0
TARGET_SECONDS = 30.0
#: steps of the siren-paper probe that measures seconds per step before the budgeted run
PAPER_PROBE_STEPS = 3
#: particle mask of the binder check: truth > this fraction of the element's maximum
PARTICLE_FRACTION = 0.1
OUT_DIR = Path(__file__).resolve().parent / "out"
#: quarter-decade log grid of the oracle: w = 10 ** (k / 4)
ORACLE_K_RANGE = (-36, -4)  # 1e-9 .. 1e-1
ORACLE_MAX_FITS = 14
ORACLE_DEFAULT_START = 1e-5
#: folds of the pseudo-inverse's rank cross-validation above --cv-max-entries (each fold is one SVD)
PINV_CAPPED_FOLDS = 2


# -- command line ------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="recon_quality.py",
        description="Fig. 3C-style benchmark: PSNR/SSIM/FRC vs sampling ratio for point scanning, pseudo-inverse, "
                    "TV (auto / oracle / under-converged), guided TV, composition TV and SIREN (with ablations and "
                    "the paper's configuration), with wall time and peak memory; a headline table (default "
                    "method vs TV-oracle, every element, several seeds) and a --scaling mode.",
        epilog="Details (dose rule, memory method, cost caps): see the module docstring.")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 48x48, samplings 25 5 %%, battery only, seed 0, headline seed 0 "
                        "(explicit flags still win)")
    p.add_argument("--size", type=int, default=None,
                   help=f"image size in px (default {DEFAULTS['size']}; --quick: {QUICK['size']})")
    p.add_argument("--samplings", type=float, nargs="+", default=None, metavar="PCT",
                   help="sampling ratios N/M in percent (default 25 10 5; --quick: 25 5)")
    p.add_argument("--images", nargs="+", default=None, metavar="NAME",
                   help="'battery' and/or natural image names, e.g. camera coins "
                        "(default battery)")
    p.add_argument("--element", default="Ni",
                   help="battery element map that is reconstructed and scored (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="simulation seeds of Tables A/B (default 0)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS, metavar="METHOD",
                   help=f"subset of {', '.join(METHODS)} (default: all)")
    p.add_argument("--photons", type=float, default=1e5,
                   help="expected XRF counts per pattern of the strongest element, sets the noise "
                        "(default: %(default)s)")
    p.add_argument("--pattern-model", default="two-diffuser", choices=("two-diffuser", "speckle", "random"),
                   help="illumination pattern model (default: %(default)s)")
    p.add_argument("--feature-size", type=float, default=2.0,
                   help="pattern feature size (px) (default: %(default)s)")
    p.add_argument("--pdhg-iterations", type=int, default=2000,
                   help="PDHG iterations of the tv-pdhg row (default: %(default)s)")
    p.add_argument("--under-iterations", type=int, default=300,
                   help="PDHG iterations of the tv-under row (default: %(default)s)")
    p.add_argument("--cv-folds", type=int, default=None,
                   help="folds of every library cross-validation: TV/guided-TV weight, pseudo-inverse rank "
                        "(default: the library's)")
    p.add_argument("--cv-max-entries", type=float, default=1.1e7,
                   help="above this N*M the auto-weight TV methods are skipped (reported as such) and the "
                        "pseudo-inverse's rank CV uses 2 folds (marked †) (default: %(default)s)")
    p.add_argument("--pinv-rank", default=None,
                   help="pseudo-inverse rank rule, e.g. cv, gcv, full or an integer (default: the library's)")
    p.add_argument("--point-interp", default="cubic", choices=("cubic", "linear"),
                   help="interpolation of the point scan back to the full grid (default: %(default)s)")
    p.add_argument("--memory", default="auto", choices=("auto", "rss", "tracemalloc"),
                   help="peak-memory method (auto: rss where /proc/self/clear_refs works, else tracemalloc) "
                        "(default: %(default)s)")
    p.add_argument("--out-dir", type=Path, default=OUT_DIR,
                   help="where recon_quality.md/.json are written (default: %(default)s)")
    p.add_argument("--headline-seeds", type=int, nargs="+", default=None, metavar="SEED",
                   help="seeds of the headline table (battery, every element, default method vs TV-oracle) "
                        "(default 0 1 2; --quick: 0)")
    p.add_argument("--no-headline", action="store_true", help="skip the headline table")
    p.add_argument("--paper-budget-s", type=float, default=120.0,
                   help="wall-time budget of the siren-paper row per case, all elements: steps are set from a "
                        "measured s/step to fit it (default: %(default)s)")
    p.add_argument("--siren-set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra parameter override for every 'siren' row (value parsed as JSON, else a string); "
                        "for smoke runs, the published tables use none")
    p.add_argument("--reuse", type=Path, default=None, metavar="JSON",
                   help="carry the rows of methods NOT run now (and not needed now) over from an earlier "
                        "recon_quality.json of the same cases, e.g. to rerun only the SIREN rows after the "
                        "library changed; with --scaling: keep the measured cells of an earlier "
                        "recon_scaling.json and decide its skipped cells anew. The report lists what was reused")
    p.add_argument("--scaling", action="store_true",
                   help="run the scaling benchmark instead (time/memory vs image size; see the docstring)")
    p.add_argument("--scaling-sizes", type=int, nargs="+", default=None, metavar="PX",
                   help="--scaling: image sides (default 64 128 256)")
    p.add_argument("--scaling-samplings", type=float, nargs="+", default=None, metavar="PCT",
                   help="--scaling: N as a percentage of M (default 5 10 25 50)")
    p.add_argument("--scaling-methods", nargs="+", default=["default", "siren"], metavar="METHOD",
                   help="--scaling: 'default' (default_method of the data) and/or library method names "
                        "(default: %(default)s)")
    p.add_argument("--scaling-budget-s", type=float, default=300.0,
                   help="--scaling: a solve running longer is stopped and reported as over budget "
                        "(default: %(default)s)")
    p.add_argument("--scaling-memory-gb", type=float, default=None,
                   help="--scaling: skip cells whose predicted peak exceeds this (default: half the "
                        "available memory at start)")
    p.add_argument("--scaling-cell", default=None, help=argparse.SUPPRESS)  # internal: one child measurement
    return p


def _parse_set(items: Sequence[str], p: argparse.ArgumentParser) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            p.error(f"--siren-set expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = _parser()
    args = p.parse_args(list(argv) if argv is not None else None)
    base = {**(QUICK if args.quick else DEFAULTS), **SCALING_DEFAULTS}
    for key, value in base.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    from nxsci.recon import PHANTOMS, get_solver  # noqa: PLC0415 (keep `import recon_quality` cheap)

    if args.scaling_cell is not None:
        return args
    bad = [im for im in args.images if im not in PHANTOMS]
    if bad:
        p.error(f"unknown image(s) {bad}; choose from {', '.join(PHANTOMS)}")
    if args.size < 16 or any(s < 16 for s in args.scaling_sizes):
        p.error("--size / --scaling-sizes must be >= 16")
    if any(not (0 < s <= 100) for s in [*args.samplings, *args.scaling_samplings]):
        p.error("--samplings / --scaling-samplings are percentages in (0, 100]")
    if args.paper_budget_s <= 0 or args.scaling_budget_s <= 0:
        p.error("budgets must be > 0 s")
    if args.pinv_rank is None:  # record the library's default explicitly
        args.pinv_rank = get_solver("pinv").params.rank
    elif args.pinv_rank.lstrip("-").isdigit():
        args.pinv_rank = int(args.pinv_rank)
    try:
        get_solver("pinv", {"rank": args.pinv_rank})
    except Exception as exc:  # noqa: BLE001 - the library's own message names the valid choices
        p.error(f"--pinv-rank: {exc}")
    args.siren_set = _parse_set(args.siren_set, p)
    try:
        get_solver("siren", args.siren_set)
    except Exception as exc:  # noqa: BLE001
        p.error(f"--siren-set: {exc}")
    for m in args.scaling_methods:
        if m != "default":
            try:
                get_solver(m)
            except Exception as exc:  # noqa: BLE001
                p.error(f"--scaling-methods: {exc}")
    args.samplings = sorted(set(args.samplings), reverse=True)
    args.scaling_sizes = sorted(set(args.scaling_sizes))
    args.scaling_samplings = sorted(set(args.scaling_samplings))
    args.methods = [m for m in METHODS if m in args.methods]  # canonical order
    args.headline_seeds = [] if args.no_headline or "battery" not in args.images else sorted(set(args.headline_seeds))
    return args


# -- machine facts, threads, memory --------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _mem_total_gb() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    return None


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, Any]:
    import scipy
    import torch
    from threadpoolctl import threadpool_info

    from nxsci.recon import nxsci_version

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        affinity = os.cpu_count()
    return {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "memory_gb": _mem_total_gb(),
        "python": platform.python_version(),
        "nxsci": nxsci_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "torch": torch.__version__,
        "corrct": _dist_version("corrct"),
        "blas": [f"{i.get('internal_api')} {i.get('version')} ({i.get('user_api')})" for i in threadpool_info()],
        "load_average_at_start": _loadavg(),
        "openblas_num_threads_env": os.environ.get("OPENBLAS_NUM_THREADS"),
    }


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _mem_available_gb() -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024**2
    return 4.0


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _malloc_trim() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class Probe:
    """Wall time, CPU time and peak memory of one call (see the module docstring for the memory method)."""

    def __init__(self, method: str = "auto") -> None:
        if method == "auto":
            method = "rss" if self._rss_works() else "tracemalloc"
        if method == "rss" and not self._rss_works():
            raise SystemExit("--memory rss needs Linux with a writable /proc/self/clear_refs")
        self.method = method

    @staticmethod
    def _rss_works() -> bool:
        try:
            _status_kb("VmHWM")
        except (OSError, KeyError):
            return False
        return _reset_hwm()

    @contextlib.contextmanager
    def measure(self) -> Iterator[dict[str, float]]:
        rec: dict[str, float] = {}
        gc.collect()
        _malloc_trim()
        if self.method == "rss":
            base = _status_kb("VmRSS")
            _reset_hwm()
        else:
            tracemalloc.start()
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
        c0, t0 = time.process_time(), time.perf_counter()
        try:
            yield rec
        finally:
            rec["seconds"] = time.perf_counter() - t0
            rec["cpu_seconds"] = time.process_time() - c0
            if self.method == "rss":
                rec["peak_mb"] = max(_status_kb("VmHWM") - base, 0) / 1024.0
            else:
                rec["peak_mb"] = max(tracemalloc.get_traced_memory()[1] - base, 0) / 1024.0**2
                tracemalloc.stop()


# -- point scanning ----------------------------------------------------------------------------------


def scan_grid(n: int, h: int, w: int, max_aspect: float = 1.25) -> tuple[int, int]:
    """Rows x columns of a raster with at most ``n`` points, as many as possible, near the field's aspect."""
    best: tuple[int, float, int, int] | None = None
    for ny in range(1, h + 1):
        nx = min(w, n // ny)
        if nx < 1:
            break
        dev = abs(math.log((ny / nx) / (h / w)))
        if dev > math.log(max_aspect) + 1e-12:
            continue
        key = (ny * nx, -dev, ny, nx)
        if best is None or key[:2] > best[:2]:
            best = key
    if best is None:  # tiny n: give up the aspect constraint
        side = max(1, int(math.isqrt(n)))
        return min(side, h), min(max(1, n // side), w)
    return best[2], best[3]


def point_scan(truth: np.ndarray, n: int, total_dose: float, rng: np.random.Generator,
               interp: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Simulated raster XRF scan of ``truth`` (signal units) with ``n`` points sharing ``total_dose``."""
    from scipy.interpolate import RegularGridInterpolator

    h, w = truth.shape
    ny, nx = scan_grid(n, h, w)
    ys = np.round((np.arange(ny) + 0.5) * h / ny - 0.5).astype(int)
    xs = np.round((np.arange(nx) + 0.5) * w / nx - 0.5).astype(int)
    n_pts = ny * nx
    dose = total_dose / n_pts  # incident units per point, all on one pixel
    expected = dose * np.clip(truth[np.ix_(ys, xs)].astype(np.float64), 0.0, None)
    counts = rng.poisson(expected)
    values = counts / dose
    if ny == h and nx == w:
        img = values
    else:
        method = interp if min(ny, nx) >= 4 else "linear"
        if min(ny, nx) < 2:
            img = np.full((h, w), values.mean())
        else:
            f = RegularGridInterpolator((ys.astype(float), xs.astype(float)), values, method=method)
            qy = np.clip(np.arange(h, dtype=float), ys[0], ys[-1])
            qx = np.clip(np.arange(w, dtype=float), xs[0], xs[-1])
            gy, gx = np.meshgrid(qy, qx, indexing="ij")
            img = f(np.stack([gy.ravel(), gx.ravel()], axis=-1)).reshape(h, w)
    info = {"grid": [int(ny), int(nx)], "points": int(n_pts), "dose_per_point": float(dose),
            "mean_counts_per_point": float(counts.mean()), "interp": interp}
    return np.clip(img, 0.0, None).astype(np.float32), info


# -- TV oracle -------------------------------------------------------------------------------------


def oracle_search(fit: Callable[[float], dict[str, Any]], k_start: int,
                  step: int = 2) -> tuple[int, dict[int, dict[str, Any]]]:
    """Best-MSE weight on the grid 10^(k/4): hill-climb from ``k_start`` in steps of ``step`` quarter decades
    (2 = half-decades, for a rough start; 1 when the start is already a good guess), then, after half-decade
    steps, the two quarter-decade neighbours of the best. Assumes PSNR is unimodal in log(weight)."""
    lo, hi = ORACLE_K_RANGE
    k_start = int(min(max(k_start, lo), hi))
    runs: dict[int, dict[str, Any]] = {}

    def ev(k: int) -> None:
        if lo <= k <= hi and k not in runs and len(runs) < ORACLE_MAX_FITS:
            runs[k] = fit(10.0 ** (k / 4.0))

    def best() -> int:  # ties go to the stronger weight (the flatter map)
        return min(runs, key=lambda k: (runs[k]["mse"], -k))

    for k in (k_start, k_start + step, k_start - step):
        ev(k)
    while True:
        b = best()
        d = step if b == max(runs) else -step if b == min(runs) else 0
        if d == 0 or b + d in runs or not lo <= b + d <= hi or len(runs) >= ORACLE_MAX_FITS:
            break
        ev(b + d)
        if best() == b:
            break
    if step > 1:
        b = best()
        ev(b - 1)
        ev(b + 1)
    return best(), runs


# -- one case --------------------------------------------------------------------------------------


def binder_ratio(x: np.ndarray, truth: np.ndarray, binder: np.ndarray) -> float:
    """Mean of ``x`` over the binder mask / its mean over the element's particles (truth > 10 % of its max).

    Binder carries no element (truth: 0), but the TXM shows it: a TXM-driven method that paints TXM edges or
    thickness into the map raises this ratio. NaN when either mask is empty or the particle mean is <= 0.
    """
    x = np.asarray(x, dtype=np.float64)
    particles = truth > PARTICLE_FRACTION * float(truth.max())
    if not binder.any() or not particles.any():
        return float("nan")
    den = float(np.mean(x[particles]))
    return float(np.mean(x[binder])) / den if den > 0 else float("nan")


def _metrics(x: np.ndarray, truth: np.ndarray, binder: np.ndarray | None = None) -> dict[str, float]:
    from nxsci.recon import frc_resolution, psnr, ssim

    out = {"psnr": float(psnr(x, truth)), "ssim": float(ssim(x, truth)),
           "frc_px": float(frc_resolution(x, truth)), "mse": float(np.mean((x.astype(np.float64) - truth) ** 2))}
    if binder is not None:
        out["binder_ratio"] = binder_ratio(x, truth, binder)
    return out


def _fmt_weight(w: float | None) -> str:
    return "" if w is None else f"{w:.2e}"


class _OracleFitter:
    """Converged library TV (its default solver and parameters) at any weight, for the oracle search.

    Fast path: the library's own ADMM fitter with one shared factorisation and warm starts from the nearest
    weight already solved (exactly how its cross-validation evaluates weights). If that internal API is
    missing or has changed, it falls back, once and visibly (``mode``), to a public solver call per weight.
    """

    def __init__(self, sub: Any, y: np.ndarray) -> None:
        self.sub, self.y = sub, y
        self.states: dict[float, Any] = {}
        self.fitter: Any = None
        self.mode = "public solver calls"
        try:
            from nxsci.recon import PatternPhysics, get_solver, map_scale
            from nxsci.recon._tv import _ADMMFitter  # internal: may change with the library

            params = get_solver("tv", {"weight": 1.0}).params
            if getattr(params, "backend", "admm") != "admm":
                self.mode = "public solver calls (the library's default TV backend is not ADMM)"
                return
            physics = PatternPhysics(sub.patterns)
            a = physics.numpy_matrix().astype(np.float64)
            self.scale = map_scale(a, y)
            self.norm2 = physics.compute_norm() ** 2
            self.fitter = _ADMMFitter(a, physics.img_shape, (y / self.scale)[None], params)
            self.mode = "shared factorisation + warm starts (library ADMM fitter)"
        except Exception as exc:  # noqa: BLE001 - internal API changed: fall back, and say so
            self.mode = f"public solver calls (fast path unavailable: {type(exc).__name__}: {exc})"

    def _public(self, wgt: float) -> tuple[np.ndarray, dict]:
        from nxsci.recon import PatternPhysics, get_solver

        res = get_solver("tv", {"weight": wgt})(self.y, PatternPhysics(self.sub.patterns))
        return res.x, {"iterations": res.info.get("iterations")}

    def __call__(self, wgt: float) -> tuple[np.ndarray, dict]:
        if self.fitter is not None:
            try:
                warm = self.states[min(self.states, key=lambda v: abs(math.log(v / wgt)))] if self.states else None
                xs, states = self.fitter([wgt * self.norm2], 1.0, rows=None, key=-1, warms=[warm], which=[0])
                x, state = xs[0], states[0]
                self.states[wgt] = state
                x = (np.asarray(x, dtype=np.float64) * self.scale).astype(np.float32)
                return x, {"iterations": getattr(state, "iterations", None)}
            except TypeError as exc:  # signature changed
                if self.states:
                    raise
                self.fitter = None
                self.mode = f"public solver calls (fast path unavailable: {type(exc).__name__}: {exc})"
        return self._public(wgt)


def _accepts(method: str, key: str) -> bool:
    from nxsci.recon import get_solver

    return key in get_solver(method).params.model_dump()


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.probe = Probe(args.memory)
        self.done = 0
        self.total = 0
        self.specs: dict[str, tuple[str, dict[str, Any]]] = dict(ALL_ELEMENT_ROWS)

    def log(self, msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def solve(self, method: str, params: dict[str, Any], sub: Any, y: np.ndarray) -> tuple[np.ndarray, dict]:
        """One timed library solve; params not given are the library's defaults (recorded in the result)."""
        from nxsci.recon import PatternPhysics, get_solver

        solver = get_solver(method, params)
        physics = PatternPhysics(sub.patterns)
        with self.probe.measure() as rec:
            res = solver(y, physics, guide=sub.txm)
        rec["info"] = {**res.info, "params": solver.params.model_dump()}
        return res.x, rec

    def solve_all(self, method: str, params: dict[str, Any], sub: Any) -> tuple[list[np.ndarray], dict]:
        """One timed ``reconstruct_all`` call for every element of ``sub`` (joint methods train once)."""
        from nxsci.recon import PatternPhysics, get_solver

        solver = get_solver(method, params)
        physics = PatternPhysics(sub.patterns)
        ys = np.stack([sub.signal(e) for e in sub.elements])
        sigma = None if sub.signals_sigma is None else np.stack([sub.sigma(e) for e in sub.elements])
        with self.probe.measure() as rec:  # with the uncertainties a spectrum fit gives, as `reconstruct` passes
            results = solver.reconstruct_all(ys, physics, guide=sub.txm, sigma=sigma)
        rec["info"] = {"params": solver.params.model_dump(),
                       "per_element": {e: r.info for e, r in zip(sub.elements, results)}}
        return [np.asarray(r.x) for r in results], rec

    def row_params(self, key: str) -> tuple[str, dict[str, Any]]:
        """Library method and the parameters this row passes (ablation overrides only, plus --cv-folds)."""
        method, over = self.specs[key]
        params = dict(over)
        if method == "siren":
            params = {**self.args.siren_set, **params}
        if self.args.cv_folds is not None and _accepts(method, "cv_folds"):
            params["cv_folds"] = self.args.cv_folds
        return method, params

    def add_default(self, name: str) -> str:
        """The row key of the library's default method (an every-element row; added when not listed)."""
        for key, (method, over) in self.specs.items():
            if method == name and not over:
                return key
        key = f"default:{name}"
        self.specs[key] = (name, {})
        return key

    def warm_up(self) -> None:
        """First calls pay imports (corrct), allocator and torch start-up: keep them out of the timings."""
        from nxsci.recon import simulate_case

        ds = simulate_case(phantom="battery", size=24, sampling=0.25, seed=123)
        y = ds.signal(ds.elements[-1])
        self.solve("pinv", {"rank": self.args.pinv_rank}, ds, y)
        self.solve("tv", {"weight": 1e-5}, ds, y)
        self.solve("tv", {"weight": 1e-5, "backend": "pdhg", "iterations": 20}, ds, y)
        self.solve("guided-tv", {"weight": 1e-5}, ds, y)
        self.solve("tv", {"cv_folds": 2, "weight_range": (1e-5, 1e-4)}, ds, y)
        self.solve_all("composition-tv", {"cv_folds": 2, "weight_range": (1e-5, 1e-4)}, ds)
        self.solve_all("siren", {"steps": 3, "warm_steps": 3, "warm_start": "none"}, ds)
        self.solve_all("siren-paper", {"steps": 2}, ds.subset(np.arange(ds.num_patterns)))
        _metrics(ds.truth(ds.elements[-1]), ds.truth(ds.elements[-1]))

    def _oracle_fitter(self, sub: Any, y: np.ndarray) -> "_OracleFitter":
        return _OracleFitter(sub, y)

    def run_case(self, image: str, element: str, seed: int, pct: float, sub: Any, prev_oracle: dict[str, float],
                 methods: Sequence[str], oracle_elements: Sequence[str],
                 binder: np.ndarray | None) -> tuple[list[dict], list[dict]]:
        """Every requested row of one case. ``element`` is Table A's; ``oracle_elements`` get a TV-oracle
        (the headline needs every element's); every-element rows score every element."""
        a = self.args
        n = sub.num_patterns
        h, w = sub.image_shape
        m = h * w
        truth = sub.truth(element).astype(np.float64)
        y = sub.signal(element)
        rows: list[dict] = []
        oracle_records: list[dict] = []
        oracle_weight: dict[str, float] = {}
        cv_weight: float | None = None

        def emit(method: str, status: str, *, el: str = element, x: np.ndarray | None = None,
                 rec: dict | None = None, reason: str = "", weight: float | None = None,
                 extra: dict | None = None) -> None:
            row = {"image": image, "element": el, "seed": seed, "sampling_pct": pct, "n": n, "m": m,
                   "method": method, "status": status, "reason": reason}
            if x is not None:
                row.update(_metrics(x, sub.truth(el).astype(np.float64), binder))
            if rec is not None:
                row.update(seconds=rec["seconds"], cpu_seconds=rec["cpu_seconds"], peak_mb=rec["peak_mb"])
                row["info"] = rec.get("info", {})
            row["weight"] = weight
            row.update(extra or {})
            rows.append(row)
            self.done += 1
            if status == "ok":
                msg = (f"PSNR {row['psnr']:6.2f} dB  SSIM {row['ssim']:.3f}  {row['seconds']:7.1f} s "
                       f"(cpu {row['cpu_seconds']:6.1f})  {row['peak_mb']:7.1f} MB"
                       + (f"  w={weight:.2e}" if weight is not None else "")
                       + (f"  binder {100 * row['binder_ratio']:.1f} %" if "binder_ratio" in row else ""))
            else:
                msg = f"{status} ({reason})"
            self.log(f"[{self.done}/{self.total}] {image}/{el} {pct:g}% (N={n}) seed {seed} {method:<17} {msg}")

        def guarded(method: str, fn: Callable[[], None], els: Sequence[str] = (element,)) -> None:
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - a failing method is reported, never dropped
                for el in els:
                    emit(method, "failed", el=el, reason=f"{type(exc).__name__}: {exc}")

        cv_params: dict[str, Any] = {"seed": seed}
        if a.cv_folds is not None:
            cv_params["cv_folds"] = a.cv_folds

        def run_point() -> None:
            total_dose = float(sub.patterns.sum(dtype=np.float64))
            rng = np.random.default_rng(np.random.SeedSequence([seed, 7, zlib.crc32(image.encode()), n]))
            with self.probe.measure() as rec:
                x, info = point_scan(truth, n, total_dose, rng, a.point_interp)
            rec["info"] = {**info, "si_mean_counts_per_pattern": float(np.mean(y))}
            emit("point", "ok", x=x, rec=rec)

        def run_pinv() -> None:
            from nxsci.recon import get_solver

            params: dict[str, Any] = {"rank": a.pinv_rank}
            cap = ""
            has_folds = "cv_folds" in get_solver("pinv").params.model_dump()
            if has_folds and a.pinv_rank == "cv":
                folds = a.cv_folds if a.cv_folds is not None else get_solver("pinv").params.cv_folds
                if n * m > a.cv_max_entries and folds > PINV_CAPPED_FOLDS:
                    folds = PINV_CAPPED_FOLDS
                    cap = (f"cost cap: rank by {folds}-fold CV (one SVD per fold) because N*M = {n * m:.2e} > "
                           f"--cv-max-entries {a.cv_max_entries:.2e}")
                params["cv_folds"] = folds
            x, rec = self.solve("pinv", params, sub, y)
            emit("pinv", "ok", x=x, rec=rec, extra={"capped": cap} if cap else None)

        def run_cv(method: str) -> None:
            nonlocal cv_weight
            x, rec = self.solve(method, cv_params, sub, y)
            wgt = float(rec["info"]["weight"])
            if method == "tv":
                cv_weight = wgt
            emit(method, "ok", x=x, rec=rec, weight=wgt)

        def run_oracle(el: str) -> None:
            t0 = time.perf_counter()
            y_el = sub.signal(el)
            truth_el = sub.truth(el).astype(np.float64)
            fitter = self._oracle_fitter(sub, y_el)

            def fit(wgt: float) -> dict[str, Any]:
                t1 = time.perf_counter()
                x, info = fitter(wgt)
                met = _metrics(x, truth_el)
                self.log(f"      oracle {el} w={wgt:.2e}: PSNR {met['psnr']:.2f} dB, "
                         f"{info.get('iterations')} it, {time.perf_counter() - t1:.1f} s")
                return {**met, **info, "weight": wgt}

            if el in prev_oracle:  # the previous sampling's oracle weight: a close guess, quarter steps
                kb, runs = oracle_search(fit, round(4 * math.log10(prev_oracle[el])), step=1)
            else:  # this case's CV weight or Table A element's oracle (often several-fold off): half-decades
                start = (cv_weight if el == element else None) or oracle_weight.get(element) or ORACLE_DEFAULT_START
                kb, runs = oracle_search(fit, 2 * round(2 * math.log10(start)), step=2)
            k0 = next(iter(runs))  # the first grid point evaluated is the start
            record = {
                "image": image, "element": el, "seed": seed, "sampling_pct": pct, "n": n, "m": m,
                "weight": runs[kb]["weight"], "k": kb, "mode": fitter.mode, "fits": len(runs),
                "start_weight": 10.0 ** (k0 / 4.0), "at_grid_edge": kb in ORACLE_K_RANGE,
                "psnr_search_at_best": runs[kb]["psnr"],
                "grid": [{key: runs[k][key] for key in ("weight", "psnr", "ssim", "iterations")} for k in sorted(runs)]}
            search_s = time.perf_counter() - t0
            record["search_seconds"] = search_s
            oracle_records.append(record)
            oracle_weight[el] = record["weight"]
            if "tv-oracle" in methods:  # the reported result: a fresh, cold library solve at that weight
                x, rec = self.solve("tv", {"weight": record["weight"]}, sub, y_el)
                emit("tv-oracle", "ok", el=el, x=x, rec=rec, weight=record["weight"],
                     extra={"search_seconds": search_s, "search_fits": len(runs), "search_mode": fitter.mode})

        def run_pdhg(method: str, iterations: int) -> None:
            if element not in oracle_weight:
                emit(method, "skipped", reason="no oracle weight: the oracle search failed")
                return
            wgt = oracle_weight[element]
            x, rec = self.solve("tv", {"weight": wgt, "backend": "pdhg", "iterations": iterations}, sub, y)
            emit(method, "ok", x=x, rec=rec, weight=wgt)

        def run_all(key: str) -> None:
            method, params = self.row_params(key)
            extra: dict[str, Any] = {"all_elements": len(sub.elements), "library_method": method,
                                     "overrides": params}
            if method == "siren-paper":
                steps, probe = self._paper_steps(method, params, sub)
                params = {**params, "steps": steps}
                extra.update(paper_steps=steps, paper_probe=probe, cell_note=f"[{steps} st]", overrides=params)
            maps, rec = self.solve_all(method, params, sub)
            for el, x in zip(sub.elements, maps):
                emit(key, "ok", el=el, x=x, rec=rec, weight=_info_weight(rec["info"]["per_element"][el]),
                     extra=extra)

        oracle_tried = False
        for method in methods:
            if method == "point":
                guarded(method, run_point)
            elif method == "pinv":
                guarded(method, run_pinv)
            elif method in CV_METHODS:
                if n * m > a.cv_max_entries:
                    emit(method, "skipped",
                         reason=f"CV cost: N*M = {n * m:.2e} > --cv-max-entries {a.cv_max_entries:.2e}; K-fold "
                                f"cross-validation multiplies a solve by folds x weights (see the script docstring)")
                    continue
                guarded(method, lambda method=method: run_cv(method))
            elif method in ("tv-oracle", "tv-pdhg", "tv-under"):  # one oracle search per element serves all
                if not oracle_tried:
                    oracle_tried = True
                    for el in oracle_elements:
                        guarded("tv-oracle", lambda el=el: run_oracle(el), els=(el,))
                if method == "tv-pdhg":
                    guarded(method, lambda: run_pdhg("tv-pdhg", a.pdhg_iterations))
                elif method == "tv-under":
                    guarded(method, lambda: run_pdhg("tv-under", a.under_iterations))
            elif method in self.specs:
                guarded(method, lambda method=method: run_all(method), els=sub.elements)
            else:
                raise ValueError(f"unknown benchmark row {method!r}")
        return rows, oracle_records

    def _paper_steps(self, method: str, params: dict[str, Any], sub: Any) -> tuple[int, dict[str, Any]]:
        """Steps of the paper configuration that fit --paper-budget-s: a short probe measures s/step."""
        from nxsci.recon import PatternPhysics, get_solver

        solver = get_solver(method, {**params, "steps": PAPER_PROBE_STEPS})
        t0 = time.perf_counter()
        res = solver.reconstruct_all(sub.signal(sub.elements[0])[None, :], PatternPhysics(sub.patterns),
                                     guide=sub.txm)
        probe_s = time.perf_counter() - t0
        sps = float(res[0].info.get("seconds_per_step") or probe_s / PAPER_PROBE_STEPS)
        networks = 1 if solver.params.joint else len(sub.elements)
        steps = max(1, int(self.args.paper_budget_s / (sps * networks)))
        self.log(f"      siren-paper probe: {sps:.2f} s/step x {networks} network(s) -> {steps} steps for "
                 f"{self.args.paper_budget_s:g} s ({probe_s:.1f} s probe, not timed)")
        return steps, {"seconds_per_step": sps, "networks": networks, "probe_seconds": probe_s,
                       "probe_steps": PAPER_PROBE_STEPS, "budget_s": self.args.paper_budget_s}


def _info_weight(info: dict[str, Any]) -> float | None:
    w = info.get("weight")
    return float(w) if isinstance(w, (int, float)) else None


# -- reporting -------------------------------------------------------------------------------------


def method_label(method: str, args: argparse.Namespace, report: dict[str, Any] | None = None) -> str:
    labels = (report or {}).get("labels", {})
    if method in labels:
        return labels[method]
    return {
        "point": f"Point scan (equal dose, {args.point_interp} interp.)",
        "pinv": f"Pseudo-inverse (TSVD, rank {args.pinv_rank})",
        "tv": "TV, auto weight (K-fold CV)",
        "tv-oracle": "TV-oracle (converged, best weight vs truth)",
        "tv-pdhg": f"TV PDHG {args.pdhg_iterations} it (oracle weight)",
        "tv-under": f"TV under-converged (PDHG {args.under_iterations} it, oracle weight)",
        "guided-tv": "Guided TV, auto weight (K-fold CV)",
    }.get(method, method)


def row_labels(runner: Runner, args: argparse.Namespace, default_keys: dict[str, str]) -> dict[str, Any]:
    """Labels of the every-element rows (ablations say when they equal the library default) + their specs."""
    from nxsci.recon import get_solver

    base = {
        "composition-tv": "Composition TV, auto weight (larger of CV and discrepancy) ‡",
        "siren": "SIREN (library defaults) ‡",
        "siren-no-prior": "SIREN, no TXM gradient prior (txm_prior=false) ‡",
        "siren-map": "SIREN, map output, no composition (output=map) ‡",
        "siren-per-element": "SIREN, one network per element (joint=false) ‡",
        "siren-cold": "SIREN, no warm start (warm_start=none) ‡",
        "siren-paper": f"SIREN, paper config, {args.paper_budget_s:g} s budget [steps] ‡",
    }
    labels: dict[str, str] = {}
    specs: dict[str, Any] = {}
    for key, (method, over) in runner.specs.items():
        lab = base.get(key, f"{method} (library defaults) ‡")
        defaults = get_solver(method).params.model_dump()
        same = [k for k, v in over.items() if defaults.get(k) == v]
        if same:
            lab = lab.replace(" ‡", f" (= default: {', '.join(same)}) ‡")
        if method == "siren" and args.siren_set:
            lab = lab.replace(" ‡", f" [+ {json.dumps(args.siren_set)}] ‡")
        if key in default_keys.values():
            lab = lab.replace(" ‡", " — default method ‡")
        labels[key] = lab
        specs[key] = {"method": method, "overrides": runner.row_params(key)[1], "equals_default": same}
    return {"labels": labels, "specs": specs}


def _mean_std(values: list[float], fmt: str) -> str:
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(float(np.mean(values)), fmt)}±{format(float(np.std(values)), fmt)}"


def _cell(rows: list[dict], keys: tuple[str, ...], fmts: tuple[str, ...], *, notes: bool = True) -> str:
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        if not rows:
            return "—"
        r = rows[0]
        short = r["reason"].split(":")[0] if r["status"] == "skipped" else r["reason"][:60]
        return f"{r['status']} ({short})"
    parts = [_mean_std([r[k] for r in ok], f) for k, f in zip(keys, fmts)]
    txt = " / ".join(parts) + (" †" if any(r.get("capped") for r in ok) else "")
    cell_notes = sorted({r["cell_note"] for r in ok if r.get("cell_note")})
    if notes and cell_notes:
        txt += " " + " ".join(cell_notes)
    if len(ok) < len(rows):
        txt += f" (only {len(ok)} of {len(rows)} seeds; see detail)"
    return txt


def _table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def _pct(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{100 * v:.1f}"


def _element_order(el: str) -> tuple[int, str]:
    order = ("Mn", "Co", "Ni")
    return (order.index(el) if el in order else len(order), el)


def headline_summary(report: dict[str, Any], args: argparse.Namespace) -> dict[str, Any] | None:
    """Margins of the default method over the TV-oracle per (sampling, seed, element), time per case."""
    key = report.get("default_keys", {}).get("battery")
    if not args.headline_seeds or key is None:
        return None
    res = [r for r in report["results"] if r["image"] == "battery" and r["seed"] in args.headline_seeds]
    cases, margins, binder_d, binder_o = [], [], [], []
    elements: list[str] = []
    for pct in sorted(args.samplings):
        for seed in args.headline_seeds:
            here = [r for r in res if r["sampling_pct"] == pct and r["seed"] == seed]
            dflt = {r["element"]: r for r in here if r["method"] == key}
            orc = {r["element"]: r for r in here if r["method"] == "tv-oracle"}
            if not dflt and not orc:
                continue
            case: dict[str, Any] = {"sampling_pct": pct, "seed": seed, "n": (here[0]["n"] if here else None),
                                    "elements": {}}
            for el in sorted(set(dflt) | set(orc), key=_element_order):
                if el not in elements:
                    elements.append(el)
                d, o = dflt.get(el), orc.get(el)
                e: dict[str, Any] = {"default_status": d["status"] if d else "missing",
                                     "oracle_status": o["status"] if o else "missing"}
                if d and d["status"] == "ok":
                    e.update(default_psnr=d["psnr"], default_binder=d.get("binder_ratio"))
                    binder_d.append(d.get("binder_ratio", float("nan")))
                if o and o["status"] == "ok":
                    e.update(oracle_psnr=o["psnr"], oracle_binder=o.get("binder_ratio"))
                    binder_o.append(o.get("binder_ratio", float("nan")))
                if "default_psnr" in e and "oracle_psnr" in e:
                    e["margin_db"] = e["default_psnr"] - e["oracle_psnr"]
                    margins.append((e["margin_db"], pct, seed, el))
                case["elements"][el] = e
            d0 = next((r for r in dflt.values() if r["status"] == "ok"), None)
            if d0 is not None:
                case.update(seconds=d0["seconds"], cpu_seconds=d0["cpu_seconds"], peak_mb=d0["peak_mb"])
            cases.append(case)
    expected = len(cases) * len(elements)
    times = [c["seconds"] for c in cases if "seconds" in c]
    cpu = [c["cpu_seconds"] for c in cases if "cpu_seconds" in c]
    worst = min(margins) if margins else None
    fin = lambda v: [x for x in v if isinstance(x, (int, float)) and math.isfinite(x)]  # noqa: E731
    elements.sort(key=_element_order)
    return {
        "method_key": key, "method": report["default_methods"]["battery"], "elements": elements, "cases": cases,
        "margins_measured": len(margins), "margins_expected": expected,
        "min_margin_db": worst[0] if worst else None,
        "min_margin_case": {"sampling_pct": worst[1], "seed": worst[2], "element": worst[3]} if worst else None,
        "mean_margin_db": float(np.mean([m[0] for m in margins])) if margins else None,
        "all_margins_ge_target": bool(margins) and len(margins) == expected
        and all(m[0] >= TARGET_MARGIN_DB for m in margins),
        "margins_below_target": sum(m[0] < TARGET_MARGIN_DB for m in margins),
        "max_seconds": max(times) if times else None, "max_cpu_seconds": max(cpu) if cpu else None,
        "cases_within_time": sum(t <= TARGET_SECONDS for t in times), "cases_timed": len(times),
        "binder_default_max": max(fin(binder_d)) if fin(binder_d) else None,
        "binder_default_mean": float(np.mean(fin(binder_d))) if fin(binder_d) else None,
        "binder_oracle_mean": float(np.mean(fin(binder_o))) if fin(binder_o) else None,
    }


def render_headline(h: dict[str, Any], args: argparse.Namespace) -> list[str]:
    els = h["elements"]
    hdr = (["Sampling", "Seed", "N"] + [f"{el}: default − oracle (dB)" for el in els]
           + [f"binder/particles, default ({' / '.join(els)}), %", "time all elements: wall s (CPU s)", "peak MB"])
    body = []
    for c in h["cases"]:
        cells = []
        for el in els:
            e = c["elements"].get(el, {})
            if "margin_db" in e:
                cells.append(f"{e['default_psnr']:.2f} − {e['oracle_psnr']:.2f} = **{e['margin_db']:+.2f}**")
            else:
                cells.append(f"default {e.get('default_status', 'missing')}, "
                             f"oracle {e.get('oracle_status', 'missing')}")
        binder = " / ".join(_pct(c["elements"].get(el, {}).get("default_binder")) for el in els)
        t = f"{c['seconds']:.1f} ({c['cpu_seconds']:.1f})" if "seconds" in c else "n/a"
        pk = f"{c['peak_mb']:.0f}" if "peak_mb" in c else "n/a"
        body.append([f"{c['sampling_pct']:g} %", str(c["seed"]), str(c["n"]), *cells, binder, t, pk])
    mm = h["min_margin_db"]
    mc = h["min_margin_case"]
    lines = [f"## Headline — default method `{h['method']}` vs TV-oracle, battery {args.size}x{args.size}, "
             f"seeds {' '.join(map(str, args.headline_seeds))}, every element", "", _table(hdr, body), "",
             f"- minimum margin: **{mm:+.2f} dB**" + (f" ({mc['element']}, {mc['sampling_pct']:g} %, seed {mc['seed']})"
                                                     if mc else "") if mm is not None else "- minimum margin: n/a",
             f"- mean margin: {h['mean_margin_db']:+.2f} dB" if h["mean_margin_db"] is not None
             else "- mean margin: n/a",
             f"- every margin >= {TARGET_MARGIN_DB:g} dB: **{'yes' if h['all_margins_ge_target'] else 'no'}** "
             f"({h['margins_below_target']} of {h['margins_measured']} below; "
             f"{h['margins_measured']} of {h['margins_expected']} margins measured)",
             f"- time <= {TARGET_SECONDS:g} s for all elements: {h['cases_within_time']} of {h['cases_timed']} cases "
             f"(max {h['max_seconds']:.1f} s wall, {h['max_cpu_seconds']:.1f} s CPU; BLAS/torch one thread each, the "
             f"library's own parallelism as by default)"
             if h["max_seconds"] is not None else "- time: n/a",
             f"- binder painting (mean over binder / mean over the element's particles; truth 0 %): default "
             f"{_pct(h['binder_default_mean'])} % mean, {_pct(h['binder_default_max'])} % max; TV-oracle (no TXM) "
             f"{_pct(h['binder_oracle_mean'])} % mean", ""]
    return lines


def render_markdown(report: dict[str, Any], args: argparse.Namespace) -> str:
    mach, res = report["machine"], report["results"]
    out = ["# Reconstruction quality vs sampling ratio (Fig. 3C-style), TXM-aware methods, headline", ""]
    out += [
        f"- date (UTC): {mach['date_utc']}; run time: {report['total_seconds'] / 60:.1f} min"
        + ("" if report["complete"] else " (INCOMPLETE: partial results)"),
        f"- machine: {mach['host']}, {mach['cpu_model']}, os.cpu_count() = {mach['cpu_count']} "
        f"({mach['cpus_usable']} usable), {mach['memory_gb']} GB RAM; {mach['platform']}",
        f"- load average (1/5/15 min) at start: {mach.get('load_average_at_start')}, at end: "
        f"{report.get('load_average_at_end')} (other jobs share the CPUs: wall times are inflated, CPU times less)",
        f"- software: nxsci {mach['nxsci']}, Python {mach['python']}, numpy {mach['numpy']}, scipy {mach['scipy']}, "
        f"torch {mach['torch']}, corrct {mach['corrct']}; BLAS: {', '.join(mach['blas'])}",
        "- threads: BLAS/OpenMP limited to 1 (threadpoolctl), torch.set_num_threads(1); a solver that runs its own "
        "threads by default (e.g. elements in parallel) keeps them: CPU time > wall time shows it"
        + (f"; OPENBLAS_NUM_THREADS={mach['openblas_num_threads_env']}"
           if mach.get("openblas_num_threads_env") else ""),
        f"- memory: {report['memory_method']}",
        f"- command: `{report['command']}`",
        f"- library state: {report.get('library_state', 'n/a')}",
        *([f"- REUSED rows (not rerun): {json.dumps(report['reused']['rows_by_method'])} from the run of "
           f"{report['reused']['date_utc']} (`{report['reused']['command']}`; library state "
           f"{report['reused']['library_state']}; load average at its start "
           f"{report['reused']['load_average_at_start']})"] if report.get("reused") else []),
        "- parameters:", "", "```json", json.dumps(report["params"], indent=None), "```", "",
        "PSNR = 10 log10(range(truth)^2 / MSE) (standard; the paper's code used max/MSE, so values differ from "
        "its figure). FRC = Fourier ring correlation resolution vs the truth, 1/7 threshold, in pixels (lower is "
        "better). Scored against the noiseless truth map; Table A: battery element "
        f"{args.element} only (not an element average). Table seeds: {' '.join(map(str, args.seeds))}"
        + (" (mean±std)" if len(args.seeds) > 1 else "") + ". ‡ = one `reconstruct_all` call for every element: "
        "time and memory are for ALL elements (the other rows: one element).", ""]
    pcts = args.samplings
    labels = lambda m: method_label(m, args, report)  # noqa: E731
    for image in args.images:
        el = args.element if image == "battery" else "X"
        rows_i = [r for r in res if r["image"] == image and r["seed"] in args.seeds]
        n_of = {p: next((r["n"] for r in rows_i if r["sampling_pct"] == p), None) for p in pcts}
        hdr = ["Method"] + [f"{p:g} % (N={n_of[p]})" for p in pcts]
        present = {r["method"] for r in rows_i}
        table_methods = [m for m in [*METHODS, *report.get("labels", {})] if m in present]
        table_methods = list(dict.fromkeys(table_methods))
        body_q, body_c = [], []
        for method in table_methods:
            sel = {p: [r for r in rows_i if r["method"] == method and r["sampling_pct"] == p and r["element"] == el]
                   for p in pcts}
            body_q.append([labels(method)] + [_cell(sel[p], ("psnr", "ssim", "frc_px"), (".2f", ".3f", ".1f"))
                                              for p in pcts])
            body_c.append([labels(method)] + [_cell(sel[p], ("seconds", "cpu_seconds", "peak_mb"),
                                                    (".1f", ".1f", ".0f")) for p in pcts])
        out += [f"## Table A — {image} ({el}), {args.size}x{args.size}: PSNR (dB) / SSIM / FRC (px)", "",
                _table(hdr, body_q), "",
                f"## Table A (cost) — {image}: wall time (s) / CPU time (s) / peak memory (MB), same run", "",
                _table(hdr, body_c), ""]
        elements = list(dict.fromkeys(r["element"] for r in rows_i if r.get("all_elements")))
        if len(elements) > 1:
            multi = [m for m in table_methods if m == "tv-oracle" or m in report.get("labels", {})]
            body_b, body_bind = [], []
            for method in table_methods:
                per = {p: [[r for r in rows_i if r["method"] == method and r["sampling_pct"] == p
                            and r["element"] == e] for e in elements] for p in pcts}
                if method in multi:
                    body_b.append([labels(method)] + [" / ".join(_cell(rs, ("psnr",), (".2f",), notes=False)
                                                                 for rs in per[p]) for p in pcts])
                body_bind.append([labels(method)] + [
                    " / ".join(_mean_std([100 * r["binder_ratio"] for r in rs if r["status"] == "ok"
                                          and "binder_ratio" in r], ".1f") if rs else "—" for rs in per[p])
                    for p in pcts])
            out += [f"## Table B — {image}, every element ({' / '.join(elements)}): PSNR (dB)", "",
                    _table(hdr, body_b), ""]
            if image == "battery":
                out += [f"## Table C — binder painting: mean over the binder mask / mean over the element's particles "
                        f"(%), {' / '.join(elements)} (truth: 0; — = element not reconstructed by that row)", "",
                        _table(hdr, body_bind), ""]
    h = report.get("headline")
    if h:
        out += render_headline(h, args)
    det_hdr = ["Image", "Sampling", "N", "Seed", "Element", "Method", "PSNR (dB)", "SSIM", "FRC (px)", "Binder %",
               "Time (s)", "CPU (s)", "Peak (MB)", "Weight", "Notes"]
    det = []
    for r in res:
        note = ""
        if r["status"] != "ok":
            note = f"{r['status']}: {r['reason']}"
        elif r["method"] == "point":
            i = r["info"]
            note = (f"{i['grid'][0]}x{i['grid'][1]} = {i['points']} points, {i['mean_counts_per_point']:.3g} counts/pt "
                    f"(SI: {i['si_mean_counts_per_pattern']:.3g}/pattern)")
        elif r["method"] == "pinv":
            prm = r["info"].get("params", {})
            note = (f"rank {r['info'].get('rank')} of {r['info'].get('max_rank')} (rule {prm.get('rank')}"
                    + (f", {prm['cv_folds']} folds" if prm.get("rank") == "cv" and "cv_folds" in prm else "") + ")")
            if r.get("capped"):
                note += f"; † {r['capped']}"
        elif r["method"] == "tv-oracle":
            note = (f"{r['info'].get('backend')}, {r['info'].get('iterations')} it; search: {r['search_fits']} fits, "
                    f"{r['search_seconds']:.1f} s")
        elif r["method"] in ("tv-pdhg", "tv-under"):
            note = f"{r['info'].get('backend')}, {r['info'].get('iterations')} it"
        elif r["method"] in CV_METHODS:
            i = r["info"]
            cv = i.get("cross_validation", {})
            note = (f"{i.get('backend')}, {i.get('iterations')} it; CV {cv.get('folds')} folds x "
                    f"{len(cv.get('grid', []))} weights, rule {cv.get('rule')}")
            if "min_weight" in i:
                note += f", guidance min_weight {i['min_weight']}"
        elif r.get("all_elements"):
            i = r["info"].get("per_element", {}).get(r["element"], {})
            bits = [f"all {r['all_elements']} elements in one call", f"overrides {json.dumps(r.get('overrides', {}))}"]
            for k in ("output", "lam", "steps_run", "best_step", "warm_start", "warm_start_seconds",
                      "seconds_per_step", "joint_elements"):
                if k in i:
                    v = i[k]
                    bits.append(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}")
            if r.get("paper_probe"):
                pp = r["paper_probe"]
                bits.append(f"probe {pp['seconds_per_step']:.2f} s/step x {pp['networks']} networks -> "
                            f"{r['paper_steps']} steps for {pp['budget_s']:g} s")
            note = "; ".join(bits)
        if r.get("reused_from"):
            note = f"(reused from {r['reused_from']}) " + note
        ok = r["status"] == "ok"
        det.append([r["image"], f"{r['sampling_pct']:g} %", str(r["n"]), str(r["seed"]), r["element"], r["method"],
                    f"{r['psnr']:.2f}" if ok else "", f"{r['ssim']:.3f}" if ok else "",
                    f"{r['frc_px']:.2f}" if ok else "",
                    _pct(r.get("binder_ratio")) if ok and "binder_ratio" in r else "",
                    f"{r['seconds']:.2f}" if ok else "",
                    f"{r['cpu_seconds']:.2f}" if ok else "", f"{r['peak_mb']:.1f}" if ok else "",
                    _fmt_weight(r.get("weight")) if ok else "", note])
    out += ["## Detail (every solve)", "", _table(det_hdr, det), ""]
    if report["oracle_searches"]:
        out += ["## Oracle weight searches (grid 10^(k/4); library default TV solver run to its tolerance)", ""]
        for o in report["oracle_searches"]:
            pts = ", ".join(f"{g['weight']:.1e}: {g['psnr']:.2f} ({g['iterations']} it)" for g in o["grid"])
            edge = " (best at the grid edge!)" if o["at_grid_edge"] else ""
            out.append(f"- {o['image']}/{o['element']} {o['sampling_pct']:g} % seed {o['seed']}: best "
                       f"{o['weight']:.2e}{edge}; start {o['start_weight']:.1e}; {o['fits']} fits in "
                       f"{o['search_seconds']:.1f} s [{o['mode']}]; PSNR by weight: {pts}")
        out.append("")
    out += ["## Notes", "",
            "- Cases: `simulate_case(phantom, size, sampling, seed)` per sampling (the headline's cases); samplings "
            "of one seed share patterns (the first N of one diffuser schedule), not noise.",
            "- Point scanning: same N and same total incident dose as the structured-illumination run "
            "(dose per point = total pattern dose / points, on one pixel), Poisson counts, then interpolated; "
            "see the script docstring for the exact rule.",
            "- TV / guided TV auto weight: the library's defaults (solver, K-fold cross-validation and its rule"
            + ("" if args.cv_folds is None else f"; folds set to {args.cv_folds}") + "), recorded per solve in "
            f"the JSON. Cells marked skipped have N*M > --cv-max-entries {args.cv_max_entries:.2e}.",
            f"- † cost cap: above --cv-max-entries the pseudo-inverse's rank cross-validation uses "
            f"{PINV_CAPPED_FOLDS} folds (one SVD each) instead of the library's default.",
            "- TV-oracle: weight by ground truth; time/memory are one cold solve at that weight; the search "
            "cost is listed above. tv-pdhg / tv-under: corrct PDHG at the same weight, fixed iteration counts.",
            "- ‡ rows: library defaults plus only the overrides in their label, all elements per call; SIREN's "
            "joint mode trains one network for all elements. siren-paper: steps set per case from a "
            f"{PAPER_PROBE_STEPS}-step probe so the call fits --paper-budget-s {args.paper_budget_s:g} s.",
            f"- Binder painting: particles = truth > {PARTICLE_FRACTION:g} x the element's maximum; binder mask "
            "from `battery_phantom(size, seed)`.", ""]
    return "\n".join(out)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items() if k != "x"}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else str(f)
    if isinstance(obj, (np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _write_pair(md: str, report: dict[str, Any], out_dir: Path, stem: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.md").write_text(md + "\n")
    tmp = out_dir / f"{stem}.json.tmp"
    tmp.write_text(json.dumps(_jsonable(report), indent=1, allow_nan=False) + "\n")
    tmp.replace(out_dir / f"{stem}.json")


def _write(report: dict[str, Any], args: argparse.Namespace) -> str:
    report["headline"] = headline_summary(report, args)
    md = render_markdown(report, args)
    _write_pair(md, report, args.out_dir, "recon_quality")
    return md


def library_state() -> str:
    """The git commit of the library and whether recon/ has uncommitted changes (they do change results)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        last = subprocess.run(["git", "log", "-1", "--format=%h", "--", "recon"], cwd=root, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        head = f"{head} (last recon/ commit {last})"
        dirty = [line for line in subprocess.run(["git", "status", "--porcelain", "--", "recon"], cwd=root,
                                                 capture_output=True, text=True, timeout=10).stdout.splitlines()
                 if line.strip()]
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"
    if not dirty:
        return f"commit {head}, recon/ clean"
    import hashlib

    diff = subprocess.run(["git", "diff", "HEAD", "--", "recon"], cwd=root, capture_output=True, timeout=10).stdout
    return (f"commit {head}, recon/ with {len(dirty)} uncommitted change(s) "
            f"({', '.join(d[3:] for d in dirty)}; diff sha256 {hashlib.sha256(diff).hexdigest()[:12]})")


# -- main ------------------------------------------------------------------------------------------


def _reusable(old: list[dict[str, Any]], image: str, seed: int, pct: float, method: str,
              elements: Sequence[str]) -> bool:
    got = {r["element"] for r in old if r["image"] == image and r["seed"] == seed and r["sampling_pct"] == pct
           and r["method"] == method and r["status"] == "ok"}
    return set(elements) <= got


def _plan(args: argparse.Namespace, runner: Runner, old: list[dict[str, Any]] | None = None,
          ) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, str]]:
    """Every case and its rows; the default method per image (from a small simulation of that image).
    Rows the headline needs are added unless ``old`` (--reuse) already has them for that case."""
    from nxsci.recon import default_method, simulate_case

    default_names: dict[str, str] = {}
    default_keys: dict[str, str] = {}
    for image in args.images:
        probe = simulate_case(phantom=image, size=24, sampling=0.1, seed=0)
        default_names[image] = default_method(probe)
        default_keys[image] = runner.add_default(default_names[image])
    cases = []
    for image in args.images:
        element = args.element if image == "battery" else "X"
        headline_seeds = set(args.headline_seeds) if image == "battery" else set()
        for seed in sorted(set(args.seeds) | headline_seeds):
            for pct in sorted(args.samplings):  # small N first: its oracle weights seed the next search
                methods = list(args.methods) if seed in args.seeds else []
                oracle_elements = [element]
                if seed in headline_seeds:
                    all_el = [element, *[e for e in ("Mn", "Co", "Ni") if e != element]]
                    for needed in ("tv-oracle", default_keys[image]):
                        if needed not in methods and not _reusable(old or [], image, seed, pct, needed, all_el):
                            methods.append(needed)
                    if "tv-oracle" in methods:
                        oracle_elements = all_el
                order = {m: i for i, m in enumerate([*METHODS, *runner.specs])}
                methods.sort(key=lambda m: order[m])
                cases.append({"image": image, "element": element, "seed": seed, "pct": pct, "methods": methods,
                              "oracle_elements": oracle_elements})
    return cases, default_names, default_keys


def _case_rows(case: dict[str, Any], runner: Runner) -> int:
    n_el = 3 if case["image"] == "battery" else 1
    total = sum(n_el if m in runner.specs else 1 for m in case["methods"])
    if "tv-oracle" in case["methods"]:
        total += len(case["oracle_elements"]) - 1
    return total


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    import torch
    from threadpoolctl import threadpool_limits

    from nxsci.recon import battery_phantom, simulate_case

    t_start = time.perf_counter()
    params = {k: v for k, v in vars(args).items()}
    runner = Runner(args)
    mem_text = ("rss: peak RSS during each call minus RSS before it (kernel high-water mark reset via "
                "/proc/self/clear_refs; after gc + malloc_trim); inputs already in memory are not counted"
                if runner.probe.method == "rss" else
                "tracemalloc: peak of Python-allocator memory during each call (numpy; not LAPACK workspace/torch)")
    report: dict[str, Any] = {"machine": machine_info(), "params": _jsonable(params), "command": command,
                              "library_state": library_state(), "memory_method": mem_text, "results": [],
                              "oracle_searches": [], "complete": False, "total_seconds": 0.0}
    old_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            old = json.loads(args.reuse.read_text()) if args.reuse else None
            cases, default_names, default_keys = _plan(args, runner, old["results"] if old else None)
            report.update(default_methods=default_names, default_keys=default_keys,
                          **row_labels(runner, args, default_keys))
            if old is not None:
                _carry_over(report, old, cases, args)
            runner.total = sum(_case_rows(c, runner) for c in cases)
            np.random.seed(min(args.seeds))
            torch.manual_seed(min(args.seeds))
            runner.log(f"{len(cases)} cases, {runner.total} rows; default method(s): {default_names}")
            runner.log("warm-up (imports and first calls, not timed) ...")
            runner.warm_up()
            prev_oracle: dict[tuple[str, int], dict[str, float]] = {}
            for case in cases:
                image, seed, pct = case["image"], case["seed"], case["pct"]
                t0 = time.perf_counter()
                sub = simulate_case(phantom=image, size=args.size, sampling=pct / 100.0,
                                    pattern_model=args.pattern_model, feature_size=args.feature_size,
                                    photons=args.photons, seed=seed)
                if case["element"] not in sub.elements:
                    raise SystemExit(f"element {case['element']} not in {image} ({', '.join(sub.elements)})")
                binder = battery_phantom(args.size, seed).binder_mask if image == "battery" else None
                runner.log(f"simulated {image} seed {seed} {pct:g} %: {sub.num_patterns} patterns "
                           f"{args.size}x{args.size} in {time.perf_counter() - t0:.1f} s")
                prev = prev_oracle.setdefault((image, seed), {})
                rows, orcs = runner.run_case(image, case["element"], seed, pct, sub, prev, case["methods"],
                                             case["oracle_elements"], binder)
                report["results"].extend(rows)
                report["oracle_searches"].extend(orcs)
                prev.update({o["element"]: o["weight"] for o in orcs})
                report["total_seconds"] = time.perf_counter() - t_start
                report["load_average_at_end"] = _loadavg()
                _write(report, args)  # partial results survive an interrupted run
                del sub
    finally:
        torch.set_num_threads(old_threads)
    report["complete"] = True
    report["total_seconds"] = time.perf_counter() - t_start
    report["load_average_at_end"] = _loadavg()
    order = {m: i for i, m in enumerate([*METHODS, *runner.specs])}
    report["results"].sort(key=lambda r: (args.images.index(r["image"]) if r["image"] in args.images else 99,
                                          r["seed"], r["sampling_pct"], order.get(r["method"], 99),
                                          _element_order(r["element"])))
    return report


def _carry_over(report: dict[str, Any], old: dict[str, Any], cases: list[dict[str, Any]],
                args: argparse.Namespace) -> None:
    """--reuse: rows (and oracle searches) of the earlier run for the same cases whose method is not run now."""
    same = {k: old["params"].get(k) for k in ("size", "photons", "pattern_model", "feature_size")}
    now = {k: report["params"].get(k) for k in same}
    if same != now:
        raise SystemExit(f"--reuse: the earlier run simulated other cases ({same} vs now {now})")
    carried: dict[str, int] = {}
    for case in cases:
        key = (case["image"], case["seed"], case["pct"])
        for r in old["results"]:
            if (r["image"], r["seed"], r["sampling_pct"]) == key and r["method"] not in case["methods"]:
                report["results"].append({**r, "reused_from": old["machine"]["date_utc"]})
                carried[r["method"]] = carried.get(r["method"], 0) + 1
        if "tv-oracle" not in case["methods"]:
            report["oracle_searches"] += [o for o in old.get("oracle_searches", [])
                                          if (o["image"], o["seed"], o["sampling_pct"]) == key]
    for key in ("labels", "specs"):
        for k, v in old.get(key, {}).items():
            if k in carried:
                report[key][k] = v
    report["reused"] = {"path": str(args.reuse), "date_utc": old["machine"]["date_utc"], "command": old["command"],
                        "library_state": old.get("library_state"), "load_average_at_start":
                        old["machine"].get("load_average_at_start"), "rows_by_method": carried}


# -- scaling ---------------------------------------------------------------------------------------


def _scaling_child(spec: dict[str, Any]) -> int:
    """One scaling cell in this (child) process: warm up, simulate (untimed), announce, solve all elements."""
    import torch
    from threadpoolctl import threadpool_limits

    from nxsci.recon import PatternPhysics, default_method, get_solver, psnr, simulate_case

    def say(event: str, **kw: Any) -> None:
        print(json.dumps(_jsonable({"event": event, **kw})), flush=True)

    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        probe = Probe(spec["memory"])
        t0 = time.perf_counter()
        ds = simulate_case(phantom="battery", size=spec["size"], sampling=spec["pct"] / 100.0,
                           pattern_model=spec["pattern_model"], feature_size=spec["feature_size"],
                           photons=spec["photons"], seed=spec["seed"])
        name = default_method(ds) if spec["method"] == "default" else spec["method"]
        say("simulated", seconds=time.perf_counter() - t0, method=name, n=ds.num_patterns)
        small = simulate_case(phantom="battery", size=24, sampling=0.25, seed=123)  # first-call costs, untimed
        warm = {"steps": 3, "warm_steps": 3} if name.startswith("siren") else {}
        get_solver(name, {**spec["params"], **warm}).reconstruct_all(
            np.stack([small.signal(e) for e in small.elements]), PatternPhysics(small.patterns), guide=small.txm)
        solver = get_solver(name, spec["params"])
        physics = PatternPhysics(ds.patterns)
        ys = np.stack([ds.signal(e) for e in ds.elements])
        sigma = None if ds.signals_sigma is None else np.stack([ds.sigma(e) for e in ds.elements])
        input_mb = (ds.patterns.nbytes + physics.matrix.element_size() * physics.matrix.nelement()) / 1024**2
        say("start", method=name)
        with probe.measure() as rec:
            results = solver.reconstruct_all(ys, physics, guide=ds.txm, sigma=sigma)
        process_peak = _status_kb("VmHWM") / 1024 if probe.method == "rss" else None
        info0 = results[0].info
        say("done", method=name, seconds=rec["seconds"], cpu_seconds=rec["cpu_seconds"], peak_mb=rec["peak_mb"],
            process_peak_mb=process_peak, input_mb=input_mb, n=ds.num_patterns,
            psnr={e: float(psnr(r.x, ds.truth(e))) for e, r in zip(ds.elements, results)},
            info={k: info0[k] for k in ("weight", "lam", "steps_run", "best_step", "seconds_per_step",
                                        "warm_start_seconds", "output") if k in info0},
            params=solver.params.model_dump())
    return 0


def _run_scaling_cell(spec: dict[str, Any], budget: float, log: Callable[[str], None]) -> dict[str, Any]:
    """Run one cell in a child process; stop it when its solve passes the budget."""
    import queue
    import subprocess
    import threading

    cmd = [sys.executable, str(Path(__file__).resolve()), "--scaling-cell", json.dumps(spec)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=reader, daemon=True).start()
    events: dict[str, dict[str, Any]] = {}
    sim_deadline = time.monotonic() + max(900.0, budget)
    solve_deadline: float | None = None
    t_start_solve: float | None = None
    while True:
        deadline = solve_deadline if solve_deadline is not None else sim_deadline
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            proc.kill()
            proc.wait()
            if solve_deadline is not None:
                return {"status": "over budget", "reason": f"stopped after {budget:g} s (--scaling-budget-s)",
                        "seconds_lower_bound": time.monotonic() - (t_start_solve or time.monotonic()),
                        "simulated": events.get("simulated")}
            return {"status": "failed", "reason": "simulation did not finish in time"}
        if line is None:
            rc = proc.wait()
            if "done" in events:
                return {"status": "ok", **events["done"], "simulated": events.get("simulated")}
            why = "killed (out of memory?)" if rc in (-9, 137) else f"exit status {rc}"
            return {"status": "failed", "reason": f"child process ended without a result: {why}"}
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        events[ev.get("event", "?")] = ev
        if ev.get("event") == "start":
            t_start_solve = time.monotonic()
            solve_deadline = t_start_solve + budget
            log(f"      solving ({ev.get('method')}) ...")


def _scaling_skip(mkey: str, size: int, pct: float, n: int, m: int, cells: list[dict[str, Any]],
                  cap_mb: float, warm_of_siren: str | None) -> tuple[str, str] | None:
    """Why this cell is not run (reason, root cause), or None to run it (see the module docstring)."""
    from nxsci.recon._simulate import MAX_PATTERN_BYTES

    if n * m * 4 > MAX_PATTERN_BYTES:
        why = (f"patterns alone need {n * m * 4 / 1024**3:.1f} GiB (> the library's "
               f"{MAX_PATTERN_BYTES / 1024**3:g} GiB limit)")
        return why, why
    same = [c for c in cells if c["method_key"] == mkey]
    for c in same:
        if c["status"] in ("over budget", "skipped", "failed") and c["n"] <= n and c["m"] <= m \
                and not c.get("reason", "").startswith("patterns alone"):
            root = c.get("root_reason") or c.get("reason", "")
            if c["status"] == "over budget":
                return f"a smaller cell of this method ({c['size']} px, {c['pct']:g} %) ran past the budget", root
            return f"as the smaller cell {c['size']} px, {c['pct']:g} % ({c['status']}: {root})", root
    if mkey == "siren" and warm_of_siren is not None:
        warm = [c for c in cells if c["method_key"] == "default" and c.get("library_method") == warm_of_siren
                and c["size"] == size and c["pct"] == pct]
        if warm and warm[0]["status"] != "ok":
            why = f"its warm start ({warm_of_siren}, the default method) {warm[0]['status']} here"
            return why, why
    ok = [c for c in same if c["status"] == "ok"]
    if ok:
        ref = max(ok, key=lambda c: c["n"] * c["m"])
        ratio = (n * m) / (ref["n"] * ref["m"])
        mem = (ref["peak_mb"] + ref.get("input_mb", 0.0)) * ratio
        if mem > cap_mb:
            why = (f"predicted peak ~{mem / 1024:.1f} GB (measured {ref['peak_mb'] + ref.get('input_mb', 0):.0f} MB "
                   f"at {ref['size']} px {ref['pct']:g} %, scaled by N*M) > --scaling-memory-gb {cap_mb / 1024:.1f}")
            return why, why
    return None


def render_scaling(report: dict[str, Any], args: argparse.Namespace) -> str:
    mach = report["machine"]
    out = ["# Scaling: time and peak memory vs image size (all elements per call)", "",
           f"- date (UTC): {mach['date_utc']}; run time: {report['total_seconds'] / 60:.1f} min"
           + ("" if report["complete"] else " (INCOMPLETE: partial results)"),
           f"- machine: {mach['host']}, {mach['cpu_model']}, {mach['cpus_usable']} usable CPUs, {mach['memory_gb']} GB "
           f"RAM; load average at start {mach.get('load_average_at_start')}, at end "
           f"{report.get('load_average_at_end')}",
           "- BLAS/OpenMP and torch one thread (threadpoolctl, torch.set_num_threads(1)); a solver's own default "
           "threads (e.g. elements in parallel) are kept: CPU > wall shows them; each cell in a fresh child "
           "process, simulation untimed; battery phantom seed "
           f"{report['seed']}, two-diffuser patterns; budget {args.scaling_budget_s:g} s per solve, memory cap "
           f"{report['memory_cap_mb'] / 1024:.1f} GB",
           f"- command: `{report['command']}`",
           f"- library state: {report.get('library_state', 'n/a')}",
           *([f"- REUSED measured cells (not rerun; skipped cells decided anew) from the run of "
              f"{report['reused']['date_utc']} (`{report['reused']['command']}`; library state "
              f"{report['reused']['library_state']}); marked * in the table"] if report.get("reused") else []),
           "- cell: wall s / CPU s / peak MB above inputs (process peak MB) [N]; PSNR (dB) mean over Mn/Co/Ni in "
           "the detail", ""]
    pcts = args.scaling_samplings
    hdr = ["Method", "Size"] + [f"N = {p:g} % of M" for p in pcts]
    body = []
    for mkey in args.scaling_methods:
        for size in args.scaling_sizes:
            cells = {c["pct"]: c for c in report["cells"] if c["method_key"] == mkey and c["size"] == size}
            lib = next((c.get("library_method") for c in cells.values() if c.get("library_method")), None)
            row = [f"{mkey}" + (f" ({lib})" if lib and lib != mkey else ""), f"{size}x{size}"]
            for p in pcts:
                c = cells.get(p)
                star = "*" if c is not None and c.get("reused_from") else ""
                if c is None:
                    row.append("—")
                    continue
                if c["status"] == "ok":
                    pp = f" ({c['process_peak_mb']:.0f})" if c.get("process_peak_mb") else ""
                    row.append(f"{c['seconds']:.1f} / {c['cpu_seconds']:.1f} / {c['peak_mb']:.0f}{pp} "
                               f"[N={c['n']}]{star}")
                elif c["status"] == "over budget":
                    row.append(f"> {args.scaling_budget_s:g} s (stopped) [N={c['n']}]{star}")
                else:
                    row.append(f"{c['status']}: {c.get('reason', '')} [N={c['n']}]{star}")
            body.append(row)
    out += ["## Scaling table", "", _table(hdr, body), ""]
    det = [["Method", "Size", "Sampling", "N", "Status", "PSNR Mn/Co/Ni", "Time (s)", "CPU (s)", "Peak (MB)",
            "Process peak (MB)", "Inputs (MB)", "Info"]]
    for c in report["cells"]:
        ok = c["status"] == "ok"
        ps = " / ".join(f"{v:.2f}" for v in c.get("psnr", {}).values()) if ok else ""
        det.append([c["method_key"], f"{c['size']}", f"{c['pct']:g} %", str(c["n"]), c["status"], ps,
                    f"{c['seconds']:.1f}" if ok else "", f"{c['cpu_seconds']:.1f}" if ok else "",
                    f"{c['peak_mb']:.0f}" if ok else "",
                    f"{c['process_peak_mb']:.0f}" if ok and c.get("process_peak_mb") else "",
                    f"{c['input_mb']:.0f}" if ok else "",
                    json.dumps(c.get("info", {})) if ok else c.get("reason", "")])
    out += ["## Detail", "", _table(det[0], det[1:]), ""]
    return "\n".join(out)


def run_scaling(args: argparse.Namespace, command: str) -> dict[str, Any]:
    from nxsci.recon import get_solver

    t_start = time.perf_counter()
    cap_mb = (args.scaling_memory_gb * 1024) if args.scaling_memory_gb else 0.5 * _mem_available_gb() * 1024
    report: dict[str, Any] = {"machine": machine_info(), "params": _jsonable(vars(args)), "command": command,
                              "library_state": library_state(), "cells": [], "complete": False,
                              "total_seconds": 0.0, "memory_cap_mb": cap_mb, "seed": 0}
    siren_params = dict(args.siren_set)
    sp = get_solver("siren", siren_params).params
    # SIREN runs its warm-start method first; only when that is the default method with its own (cross-validated)
    # parameters is the default method's time a lower bound of SIREN's
    siren_warm = sp.warm_start if not getattr(sp, "warm_params", None) else None
    old: dict[tuple[str, int, float], dict[str, Any]] = {}
    if args.reuse:
        prev = json.loads(args.reuse.read_text())
        report["reused"] = {"path": str(args.reuse), "date_utc": prev["machine"]["date_utc"],
                            "command": prev["command"], "library_state": prev.get("library_state")}
        old = {(c["method_key"], c["size"], c["pct"]): c for c in prev["cells"] if c["status"] != "skipped"}
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    memory = "rss" if args.memory == "auto" and Probe._rss_works() else args.memory
    for size in args.scaling_sizes:
        m = size * size
        for pct in args.scaling_samplings:
            n = max(1, int(round(pct / 100.0 * m)))
            for mkey in args.scaling_methods:
                base = {"method_key": mkey, "size": size, "pct": pct, "n": n, "m": m}
                lib = None
                if report["cells"]:
                    lib = next((c.get("library_method") for c in report["cells"]
                                if c["method_key"] == mkey and c.get("library_method")), None)
                reason = _scaling_skip(mkey, size, pct, n, m, report["cells"], cap_mb, siren_warm)
                if (mkey, size, pct) in old:  # --reuse: measured before; skipped cells are decided anew
                    cell = {**old[(mkey, size, pct)], "reused_from": report["reused"]["date_utc"]}
                elif reason:
                    reason, root = reason
                    cell = {**base, "status": "skipped", "reason": reason, "root_reason": root, "library_method": lib}
                else:
                    log(f"scaling: {mkey} {size}x{size} {pct:g} % (N={n}) ...")
                    spec = {"size": size, "pct": pct, "seed": report["seed"], "method": mkey,
                            "params": siren_params if mkey == "siren" else {}, "memory": memory,
                            "photons": args.photons, "pattern_model": args.pattern_model,
                            "feature_size": args.feature_size}
                    got = _run_scaling_cell(spec, args.scaling_budget_s, log)
                    cell = {**base, **got, "library_method": got.get("method") or lib}
                    cell.pop("event", None)
                    if cell["library_method"] is None and got.get("simulated"):
                        cell["library_method"] = got["simulated"].get("method")
                    cell["n"] = n
                msg = (f"{cell['seconds']:.1f} s (cpu {cell['cpu_seconds']:.1f}), {cell['peak_mb']:.0f} MB"
                       if cell["status"] == "ok" else f"{cell['status']}: {cell.get('reason', '')}")
                log(f"scaling: {mkey} {size}x{size} {pct:g} % (N={n}): {msg}")
                report["cells"].append(cell)
                report["total_seconds"] = time.perf_counter() - t_start
                report["load_average_at_end"] = _loadavg()
                _write_pair(render_scaling(report, args), report, args.out_dir, "recon_scaling")
    report["complete"] = True
    report["total_seconds"] = time.perf_counter() - t_start
    report["load_average_at_end"] = _loadavg()
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.scaling_cell is not None:
        return _scaling_child(json.loads(args.scaling_cell))
    shown = list(argv) if argv is not None else sys.argv[1:]
    command = "python benchmarks/recon_quality.py" + "".join(f" {a}" for a in shown)
    with contextlib.redirect_stdout(sys.stderr):  # stray prints (e.g. corrct's import notice) stay off stdout
        if args.scaling:
            report = run_scaling(args, command)
        else:
            report = run(args, command)
    if args.scaling:
        md = render_scaling(report, args)
        _write_pair(md, report, args.out_dir, "recon_scaling")
        stem = "recon_scaling"
    else:
        md = _write(report, args)
        stem = "recon_quality"
    print(md)
    print(f"wrote {args.out_dir / (stem + '.md')} and {args.out_dir / (stem + '.json')} "
          f"({report['total_seconds'] / 60:.1f} min)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
