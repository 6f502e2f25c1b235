"""The TXM camera: an areaDetector with its cam, an image plugin (frames over Channel Access) and an
HDF5 file plugin whose files bluesky references through resource/datum documents (``AD_HDF5``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
from ophyd.areadetector import DetectorBase, HDF5Plugin, ImagePlugin, SingleTrigger
from ophyd.areadetector.base import ADComponent as ADCpt
from ophyd.areadetector.cam import AreaDetectorCam
from ophyd.areadetector.filestore_mixins import FileStoreHDF5IterativeWrite
from ophyd.device import Staged
from ophyd.status import StatusBase

__all__ = ["TXMCamera", "TXMHDF5Plugin"]


class TXMHDF5Plugin(FileStoreHDF5IterativeWrite, HDF5Plugin):
    """HDF5 file plugin, one file per staging (``Stream`` mode), one datum per frame."""


class TXMCamera(SingleTrigger, DetectorBase):
    """TXM camera: ``trigger()`` takes one frame of ``cam.acquire_time`` seconds.

    ``read()`` gives ``<name>_image`` (a datum of the HDF5 file); :meth:`last_frame` reads the frame
    itself through the image plugin, which is how a live view or a quick check gets it.
    """

    _default_read_attrs = ("hdf5",)
    _default_configuration_attrs = ("cam",)

    cam = ADCpt(AreaDetectorCam, "cam1:", kind="config")
    image = ADCpt(ImagePlugin, "image1:", kind="omitted")
    hdf5 = ADCpt(TXMHDF5Plugin, "HDF1:", write_path_template="/tmp/nxsci/txm/", kind="normal")

    def __init__(self, *args: object, **kwargs: object) -> None:
        self._status_lock = threading.Lock()
        self._on_end: Callable[[], None] | None = None
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.stage_sigs.update([("cam.num_images", 1)])

    def trigger(self) -> StatusBase:
        """One acquisition (as ``SingleTrigger.trigger``), returning the status it created.

        ophyd's own returns ``self._status``, which the acquisition-done callback may already have reset
        to None when the acquisition ends before ``trigger`` returns (instantaneous simulated exposures)."""
        status = self.acquire()
        self.generate_datum(self._image_name, time.time(), {})
        return status

    def acquire(self) -> StatusBase:
        """Start one acquisition, without the datum of the HDF5 file that :meth:`trigger` adds to the next
        ``read()``: for readers that take the frame itself (a datum costs a schema-validated document)."""
        status = self._status_type(self)
        self.start_acquisition(status.set_finished)
        return status

    def start_acquisition(self, on_end: Callable[[], None]) -> None:
        """Start one acquisition; ``on_end()`` runs (monitor thread) when it has ended. For readers that
        finish their own status on more than the acquisition (:meth:`acquire` makes one of its own)."""
        if self._staged != Staged.yes:
            raise RuntimeError("This detector is not ready to trigger. Call the stage() method before triggering.")
        with self._status_lock:
            self._on_end = on_end
        self._acquisition_signal.put(1, wait=False)

    def _acquire_changed(self, value: object = None, old_value: object = None, **kwargs: object) -> None:
        """Finish the pending trigger on the falling edge of ``Acquire``.

        ophyd's version finishes the status and *then* clears ``self._status``; finishing lets the
        RunEngine trigger again at once, and the clearing then drops that new status, which never
        finishes (a hang every few hundred instantaneous frames). Take the callback first, then run it."""
        if old_value == 1 and value == 0:
            with self._status_lock:
                on_end, self._on_end = self._on_end, None
            if on_end is not None:
                on_end()

    def last_frame(self) -> np.ndarray:
        """The latest frame (H, W) as the image plugin holds it (uint16)."""
        width = int(self.image.array_size.width.get())
        height = int(self.image.array_size.height.get())
        if width == 0 or height == 0:
            raise RuntimeError(f"{self.name}: no frame yet (take one with trigger())")
        data = np.asarray(self.image.array_data.get(count=width * height))
        return data[: width * height].reshape(height, width).astype(np.uint16)
