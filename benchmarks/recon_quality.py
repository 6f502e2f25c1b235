"""Reconstruction quality vs sampling ratio, like the paper's Fig. 3C (PSNR / SSIM at 100/50/25/5 %).

Run ``python benchmarks/recon_quality.py`` (full run, ~25-30 min on 2 cores) or ``--quick`` (smoke run, a few
minutes). Markdown tables go to stdout and ``benchmarks/out/recon_quality.md``; every number (per seed, the
solver info and the oracle weight searches) goes to ``benchmarks/out/recon_quality.json``; one progress
line per solve goes to stderr. ``main(argv)`` runs it from Python (``main(["--quick", "--out-dir", tmp])``);
importing the module runs nothing.

Cases
    For each image and seed, one structured-illumination experiment is simulated at the largest requested
    sampling with :func:`nxsci.recon.simulate_case` (two-diffuser patterns, Poisson XRF counts, noisy
    recorded pattern frames); each lower sampling uses the first N of those patterns (a random subset,
    since diffuser positions are i.i.d.), like stopping the acquisition early. Samplings run from the
    smallest N up. Images: the battery phantom scored on ONE element map (``--element``, default Ni; not
    an average over elements) and natural images (single map "X"). Every method is scored against the
    noiseless truth map in signal units.

Methods (``--methods``; TV parameters not named here are the library's defaults, recorded in the JSON)
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
               and memory are those of one solve (the search total is in the notes and JSON).
    tv-pdhg    corrct's PDHG (``backend="pdhg"``) for ``--pdhg-iterations`` (2000) at the oracle weight: the
               peers' reference, nominally converged.
    tv-under   PDHG stopped after ``--under-iterations`` (300) at the oracle weight: under-converged TV.
    guided-tv  TXM-edge-weighted TV, weight (and guidance strength) by the library's cross-validation.

Cost control (never silent)
    Cross-validation multiplies the cost of a solve by folds x weights. Measured on one core at 80x80 (library
    of 2026-11-26): tv auto ~7 s at N=320, ~1 min at N=1600, ~2.7 min at N=3200; guided-tv about twice that,
    N=6400 more still. The auto-weight methods (tv, guided-tv) therefore run only where N*M <=
    ``--cv-max-entries`` (default 1.1e7, i.e. up to 25 % at 80x80); other cells read "skipped (reason)".
    ``--cv-folds`` lowers the folds if you raise that limit. The oracle costs ~5-7 converged solves sharing
    one factorisation; the pseudo-inverse SVD at N=6400 takes ~2 min single-threaded.

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
    outside the timed region; everything the solver does, e.g. the operator norm, factorisations and CV, is
    inside). Every solver is first run once on a 24x24 problem so imports and first-call costs are not
    timed. BLAS and OpenMP run single-threaded (threadpoolctl) and torch uses 1 thread: one-core numbers.
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

METHODS: tuple[str, ...] = ("point", "pinv", "tv", "tv-oracle", "tv-pdhg", "tv-under", "guided-tv")
CV_METHODS = ("tv", "guided-tv")
DEFAULTS: dict[str, Any] = {"size": 80, "samplings": [100.0, 50.0, 25.0, 5.0], "images": ["battery", "camera"],
                            "seeds": [0]}
QUICK: dict[str, Any] = {"size": 48, "samplings": [25.0, 5.0], "images": ["battery"], "seeds": [0]}
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
        description="Fig. 3C-style benchmark: PSNR/SSIM vs sampling ratio for point scanning, pseudo-inverse, "
                    "TV (auto / oracle / under-converged) and guided TV, with wall time and peak memory.",
        epilog="Details (dose rule, memory method, cost caps): see the module docstring.")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 48x48, samplings 25 5 %%, battery only, seed 0 (explicit flags still win)")
    p.add_argument("--size", type=int, default=None,
                   help=f"image size in px (default {DEFAULTS['size']}; --quick: {QUICK['size']})")
    p.add_argument("--samplings", type=float, nargs="+", default=None, metavar="PCT",
                   help="sampling ratios N/M in percent (default 100 50 25 5; --quick: 25 5)")
    p.add_argument("--images", nargs="+", default=None, metavar="NAME",
                   help="'battery' and/or natural image names, e.g. camera coins "
                        "(default battery camera; --quick: battery)")
    p.add_argument("--element", default="Ni",
                   help="battery element map that is reconstructed and scored (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="simulation seeds (default 0)")
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
    return p


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = _parser()
    args = p.parse_args(list(argv) if argv is not None else None)
    base = QUICK if args.quick else DEFAULTS
    for key, value in base.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    from nxsci.recon import PHANTOMS, get_solver  # noqa: PLC0415 (keep `import recon_quality` cheap)

    bad = [im for im in args.images if im not in PHANTOMS]
    if bad:
        p.error(f"unknown image(s) {bad}; choose from {', '.join(PHANTOMS)}")
    if args.size < 16:
        p.error("--size must be >= 16")
    if any(not (0 < s <= 100) for s in args.samplings):
        p.error("--samplings are percentages in (0, 100]")
    if args.pinv_rank is None:  # record the library's default explicitly
        args.pinv_rank = get_solver("pinv").params.rank
    elif args.pinv_rank.lstrip("-").isdigit():
        args.pinv_rank = int(args.pinv_rank)
    try:
        get_solver("pinv", {"rank": args.pinv_rank})
    except Exception as exc:  # noqa: BLE001 - the library's own message names the valid choices
        p.error(f"--pinv-rank: {exc}")
    args.samplings = sorted(set(args.samplings), reverse=True)
    args.methods = [m for m in METHODS if m in args.methods]  # canonical order
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
    }


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


def _metrics(x: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    from nxsci.recon import frc_resolution, psnr, ssim

    return {"psnr": float(psnr(x, truth)), "ssim": float(ssim(x, truth)),
            "frc_px": float(frc_resolution(x, truth)), "mse": float(np.mean((x.astype(np.float64) - truth) ** 2))}


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
            self.fitter = _ADMMFitter(a, physics.img_shape, y / self.scale, params)
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
                x, state = self.fitter(wgt * self.norm2, 1.0, rows=None, key=-1, warm=warm)
                self.states[wgt] = state
                x = (np.asarray(x, dtype=np.float64) * self.scale).astype(np.float32)
                return x, {"iterations": getattr(state, "iterations", None)}
            except TypeError as exc:  # signature changed
                if self.states:
                    raise
                self.fitter = None
                self.mode = f"public solver calls (fast path unavailable: {type(exc).__name__}: {exc})"
        return self._public(wgt)


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.probe = Probe(args.memory)
        self.done = 0
        self.total = 0

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
        _metrics(ds.truth(ds.elements[-1]), ds.truth(ds.elements[-1]))

    def _oracle_fitter(self, sub: Any, y: np.ndarray) -> "_OracleFitter":
        return _OracleFitter(sub, y)

    def run_case(self, image: str, element: str, seed: int, pct: float, sub: Any,
                 prev_oracle: float | None) -> tuple[list[dict], dict | None]:
        a = self.args
        n = sub.num_patterns
        h, w = sub.image_shape
        m = h * w
        truth = sub.truth(element).astype(np.float64)
        y = sub.signal(element)
        base = {"image": image, "element": element, "seed": seed, "sampling_pct": pct, "n": n, "m": m}
        rows: list[dict] = []
        oracle_record: dict | None = None
        cv_weight: float | None = None

        def emit(method: str, status: str, *, x: np.ndarray | None = None, rec: dict | None = None,
                 reason: str = "", weight: float | None = None, extra: dict | None = None) -> None:
            row = {**base, "method": method, "status": status, "reason": reason}
            if x is not None:
                row.update(_metrics(x, truth))
            if rec is not None:
                row.update(seconds=rec["seconds"], cpu_seconds=rec["cpu_seconds"], peak_mb=rec["peak_mb"])
                row["info"] = rec.get("info", {})
            row["weight"] = weight
            row.update(extra or {})
            rows.append(row)
            self.done += 1
            if status == "ok":
                msg = (f"PSNR {row['psnr']:6.2f} dB  SSIM {row['ssim']:.3f}  {row['seconds']:7.1f} s  "
                       f"{row['peak_mb']:7.1f} MB" + (f"  w={weight:.2e}" if weight is not None else ""))
            else:
                msg = f"{status} ({reason})"
            self.log(f"[{self.done}/{self.total}] {image}/{element} {pct:g}% (N={n}) seed {seed} {method:<9} {msg}")

        def guarded(method: str, fn: Callable[[], None]) -> None:
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - a failing method is reported, never dropped
                emit(method, "failed", reason=f"{type(exc).__name__}: {exc}")

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

        def run_oracle() -> None:
            nonlocal oracle_record
            t0 = time.perf_counter()
            fitter = self._oracle_fitter(sub, y)

            def fit(wgt: float) -> dict[str, Any]:
                t1 = time.perf_counter()
                x, info = fitter(wgt)
                met = _metrics(x, truth)
                self.log(f"      oracle grid w={wgt:.2e}: PSNR {met['psnr']:.2f} dB, "
                         f"{info.get('iterations')} it, {time.perf_counter() - t1:.1f} s")
                return {**met, **info, "weight": wgt}

            if prev_oracle is not None:  # the previous sampling's oracle weight: a close guess, quarter steps
                kb, runs = oracle_search(fit, round(4 * math.log10(prev_oracle)), step=1)
            else:  # this case's CV weight (often several-fold off) or a default: half-decade steps first
                start = cv_weight or ORACLE_DEFAULT_START
                kb, runs = oracle_search(fit, 2 * round(2 * math.log10(start)), step=2)
            k0 = next(iter(runs))  # the first grid point evaluated is the start
            oracle_record = {
                **base, "weight": runs[kb]["weight"], "k": kb, "mode": fitter.mode, "fits": len(runs),
                "start_weight": 10.0 ** (k0 / 4.0), "at_grid_edge": kb in ORACLE_K_RANGE,
                "psnr_search_at_best": runs[kb]["psnr"],
                "grid": [{key: runs[k][key] for key in ("weight", "psnr", "ssim", "iterations")} for k in sorted(runs)]}
            search_s = time.perf_counter() - t0
            if "tv-oracle" in a.methods:  # the reported result: a fresh, cold library solve at that weight
                x, rec = self.solve("tv", {"weight": oracle_record["weight"]}, sub, y)
                emit("tv-oracle", "ok", x=x, rec=rec, weight=oracle_record["weight"],
                     extra={"search_seconds": search_s, "search_fits": len(runs), "search_mode": fitter.mode})
            oracle_record["search_seconds"] = search_s

        def run_pdhg(method: str, iterations: int) -> None:
            if oracle_record is None:
                emit(method, "skipped", reason="no oracle weight: the oracle search failed")
                return
            wgt = oracle_record["weight"]
            x, rec = self.solve("tv", {"weight": wgt, "backend": "pdhg", "iterations": iterations}, sub, y)
            emit(method, "ok", x=x, rec=rec, weight=wgt)

        oracle_tried = False
        for method in a.methods:
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
            else:  # tv-oracle, tv-pdhg, tv-under: one oracle search serves all three
                if not oracle_tried:
                    oracle_tried = True
                    guarded("tv-oracle", run_oracle)
                if method == "tv-pdhg":
                    guarded(method, lambda: run_pdhg("tv-pdhg", a.pdhg_iterations))
                elif method == "tv-under":
                    guarded(method, lambda: run_pdhg("tv-under", a.under_iterations))
        return rows, oracle_record


# -- reporting -------------------------------------------------------------------------------------


def method_label(method: str, args: argparse.Namespace) -> str:
    return {
        "point": f"Point scan (equal dose, {args.point_interp} interp.)",
        "pinv": f"Pseudo-inverse (TSVD, rank {args.pinv_rank})",
        "tv": "TV, auto weight (K-fold CV)",
        "tv-oracle": "TV-oracle (converged, best weight vs truth)",
        "tv-pdhg": f"TV PDHG {args.pdhg_iterations} it (oracle weight)",
        "tv-under": f"TV under-converged (PDHG {args.under_iterations} it, oracle weight)",
        "guided-tv": "Guided TV, auto weight (K-fold CV)",
    }[method]


def _mean_std(values: list[float], fmt: str) -> str:
    if not values:
        return "n/a"
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(float(np.mean(values)), fmt)}±{format(float(np.std(values)), fmt)}"


def _cell(rows: list[dict], keys: tuple[str, str], fmts: tuple[str, str]) -> str:
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        if not rows:
            return "—"
        r = rows[0]
        short = r["reason"].split(":")[0] if r["status"] == "skipped" else r["reason"][:60]
        return f"{r['status']} ({short})"
    parts = [_mean_std([r[k] for r in ok], f) for k, f in zip(keys, fmts)]
    txt = " / ".join(parts) + (" †" if any(r.get("capped") for r in ok) else "")
    if len(ok) < len(rows):
        txt += f" (only {len(ok)} of {len(rows)} seeds; see detail)"
    return txt


def _table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def render_markdown(report: dict[str, Any], args: argparse.Namespace) -> str:
    mach, res = report["machine"], report["results"]
    out = ["# Reconstruction quality vs sampling ratio (Fig. 3C-style)", ""]
    out += [
        f"- date (UTC): {mach['date_utc']}; run time: {report['total_seconds'] / 60:.1f} min"
        + ("" if report["complete"] else " (INCOMPLETE: partial results)"),
        f"- machine: {mach['host']}, {mach['cpu_model']}, os.cpu_count() = {mach['cpu_count']} "
        f"({mach['cpus_usable']} usable), {mach['memory_gb']} GB RAM; {mach['platform']}",
        f"- software: nxsci {mach['nxsci']}, Python {mach['python']}, numpy {mach['numpy']}, scipy {mach['scipy']}, "
        f"torch {mach['torch']}, corrct {mach['corrct']}; BLAS: {', '.join(mach['blas'])}",
        "- threads: BLAS/OpenMP limited to 1 (threadpoolctl), torch.set_num_threads(1): one-core timings",
        f"- memory: {report['memory_method']}",
        f"- command: `{report['command']}`",
        "- parameters:", "", "```json", json.dumps(report["params"], indent=None), "```", "",
        "PSNR = 10 log10(range(truth)^2 / MSE) (standard; the paper's code used max/MSE, so values differ from "
        "its figure). Scored against the noiseless truth map; battery: element "
        f"{args.element} only (not an element average). Seeds: {len(args.seeds)}"
        + (" (mean±std)" if len(args.seeds) > 1 else "") + ".", ""]
    pcts = args.samplings
    for image in args.images:
        el = args.element if image == "battery" else "X"
        rows_i = [r for r in res if r["image"] == image]
        n_of = {p: next((r["n"] for r in rows_i if r["sampling_pct"] == p), None) for p in pcts}
        hdr = ["Method"] + [f"{p:g} % (N={n_of[p]})" for p in pcts]
        body_q, body_c = [], []
        for method in args.methods:
            sel = {p: [r for r in rows_i if r["method"] == method and r["sampling_pct"] == p] for p in pcts}
            body_q.append([method_label(method, args)]
                          + [_cell(sel[p], ("psnr", "ssim"), (".2f", ".3f")) for p in pcts])
            body_c.append([method_label(method, args)] + [_cell(sel[p], ("seconds", "peak_mb"), (".1f", ".0f"))
                                                          for p in pcts])
        out += [f"## Table A — {image} ({el}), {args.size}x{args.size}: PSNR (dB) / SSIM", "",
                _table(hdr, body_q), "",
                f"## Table A (cost) — {image} ({el}): wall time (s) / peak memory (MB), same run", "",
                _table(hdr, body_c), ""]
    det_hdr = ["Image", "Sampling", "N", "Seed", "Method", "PSNR (dB)", "SSIM", "FRC (px)", "Time (s)",
               "CPU (s)", "Peak (MB)", "Weight", "Notes"]
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
        ok = r["status"] == "ok"
        det.append([r["image"], f"{r['sampling_pct']:g} %", str(r["n"]), str(r["seed"]), r["method"],
                    f"{r['psnr']:.2f}" if ok else "", f"{r['ssim']:.3f}" if ok else "",
                    f"{r['frc_px']:.2f}" if ok else "", f"{r['seconds']:.2f}" if ok else "",
                    f"{r['cpu_seconds']:.2f}" if ok else "", f"{r['peak_mb']:.1f}" if ok else "",
                    _fmt_weight(r.get("weight")) if ok else "", note])
    out += ["## Detail (every solve)", "", _table(det_hdr, det), ""]
    if report["oracle_searches"]:
        out += ["## Oracle weight searches (grid 10^(k/4); library default TV solver run to its tolerance)", ""]
        for o in report["oracle_searches"]:
            pts = ", ".join(f"{g['weight']:.1e}: {g['psnr']:.2f} ({g['iterations']} it)" for g in o["grid"])
            edge = " (best at the grid edge!)" if o["at_grid_edge"] else ""
            out.append(f"- {o['image']} {o['sampling_pct']:g} % seed {o['seed']}: best {o['weight']:.2e}{edge}; "
                       f"start {o['start_weight']:.1e}; {o['fits']} fits in {o['search_seconds']:.1f} s "
                       f"[{o['mode']}]; PSNR by weight: {pts}")
        out.append("")
    out += ["## Notes", "",
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
            "- Lower samplings use the first N patterns of one simulated acquisition (nested subsets).", ""]
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
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _write(report: dict[str, Any], args: argparse.Namespace) -> str:
    md = render_markdown(report, args)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "recon_quality.md").write_text(md + "\n")
    tmp = args.out_dir / "recon_quality.json.tmp"
    tmp.write_text(json.dumps(_jsonable(report), indent=1, allow_nan=False) + "\n")
    tmp.replace(args.out_dir / "recon_quality.json")
    return md


# -- main ------------------------------------------------------------------------------------------


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    import torch
    from threadpoolctl import threadpool_limits

    from nxsci.recon import simulate_case

    t_start = time.perf_counter()
    params = {k: v for k, v in vars(args).items()}
    runner = Runner(args)
    mem_text = ("rss: peak RSS during each call minus RSS before it (kernel high-water mark reset via "
                "/proc/self/clear_refs; after gc + malloc_trim); inputs already in memory are not counted"
                if runner.probe.method == "rss" else
                "tracemalloc: peak of Python-allocator memory during each call (numpy; not LAPACK workspace/torch)")
    report: dict[str, Any] = {"machine": machine_info(), "params": _jsonable(params), "command": command,
                              "memory_method": mem_text, "results": [], "oracle_searches": [],
                              "complete": False, "total_seconds": 0.0}
    per_case = len(args.methods)
    runner.total = len(args.images) * len(args.seeds) * len(args.samplings) * per_case
    old_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            np.random.seed(min(args.seeds))
            torch.manual_seed(min(args.seeds))
            runner.log("warm-up (imports and first calls, not timed) ...")
            runner.warm_up()
            for image in args.images:
                element = args.element if image == "battery" else "X"
                for seed in args.seeds:
                    t0 = time.perf_counter()
                    ds = simulate_case(phantom=image, size=args.size, sampling=max(args.samplings) / 100.0,
                                       pattern_model=args.pattern_model, feature_size=args.feature_size,
                                       photons=args.photons, seed=seed)
                    if element not in ds.elements:
                        raise SystemExit(f"element {element} not in {image} ({', '.join(ds.elements)})")
                    runner.log(f"simulated {image} seed {seed}: {ds.num_patterns} patterns "
                               f"{args.size}x{args.size} in {time.perf_counter() - t0:.1f} s")
                    prev_oracle: float | None = None
                    for pct in sorted(args.samplings):  # small N first: its oracle weight seeds the next search
                        n = max(1, int(round(pct / 100.0 * args.size**2)))
                        sub = ds.subset(np.arange(n))
                        rows, orc = runner.run_case(image, element, seed, pct, sub, prev_oracle)
                        report["results"].extend(rows)
                        if orc is not None:
                            report["oracle_searches"].append(orc)
                            prev_oracle = orc["weight"]
                        report["total_seconds"] = time.perf_counter() - t_start
                        _write(report, args)  # partial results survive an interrupted run
                    del ds
    finally:
        torch.set_num_threads(old_threads)
    report["complete"] = True
    report["total_seconds"] = time.perf_counter() - t_start
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    shown = list(argv) if argv is not None else sys.argv[1:]
    command = "python benchmarks/recon_quality.py" + "".join(f" {a}" for a in shown)
    with contextlib.redirect_stdout(sys.stderr):  # stray prints (e.g. corrct's import notice) stay off stdout
        report = run(args, command)
    md = _write(report, args)
    print(md)
    print(f"wrote {args.out_dir / 'recon_quality.md'} and {args.out_dir / 'recon_quality.json'} "
          f"({report['total_seconds'] / 60:.1f} min)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
