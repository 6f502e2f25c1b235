"""Start-document metadata shared by the NxSCI plans: what was measured, how, and on which beamline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import bluesky.plan_stubs as bps
from bluesky.utils import MsgGenerator

from nxsci.devices import Beamline

from nxsci.recon import NxsciError, k_lines

from ._context import PlanError

__all__ = ["sample_metadata", "resolve_elements", "resolve_energy", "mca_calibration", "beamline_metadata",
           "STREAMS"]

#: the streams of an NxSCI run and what each event holds
STREAMS: dict[str, str] = {
    "dark": "camera frame with the shutter closed (offset + dark current); at the start",
    "pattern": "sample out: camera frame = the illumination pattern of one configuration",
    "primary": "sample in: camera frame (TXM) and Vortex spectrum acquired together, one per configuration; "
               "simulated beamline: also the true sample displacement and expected element counts",
    "truth_maps": "simulated beamline only: the sample's element maps and optical density, once",
    "baseline": "every motor (and the shutter) at the start and the end",
}


def sample_metadata(beamline: Beamline, sample: str | None) -> dict[str, Any]:
    """The sample: its name (given, or the simulated phantom's), and the simulation's sample settings
    (``elements``: those the simulated sample contains, the order of its ``truth_maps`` and ``truth_counts``)."""
    out: dict[str, Any] = {}
    if beamline.mode == "sim":
        sim = beamline.config.simulation.sample
        out.update(simulated=True, phantom=sim.phantom, seed=sim.seed, name=sim.phantom)
        if beamline.model is not None:
            out["elements"] = list(beamline.model.elements)
    if sample is not None:
        out["name"] = str(sample)
    if "name" not in out:
        raise PlanError("sample: name the sample (sample='...'); only the simulated beamline knows its own")
    return out


def resolve_elements(beamline: Beamline, elements: Sequence[str] | None, energy_keV: float) -> list[str]:
    """Elements to fit: given, or (simulated beamline) those of the simulated sample. Each must be an element
    whose K lines ``energy_keV`` excites (the XRF fit fits K groups), named once: a run with an element the
    fit cannot use would only fail when it is reconstructed."""
    if isinstance(elements, str):
        raise PlanError(f"elements must be a list of element symbols (e.g. ['Mn', 'Co']), got the string "
                        f"{elements!r}")
    if elements is None:
        if beamline.model is not None:
            return list(beamline.model.elements)
        raise PlanError("elements: name the elements to image (e.g. elements=['Mn', 'Co', 'Ni'])")
    chosen = [str(e).strip() for e in elements if str(e).strip()]
    if not chosen:
        raise PlanError("elements: give at least one element symbol, e.g. ['Mn', 'Co', 'Ni']")
    repeated = sorted({e for e in chosen if chosen.count(e) > 1})
    if repeated:
        raise PlanError(f"elements: {', '.join(repeated)} named more than once")
    for element in chosen:
        try:
            k_lines(element, energy_keV)
        except NxsciError as exc:
            raise PlanError(f"elements: {exc}") from None
    return chosen


def resolve_energy(beamline: Beamline, energy_keV: float | None) -> float:
    """Incident energy: given, or (simulated beamline) the simulation's."""
    if energy_keV is not None:
        value = float(energy_keV)
        if not 1.0 < value <= 40.0:
            raise PlanError(f"energy_keV must be in (1, 40] keV, got {energy_keV}")
        return value
    if beamline.mode == "sim":
        return float(beamline.config.simulation.energy_keV)
    raise PlanError("energy_keV: give the incident energy (keV); it sets the XRF fit's excitation")


def mca_calibration(beamline: Beamline) -> MsgGenerator[dict[str, float]]:
    """The Vortex MCA's energy axis as the IOC reports it: ``E = zero + gain * channel`` (keV)."""
    mca = beamline.vortex.mca
    zero = yield from bps.rd(mca.calibration_offset)
    gain = yield from bps.rd(mca.calibration_slope)
    channels = yield from bps.rd(mca.num_channels)
    return {"zero_keV": float(zero), "gain_keV": float(gain), "channels": int(channels)}


def beamline_metadata(beamline: Beamline) -> dict[str, Any]:
    return {"name": beamline.config.beamline, "mode": beamline.mode,
            "config": beamline.config.model_dump(mode="json")}


def merge_md(base: Mapping[str, Any], md: Mapping[str, Any] | None) -> dict[str, Any]:
    """User metadata on top of the plan's; a user key never silently replaces what the plan records."""
    out = dict(base)
    for key, value in (md or {}).items():
        if key in out:
            raise PlanError(f"md: '{key}' is recorded by the plan itself; choose another key")
        out[key] = value
    return out
