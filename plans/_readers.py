"""Readables the plans put into events besides the devices themselves.

* :class:`InlineFrames`: the TXM camera's frame carried *in* the event (uint16 array) instead of as a
  reference into the IOC's HDF5 file, so that any tiled server stores the frames without access to the
  IOC's disk. The camera is staged as usual (its HDF5 file remains the IOC-side archive).
* :class:`SimTruth` and :class:`SimTruthMaps`: ground truth of the simulated instrument (true stage
  error, expected element counts, element maps) so that a run can be scored; simulated beamlines only.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from ophyd.status import AndStatus, StatusBase, SubscriptionStatus

from nxsci.devices import TXMCamera

__all__ = ["InlineFrames", "SimTruth", "SimTruthMaps", "IndexSignal"]


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
        self.value = int(value)
        self._timestamp = time.time()
        return _done()

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


class InlineFrames:
    """The camera's frames as uint16 arrays in the events (data key ``<camera>_image``, shape (H, W)).

    ``trigger()`` completes when the camera has finished *and* the image plugin holds the new frame (on a
    real IOC the plugin may publish it after ``Acquire`` drops), so ``read()`` never returns a stale frame.
    """

    def __init__(self, camera: TXMCamera) -> None:
        self.camera = camera
        self.name = camera.name
        self.parent = None
        self.key = f"{camera.name}_image"

    def stage(self) -> list[Any]:
        self.camera.stage()
        return [self]

    def unstage(self) -> list[Any]:
        self.camera.unstage()
        return [self]

    def trigger(self) -> StatusBase:
        counter = self.camera.image.array_counter
        target = int(counter.get()) + 1
        fresh = SubscriptionStatus(counter, lambda value, **_: int(value) >= target, run=True)
        return AndStatus(self.camera.trigger(), fresh)

    def _shape(self) -> tuple[int, int]:
        size = self.camera.cam.array_size
        return int(size.array_size_y.get()), int(size.array_size_x.get())

    def read(self) -> dict[str, dict[str, Any]]:
        frame = self.camera.last_frame()
        for _ in self.camera.collect_asset_docs():  # datums of the HDF5 archive copy: not part of the run
            pass
        return {self.key: {"value": frame, "timestamp": time.time()}}

    def describe(self) -> dict[str, dict[str, Any]]:
        return {self.key: _array_key(self._shape(), "uint16", f"PV:{self.camera.image.array_data.pvname}")}

    def read_configuration(self) -> dict[str, dict[str, Any]]:
        return dict(self.camera.read_configuration())

    def describe_configuration(self) -> dict[str, dict[str, Any]]:
        return dict(self.camera.describe_configuration())

    @property
    def hints(self) -> dict[str, list[str]]:
        return {"fields": []}


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
        for acquisition in reversed(list(self.model.acquisitions)):
            if acquisition["kind"] == "vortex":
                counts = np.array([acquisition["element_counts"][e] for e in self.elements], dtype=np.float64)
                break
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
