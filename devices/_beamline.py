"""Build the whole beamline from a configuration file: EPICS-backed devices, or the same classes
simulated in-process on the instrument model (no EPICS needed)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from ophyd import Device

from ._config import BeamlineConfig, load_config

__all__ = ["Beamline", "make_beamline", "DEVICE_NAMES"]

#: the devices of a beamline, in the order they are built
DEVICE_NAMES: tuple[str, ...] = ("diffuser1", "diffuser2", "condenser", "pinhole", "zone_plate", "sample_stage",
                                 "camera", "vortex", "shutter")


@dataclasses.dataclass
class Beamline:
    """The devices of one beamline. In ``sim`` mode :attr:`model` is the instrument model behind them
    (ground truth for scoring) and :attr:`store` the in-process PV server."""

    mode: str
    config: BeamlineConfig
    devices: dict[str, Device]
    model: Any = None
    store: Any = None
    records: Any = None

    def __getattr__(self, name: str) -> Device:
        devices = self.__dict__.get("devices", {})
        if name in devices:
            return devices[name]
        raise AttributeError(name)

    def close(self) -> None:
        """Release the simulation's threads and files (no-op for EPICS devices)."""
        if self.records is not None:
            self.records.close()
        if self.store is not None:
            self.store.close()


def _config(config: BeamlineConfig | str | Path | None) -> BeamlineConfig:
    return config if isinstance(config, BeamlineConfig) else load_config(config)


def make_beamline(mode: Literal["sim", "epics"] = "sim", config: BeamlineConfig | str | Path | None = None, *,
                  connect: bool = True, timeout: float = 10.0) -> Beamline:
    """All devices of the configured beamline (default configuration: the shipped simulated one).

    ``mode="epics"``: ophyd devices on Channel Access (``connect`` waits for the non-lazy PVs).
    ``mode="sim"``: the same classes served in-process by the instrument model; moves and exposures
    take the configured ``simulation.timing``.
    """
    from .sim._records import device_classes

    cfg = _config(config)
    classes = device_classes(cfg)
    if mode == "epics":
        devices: dict[str, Device] = {}
        # one device at a time: areaDetector's lazy signals allow 1 s to connect each, which hundreds of
        # motor PVs connecting at once can exceed on a busy machine
        for name in sorted(classes, key=lambda n: n != "camera"):
            cls, prefix, kwargs = classes[name]
            devices[name] = cls(prefix, name=name, **kwargs)
            if connect:
                devices[name].wait_for_connection(timeout=timeout)
        return Beamline(mode="epics", config=cfg, devices={n: devices[n] for n in classes})
    if mode != "sim":
        raise ValueError(f"mode must be 'sim' or 'epics', got {mode!r}")
    from .sim import InstrumentModel
    from .sim._records import BeamlineRecords
    from .sim._store import PVStore, make_sim_device

    model = InstrumentModel(cfg.simulation, sample_in=cfg.devices.sample_stage.positions["in"])
    records = BeamlineRecords(cfg, model)
    store = PVStore(records.database)
    records.bind(store)
    devices = {name: make_sim_device(cls, store, prefix, name=name, **kwargs)
               for name, (cls, prefix, kwargs) in classes.items()}
    return Beamline(mode="sim", config=cfg, devices=devices, model=model, store=store, records=records)
