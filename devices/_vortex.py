"""The Vortex fluorescence detector read by an XIA Mercury: dxp system PVs, one MCA record, one DXP
channel. ``trigger()`` erases and starts one acquisition of the preset (real or live) time; the put
completes when it has ended (``EraseStart`` is a busy record on the IOC)."""

from __future__ import annotations

from collections import OrderedDict

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO, Signal
from ophyd import DynamicDeviceComponent as DDC
from ophyd.mca import ROI, EpicsDXP, EpicsMCARecord, SoftDXPTrigger

__all__ = ["VortexDetector", "VortexMCA", "VortexDXP", "VortexROI", "NUM_ROIS"]

#: regions of interest served and read (the mca record has 32; 8 cover the K lines of interest)
NUM_ROIS = 8


class VortexROI(ROI):
    """An MCA region of interest: counts read with each event, the channel window as configuration."""

    label = Cpt(EpicsSignal, "NM", lazy=True, kind="config", string=True)
    count = Cpt(EpicsSignalRO, "", lazy=True, kind="normal")
    net_count = Cpt(EpicsSignalRO, "N", lazy=True, kind="normal")
    preset_count = Cpt(EpicsSignal, "P", lazy=True, kind="omitted")
    is_preset = Cpt(EpicsSignal, "IP", lazy=True, kind="omitted")
    bkgnd_chans = Cpt(EpicsSignal, "BG", lazy=True, kind="omitted")
    hi_chan = Cpt(EpicsSignal, "HI", lazy=True, kind="config")
    lo_chan = Cpt(EpicsSignal, "LO", lazy=True, kind="config")


def _rois() -> OrderedDict[str, tuple[type, str, dict[str, object]]]:
    return OrderedDict((f"roi{i}", (VortexROI, f".R{i}", {})) for i in range(NUM_ROIS))


class VortexMCA(EpicsMCARecord):
    """The mca record: spectrum, presets and elapsed times, ROIs, energy calibration."""

    rois = DDC(_rois(), kind="normal")
    num_channels = Cpt(EpicsSignal, ".NUSE", kind="config")
    calibration_offset = Cpt(EpicsSignal, ".CALO", kind="config")
    calibration_slope = Cpt(EpicsSignal, ".CALS", kind="config")
    calibration_quadratic = Cpt(EpicsSignal, ".CALQ", kind="config")
    energy_units = Cpt(EpicsSignal, ".EGU", kind="config", string=True)

    def describe(self) -> OrderedDict[str, dict[str, object]]:
        """As the mca record, plus the spectrum's numpy dtype: ``.VAL`` is DBF_LONG, and without a declared
        ``dtype_numpy`` consumers (tiled) store the counts as float64."""
        desc = super().describe()
        if self.spectrum.name in desc:
            desc[self.spectrum.name].setdefault("dtype_numpy", "<i4")
        return desc


class VortexDXP(EpicsDXP):
    """The DXP channel; only the count rates are read, the filter settings are configuration."""

    def __init__(self, *args: object, read_attrs: list[str] | None = None,
                 configuration_attrs: list[str] | None = None, **kwargs: object) -> None:
        reads = read_attrs or ["input_count_rate", "output_count_rate"]
        configs = configuration_attrs or ["peaking_time", "energy_threshold", "max_energy", "mca_bin_width"]
        super().__init__(*args, read_attrs=reads, configuration_attrs=configs, **kwargs)  # type: ignore[arg-type]


class VortexDetector(SoftDXPTrigger, Device):
    """Vortex + Mercury. Set ``count_time`` (bluesky's convention) or ``preset_real_time``; staging puts
    the Mercury in ``Real time`` preset mode and stops any running acquisition first."""

    count_time = Cpt(Signal, value=None, kind="omitted", doc="bluesky count time (s); None: keep the preset")
    preset_mode = Cpt(EpicsSignal, "PresetMode", string=True, kind="config")
    preset_real_time = Cpt(EpicsSignal, "PresetReal", kind="config")
    preset_live_time = Cpt(EpicsSignal, "PresetLive", kind="config")
    erase_start = Cpt(EpicsSignal, "EraseStart", trigger_value=1, kind="omitted")
    stop_all = Cpt(EpicsSignal, "StopAll", kind="omitted")
    acquiring = Cpt(EpicsSignalRO, "Acquiring", kind="omitted")
    elapsed_real = Cpt(EpicsSignalRO, "ElapsedReal")
    elapsed_live = Cpt(EpicsSignalRO, "ElapsedLive")
    dead_time = Cpt(EpicsSignalRO, "DeadTime")
    mca = Cpt(VortexMCA, "mca1")
    dxp = Cpt(VortexDXP, "dxp1:")
