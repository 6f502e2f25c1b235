"""The instrument model: one pure-Python beamline that every simulated device and the sim IOC drive.

It owns the physical state (every motor axis, the shutter) and turns it into what the detectors see:

* illumination at the sample = recon's :class:`TwoDiffuserModel` pattern of both diffuser positions
  (deterministic, continuous, returns bit for bit) x a beam envelope and flux set by the condenser
  position/angle and the pinhole (size and position);
* the TXM camera sees that light times the sample's transmission where the stage put it, blurred by
  zone-plate defocus and shifted by zone-plate x/y, as uint16 frames with Poisson noise, dark current,
  offset and read noise;
* the Vortex sees the pattern-weighted sum of the sample's element maps, computed with recon's
  :class:`PatternPhysics` (the operator the solvers invert), turned into a spectrum with PyMca's line
  data (:func:`nxsci.recon.synthesize_spectrum`), scatter, continuum, dead time and Poisson counts.

The sample stage lands with a random placement error after every move (its repeatability), which is
why patterns must be registered; the true error is kept, with every acquisition, as ground truth.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

import numpy as np
import torch
from scipy import ndimage

from nxsci.recon import (PatternPhysics, Phantom, SpectrumCalibration, TwoDiffuserModel,
                         fluorescence_sensitivity, synthesize_spectrum)

from ._params import SimulationParams
from ._sample import load_sample

__all__ = ["AXES", "InstrumentModel", "VortexReading", "GroundTruth"]

#: every motor axis of the beamline, ``device.axis`` (engineering units: mm, pitch/yaw in mrad)
AXES: tuple[str, ...] = (
    "diffuser1.x", "diffuser1.y", "diffuser2.x", "diffuser2.y",
    "condenser.x", "condenser.y", "condenser.pitch", "condenser.yaw",
    "pinhole.x", "pinhole.y",
    "zone_plate.x", "zone_plate.y", "zone_plate.z",
    "sample_stage.x", "sample_stage.y", "sample_stage.z",
)

#: sample displaced further than this many field sizes is treated as entirely out of the beam
_OUT_OF_FIELD = 1.5
#: the axes the diffuser pattern depends on, and those the beam envelope and flux depend on
_PATTERN_AXES = ("diffuser1.y", "diffuser1.x", "diffuser2.y", "diffuser2.x")
_BEAM_AXES = ("condenser.x", "condenser.y", "condenser.pitch", "condenser.yaw", "pinhole.x", "pinhole.y")

_T = TypeVar("_T")


def _frozen(array: np.ndarray) -> np.ndarray:
    """``array``, read-only: a remembered field is shared by every caller."""
    array.flags.writeable = False
    return array


@dataclasses.dataclass(frozen=True)
class VortexReading:
    """One Vortex acquisition: counts per channel, times, rates and the expected (true) element counts."""

    spectrum: np.ndarray
    real_time: float
    live_time: float
    input_count_rate: float
    output_count_rate: float
    element_counts: dict[str, float]

    @property
    def dead_time_percent(self) -> float:
        return 100.0 * (1.0 - self.live_time / self.real_time) if self.real_time > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """What a reconstruction is scored against: the maps, the TXM image, and the stage error now."""

    elements: list[str]
    maps: np.ndarray
    txm: np.ndarray
    transmission: np.ndarray
    shift_px: tuple[float, float]
    acquisitions: list[dict[str, object]]


class InstrumentModel:
    """The simulated TXM + structured illumination + Vortex, state and physics (thread-safe).

    ``sample_in`` is the stage position (mm, keys x/y/z) at which the sample sits centred in the field;
    any other position displaces it by ``(position - sample_in) / pixel size``, plus the stage's
    placement error.
    """

    def __init__(self, params: SimulationParams | None = None, *,
                 sample_in: Mapping[str, float] | None = None) -> None:
        self.params = params or SimulationParams()
        p = self.params
        self.shape = (p.image_size, p.image_size)
        self.sample: Phantom = load_sample(p.sample, p.image_size)
        self.elements = list(self.sample.elements)
        self.diffusers = TwoDiffuserModel(self.shape, seed=p.diffusers.seed, grit_px=p.diffusers.grit_px,
                                          contrast=p.diffusers.contrast, static_fraction=p.diffusers.static_fraction,
                                          envelope_sigma=None, blur_px=p.optics.blur_px)
        self.calibration = SpectrumCalibration(channels=p.vortex.channels, zero_keV=p.vortex.zero_keV,
                                               gain_keV=p.vortex.gain_keV, noise_keV=p.vortex.noise_keV,
                                               fano=p.vortex.fano)
        sens = {e: fluorescence_sensitivity(e, p.energy_keV) for e in self.elements}
        top = max(sens.values())
        self.relative_sensitivity = {e: s / top for e, s in sens.items()}
        self._basis = self._spectrum_basis()
        self.sample_in = {"x": 0.0, "y": 0.0, "z": 0.0, **{k: float(v) for k, v in (sample_in or {}).items()}}
        self._lock = threading.RLock()
        self._positions = {axis: 0.0 for axis in AXES}
        for k, v in self.sample_in.items():
            self._positions[f"sample_stage.{k}"] = v
        self.shutter_open = True
        self._stage_error = np.zeros(2)  # (dy, dx) px
        # one stream per component: x and y arrive from their own record threads in either order, and a
        # shared stream would hand their errors out in thread order (a run could not be repeated from its seed)
        self._rng_stage = {axis: np.random.default_rng(seq) for axis, seq in
                           zip(("sample_stage.y", "sample_stage.x"), np.random.SeedSequence(p.stage.seed).spawn(2))}
        self._rng_camera = np.random.default_rng(p.camera.seed)
        self._rng_vortex = np.random.default_rng(p.vortex.seed)
        self._pattern_cache: tuple[tuple[float, ...], np.ndarray] | None = None
        # the last result of each costly field (key, value): an illumination configuration is used by the
        # sample-out frame, the sample-in frame and the spectrum, a stage position by the frame and the
        # spectrum; values are read-only arrays, shared by the callers
        self._memo: dict[str, tuple[object, object]] = {}
        self._maps64 = _frozen(self.sample.maps.astype(np.float64))
        self._txm64 = _frozen(self.sample.txm.astype(np.float64))
        self.acquisitions: collections.deque[dict[str, object]] = collections.deque(maxlen=100_000)
        self._last: dict[str, dict[str, object]] = {}  # kind -> its latest acquisition

    # -- state -----------------------------------------------------------------------------------
    def position(self, axis: str) -> float:
        with self._lock:
            return self._positions[self._axis(axis)]

    def positions(self) -> dict[str, float]:
        with self._lock:
            return dict(self._positions)

    def set_position(self, axis: str, value: float) -> None:
        """Where an axis is now (called during and at the end of moves)."""
        if not math.isfinite(value):
            raise ValueError(f"position of {axis} must be finite, got {value}")
        with self._lock:
            self._positions[self._axis(axis)] = float(value)

    def arrive(self, axis: str) -> None:
        """A move of ``axis`` ended: after a sample-stage x or y move the sample lands with a fresh in-plane
        placement error (both components: moving one axis re-seats the stage in the plane)."""
        sigma = self.params.stage.repeatability_px
        if axis not in ("sample_stage.y", "sample_stage.x") or sigma <= 0:
            return
        with self._lock:
            # each component from its own stream, advanced once per arrival: the same errors whichever of two
            # moving axes arrives first
            self._stage_error[0] = self._rng_stage["sample_stage.y"].normal(0.0, sigma)
            self._stage_error[1] = self._rng_stage["sample_stage.x"].normal(0.0, sigma)

    def set_shutter(self, is_open: bool) -> None:
        with self._lock:
            self.shutter_open = bool(is_open)

    @staticmethod
    def _axis(axis: str) -> str:
        if axis not in AXES:
            raise KeyError(f"unknown axis '{axis}'; axes are {', '.join(AXES)}")
        return axis

    # -- geometry --------------------------------------------------------------------------------
    def sample_shift_px(self) -> tuple[float, float]:
        """True displacement (dy, dx) of the sample in the field, px (stage offset + placement error)."""
        with self._lock:
            pix_mm = self.params.stage.pixel_size_um / 1000.0
            dy = (self._positions["sample_stage.y"] - self.sample_in["y"]) / pix_mm + self._stage_error[0]
            dx = (self._positions["sample_stage.x"] - self.sample_in["x"]) / pix_mm + self._stage_error[1]
            return float(dy), float(dx)

    def _sample_in_field(self, shift: tuple[float, float]) -> bool:
        return max(abs(shift[0]), abs(shift[1])) < _OUT_OF_FIELD * max(self.shape)

    def diffuser_px(self, pos: Mapping[str, float]) -> tuple[tuple[float, float], tuple[float, float]]:
        """Screen positions (y, x) in px of both diffusers for motor positions in mm."""
        k = 1000.0 / self.params.diffusers.um_per_px
        return ((pos["diffuser1.y"] * k, pos["diffuser1.x"] * k), (pos["diffuser2.y"] * k, pos["diffuser2.x"] * k))

    # -- illumination ----------------------------------------------------------------------------
    def pattern(self, pos: Mapping[str, float] | None = None) -> np.ndarray:
        """The diffuser pattern (mean ~1, no envelope) for the diffuser positions in ``pos`` (default: now)."""
        pos = self.positions() if pos is None else pos
        key = tuple(pos[a] for a in _PATTERN_AXES)
        cached = self._pattern_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        p1, p2 = self.diffuser_px(pos)
        pat = self.diffusers.pattern(p1, p2).astype(np.float64)
        self._pattern_cache = (key, pat)
        return pat

    def _remember(self, name: str, key: object, compute: Callable[[], _T]) -> _T:
        """``compute()``, or its value for the same ``key`` the last time ``name`` was asked for."""
        last = self._memo.get(name)
        if last is not None and last[0] == key:
            return last[1]  # type: ignore[return-value]
        value = compute()
        self._memo[name] = (key, value)
        return value

    def beam(self, pos: Mapping[str, float] | None = None) -> tuple[np.ndarray, float]:
        """Beam envelope (mean 1 when centred) and the flux through the pinhole (1 = aligned, reference size)."""
        pos = self.positions() if pos is None else pos
        key = tuple(pos[a] for a in _BEAM_AXES)
        return self._remember("beam", key, lambda: self._beam(pos))

    def _beam(self, pos: Mapping[str, float]) -> tuple[np.ndarray, float]:
        o = self.params.optics
        cy = (o.envelope_center[0] + o.condenser_shift_per_mm * pos["condenser.y"]
              + o.condenser_shift_per_mrad * pos["condenser.pitch"])
        cx = (o.envelope_center[1] + o.condenser_shift_per_mm * pos["condenser.x"]
              + o.condenser_shift_per_mrad * pos["condenser.yaw"])
        sigma = o.envelope_sigma * math.sqrt(o.pinhole_diameter_um / o.reference_pinhole_um)
        env = self._gaussian(cy, cx, sigma) / self._gaussian(*o.envelope_center, o.envelope_sigma).mean()
        # the condenser focus, moved by condenser translation and tilt, against the pinhole (um)
        fy = 1000.0 * pos["condenser.y"] + o.condenser_focal_mm * pos["condenser.pitch"] - 1000.0 * pos["pinhole.y"]
        fx = 1000.0 * pos["condenser.x"] + o.condenser_focal_mm * pos["condenser.yaw"] - 1000.0 * pos["pinhole.x"]
        r = o.pinhole_diameter_um / 2.0
        r0 = o.reference_pinhole_um / 2.0
        through = 1.0 - math.exp(-0.5 * (r / o.focus_size_um) ** 2)  # share of the focus inside the pinhole
        passed = through / (1.0 - math.exp(-0.5 * (r0 / o.focus_size_um) ** 2))
        flux = passed * math.exp(-0.5 * (fy**2 + fx**2) / r**2)
        return _frozen(env), flux

    def _gaussian(self, cy: float, cx: float, sigma: float) -> np.ndarray:
        """Gaussian spot centred at (cy, cx) in field half-sizes (0 = field centre)."""
        h, w = self.shape
        y = (np.arange(h) - (h - 1) / 2) / (h / 2) - cy
        x = (np.arange(w) - (w - 1) / 2) / (w / 2) - cx
        return np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2) / sigma**2)

    def illumination(self, pos: Mapping[str, float] | None = None, shutter: bool | None = None) -> np.ndarray:
        """Intensity reaching the sample plane (H, W): pattern x envelope x flux; zero with the shutter closed."""
        pos = self.positions() if pos is None else pos
        if not (self.shutter_open if shutter is None else shutter):
            return np.zeros(self.shape)
        key = tuple(pos[a] for a in (*_PATTERN_AXES, *_BEAM_AXES))

        def compute() -> np.ndarray:
            env, flux = self.beam(pos)
            return _frozen(self.pattern(pos) * env * flux)

        return self._remember("illumination", key, compute)

    # -- the sample where the stage put it ----------------------------------------------------------
    def _shifted(self, image: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
        """``image(r - shift)`` with zeros outside (order-1: stays >= 0)."""
        if not self._sample_in_field(shift):
            return np.zeros_like(image)
        if shift == (0.0, 0.0):
            return image
        if image.ndim == 2:
            return ndimage.shift(image, shift, order=1, mode="constant", cval=0.0)
        # one 2D shift per leading index: the same values as one N-D order-1 shift with no shift along the
        # leading axes (its weights there are exactly 1 and 0), at half the cost
        flat = image.reshape(-1, *image.shape[-2:])
        out = np.stack([ndimage.shift(plane, shift, order=1, mode="constant", cval=0.0) for plane in flat])
        return out.reshape(image.shape)

    def sample_maps(self, shift: tuple[float, float] | None = None) -> np.ndarray:
        """Element maps (E, H, W) in the field, displaced by the stage (read-only)."""
        shift = self.sample_shift_px() if shift is None else shift
        return self._remember("maps", shift, lambda: _frozen(self._shifted(self._maps64, shift)))

    def sample_density(self, shift: tuple[float, float] | None = None) -> np.ndarray:
        """Optical density (H, W) in the field, displaced by the stage and blurred by sample-z defocus
        (read-only)."""
        shift = self.sample_shift_px() if shift is None else shift
        dz = abs(self.position("sample_stage.z") - self.sample_in["z"]) * self.params.optics.defocus_px_per_mm

        def compute() -> np.ndarray:
            od = self._shifted(self._txm64, shift)
            return _frozen(ndimage.gaussian_filter(od, dz, mode="nearest") if dz > 0.05 else od)

        return self._remember("density", (shift, dz), compute)

    # -- camera ----------------------------------------------------------------------------------
    def camera_view(self, image: np.ndarray, pos: Mapping[str, float]) -> np.ndarray:
        """What the zone plate projects onto the camera: shifted by zone-plate x/y, blurred by defocus."""
        o = self.params.optics
        sy, sx = o.zone_plate_px_per_mm * pos["zone_plate.y"], o.zone_plate_px_per_mm * pos["zone_plate.x"]
        if sy or sx:
            image = ndimage.shift(image, (sy, sx), order=1, mode="nearest")
        blur = abs(pos["zone_plate.z"] - o.zone_plate_focus_mm) * o.defocus_px_per_mm
        if blur > 0.05:
            image = ndimage.gaussian_filter(image, blur, mode="nearest")
        return image

    def camera_expected(self, exposure_s: float) -> np.ndarray:
        """Expected counts (H, W) above the offset: light through the sample plus dark current."""
        c = self.params.camera
        pos = self.positions()
        light = self.illumination(pos) * np.exp(-self.sample_density())
        return c.photons_per_s * exposure_s * self.camera_view(light, pos) + c.dark_counts_per_s * exposure_s

    def camera_frame(self, exposure_s: float) -> np.ndarray:
        """One uint16 frame: Poisson(expected) + offset + read noise, clipped to the 16-bit range."""
        if not (math.isfinite(exposure_s) and exposure_s >= 0):
            raise ValueError(f"exposure must be a finite number of seconds >= 0, got {exposure_s}")
        c = self.params.camera
        expected = self.camera_expected(exposure_s)
        with self._lock:
            counts = self._rng_camera.poisson(np.clip(expected, 0.0, None)).astype(np.float64)
            counts += c.offset
            if c.read_noise:
                counts += self._rng_camera.normal(0.0, c.read_noise, self.shape)
        self._log("camera", exposure_s=float(exposure_s))
        return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)

    # -- Vortex ----------------------------------------------------------------------------------
    def _spectrum_basis(self) -> np.ndarray:
        """Unit spectra (one count in total) of each element's K group, elastic, Compton, continuum."""
        e0, cal = self.params.energy_keV, self.calibration
        rows = [synthesize_spectrum(cal, {e: 1.0}, excitation_keV=e0) for e in self.elements]
        rows.append(synthesize_spectrum(cal, {}, excitation_keV=e0, elastic_counts=1.0))
        rows.append(synthesize_spectrum(cal, {}, excitation_keV=e0, compton_counts=1.0))
        rows.append(synthesize_spectrum(cal, {}, excitation_keV=e0, background_counts=1.0))
        return np.asarray(rows)

    def element_rates(self, pos: Mapping[str, float] | None = None,
                      shift: tuple[float, float] | None = None) -> dict[str, float]:
        """True K count rates (counts/s) of each element: ``xrf_cps x sensitivity x A(map) / M``, with A
        the forward operator of the current illumination (:class:`PatternPhysics`, as the solvers use)."""
        pos = self.positions() if pos is None else pos
        illum = self.illumination(pos)
        maps = self.sample_maps(shift)
        # writable copies: torch does not take read-only arrays (the remembered fields are)
        a = PatternPhysics(np.array(illum[None]), dtype=torch.float64).A(np.array(maps))[:, 0] / illum.size
        v = self.params.vortex
        return {e: float(v.xrf_cps * self.relative_sensitivity[e] * a[i]) for i, e in enumerate(self.elements)}

    def vortex_rates(self) -> tuple[dict[str, float], np.ndarray]:
        """Element rates and the rate of each basis row (elements, elastic, Compton, continuum), counts/s."""
        pos = self.positions()
        shift = self.sample_shift_px()
        rates = self.element_rates(pos, shift)
        illum = self.illumination(pos)
        v = self.params.vortex
        mass = float(np.mean(illum * (0.5 + self.sample_density(shift))))
        row_rates = np.array([*rates.values(), v.elastic_cps * mass, v.compton_cps * mass,
                              v.background_cps * float(np.mean(illum))])
        return rates, row_rates

    def vortex_acquire(self, *, real_time: float | None = None, live_time: float | None = None) -> VortexReading:
        """One spectrum at preset real time or preset live time (paralyzable dead time, Poisson counts)."""
        if (real_time is None) == (live_time is None):
            raise ValueError("give exactly one of real_time or live_time")
        preset = float(real_time if real_time is not None else live_time)  # type: ignore[arg-type]
        if not (math.isfinite(preset) and preset >= 0):
            raise ValueError(f"preset time must be a finite number of seconds >= 0, got {preset}")
        rates, row_rates = self.vortex_rates()
        icr = float(row_rates.sum())
        live_fraction = math.exp(-icr * self.params.vortex.dead_time_us * 1e-6)
        if real_time is not None:
            real, live = preset, preset * live_fraction
        else:
            live, real = preset, preset / live_fraction
        expected = live * (row_rates @ self._basis)
        with self._lock:
            spectrum = self._rng_vortex.poisson(np.clip(expected, 0.0, None)).astype(np.int32)
        counts = {e: live * r for e, r in rates.items()}
        self._log("vortex", real_time=real, live_time=live, element_counts=counts)
        return VortexReading(spectrum=spectrum, real_time=real, live_time=live, input_count_rate=icr,
                             output_count_rate=icr * live_fraction, element_counts=counts)

    # -- truth -----------------------------------------------------------------------------------
    def _log(self, kind: str, **info: object) -> None:
        pos = self.positions()
        entry = {"kind": kind, "time": time.time(), "positions": pos, "shift_px": self.sample_shift_px(),
                 "shutter_open": self.shutter_open, **info}
        with self._lock:
            self.acquisitions.append(entry)
            self._last[kind] = entry

    def last_acquisition(self, kind: str) -> dict[str, object] | None:
        """The latest acquisition of ``kind`` (``"camera"``, ``"vortex"``), or None."""
        with self._lock:
            return self._last.get(kind)

    def ground_truth(self) -> GroundTruth:
        """The sample's maps and TXM image, the current stage error, and every acquisition so far."""
        return GroundTruth(elements=list(self.elements), maps=self.sample.maps.copy(), txm=self.sample.txm.copy(),
                           transmission=self.sample.transmission.copy(), shift_px=self.sample_shift_px(),
                           acquisitions=list(self.acquisitions))
