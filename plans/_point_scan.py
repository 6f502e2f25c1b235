"""The comparison every structured-illumination result is judged against: a raster XRF point scan.

A pencil beam (the whole flux of one pattern focused into one pixel, at the field centre) and the Vortex
record one spectrum per sample-stage position. The pencil beam exists only in the simulation
(:class:`PencilBeamProbe` reads the instrument model), so the plan runs on the simulated beamline.
"""

# no `from __future__ import annotations`: the queue server reads these plans' annotations as types
import math
import time
from typing import Any

import bluesky.preprocessors as bpp
import numpy as np
from bluesky.utils import MsgGenerator
from ophyd.status import StatusBase
from scipy import ndimage

from nxsci.recon import synthesize_spectrum

from ._context import PlanError, current_context
from ._metadata import beamline_metadata, merge_md, resolve_elements, resolve_energy, sample_metadata
from ._readers import IndexSignal, SimTruthMaps
from ._stubs import acquire, move

__all__ = ["PencilBeamProbe", "xrf_point_scan"]


class PencilBeamProbe:
    """Simulated pencil-beam XRF: on ``trigger()`` one spectrum of the sample at the field centre.

    Element count rates are ``xrf_cps x relative sensitivity x map(beam spot) x flux``: the same flux per
    point as one structured-illumination pattern (equal dose per acquisition). Scatter, continuum,
    paralyzable dead time and Poisson noise as the simulated Vortex.
    """

    def __init__(self, model: Any, dwell: float, name: str = "pencil", seed: int = 5) -> None:
        self.model = model
        self.dwell = float(dwell)
        self.name = name
        self.parent = None
        self.elements = list(model.elements)
        self._rng = np.random.default_rng(seed)
        self._reading: dict[str, dict[str, Any]] | None = None
        h, w = model.shape
        self.spot = ((h - 1) / 2.0, (w - 1) / 2.0)

    def trigger(self) -> StatusBase:
        m, p = self.model, self.model.params
        maps = m.sample_maps()
        density = m.sample_density()
        coords = np.array([[self.spot[0]], [self.spot[1]]])
        values = np.array([float(ndimage.map_coordinates(maps[k], coords, order=1)[0]) for k in range(len(maps))])
        od = float(ndimage.map_coordinates(density, coords, order=1)[0])
        _, flux = m.beam()
        flux *= float(m.shutter_open)
        rates = {e: p.vortex.xrf_cps * m.relative_sensitivity[e] * values[k] * flux
                 for k, e in enumerate(self.elements)}
        scatter = flux * (0.5 + od)
        icr = sum(rates.values()) + (p.vortex.elastic_cps + p.vortex.compton_cps) * scatter + p.vortex.background_cps * flux
        live = self.dwell * math.exp(-icr * p.vortex.dead_time_us * 1e-6)
        counts = {e: r * live for e, r in rates.items()}
        expected = synthesize_spectrum(m.calibration, counts, excitation_keV=p.energy_keV,
                                       elastic_counts=p.vortex.elastic_cps * scatter * live,
                                       compton_counts=p.vortex.compton_cps * scatter * live,
                                       background_counts=p.vortex.background_cps * flux * live)
        spectrum = self._rng.poisson(np.clip(expected, 0.0, None)).astype(np.int32)
        now = time.time()
        self._reading = {
            f"{self.name}_spectrum": {"value": spectrum, "timestamp": now},
            f"{self.name}_real_time": {"value": self.dwell, "timestamp": now},
            f"{self.name}_live_time": {"value": live, "timestamp": now},
            f"{self.name}_truth_counts": {"value": np.array([counts[e] for e in self.elements]), "timestamp": now},
            f"{self.name}_truth_shift": {"value": np.asarray(m.sample_shift_px(), dtype=np.float64), "timestamp": now},
        }
        status = StatusBase()
        status.set_finished()
        return status

    def read(self) -> dict[str, dict[str, Any]]:
        if self._reading is None:
            raise RuntimeError(f"{self.name}: trigger() before read()")
        return dict(self._reading)

    def describe(self) -> dict[str, dict[str, Any]]:
        src = "sim:pencil-beam"
        channels = self.model.calibration.channels
        e = len(self.elements)
        return {
            f"{self.name}_spectrum": {"source": src, "dtype": "array", "shape": [channels], "dtype_numpy": "<i4"},
            f"{self.name}_real_time": {"source": src, "dtype": "number", "shape": [], "units": "s"},
            f"{self.name}_live_time": {"source": src, "dtype": "number", "shape": [], "units": "s"},
            f"{self.name}_truth_counts": {"source": src, "dtype": "array", "shape": [e], "dtype_numpy": "<f8"},
            f"{self.name}_truth_shift": {"source": src, "dtype": "array", "shape": [2], "dtype_numpy": "<f8"},
        }

    def read_configuration(self) -> dict[str, dict[str, Any]]:
        return {}

    def describe_configuration(self) -> dict[str, dict[str, Any]]:
        return {}


def xrf_point_scan(num_points: int = 16, *, step_um: float | None = None, dwell: float = 0.5,
                   sample: str | None = None, elements: list[str] | None = None, energy_keV: float | None = None,
                   md: dict[str, Any] | None = None) -> MsgGenerator[None]:
    """Raster XRF baseline: ``num_points`` x ``num_points`` sample-stage positions centred on the ``in``
    position, one pencil-beam spectrum of ``dwell`` seconds each (simulated beamline only).

    ``step_um`` defaults to the step that covers the camera's field of view. Stream ``primary``: the
    spectrum, the stage readbacks, ``grid_index`` (row, column) and the truth of each point.
    """
    bl = current_context().beamline
    if bl.model is None:
        raise PlanError("xrf_point_scan needs the simulated beamline (the pencil beam is simulated)")
    if not isinstance(num_points, int) or not 2 <= num_points <= 1024:
        raise PlanError(f"num_points must be an integer in [2, 1024], got {num_points!r}")
    if not (isinstance(dwell, (int, float)) and 0 < dwell < 3600):
        raise PlanError(f"dwell must be a number of seconds in (0, 3600), got {dwell!r}")
    pixel_um = float(bl.config.simulation.stage.pixel_size_um)
    size = int(bl.config.simulation.image_size)
    step = float(step_um) if step_um is not None else pixel_um * size / num_points
    if not (math.isfinite(step) and step > 0):
        raise PlanError(f"step_um must be a positive number, got {step_um!r}")
    centre = bl.sample_stage.named_positions["in"]
    offsets_mm = (np.arange(num_points) - (num_points - 1) / 2.0) * step / 1000.0
    probe = PencilBeamProbe(bl.model, dwell)
    row, column = (IndexSignal(n) for n in ("grid_row", "grid_column"))
    plan_args = {"num_points": num_points, "step_um": step_um, "dwell": dwell, "sample": sample,
                 "elements": elements, "energy_keV": energy_keV}
    energy = resolve_energy(bl, energy_keV)
    start = merge_md({
        "plan_name": "xrf_point_scan", "plan_args": plan_args, "detectors": ["pencil"],
        "motors": ["sample_stage"], "sample": sample_metadata(bl, sample),
        "energy_keV": energy, "elements": resolve_elements(bl, elements, energy),
        "dwell": float(dwell), "exposure": float(dwell), "num_points": num_points * num_points,
        "grid": {"shape": [num_points, num_points], "step_um": step, "step_px": step / pixel_um,
                 "beam_px": list(probe.spot), "pixel_um": pixel_um},
        "mca": {"zero_keV": bl.model.calibration.zero_keV, "gain_keV": bl.model.calibration.gain_keV,
                "channels": bl.model.calibration.channels},
        "beamline": beamline_metadata(bl), "nxsci_run": True,
        "hints": {"dimensions": [[["sample_stage_y"], "primary"], [["sample_stage_x"], "primary"]]},
    }, md)

    @bpp.baseline_decorator([bl.sample_stage, bl.shutter])
    @bpp.run_decorator(md=start)
    def body() -> MsgGenerator[None]:
        yield from acquire([], "truth_maps", [SimTruthMaps(bl.model)])
        yield from move(bl.shutter, "open")
        for i, dy in enumerate(offsets_mm):
            for j, dx in enumerate(offsets_mm):
                yield from move(bl.sample_stage.y, centre.get("y", 0.0) + dy, bl.sample_stage.x,
                                centre.get("x", 0.0) + dx, row, i, column, j)
                yield from acquire([probe], "primary", [row, column, bl.sample_stage])

    yield from bpp.finalize_wrapper(body(), move(bl.shutter, "close"))
