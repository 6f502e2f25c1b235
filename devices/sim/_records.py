"""Record behaviour of the simulated beamline, written once against :class:`PVIO`.

Motor records (puts to ``.VAL`` complete when the move is done; ``DMOV``/``MOVN``/``RBV`` as the
motor record posts them), an areaDetector camera (``Acquire`` takes frames from the instrument model
into the image plugin and, while capturing, into an HDF5 file laid out as areaDetector writes it), a
dxp/MCA Vortex (``EraseStart`` acquires a spectrum for the preset time; ROIs, elapsed times, dead time)
and a shutter. The caproto IOC and the in-process simulated devices run exactly this code.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nxsci.recon import detector_fwhm_keV, k_lines

from ._instrument import InstrumentModel
from ._pvs import PVIO, PVDatabase, PVSpec, generic_spec, walk_device_pvs

if TYPE_CHECKING:
    from .._config import BeamlineConfig

__all__ = ["AXIS_LIMITS", "BeamlineRecords", "device_classes"]

#: engineering units and soft limits of every axis served by the simulated IOC
AXIS_LIMITS: dict[str, tuple[str, float, float]] = {
    "diffuser1.x": ("mm", -50.0, 50.0), "diffuser1.y": ("mm", -50.0, 50.0),
    "diffuser2.x": ("mm", -50.0, 50.0), "diffuser2.y": ("mm", -50.0, 50.0),
    "condenser.x": ("mm", -2.0, 2.0), "condenser.y": ("mm", -2.0, 2.0),
    "condenser.pitch": ("mrad", -20.0, 20.0), "condenser.yaw": ("mrad", -20.0, 20.0),
    "pinhole.x": ("mm", -2.0, 2.0), "pinhole.y": ("mm", -2.0, 2.0),
    "zone_plate.x": ("mm", -1.0, 1.0), "zone_plate.y": ("mm", -1.0, 1.0), "zone_plate.z": ("mm", -5.0, 5.0),
    "sample_stage.x": ("mm", -10.0, 10.0), "sample_stage.y": ("mm", -10.0, 10.0),
    "sample_stage.z": ("mm", -5.0, 5.0),
}

_NO_YES = ("No", "Yes")
_DIS_EN = ("Disable", "Enable")
_DATA_TYPES = ("Int8", "UInt8", "Int16", "UInt16", "Int32", "UInt32", "Float32", "Float64")
_COLOR_MODES = ("Mono", "Bayer", "RGB1", "RGB2", "RGB3", "YUV444", "YUV422", "YUV421")
_DETECTOR_STATES = ("Idle", "Acquire", "Readout", "Correct", "Saving", "Aborting", "Error", "Waiting",
                    "Initializing", "Disconnected", "Aborted")
_PRESET_MODES = ("No preset", "Real time", "Live time", "Events", "Triggers")
_TICK_S = 0.02
_H5_BLOCK = 64  # frames by which the HDF5 archive's dataset grows


def device_classes(config: BeamlineConfig) -> dict[str, tuple[type, str, dict[str, Any]]]:
    """Every device of the beamline: (configured ophyd class, PV prefix, constructor kwargs)."""
    from .._camera import TXMCamera
    from .._motion import Condenser, DiffuserStage, Pinhole, SampleStage, ZonePlate, with_components
    from .._shutter import Shutter
    from .._vortex import VortexDetector

    d = config.devices
    cam = d.camera
    camera_cls = with_components(TXMCamera, {"cam": cam.cam, "image": cam.image, "hdf5": cam.hdf5},
                                 {"hdf5": {"write_path_template": cam.write_path, "read_path_template": cam.read_path,
                                           "root": cam.root}})
    return {
        "diffuser1": (with_components(DiffuserStage, d.diffuser1.motors), d.diffuser1.prefix, {}),
        "diffuser2": (with_components(DiffuserStage, d.diffuser2.motors), d.diffuser2.prefix, {}),
        "condenser": (with_components(Condenser, d.condenser.motors), d.condenser.prefix, {}),
        "pinhole": (with_components(Pinhole, d.pinhole.motors), d.pinhole.prefix, {}),
        "zone_plate": (with_components(ZonePlate, d.zone_plate.motors), d.zone_plate.prefix, {}),
        "sample_stage": (with_components(SampleStage, d.sample_stage.motors), d.sample_stage.prefix,
                         {"positions": d.sample_stage.positions}),
        "camera": (camera_cls, cam.prefix, {}),
        "vortex": (with_components(VortexDetector, {"mca": d.vortex.mca, "dxp": d.vortex.dxp}), d.vortex.prefix, {}),
        "shutter": (with_components(Shutter, {"command": d.shutter.command, "status": d.shutter.status}),
                    d.shutter.prefix, {}),
    }


class BeamlineRecords:
    """The PV database of a configured beamline and the record logic that drives the model through it.

    Build it, serve :attr:`database` (IOC or in-process store), then :meth:`bind` the server's
    :class:`PVIO` so that handlers can post values.
    """

    def __init__(self, config: BeamlineConfig, model: InstrumentModel) -> None:
        self.config = config
        self.model = model
        self.timing = config.simulation.timing
        self.db = PVDatabase()
        self._io: PVIO | None = None
        self._h5_lock = threading.Lock()
        self._h5: Any = None
        self._h5_data: Any = None  # the open file's frame dataset
        self._h5_index = 0
        self._h5_capacity = 0  # frames the dataset has room for (it grows in blocks of _H5_BLOCK)
        self._stop_vortex = threading.Event()
        self._stop_camera = threading.Event()
        self._camera_busy = threading.Event()
        owner: dict[str, str] = {}
        for device, (cls, prefix, _) in device_classes(config).items():
            areadetector = device == "camera"
            for pv in walk_device_pvs(cls, prefix):
                for spec in generic_spec(pv, areadetector=areadetector):
                    if owner.setdefault(spec.name, device) != device:
                        from .._config import BeamlineConfigError

                        raise BeamlineConfigError(f"PV {spec.name} belongs to both {owner[spec.name]} and {device}: "
                                                  f"give the devices distinct prefixes")
                    self.db.add(spec, replace=False)
        self._motors()
        self._camera()
        self._vortex()
        self._shutter()

    # -- plumbing ---------------------------------------------------------------------------------
    @property
    def database(self) -> PVDatabase:
        return self.db

    @property
    def io(self) -> PVIO:
        if self._io is None:
            raise RuntimeError("records are not bound to a PV server yet")
        return self._io

    def bind(self, io: PVIO) -> None:
        self._io = io

    def _add(self, name: str, kind: str = "float", value: Any = 0.0, *, rbv: bool = False, **kw: Any) -> None:
        """A PV (and its ``_RBV`` mirror when ``rbv``), replacing a generic spec of the same name."""
        spec = PVSpec(name, kind, value, **kw)  # type: ignore[arg-type]
        if rbv:
            spec.echo = f"{name}_RBV"
            self.db.add(PVSpec(f"{name}_RBV", kind, value, **kw))  # type: ignore[arg-type]
        self.db.add(spec)

    # -- motors -----------------------------------------------------------------------------------
    def _motors(self) -> None:
        d = self.config.devices
        defaults = {"diffuser1": "XY", "diffuser2": "XY", "condenser": ("X", "Y", "PITCH", "YAW"),
                    "pinhole": "XY", "zone_plate": "XYZ", "sample_stage": "XYZ"}
        for device, axes in defaults.items():
            cfg = getattr(d, device)
            for record_default in axes:
                axis = record_default.lower()
                record = cfg.motors.get(axis, record_default)
                self._motor(f"{cfg.prefix}{record}", f"{device}.{axis}")

    def _motor(self, pv: str, axis: str) -> None:
        egu, llm, hlm = AXIS_LIMITS[axis]
        pos = self.model.position(axis)
        for field, kind, value in ((".RBV", "float", pos), (".DRBV", "float", pos), (".DVAL", "float", pos),
                                   (".OFF", "float", 0.0), (".VELO", "float", 1.0), (".VBAS", "float", 0.0),
                                   (".ACCL", "float", 0.1), (".HLM", "float", hlm), (".LLM", "float", llm),
                                   (".DMOV", "int", 1), (".MOVN", "int", 0), (".HLS", "int", 0), (".LLS", "int", 0),
                                   (".TDIR", "int", 0), (".DIR", "int", 0), (".SET", "int", 0), (".FOFF", "int", 0),
                                   (".MSTA", "int", 2), (".CNEN", "int", 1), (".LVIO", "int", 0), (".STOP", "int", 0),
                                   (".HOMF", "int", 0), (".HOMR", "int", 0), (".PREC", "int", 4), (".SPMG", "int", 3)):
            self._add(pv + field, kind, value, units=egu if kind == "float" else "")
        self._add(pv + ".VAL", "float", pos, units=egu, limits=(llm, hlm))
        self._add(pv + ".EGU", "string", egu)
        self._add(pv + ".DESC", "string", axis)
        motor = _Motor(self, pv, axis)
        self.db.handle(pv + ".VAL", motor.move)
        self.db.handle(pv + ".STOP", motor.stop)

    # -- camera -----------------------------------------------------------------------------------
    def _camera(self) -> None:
        c = self.config.devices.camera
        size = self.config.simulation.image_size
        cam, image, h5 = c.prefix + c.cam, c.prefix + c.image, c.prefix + c.hdf5
        self._cam, self._image, self._hdf5 = cam, image, h5
        a = self._add
        a(cam + "Acquire", "enum", 0, enum_strs=("Done", "Acquire"), rbv=True)
        self.db.specs[cam + "Acquire"].echo = None  # Acquire_RBV follows the acquisition, not the put
        a(cam + "AcquireTime", "float", 0.5, units="s", rbv=True)
        a(cam + "AcquirePeriod", "float", 0.5, units="s", rbv=True)
        a(cam + "ImageMode", "enum", 0, enum_strs=("Single", "Multiple", "Continuous"), rbv=True)
        a(cam + "TriggerMode", "enum", 0, enum_strs=("Internal", "External"), rbv=True)
        a(cam + "NumImages", "int", 1, rbv=True)
        a(cam + "NumExposures", "int", 1, rbv=True)
        a(cam + "ArrayCallbacks", "enum", 1, enum_strs=_DIS_EN, rbv=True)
        a(cam + "DataType", "enum", 3, enum_strs=_DATA_TYPES, rbv=True)
        a(cam + "ColorMode", "enum", 0, enum_strs=_COLOR_MODES, rbv=True)
        for axis in "XY":
            a(cam + f"MaxSize{axis}_RBV", "int", size)
            a(cam + f"Size{axis}", "int", size, rbv=True)
            a(cam + f"ArraySize{axis}_RBV", "int", size)
        a(cam + "ArraySizeZ_RBV", "int", 0)
        a(cam + "ArraySize_RBV", "int", size * size * 2)
        a(cam + "DetectorState_RBV", "enum", 0, enum_strs=_DETECTOR_STATES)
        a(cam + "StatusMessage_RBV", "char", "Idle", length=256)
        a(cam + "Manufacturer_RBV", "string", "nxsci")
        a(cam + "Model_RBV", "string", "simulated TXM camera")
        a(cam + "PortName_RBV", "string", "CAM1")
        a(cam + "Gain", "float", 1.0, rbv=True)
        for plugin, port, ptype in ((image, "IMAGE1", "NDPluginStdArrays"), (h5, "HDF1", "NDFileHDF5")):
            a(plugin + "PortName_RBV", "string", port)
            a(plugin + "PluginType_RBV", "string", ptype)
            a(plugin + "NDArrayPort", "string", "CAM1", rbv=True)
            a(plugin + "EnableCallbacks", "enum", 1, enum_strs=_DIS_EN, rbv=True)
            a(plugin + "BlockingCallbacks", "enum", 0, enum_strs=_NO_YES, rbv=True)
            a(plugin + "DataType_RBV", "enum", 3, enum_strs=_DATA_TYPES)
            a(plugin + "ColorMode_RBV", "enum", 0, enum_strs=_COLOR_MODES)
            a(plugin + "NDimensions_RBV", "int", 2)
            for i, n in enumerate((size, size, 0)):  # primed, as after a first frame (ophyd requires it)
                a(plugin + f"ArraySize{i}_RBV", "int", n)
        a(image + "ArrayData", "array", None, dtype="int32", length=size * size)
        for name, value in (("FilePath", ""), ("FileName", ""), ("FileTemplate", "%s%s_%6.6d.h5")):
            a(h5 + name, "char", value, length=256, rbv=True)
        a(h5 + "FullFileName_RBV", "char", "", length=256)
        a(h5 + "FileNumber", "int", 0, rbv=True)
        a(h5 + "AutoIncrement", "enum", 1, enum_strs=_NO_YES, rbv=True)
        a(h5 + "AutoSave", "enum", 1, enum_strs=_NO_YES, rbv=True)
        a(h5 + "FileWriteMode", "enum", 2, enum_strs=("Single", "Capture", "Stream"), rbv=True)
        a(h5 + "Capture", "enum", 0, enum_strs=("Done", "Capture"), rbv=True)
        a(h5 + "NumCapture", "int", 0, rbv=True)
        a(h5 + "NumCaptured_RBV", "int", 0)
        a(h5 + "FilePathExists_RBV", "enum", 0, enum_strs=_NO_YES)
        # the sim IOC starts with CreateDirectory = -5 (areaDetector: create up to 5 missing levels); ophyd's
        # HDF5Plugin (ADCore 1.9 API) never sets it, so a real IOC needs the same setting or existing paths
        a(h5 + "CreateDirectory", "int", -5, rbv=True)
        a(h5 + "WriteMessage", "char", "", length=256)
        self.db.handle(cam + "Acquire", self._acquire, concurrent=True)
        # as areaDetector, the readbacks of these follow the work: FilePath_RBV once FilePathExists_RBV says
        # whether the directory exists, Capture_RBV once the file is open and FileNumber incremented (a
        # client that waits for the readback, as ophyd's staging does, then finds both done)
        self.db.specs[h5 + "FilePath"].echo = None
        self.db.specs[h5 + "Capture"].echo = None
        self.db.handle(h5 + "FilePath", self._file_path)
        self.db.handle(h5 + "Capture", self._capture)

    def _acquire(self, value: Any) -> int | None:
        io, cam = self.io, self._cam
        if int(value) == 0:
            self._stop_camera.set()
            if not self._camera_busy.is_set():
                io.post(cam + "Acquire_RBV", 0)
            return None
        if self._camera_busy.is_set():  # already acquiring: like areaDetector, a second start is a no-op
            return None
        self._camera_busy.set()
        self._stop_camera.clear()
        io.post(cam + "Acquire_RBV", 1)
        io.post(cam + "DetectorState_RBV", 1)
        mode = int(io.get(cam + "ImageMode"))  # Single, Multiple, Continuous (until Acquire = 0)
        count = 1 if mode == 0 else max(1, int(io.get(cam + "NumImages"))) if mode == 1 else sys.maxsize
        done = 0
        while done < count and not self._stop_camera.is_set():
            exposure = float(io.get(cam + "AcquireTime"))
            _sleep(exposure * self.timing.acquire_time_scale, self._stop_camera)
            if self._stop_camera.is_set():
                break
            self._publish_frame(self.model.camera_frame(exposure))
            done += 1
            io.post(cam + "NumImagesCounter_RBV", done)
        io.post(cam + "DetectorState_RBV", 0)
        self._camera_busy.clear()
        io.post(cam + "Acquire_RBV", 0)
        return 0

    def _publish_frame(self, frame: np.ndarray) -> None:
        io = self.io
        cam, image, h5 = self._cam, self._image, self._hdf5
        h, w = frame.shape
        counter = int(io.get(cam + "ArrayCounter_RBV")) + 1
        io.post(cam + "ArrayCounter_RBV", counter)
        io.post(cam + "ArrayCounter", counter)
        if int(io.get(cam + "ArrayCallbacks")) != 1:
            return
        if int(io.get(image + "EnableCallbacks")) == 1:
            io.post(image + "ArraySize0_RBV", w)
            io.post(image + "ArraySize1_RBV", h)
            io.post(image + "ArrayData", frame.ravel().astype(np.int32))
            n = int(io.get(image + "ArrayCounter_RBV")) + 1
            io.post(image + "UniqueId_RBV", counter)
            io.post(image + "ArrayCounter_RBV", n)
        if int(io.get(h5 + "EnableCallbacks")) == 1:
            io.post(h5 + "ArraySize0_RBV", w)
            io.post(h5 + "ArraySize1_RBV", h)
            with self._h5_lock:
                if self._h5 is not None:
                    # no flush per frame: like the HDF5 plugin with NumFramesFlush = 0 (its default), the
                    # file is complete when capture ends (closing flushes it)
                    self._write_frame(frame)
                    captured = self._h5_index
                else:
                    captured = None
            if captured is not None:
                io.post(h5 + "NumCaptured_RBV", captured)
                n_capture = int(io.get(h5 + "NumCapture"))
                if n_capture and captured >= n_capture:
                    self._close_file()
            n = int(io.get(h5 + "ArrayCounter_RBV")) + 1
            io.post(h5 + "ArrayCounter_RBV", n)

    def _write_frame(self, frame: np.ndarray) -> None:
        """Append a frame to the open file (``_h5_lock`` held). The dataset grows in blocks and is trimmed to
        the frames captured when the file closes; a frame is one chunk, written as it is (no filters): per
        frame ~10 us instead of ~90 us for a resize and a selection write."""
        dset, i = self._h5_data, self._h5_index
        if i >= self._h5_capacity:
            self._h5_capacity = i + _H5_BLOCK
            dset.resize(self._h5_capacity, axis=0)
        if frame.shape == dset.chunks[1:]:
            dset.id.write_direct_chunk((i, 0, 0), np.ascontiguousarray(frame, dtype=np.uint16).tobytes())
        else:
            dset[i] = frame
        self._h5_index = i + 1

    def _file_path(self, value: Any) -> None:
        path = Path(str(value))
        if not path.is_dir() and int(self.io.get(self._hdf5 + "CreateDirectory")) < 0:
            path.mkdir(parents=True, exist_ok=True)
        self.io.post(self._hdf5 + "FilePathExists_RBV", int(path.is_dir()))
        self.io.post(self._hdf5 + "FilePath_RBV", str(value))

    def _capture(self, value: Any) -> None:
        io, h5 = self.io, self._hdf5
        if int(value) == 0:
            self._close_file()
            return
        import h5py

        directory = Path(str(io.get(h5 + "FilePath")))
        if not directory.is_dir() and int(io.get(h5 + "CreateDirectory")) != 0:
            directory.mkdir(parents=True, exist_ok=True)
        io.post(h5 + "FilePathExists_RBV", int(directory.is_dir()))
        number = int(io.get(h5 + "FileNumber"))
        template = str(io.get(h5 + "FileTemplate")) or "%s%s_%6.6d.h5"
        full = template % (os.path.join(str(directory), ""), str(io.get(h5 + "FileName")), number)
        size = self.config.simulation.image_size
        try:
            with self._h5_lock:
                self._close_file_locked()
                f = h5py.File(full, "w")
                dset = f.create_dataset("entry/data/data", shape=(0, size, size), maxshape=(None, size, size),
                                        dtype="uint16", chunks=(1, size, size))
                self._h5, self._h5_data, self._h5_index, self._h5_capacity = f, dset, 0, 0
        except OSError as exc:
            io.post(h5 + "WriteMessage", f"cannot create {full}: {exc}"[:255])
            io.post(h5 + "Capture_RBV", 0)
            return
        io.post(h5 + "FullFileName_RBV", full)
        io.post(h5 + "NumCaptured_RBV", 0)
        if int(io.get(h5 + "AutoIncrement")) == 1:
            io.post(h5 + "FileNumber", number + 1)
            io.post(h5 + "FileNumber_RBV", number + 1)
        io.post(h5 + "Capture_RBV", 1)

    def _close_file(self) -> None:
        with self._h5_lock:
            self._close_file_locked()
        self.io.post(self._hdf5 + "Capture_RBV", 0)

    def _close_file_locked(self) -> None:
        if self._h5 is not None:
            self._h5_data.resize(self._h5_index, axis=0)  # the frames captured, not the block allocated
            self._h5.close()
            self._h5 = self._h5_data = None

    def close(self) -> None:
        """Close an open HDF5 file (server shutdown)."""
        with self._h5_lock:
            self._close_file_locked()

    # -- Vortex -----------------------------------------------------------------------------------
    def _vortex(self) -> None:
        v = self.config.devices.vortex
        p = self.model.params
        sysp, mca, dxp = v.prefix, v.prefix + v.mca, v.prefix + v.dxp
        self._sys, self._mca, self._dxp = sysp, mca, dxp
        a = self._add
        a(sysp + "PresetMode", "enum", 1, enum_strs=_PRESET_MODES)
        a(sysp + "PresetReal", "float", 1.0, units="s")
        a(sysp + "PresetLive", "float", 0.0, units="s")
        for name in ("EraseStart", "StopAll", "EraseAll", "StartAll"):
            a(sysp + name, "int", 0)
        a(sysp + "Acquiring", "enum", 0, enum_strs=("Done", "Acquiring"))
        for name in ("ElapsedReal", "ElapsedLive", "DeadTime", "IDeadTime"):
            a(sysp + name, "float", 0.0, units="%" if "Dead" in name else "s")
        channels = p.vortex.channels
        a(mca + ".VAL", "array", None, dtype="int32", length=channels)
        a(mca + ".BG", "array", None, dtype="int32", length=channels)
        a(mca + ".NUSE", "int", channels)
        a(mca + ".NMAX", "int", channels)
        a(mca + ".PRTM", "float", 1.0, units="s")
        a(mca + ".PLTM", "float", 0.0, units="s")
        a(mca + ".ERTM", "float", 0.0, units="s")
        a(mca + ".ELTM", "float", 0.0, units="s")
        a(mca + ".CALO", "float", p.vortex.zero_keV, precision=6)
        a(mca + ".CALS", "float", p.vortex.gain_keV, precision=6)
        a(mca + ".CALQ", "float", 0.0, precision=6)
        a(mca + ".EGU", "string", "keV")
        a(mca + ".MODE", "enum", 0, enum_strs=("PHA", "MCS", "List"))
        a(mca + ".STOP", "int", 0)
        a(mca + ".ACQG", "enum", 0, enum_strs=("Done", "Acquiring"))
        from .._vortex import NUM_ROIS

        windows = self._default_rois()
        for i in range(NUM_ROIS):
            label, lo, hi = windows[i] if i < len(windows) else ("", -1, -1)
            a(mca + f".R{i}", "float", 0.0)
            a(mca + f".R{i}N", "float", 0.0)
            a(mca + f".R{i}LO", "int", lo)
            a(mca + f".R{i}HI", "int", hi)
            a(mca + f".R{i}NM", "string", label)
        a(dxp + "InputCountRate", "float", 0.0, units="counts/s")
        a(dxp + "OutputCountRate", "float", 0.0, units="counts/s")
        a(dxp + "PeakingTime", "float", 2.0, units="us", rbv=True)
        a(dxp + "EnergyThreshold", "float", 1.0, units="keV", rbv=True)
        a(dxp + "MaxEnergy", "float", channels * p.vortex.gain_keV, units="keV", rbv=True)
        a(dxp + "MCABinWidth_RBV", "float", p.vortex.gain_keV * 1000.0, units="eV")
        self.db.handle(sysp + "EraseStart", self._erase_start)
        self.db.handle(sysp + "StartAll", self._erase_start)
        self.db.handle(sysp + "StopAll", lambda value: self._stop_vortex.set() if int(value) else None)
        self.db.handle(mca + ".STOP", lambda value: self._stop_vortex.set() if int(value) else None)
        for a_pv, b_pv in ((sysp + "PresetReal", mca + ".PRTM"), (sysp + "PresetLive", mca + ".PLTM")):
            self.db.handle(a_pv, _mirror(self, b_pv))
            self.db.handle(b_pv, _mirror(self, a_pv))

    def _default_rois(self) -> list[tuple[str, int, int]]:
        """Ka windows (+-2 sigma of the detector resolution) of each element of the sample."""
        cal = self.model.calibration
        out = []
        for element in self.model.elements:
            lines = [ln for ln in k_lines(element, self.model.params.energy_keV) if ln.name.startswith("KL")]
            energy = sum(ln.energy_keV * ln.rate for ln in lines) / sum(ln.rate for ln in lines)
            half = 2.0 * float(detector_fwhm_keV(energy, cal.noise_keV, cal.fano)) / 2.3548
            lo, hi = int(round(cal.channel(energy - half))), int(round(cal.channel(energy + half)))
            out.append((f"{element} Ka", lo, hi))
        return out

    def _erase_start(self, value: Any) -> int | None:
        if int(value) == 0:
            return None
        io = self.io
        sysp, mca, dxp = self._sys, self._mca, self._dxp
        self._stop_vortex.clear()
        io.post(sysp + "StopAll", 0)
        io.post(sysp + "Acquiring", 1)
        io.post(mca + ".ACQG", 1)
        live_mode = int(io.get(sysp + "PresetMode")) == 2  # other modes count for the preset real time
        preset = float(io.get(sysp + ("PresetLive" if live_mode else "PresetReal")))
        reading = (self.model.vortex_acquire(live_time=preset) if live_mode
                   else self.model.vortex_acquire(real_time=preset))
        wall = reading.real_time * self.timing.acquire_time_scale
        started = time.monotonic()
        _sleep(wall, self._stop_vortex)
        if self._stop_vortex.is_set() and wall > 0:  # stopped early: what was counted so far
            fraction = min(1.0, (time.monotonic() - started) / wall)
            reading = self.model.vortex_acquire(real_time=reading.real_time * fraction)
        spectrum = reading.spectrum
        io.post(mca + ".VAL", spectrum)
        for name, value_ in ((".ERTM", reading.real_time), (".ELTM", reading.live_time)):
            io.post(mca + name, value_)
        io.post(sysp + "ElapsedReal", reading.real_time)
        io.post(sysp + "ElapsedLive", reading.live_time)
        io.post(sysp + "DeadTime", reading.dead_time_percent)
        io.post(sysp + "IDeadTime", reading.dead_time_percent)
        io.post(dxp + "InputCountRate", reading.input_count_rate)
        io.post(dxp + "OutputCountRate", reading.output_count_rate)
        from .._vortex import NUM_ROIS

        for i in range(NUM_ROIS):
            lo, hi = int(io.get(mca + f".R{i}LO")), int(io.get(mca + f".R{i}HI"))
            total, net = _roi(spectrum, lo, hi)
            io.post(mca + f".R{i}", total)
            io.post(mca + f".R{i}N", net)
        io.post(mca + ".ACQG", 0)
        io.post(sysp + "Acquiring", 0)
        return 0

    # -- shutter ----------------------------------------------------------------------------------
    def _shutter(self) -> None:
        s = self.config.devices.shutter
        self._add(s.prefix + s.command, "enum", 1, enum_strs=("Close", "Open"))
        self._add(s.prefix + s.status, "enum", 1, enum_strs=("Closed", "Open"))
        status = s.prefix + s.status

        def move(value: Any) -> None:
            _sleep(self.timing.move_time_s, None)
            self.model.set_shutter(bool(int(value)))
            self.io.post(status, int(bool(int(value))))

        self.db.handle(s.prefix + s.command, move)


class _Motor:
    """One motor record: a move interpolates the readback over ``move_time_s`` and can be stopped."""

    def __init__(self, records: BeamlineRecords, pv: str, axis: str) -> None:
        self.records, self.pv, self.axis = records, pv, axis
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stop_lock = threading.Lock()  # a STOP and the start of a move, one at a time
        self._moving = False
        self._processed_target: float | None = None  # the VAL of the last move that started
        self._stopped_target: float | None = None  # a commanded VAL that a STOP came before

    def stop(self, value: Any) -> None:
        """Stop the move in progress, or the one commanded but not yet started: puts to VAL and STOP run in
        separate threads here, while a real record processes them in the order the client sent them."""
        if int(value):
            with self._stop_lock:
                commanded = float(self.records.io.get(self.pv + ".VAL"))
                if not self._moving and commanded != self._processed_target:
                    self._stopped_target = commanded
                self._stop.set()

    def move(self, value: Any) -> float | None:
        io, model, pv = self.records.io, self.records.model, self.pv
        target = float(value)
        with self._lock:
            if int(io.get(pv + ".SET")) == 1:  # redefine the position, no motion
                model.set_position(self.axis, target)
                io.post(pv + ".RBV", target)
                return None
            llm, hlm = float(io.get(pv + ".LLM")), float(io.get(pv + ".HLM"))
            start = model.position(self.axis)
            if llm < hlm and not llm <= target <= hlm:
                io.post(pv + ".LVIO", 1)
                io.post(pv + ".DMOV", 0)
                io.post(pv + ".DMOV", 1)
                return start
            io.post(pv + ".LVIO", 0)
            with self._stop_lock:
                if self._stopped_target != target:
                    self._stop.clear()
                self._stopped_target = None
                self._processed_target = target
                self._moving = True
            try:
                return self._travel(start, target)
            finally:
                with self._stop_lock:
                    self._moving = False

    def _travel(self, start: float, target: float) -> float | None:
        io, model, pv = self.records.io, self.records.model, self.pv
        io.post(pv + ".TDIR", int(target >= start))
        io.post(pv + ".DMOV", 0)
        io.post(pv + ".MOVN", 1)
        duration = self.records.timing.move_time_s if target != start else 0.0
        t0 = time.monotonic()
        position = start
        while duration > 0:
            fraction = min(1.0, (time.monotonic() - t0) / duration)
            position = start + fraction * (target - start)
            model.set_position(self.axis, position)
            io.post(pv + ".RBV", position)
            if fraction >= 1.0 or self._stop.is_set():
                break
            time.sleep(min(_TICK_S, duration * (1.0 - fraction)))
        final = position if self._stop.is_set() else target
        model.set_position(self.axis, final)
        model.arrive(self.axis)
        io.post(pv + ".RBV", final)
        io.post(pv + ".DRBV", final)
        io.post(pv + ".MOVN", 0)
        io.post(pv + ".DMOV", 1)
        return final if self._stop.is_set() else None


def _mirror(records: BeamlineRecords, other: str) -> Any:
    def handler(value: Any) -> None:
        records.io.post(other, value)
    return handler


def _sleep(seconds: float, stop: threading.Event | None) -> None:
    if seconds <= 0:
        return
    if stop is None:
        time.sleep(seconds)
    else:
        stop.wait(seconds)


def _roi(spectrum: np.ndarray, lo: int, hi: int) -> tuple[float, float]:
    """ROI sum and net sum (linear background through the two edge channels removed)."""
    if lo < 0 or hi < lo or lo >= spectrum.size:
        return 0.0, 0.0
    hi = min(hi, spectrum.size - 1)
    window = spectrum[lo:hi + 1].astype(np.float64)
    total = float(window.sum())
    background = 0.5 * (window[0] + window[-1]) * window.size
    return total, total - background
