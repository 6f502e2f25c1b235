"""``nxsci`` command line: simulate, analyse patterns, reconstruct, demo, simulated beamline IOC.

User errors (bad files, unknown elements, invalid parameters) print one line naming the problem and
exit with status 2; heavy libraries are imported inside the commands so ``nxsci --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

EXIT_USAGE = 2


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _params(pairs: Sequence[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--param expects KEY=VALUE, got '{pair}'")
        out[key.strip().replace("-", "_")] = _parse_value(value.strip())
    return out


def _elements(text: str | None) -> list[str] | None:
    return None if text is None else [e for e in (s.strip() for s in text.split(",")) if e]


def cmd_simulate(args: argparse.Namespace) -> int:
    from nxsci.recon import save_dataset, simulate_case

    ds = simulate_case(phantom=args.phantom, size=args.size, sampling=args.sampling,
                       pattern_model=args.pattern_model, feature_size=args.feature_size, photons=args.photons,
                       seed=args.seed, shift_sigma=args.shift_sigma, background=args.background)
    path = save_dataset(ds, args.output, overwrite=args.overwrite)
    print(f"wrote {path}: {ds.num_patterns} patterns of {ds.image_shape[0]}x{ds.image_shape[1]} "
          f"(sampling {ds.sampling_ratio:.1%}), elements {', '.join(ds.elements)}")
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from nxsci.recon import check_writable, file_sha256, load_dataset, reconstruct, save_result

    check_writable(args.output, args.overwrite)  # fail before hours of work, not after
    ds = load_dataset(args.input)
    register = None if args.register == "auto" else args.register == "yes"
    result = reconstruct(ds, method=args.method, elements=_elements(args.elements), params=_params(args.param),
                         device=args.device, register=register, progress=not args.quiet)
    result.provenance.update(input_file=str(Path(args.input).resolve()), input_sha256=file_sha256(args.input))
    path = save_result(result, args.output, overwrite=args.overwrite)
    print(f"method {result.method} on {result.provenance['device']}")
    priors = result.priors()
    for element in result.elements:
        info = result.solver_info[element]
        chosen = (f"weight {info['weight']:.3g}" if "weight" in info else
                  f"rank {info['rank']}" if "rank" in info else "")
        metr = "  ".join(f"{k} {v:.4g}" for k, v in result.metrics[element].items())
        print(f"  {element}: {result.timings[f'{element}_s']:.2f} s  {_prior_line(priors[element])}"
              f"  {chosen}  {metr}")
    for warning in getattr(result, "warnings", []):  # next to the numbers it qualifies
        print(f"  WARNING {warning}")
    print(f"wrote {path}")
    return 0


def _prior_line(prior: dict[str, Any]) -> str:
    """'prior composition-tv (held-out +3.1 SE)': what ``auto`` chose for an element, and on what evidence."""
    evidence = (f" (held-out {prior['significance']:+.1f} SE)" if isinstance(prior.get("significance"), (int, float))
                else f" ({prior['reason']})" if "reason" in prior else "")
    return f"prior {prior['prior']}{evidence}"


def cmd_patterns(args: argparse.Namespace) -> int:
    from nxsci.recon import analyze_patterns, load_dataset, save_pattern_figures

    ds = load_dataset(args.input)
    reference = None
    if args.reference == "truth" and ds.truth_maps is not None:
        reference = ds.truth_maps.sum(axis=0)
    report = analyze_patterns(ds.patterns, reference=reference, max_targets=args.max_targets)
    summary = report.to_dict()
    print(f"patterns           {report.num_patterns} x {report.image_shape[0]}x{report.image_shape[1]}"
          f"  (sampling {report.sampling_ratio:.1%})")
    print(f"mean dependence    {report.mean_dependence:.4f}")
    print(f"invertibility      {report.invertibility:.4f}  (SSIM of the pseudo-inverse vs "
          f"{'the true maps' if reference is not None else 'the built-in phantom'})")
    print(f"effective rank     {report.effective_rank:.1f}   numerical rank {report.numerical_rank}")
    outdir = Path(args.output or Path(args.input).with_suffix("").name + "-patterns")
    paths = save_pattern_figures(ds.patterns, report, outdir)
    (outdir / "patterns.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {len(paths)} figures and patterns.json to {outdir}")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from nxsci.recon import method_schemas

    print(json.dumps(method_schemas(), indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from nxsci.demo import run_demo, run_recon_demo
    from nxsci.services import display_to_stderr

    demo = run_recon_demo if args.offline else run_demo
    answer = sys.stdout  # the summary JSON; what the stages print goes to stderr
    with display_to_stderr():
        report = demo(Path(args.output), size=args.size, sampling=args.sampling, seed=args.seed, method=args.method)
    print(json.dumps({"psnr": report["psnr"], "mean_dependence": report["mean_dependence"],
                      "invertibility": report["invertibility"]}, indent=2), file=answer)
    print(f"wrote {args.output}/report.json and {args.output}/report.png", file=sys.stderr)
    return 0


def cmd_sim_ioc(args: argparse.Namespace) -> int:
    import os

    # loopback only: serve on 127.0.0.1, send beacons nowhere else
    os.environ["EPICS_CAS_INTF_ADDR_LIST"] = "127.0.0.1"
    os.environ["EPICS_CAS_AUTO_BEACON_ADDR_LIST"] = "NO"
    os.environ["EPICS_CAS_BEACON_ADDR_LIST"] = "127.0.0.1"
    if "EPICS_CA_REPEATER_PORT" in os.environ:
        os.environ.setdefault("EPICS_CAS_BEACON_PORT", os.environ["EPICS_CA_REPEATER_PORT"])
    if "EPICS_CA_SERVER_PORT" in os.environ:
        os.environ.setdefault("EPICS_CAS_SERVER_PORT", os.environ["EPICS_CA_SERVER_PORT"])
    # the IOC only walks ophyd classes; without a client control layer it opens no CA client socket
    os.environ["OPHYD_CONTROL_LAYER"] = "dummy"
    from nxsci.devices import load_config
    from nxsci.devices.sim import serve

    config = load_config(args.config)
    serve(config, ready=lambda line: print(line, flush=True))
    print("nxsci sim-ioc stopped", flush=True)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from nxsci.services import load_service_settings, serve

    settings = load_service_settings(args.config, host=args.host, port=args.port, **{"tiled.uri": args.tiled})
    serve(settings)
    return 0


def _acquire_plan(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The plan ``nxsci acquire`` runs and its arguments."""
    common = {"num_patterns": args.num_patterns, "exposure": args.exposure, "num_darks": args.num_darks,
              "seed": args.seed, "travel_mm": args.travel_mm}
    if args.calibrate:
        given = [flag for flag, value in (("--sample", args.sample), ("--elements", args.elements),
                                          ("--energy-kev", args.energy_kev)) if value is not None]
        if given:
            raise ValueError(f"--calibrate records the patterns without the sample: {', '.join(given)} "
                             f"do not apply (give them to the scan that uses the library)")
        return "calibrate_patterns", common
    return "nxsci_scan", {**common, "pattern_library": args.pattern_library, "sample": args.sample,
                          "elements": _elements(args.elements), "energy_keV": args.energy_kev}


def cmd_acquire(args: argparse.Namespace) -> int:
    from nxsci.plans import RunEngine, calibrate_patterns, check_plan_arguments, nxsci_scan
    from nxsci.services import EventCounter, build_session, display_to_stderr, run_plan_interruptibly

    name, kwargs = _acquire_plan(args)
    answer = sys.stdout  # the run uid, and nothing else: everything shown while acquiring goes to stderr
    with display_to_stderr():
        # no bluesky SIGINT handler (it only pauses): Ctrl-C / SIGTERM abort the run cleanly instead
        session = build_session(mode=args.mode, config=args.config, tiled_uri=args.tiled, progress=not args.quiet,
                                run_engine=RunEngine({}, context_managers=[]))
        try:
            check_plan_arguments(name, **kwargs)  # every argument checked before a run opens
            counter = EventCounter()
            session.RE.subscribe(counter)
            plan = (calibrate_patterns if name == "calibrate_patterns" else nxsci_scan)(**kwargs)
            outcome = run_plan_interruptibly(session.RE, plan)
            location = session.catalog.location if session.catalog else ""
        finally:
            session.close()
    if not outcome.uids:
        print("nxsci acquire: no run was recorded", file=sys.stderr)
        return outcome.exit_code or 1
    uid = outcome.uids[-1]
    if outcome.aborted_by:
        print(f"nxsci acquire: {outcome.aborted_by}: run {uid} aborted after {counter.done} of {counter.planned} "
              f"configurations; what was recorded is kept in {location} (exit_status 'abort')", file=sys.stderr)
    else:
        print(f"run written to {location}", file=sys.stderr)
    print(uid, file=answer, flush=True)
    return outcome.exit_code


def cmd_tiled(args: argparse.Namespace) -> int:
    from nxsci.services import TiledSettings, serve_tiled

    settings = TiledSettings()

    def ready(uri: str) -> None:
        print(f"nxsci tiled: serving {settings.resolved_catalog_uri()} on {uri} (API key: NXSCI_TILED_API_KEY); "
              f"stop with Ctrl-C or SIGTERM", file=sys.stderr, flush=True)
        print(uri, flush=True)

    serve_tiled(settings, host=args.host, port=args.port, ready=ready)
    print("nxsci tiled stopped", file=sys.stderr, flush=True)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from nxsci.services import PipelineSettings, XrfFitSettings, export_run

    xrf = XrfFitSettings(background=args.background, pymca_config=args.pymca_config,
                         elements=_elements(args.elements))
    settings = PipelineSettings(xrf=xrf, registration=not args.no_register)
    path = export_run(args.tiled, args.uid, args.output, overwrite=args.overwrite, settings=settings)
    print(f"wrote {path}")
    return 0


def cmd_shell(args: argparse.Namespace) -> int:
    from nxsci.services._shell import start_shell

    return start_shell(mode=args.mode, config=args.config, tiled_uri=args.tiled, tiled=not args.no_tiled,
                       code=args.command_code)


class _Parser(argparse.ArgumentParser):
    """argparse with its errors in one line (``nxsci acquire: error: ...``) and exit status 2, like every
    other user error of the command line."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _positive(kind: type) -> Any:
    """An argparse type: a finite number of ``kind`` above zero (a count or a time), refused in one line."""
    noun = "integer" if kind is int else "number"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {noun}, got '{text}'") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"must be a positive {noun}, got '{text}'")
        return value

    parse.__name__ = f"positive {noun}"
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nxsci", description="X-ray structured-illumination chemical imaging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("simulate", help="write a simulated interchange dataset")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--phantom", default="battery")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--sampling", type=float, default=0.1, help="patterns / pixels (N/M)")
    p.add_argument("--pattern-model", default="two-diffuser", help="two-diffuser | speckle | random")
    p.add_argument("--feature-size", type=float, default=2.0, help="pattern grain in pixels")
    p.add_argument("--photons", type=float, default=1e5, help="mean XRF counts per pattern (strongest element)")
    p.add_argument("--background", type=float, default=0.0, help="background counts per pattern")
    p.add_argument("--shift-sigma", type=float, default=0.0, help="stage repeatability error (px, 1 sigma)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("reconstruct", help="reconstruct element maps from an interchange file")
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--method", default=None,
                   help="see `nxsci methods` (default: auto, composition-tv with the TXM where held-out "
                        "measurements support it, else tv)")
    p.add_argument("--elements", default=None, help="comma-separated, e.g. Mn,Co (default: all)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="method parameter (repeatable)")
    p.add_argument("--register", choices=["auto", "yes", "no"], default="auto",
                   help="register patterns to the sample (auto: when sample-in frames exist)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("patterns", help="pattern-set quality: mean dependence, invertibility, figures")
    p.add_argument("input")
    p.add_argument("-o", "--output", default=None, help="figure directory (default: <input>-patterns)")
    p.add_argument("--reference", choices=["phantom", "truth"], default="phantom",
                   help="invertibility reference: built-in phantom or the file's true maps")
    p.add_argument("--max-targets", type=int, default=1024)
    p.set_defaults(func=cmd_patterns)

    p = sub.add_parser("methods", help="list reconstruction methods and their parameter schemas")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("sim-ioc", help="serve the simulated beamline's PVs over Channel Access on 127.0.0.1")
    p.add_argument("--config", default=None, help="beamline configuration YAML (default: the shipped sim.yaml)")
    p.set_defaults(func=cmd_sim_ioc)

    p = sub.add_parser("acquire", help="run nxsci_scan on the beamline; prints the run uid on its last line")
    p.add_argument("--mode", choices=["sim", "epics"], default=None, help="default: NXSCI_BEAMLINE_MODE or sim")
    p.add_argument("--config", default=None, help="beamline configuration YAML (default: the shipped sim.yaml)")
    p.add_argument("--num-patterns", type=_positive(int), default=None, help="illumination configurations to draw")
    p.add_argument("--exposure", type=_positive(float), default=0.5, help="seconds per frame and spectrum")
    p.add_argument("--num-darks", type=_positive(int), default=4)
    p.add_argument("--seed", type=int, default=0, help="seed of the drawn diffuser schedule")
    p.add_argument("--travel-mm", type=_positive(float), default=1.0, help="diffuser travel of the drawn schedule")
    library = p.add_mutually_exclusive_group()
    library.add_argument("--pattern-library", default=None, help="uid of a calibrate_patterns run to reuse")
    library.add_argument("--calibrate", action="store_true", help="run calibrate_patterns (patterns only) instead")
    p.add_argument("--sample", default=None, help="sample name (required on a real beamline)")
    p.add_argument("--elements", default=None, help="comma-separated elements to image, e.g. Mn,Co,Ni "
                                                    "(required on a real beamline)")
    p.add_argument("--energy-kev", type=float, default=None, help="incident energy (required on a real beamline)")
    p.add_argument("--tiled", default=None, help="tiled server URI (default: NXSCI_TILED_URI, else the "
                                                 "embedded local catalog)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_acquire)

    p = sub.add_parser("tiled", help="serve the run catalog on 127.0.0.1 (API key: NXSCI_TILED_API_KEY)")
    p.add_argument("--port", type=int, default=0, help="default: a free port (printed)")
    p.add_argument("--host", default="127.0.0.1")
    p.set_defaults(func=cmd_tiled)

    p = sub.add_parser("export", help="a run as an interchange file (dark, flat, registration, PyMca fit)")
    p.add_argument("uid", metavar="RUN_UID")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--tiled", default=None, help="tiled server URI (default: NXSCI_TILED_URI, else embedded)")
    p.add_argument("--background", choices=["poly", "snip"], default="poly", help="XRF background model")
    p.add_argument("--pymca-config", default=None, help="a PyMca .cfg fit configuration to use instead")
    p.add_argument("--elements", default=None, help="comma-separated elements to fit (default: the run's)")
    p.add_argument("--no-register", action="store_true", help="do not estimate pattern displacements")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("shell", help="IPython with the beamline, a RunEngine writing to tiled, and the plans")
    p.add_argument("--mode", choices=["sim", "epics"], default=None)
    p.add_argument("--config", default=None)
    p.add_argument("--tiled", default=None, help="tiled server URI (default: NXSCI_TILED_URI, else embedded)")
    p.add_argument("--no-tiled", action="store_true", help="do not record runs")
    p.add_argument("-c", dest="command_code", default=None, metavar="CODE", help="run CODE in the session and exit")
    p.set_defaults(func=cmd_shell)

    p = sub.add_parser("demo", help="the main job: simulated beamline -> RunEngine -> tiled -> pipeline -> "
                                    "reconstruction -> nxsci-demo/report.{json,png}")
    p.add_argument("-o", "--output", default="nxsci-demo")
    p.add_argument("--offline", action="store_true",
                   help="skip the acquisition: simulate the dataset with the library (reconstruction only)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--sampling", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", default=None)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="the reconstruction service (REST API + dashboard), tiled embedded if no --tiled")
    p.add_argument("--host", default=None, help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="listen port (default 8000)")
    p.add_argument("--tiled", default=None, metavar="URI", help="tiled server (default: start an embedded one)")
    p.add_argument("--config", default=None, help="service configuration YAML (see deploy/nxsci-service.yaml)")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from nxsci.recon import NxsciError

    try:
        return int(args.func(args))
    except (NxsciError, ValueError) as exc:
        print(f"nxsci {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"nxsci {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `nxsci methods | head`: the reader left; no traceback, no second error at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
