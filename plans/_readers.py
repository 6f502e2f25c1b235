"""Readables the plans put into events besides the devices themselves.

* :class:`InlineFrames`: the TXM camera's frame carried *in* the event (uint16 array) instead of as a
  reference into the IOC's HDF5 file, so that any tiled server stores the frames without access to the
  IOC's disk. The camera is staged as usual (its HDF5 file remains the IOC-side archive).
* :class:`SimTruth` and :class:`SimTruthMaps`: ground truth of the simulated instrument (true stage
  error, expected element counts, element maps) so that a run can be scored; simulated beamlines only.
* :class:`DeviceReadings`: what an event records of a device, chosen signals instead of the device's whole
  ``read()`` (see below).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from ophyd.status import DeviceStatus, StatusBase

from nxsci.devices import QuickCallbacks, TXMCamera

__all__ = ["InlineFrames", "SimTruth", "SimTruthMaps", "IndexSignal", "DeviceReadings"]


def _done() -> StatusBase:
    status = StatusBase()
    status.set_finished()
    return status


def _array_key(shape: tuple[int, ...], dtype: str, source: str) -> dict[str, Any]:
    return {"source": source, "dtype": "array", "shape": list(shape), "dtype_numpy": np.dtype(dtype).str}


class IndexSignal:
    """A plan-side integer recorded with each event (``config_index``): ``set()`` completes at once.

    An ophyd soft ``Signal`` would do, but its ``set()`` starts a thread per call (~1 ms on a busy
    2-core machine), a fifth of the per-configuration budget."""

    def __init__(self, name: str, value: int = -1) -> None:
        self.name = name
        self.parent = None
        self.value = int(value)
        self._timestamp = time.time()

    def set(self, value: int) -> StatusBase:
        self.put(value)
        return _done()

    def put(self, value: int) -> None:
        """The new value, without a status (for movers that set it as part of their own move)."""
        self.value = int(value)
        self._timestamp = time.time()

    def read(self) -> dict[str, dict[str, Any]]:
        return {self.name: {"value": self.value, "timestamp": self._timestamp}}

    def describe(self) -> dict[str, dict[str, Any]]:
        return {self.name: {"source": "plan", "dtype": "integer", "shape": [], "dtype_numpy": "<i8"}}

    def read_configuration(self) -> dict[str, dict[str, Any]]:
        return {}

    def describe_configuration(self) -> dict[str, dict[str, Any]]:
        return {}

    @property
    def hints(self) -> dict[str, list[str]]:
        return {"fields": [self.name]}


class DeviceReadings:
    """Chosen signals of a device (``attrs``, dotted component paths) read in place of the whole device: the
    same data keys and descriptions as the device's ``read()``/``describe()`` gives for them, and the device's
    configuration in the descriptor.

    The Vortex's ``read()`` gives 25 values (ROI sums, preset and elapsed times twice, rates) by walking its
    component tree (~0.1 ms); an NxSCI event needs the spectrum, the elapsed real and live times and the
    dead-time figures. The ROI sums are sums over the spectrum; not reading them also saves their Channel
    Access reads on a real IOC.
    """

    def __init__(self, device: Any, attrs: Sequence[str]) -> None:
        self.device = device
        self.name = device.name
        self.parent = None
        self.signals = [getattr(device, attr) for attr in attrs]

    def trigger(self) -> StatusBase:
        return self.device.trigger()

    def read(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for signal in self.signals:
            out.update(signal.read())
        return out

    def describe(self) -> dict[str, dict[str, Any]]:
        full = self.device.describe()  # once per stream: keeps what the device adds (the spectrum's dtype_numpy)
        return {signal.name: full[signal.name] if signal.name in full else signal.describe()[signal.name]
                for signal in self.signals}

    def read_configuration(self) -> dict[str, dict[str, Any]]:
        return dict(self.device.read_configuration())

    def describe_configuration(self) -> dict[str, dict[str, Any]]:
        return dict(self.device.describe_configuration())

    @property
    def hints(self) -> dict[str, list[str]]:
        names = {signal.name for signal in self.signals}
        return {"fields": [f for f in getattr(self.device, "hints", {}).get("fields", []) if f in names]}


class InlineFrames:
    """The camera's frames as uint16 arrays in the events (data key ``<camera>_image``, shape (H, W)), and
    with each frame the readings of ``extra`` readables (what the frame was taken under: configuration index,
    motor readbacks), read without being triggered.

    ``trigger()`` completes when the camera has finished *and* the image plugin holds the new frame (on a
    real IOC the plugin may publish it after ``Acquire`` drops), so ``read()`` never returns a stale frame.

    Why the extras ride with the frame: each object an event reads is a RunEngine ``read`` message, which
    bluesky checks against three runtime protocols (~0.1 ms per read on a 2-core machine, where a
    configuration's whole budget is 5 ms). The data keys are the same either way; the descriptor lists the
    extras' keys under the camera's object and records no configuration for them (they have none).
    """

    def __init__(self, camera: TXMCamera, extra: Sequence[Any] = ()) -> None:
        self.camera = camera
        self.name = camera.name
        self.parent = None
        self.key = f"{camera.name}_image"
        self.extra = list(extra)

    def with_readings(self, extra: Sequence[Any]) -> InlineFrames:
        """The same camera, recording ``extra``'s readings with each frame (stage only one of them)."""
        return InlineFrames(self.camera, [*self.extra, *extra])

    def stage(self) -> list[Any]:
        self.camera.stage()
        return [self]

    def unstage(self) -> list[Any]:
        self.camera.unstage()
        return [self]

    def trigger(self) -> StatusBase:
        counter = self.camera.image.array_counter
        status = _FreshFrame(self.camera, counter, int(counter.get()) + 1)
        self.camera.start_acquisition(status.acquisition_ended)  # no HDF5 datum: the frame goes into the event
        return status

    def _shape(self) -> tuple[int, int]:
        size = self.camera.cam.array_size
        return int(size.array_size_y.get()), int(size.array_size_x.get())

    def read(self) -> dict[str, dict[str, Any]]:
        out = {self.key: {"value": self.camera.last_frame(), "timestamp": time.time()}}
        for part in self.extra:
            out.update(part.read())
        return out

    def describe(self) -> dict[str, dict[str, Any]]:
        out = {self.key: _array_key(self._shape(), "uint16", f"PV:{self.camera.image.array_data.pvname}")}
        for part in self.extra:
            out.update(part.describe())
        return out

    def read_configuration(self) -> dict[str, dict[str, Any]]:
        return dict(self.camera.read_configuration())

    def describe_configuration(self) -> dict[str, dict[str, Any]]:
        return dict(self.camera.describe_configuration())

    @property
    def hints(self) -> dict[str, list[str]]:
        return {"fields": [f for part in self.extra for f in getattr(part, "hints", {}).get("fields", [])]}


class _FreshFrame(QuickCallbacks, DeviceStatus):
    """Done when the camera's acquisition has ended *and* the image plugin's ``counter`` has reached
    ``target``: one status, where a camera status, a ``SubscriptionStatus`` and a status combining them
    would be three (~0.13 ms per frame on a 2-core machine, two frames per configuration)."""

    def __init__(self, camera: TXMCamera, counter: Any, target: int) -> None:
        self._parts_lock = threading.Lock()
        self._waiting = {"acquisition", "frame"}
        super().__init__(camera)
        self._counter, self._target = counter, target
        self._cid = counter.subscribe(self._counter_changed, run=True)

    def _counter_changed(self, value: Any = None, **kwargs: Any) -> None:
        if value is not None and int(value) >= self._target:
            self._part_done("frame")

    def acquisition_ended(self) -> None:
        self._part_done("acquisition")

    def _part_done(self, part: str) -> None:
        with self._parts_lock:
            if part not in self._waiting:
                return
            self._waiting.discard(part)
            if self._waiting:
                return
        self._counter.unsubscribe(self._cid)
        if not self.done:
            self.set_finished()


class SimTruth:
    """Per acquisition: the sample's true displacement ``truth_shift`` (dy, dx) px in the camera frame and
    the expected (noise-free) K counts ``truth_counts`` of each element in the last Vortex spectrum."""

    def __init__(self, model: Any, name: str = "truth") -> None:
        self.model = model
        self.name = name
        self.parent = None
        self.elements = list(model.elements)

    def trigger(self) -> StatusBase:
        return _done()

    def read(self) -> dict[str, dict[str, Any]]:
        now = time.time()
        counts = np.zeros(len(self.elements))
        acquisition = self.model.last_acquisition("vortex")
        if acquisition is not None:
            counts = np.array([acquisition["element_counts"][e] for e in self.elements], dtype=np.float64)
        shift = np.asarray(self.model.sample_shift_px(), dtype=np.float64)
        return {f"{self.name}_shift": {"value": shift, "timestamp": now},
                f"{self.name}_counts": {"value": counts, "timestamp": now}}

    def describe(self) -> dict[str, dict[str, Any]]:
        return {f"{self.name}_shift": _array_key((2,), "float64", "sim:instrument-model"),
                f"{self.name}_counts": _array_key((len(self.elements),), "float64", "sim:instrument-model")}

    def read_configuration(self) -> dict[str, dict[str, Any]]:
        return {}

    def describe_configuration(self) -> dict[str, dict[str, Any]]:
        return {}


class SimTruthMaps:
    """Once per run: the sample's element maps ``truth_maps`` (E, H, W) and optical density ``truth_od``,
    unshifted, and ``truth_signal_scale`` (E,): the factor that puts the maps into the units of
    ``y = A x`` with A the dark-subtracted sample-out frames (counts) and y the dead-time-corrected
    K counts of the spectra (``xrf_cps x relative sensitivity / (pixels x camera photons_per_s)``)."""

    def __init__(self, model: Any, name: str = "truth") -> None:
        self.model = model
        self.name = name
        self.parent = None

    def trigger(self) -> StatusBase:
        return _done()

    def _scale(self) -> np.ndarray:
        p = self.model.params
        pixels = float(np.prod(self.model.shape))
        return np.array([p.vortex.xrf_cps * self.model.relative_sensitivity[e] / (pixels * p.camera.photons_per_s)
                         for e in self.model.elements], dtype=np.float64)

    def read(self) -> dict[str, dict[str, Any]]:
        now = time.time()
        return {f"{self.name}_maps": {"value": np.asarray(self.model.sample.maps, dtype=np.float64), "timestamp": now},
                f"{self.name}_od": {"value": np.asarray(self.model.sample.txm, dtype=np.float64), "timestamp": now},
                f"{self.name}_signal_scale": {"value": self._scale(), "timestamp": now}}

    def describe(self) -> dict[str, dict[str, Any]]:
        e, (h, w) = len(self.model.elements), self.model.shape
        return {f"{self.name}_maps": _array_key((e, h, w), "float64", "sim:instrument-model"),
                f"{self.name}_od": _array_key((h, w), "float64", "sim:instrument-model"),
                f"{self.name}_signal_scale": _array_key((e,), "float64", "sim:instrument-model")}

    def read_configuration(self) -> dict[str, dict[str, Any]]:
        return {}

    def describe_configuration(self) -> dict[str, dict[str, Any]]:
        return {}
