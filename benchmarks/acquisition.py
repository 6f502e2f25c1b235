"""Acquisition benchmarks: software overhead per illumination configuration, tiled ingest of 512x512
uint16 frames, and XRF fitting throughput. Prints markdown tables; raw numbers to ``--json``.

    python benchmarks/acquisition.py [--configs 512] [--repeats 3] [--marginal-configs 64] [--frames 100]
                                     [--json FILE] [--quick]

1. Overhead: ``nxsci_scan`` on the simulated beamline with zero move and exposure time (the simulation's
   ``move_time_s: 0``, ``acquire_time_scale: 0``). The time goes to the acquisition software (bluesky's
   RunEngine, ophyd, the plans, and the monitor callbacks a Channel Access client would run) and to the
   simulated hardware: the in-process IOC records (motor records, the camera's frame bookkeeping and HDF5
   archive, the Vortex's ROI sums) and the instrument model's physics (frames, spectra). The simulated records'
   CPU time is measured inside every record handler, in whichever thread it runs; a real IOC does that work on
   its own host. Software overhead = wall time - simulated records' CPU time (conservative: time a record spends
   waiting for the GIL counts as overhead). Reported per configuration, with and without a ``TiledWriter``
   into a tiled server on this machine; a run's fixed cost (darks, truth maps, staging, descriptors, baseline)
   and the marginal cost per configuration from runs of two or more sizes.
2. Ingest: a plan that records ``--frames`` 512x512 uint16 frames (no simulation) through ``TiledWriter``
   into a tiled server over HTTP (SQLite catalog, zarr arrays, duckdb tables), per writer batch size; and
   reading them back as one array.
3. Fitting: ``fit_run_spectra`` (PyMca: noise/Fano on the sum spectrum, then the fast linear fit) on N
   simulated 2048-channel spectra, calibration included.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

API_KEY = "nxsciBenchmarkKey0"


def _fast_config(directory: Path, size: int) -> Path:
    from nxsci.devices import SIM_CONFIG_PATH

    data = yaml.safe_load(SIM_CONFIG_PATH.read_text())
    data["devices"]["camera"]["write_path"] = str(directory / "txm") + "/"
    data["simulation"].update(image_size=size, timing={"move_time_s": 0, "acquire_time_scale": 0})
    path = directory / "beamline.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@contextlib.contextmanager
def _tiled(directory: Path) -> Iterator[Any]:
    """``nxsci tiled`` in its own process (as in production: no GIL shared with the RunEngine), and a
    catalog client to it."""
    import subprocess

    from nxsci.services import open_catalog

    directory.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "NXSCI_DATA_DIR": str(directory), "NXSCI_TILED_API_KEY": API_KEY}
    log = open(directory / "tiled.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "nxsci.cli", "tiled"], stdout=subprocess.PIPE, stderr=log,
                            text=True, env=env)
    try:
        assert proc.stdout is not None
        uri = proc.stdout.readline().strip()  # the URI line, printed once the catalog answers
        if not uri.startswith("http"):
            raise RuntimeError(f"nxsci tiled did not start: {(directory / 'tiled.log').read_text()[-2000:]}")
        with open_catalog(uri, api_key=API_KEY) as catalog:
            yield catalog
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()


def _timed_physics(model: Any) -> Callable[[], float]:
    """Wrap the instrument model's frame and spectrum computations; return a reader of the time spent."""
    spent = [0.0]
    for name in ("camera_frame", "vortex_acquire"):
        original = getattr(model, name)

        def wrapped(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - t0

        setattr(model, name, wrapped)
    return lambda: spent[0]


def _timed_records(beamline: Any) -> Callable[[], float]:
    """Wrap every simulated record's put handler; return a reader of the CPU seconds spent in them (the
    simulated IOC's processing, physics included, in whichever thread a record runs)."""
    spent = [0.0]
    handlers = beamline.store.db.handlers
    for name, handler in list(handlers.items()):

        def wrapped(value: Any, _handler: Any = handler) -> Any:
            c0 = time.thread_time()
            try:
                return _handler(value)
            finally:
                spent[0] += time.thread_time() - c0

        handlers[name] = wrapped
    return lambda: spent[0]


def _thread_cpu(prefix: str) -> float:
    """CPU seconds used so far by this process's live threads whose name starts with ``prefix``: the
    scheduler's nanosecond count (``schedstat``), else user + system clock ticks (10 ms steps, too coarse for
    short runs)."""
    import threading

    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for thread in threading.enumerate():
        if thread.name.startswith(prefix) and thread.native_id is not None:
            task = Path(f"/proc/self/task/{thread.native_id}")
            try:
                total += int((task / "schedstat").read_text().split()[0]) / 1e9
                continue
            except (OSError, ValueError, IndexError):
                pass
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def overhead(configs: int, repeats: int, size: int, work: Path, writer_configs: list[int],
             marginal_configs: list[int] | None = None) -> list[dict[str, Any]]:
    """Rows per run: ``repeats`` runs of ``configs`` configurations without a writer, one run per size in
    ``marginal_configs`` without a writer (with ``configs``: a run's fixed cost and the marginal cost per
    configuration), and one per size in ``writer_configs`` with ``TiledWriter``."""
    from nxsci.devices import load_config, make_beamline
    from nxsci.plans import RunEngine, nxsci_scan, use_beamline

    bl = make_beamline("sim", load_config(_fast_config(work, size)))
    use_beamline(bl)
    physics = _timed_physics(bl.model)
    records = _timed_records(bl)
    rows = []
    try:
        with _tiled(work / "tiled") as catalog:
            plain = [configs] * repeats + [n for n in (marginal_configs or []) if n != configs]
            for writer, sizes in (("none", plain), ("TiledWriter", writer_configs)):
                RE = RunEngine({}, call_returns_result=False)
                if writer == "TiledWriter":
                    RE.subscribe(catalog.writer())
                RE(nxsci_scan(num_patterns=4))  # warm up: descriptors, imports, first zarr/table nodes
                for n in sizes:
                    p0, s0, c0 = physics(), records(), time.process_time()
                    r0, m0, t0 = _thread_cpu("bluesky"), _thread_cpu("nxsci-sim-pv-dispatch"), time.perf_counter()
                    RE(nxsci_scan(num_patterns=n))
                    wall, cpu, phys, sim = (time.perf_counter() - t0, time.process_time() - c0, physics() - p0,
                                            records() - s0)
                    engine, monitor = _thread_cpu("bluesky") - r0, _thread_cpu("nxsci-sim-pv-dispatch") - m0
                    rows.append({"writer": writer, "configs": n, "image": size, "wall_s": wall, "sim_s": sim,
                                 "wall_ms": 1e3 * wall / n, "cpu_ms": 1e3 * cpu / n, "physics_ms": 1e3 * phys / n,
                                 "engine_cpu_ms": 1e3 * engine / n, "monitor_cpu_ms": 1e3 * monitor / n,
                                 "sim_ms": 1e3 * sim / n, "overhead_ms": 1e3 * (wall - sim) / n,
                                 "wall_minus_physics_ms": 1e3 * (wall - phys) / n})
    finally:
        bl.close()
    return rows


class _Frames:
    """A readable that returns a fresh 512x512 uint16 frame per trigger (no simulation cost)."""

    def __init__(self, shape: tuple[int, int] = (512, 512)) -> None:
        self.name, self.parent, self.shape = "camera", None, shape
        self._rng = np.random.default_rng(0)
        self._frame = self._rng.integers(0, 4096, shape, dtype=np.uint16)

    def trigger(self) -> Any:
        from ophyd.status import StatusBase

        self._frame = np.roll(self._frame, 1, axis=0)  # distinct content each frame, no RNG cost
        status = StatusBase()
        status.set_finished()
        return status

    def read(self) -> dict[str, Any]:
        return {"camera_image": {"value": self._frame.copy(), "timestamp": time.time()}}

    def describe(self) -> dict[str, Any]:
        return {"camera_image": {"source": "bench", "dtype": "array", "shape": list(self.shape), "dtype_numpy": "<u2"}}

    def read_configuration(self) -> dict[str, Any]:
        return {}

    def describe_configuration(self) -> dict[str, Any]:
        return {}


def ingest(frames: int, batch_sizes: list[int], work: Path) -> list[dict[str, Any]]:
    from bluesky import RunEngine
    from bluesky.plans import count
    from bluesky_tiled_plugins import TiledWriter

    rows = []
    with _tiled(work / "ingest") as catalog:
        detector = _Frames()
        megabytes = frames * detector._frame.nbytes / 1e6
        for batch in batch_sizes:
            RE = RunEngine({}, call_returns_result=False)
            RE.subscribe(TiledWriter(catalog.runs, batch_size=batch))
            t0 = time.perf_counter()
            (uid,) = RE(count([detector], num=frames))
            wall = time.perf_counter() - t0
            t1 = time.perf_counter()
            array = catalog.run(uid)["primary"]["camera_image"].read()
            read = time.perf_counter() - t1
            assert array.dtype == np.uint16 and array.shape == (frames, 512, 512)
            rows.append({"batch_size": batch, "frames": frames, "write_s": wall, "frames_per_s": frames / wall,
                         "write_MB_per_s": megabytes / wall, "read_s": read, "read_MB_per_s": megabytes / read})
    return rows


def fitting(sizes: list[int]) -> list[dict[str, Any]]:
    from nxsci.recon import SpectrumCalibration, synthesize_spectrum
    from nxsci.services import fit_run_spectra

    calib = SpectrumCalibration()
    elements = ["Mn", "Co", "Ni"]
    basis = np.array([synthesize_spectrum(calib, {e: 1.0}, excitation_keV=9.0) for e in elements])
    background = synthesize_spectrum(calib, {}, excitation_keV=9.0, background_counts=5e3, compton_counts=4e3,
                                     elastic_counts=2.5e3)
    rng = np.random.default_rng(0)
    warm = rng.poisson(np.full((8, 1), 1e3) @ basis[:1] + background).astype(np.int32)
    fit_run_spectra(warm, elements, zero_keV=0.0, gain_keV=0.01, excitation_keV=9.0)  # imports, PyMca tables
    rows = []
    for n in sizes:
        counts = rng.uniform(500, 2e4, (n, 3))
        spectra = rng.poisson(counts @ basis + background).astype(np.int32)
        t0 = time.perf_counter()
        fit = fit_run_spectra(spectra, elements, zero_keV=0.0, gain_keV=0.01, excitation_keV=9.0)
        wall = time.perf_counter() - t0
        bias = fit.areas.sum(axis=0) / counts.sum(axis=0) - 1
        rows.append({"spectra": n, "seconds": wall, "spectra_per_s": n / wall,
                     "max_total_bias_percent": float(100 * np.abs(bias).max())})
    return rows


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    head = "| " + " | ".join(c[1] for c in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(format(r[c[0]], c[2]) for c in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


#: per-configuration figures of an overhead row, in the summary
_PER_CONFIGURATION = ("wall_ms", "cpu_ms", "engine_cpu_ms", "monitor_cpu_ms", "sim_ms", "physics_ms", "overhead_ms",
                      "wall_minus_physics_ms")


def _summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median over the repeats without a writer; with the writer, a line ``wall = fixed + N x marginal``."""
    plain = [r for r in rows if r["writer"] == "none"]
    plain = [r for r in plain if r["configs"] == plain[0]["configs"]]  # the repeated size
    out = [{"writer": "none", "configs": str(plain[0]["configs"]), "image": f"{plain[0]['image']}^2",
            **{k: float(np.median([r[k] for r in plain])) for k in _PER_CONFIGURATION}}]
    tiled = [r for r in rows if r["writer"] == "TiledWriter"]
    for r in tiled:
        out.append({"writer": "TiledWriter", "configs": str(r["configs"]), "image": f"{r['image']}^2",
                    **{k: r[k] for k in _PER_CONFIGURATION}})
    return out


def _fixed_and_marginal(rows: list[dict[str, Any]]) -> dict[str, float] | None:
    """Least-squares ``wall = fixed + N x marginal`` over runs of two or more sizes (and the same for the
    software overhead, wall minus the simulated records' CPU time)."""
    if len({r["configs"] for r in rows}) < 2:
        return None
    n = np.array([r["configs"] for r in rows], dtype=float)
    wall = np.array([r["wall_s"] for r in rows])
    sim = np.array([r["sim_s"] for r in rows])
    marginal, fixed = np.polyfit(n, wall, 1)
    marginal_overhead, fixed_overhead = np.polyfit(n, wall - sim, 1)
    return {"fixed_s": float(fixed), "marginal_ms": float(1e3 * marginal),
            "fixed_overhead_s": float(fixed_overhead), "marginal_overhead_ms": float(1e3 * marginal_overhead)}


def _plain_cost(rows: list[dict[str, Any]]) -> dict[str, float] | None:
    """Fixed (per run) and marginal (per configuration) cost of runs without a writer."""
    return _fixed_and_marginal([r for r in rows if r["writer"] == "none"])


def _writer_cost(rows: list[dict[str, Any]]) -> dict[str, float] | None:
    """Fixed (per run) and marginal (per configuration) wall time of runs written through TiledWriter."""
    fit = _fixed_and_marginal([r for r in rows if r["writer"] == "TiledWriter"])
    if fit is None:
        return None
    plain = _plain_cost(rows)
    plain_marginal = plain["marginal_ms"] if plain else float(np.median([r["wall_ms"] for r in rows
                                                                         if r["writer"] == "none"]))
    return {"fixed_s": fit["fixed_s"], "marginal_ms": fit["marginal_ms"], "extra_ms": fit["marginal_ms"] - plain_marginal}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", type=int, default=512, help="configurations per repeated run without a writer")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--writer-configs", type=int, nargs="+", default=[64, 256],
                        help="run sizes with TiledWriter (two or more: fixed + per-configuration cost)")
    parser.add_argument("--marginal-configs", type=int, nargs="*", default=[64],
                        help="further run sizes without a writer (with --configs: fixed + per-configuration cost)")
    parser.add_argument("--image", type=int, default=64, help="simulated camera size for the overhead runs")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--spectra", type=int, nargs="+", default=[256, 1024, 4096, 16384])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.configs, args.repeats, args.frames, args.batch_sizes, args.spectra = 8, 1, 5, [5], [256]
        args.writer_configs, args.marginal_configs = [4, 8], [4]
    with tempfile.TemporaryDirectory(prefix="nxsci-bench-") as tmp:
        work = Path(tmp)
        over = overhead(args.configs, args.repeats, args.image, work, args.writer_configs, args.marginal_configs)
        ing = ingest(args.frames, args.batch_sizes, work)
        fit = fitting(args.spectra)
    meta = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M UTC"), "machine": platform.node(),
            "cpus": os.cpu_count(), "load_average": os.getloadavg(), "python": sys.version.split()[0],
            "command": "python benchmarks/acquisition.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    summary = _summary(over)
    plain_cost = _plain_cost(over)
    writer_cost = _writer_cost(over)
    print(f"Measured {meta['date']}, {meta['cpus']} CPUs, load average {meta['load_average'][0]:.2f} at the end\n")
    print("Per illumination configuration (zero-time simulated motors and detectors; without a writer: median of "
          "the repeats)\n")
    print(_table(summary, [("writer", "subscriber", "s"), ("configs", "configurations", "s"), ("image", "frame", "s"),
                           ("wall_ms", "wall ms", ".1f"), ("cpu_ms", "CPU ms (all threads)", ".1f"),
                           ("engine_cpu_ms", "RunEngine thread CPU ms", ".1f"),
                           ("monitor_cpu_ms", "monitor thread CPU ms", ".1f"),
                           ("sim_ms", "simulated records CPU ms", ".1f"), ("physics_ms", "of it physics (wall) ms", ".1f"),
                           ("overhead_ms", "software overhead ms", ".1f")]))
    print("\nsoftware overhead = wall - simulated records' CPU time (motor records, camera, Vortex, physics)")
    if plain_cost:
        print(f"\nRuns without a writer: {1e3 * plain_cost['fixed_s']:.0f} ms per run + {plain_cost['marginal_ms']:.1f} ms "
              f"per configuration (wall; software overhead: {1e3 * plain_cost['fixed_overhead_s']:.0f} ms + "
              f"{plain_cost['marginal_overhead_ms']:.1f} ms), least squares over the run sizes without a writer")
    if writer_cost:
        print(f"\nTiledWriter runs: {writer_cost['fixed_s']:.2f} s per run + {writer_cost['marginal_ms']:.1f} ms "
              f"per configuration (least squares over the run sizes above), i.e. the writer adds "
              f"{writer_cost['extra_ms']:.1f} ms per configuration to the run without it")
    print("\nTiled ingest of 512x512 uint16 frames (TiledWriter -> tiled over HTTP, SQLite + zarr + duckdb)\n")
    print(_table(ing, [("batch_size", "writer batch", "d"), ("frames", "frames", "d"),
                       ("frames_per_s", "frames/s", ".1f"), ("write_MB_per_s", "write MB/s", ".1f"),
                       ("read_MB_per_s", "read-back MB/s", ".1f")]))
    print("\nXRF fitting (PyMca: noise/Fano on the sum spectrum + fast linear fit), 2048 channels, 3 elements\n")
    print(_table(fit, [("spectra", "spectra", "d"), ("seconds", "seconds", ".2f"),
                       ("spectra_per_s", "spectra/s", ".0f"), ("max_total_bias_percent", "max total bias %", ".2f")]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "overhead": over, "overhead_summary": summary,
                                         "plain_cost": plain_cost, "writer_cost": writer_cost, "ingest": ing, "fitting": fit}, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
