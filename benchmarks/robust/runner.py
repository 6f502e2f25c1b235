"""One robustness case: the default reconstruction, plain TV (auto weight) and the TV-oracle, scored per element.

The default is ``nxsci.recon.reconstruct(ds)`` as a user calls it (its default method: composition TV with a
TXM, TV without), timed with its peak memory. Plain TV and the oracle do not look at the TXM, so cases that
share a measurement (the TXM variants) share them: computed once, on the first such case.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.cases import Case
from harness.measure import Probe
from harness.oracle import ORACLE_MAX_FITS, OracleResult, find_oracle
from harness.scoring import score

__all__ = ["Reference", "RobustnessRunner"]


@dataclasses.dataclass
class Reference:
    """What depends on the measurement only: plain TV's maps (timed) and each element's oracle."""

    tv_maps: dict[str, np.ndarray]
    tv_weights: dict[str, float]
    tv_cost: dict[str, float]
    oracles: dict[str, OracleResult]


def _timed_reconstruct(probe: Probe, ds: Any, method: str | None) -> tuple[Any, dict[str, float]]:
    from nxsci.recon import reconstruct

    with probe.measure() as rec:
        result = reconstruct(ds, method=method)
    return result, rec


class RobustnessRunner:
    """Runs cases in order, caching each measurement's plain-TV and oracle results."""

    def __init__(self, probe: Probe, *, oracle_max_fits: int = ORACLE_MAX_FITS,
                 log: Callable[[str], None] = print, method: str | None = None) -> None:
        self.probe, self.oracle_max_fits, self.log = probe, oracle_max_fits, log
        #: the method of the 'default' column (None: the library's default for each dataset)
        self.method = method
        self.references: dict[str, Reference] = {}

    def reference(self, case: Case) -> Reference:
        """Plain TV (auto weight, all elements, one call) and the oracle per element, started at TV's weight."""
        if case.measurement in self.references:
            return self.references[case.measurement]
        ds = case.dataset
        result, rec = _timed_reconstruct(self.probe, ds, "tv")
        maps = {e: np.asarray(m) for e, m in zip(result.elements, result.maps)}
        weights = {e: float(result.solver_info[e]["weight"]) for e in result.elements}
        oracles = {}
        for e in ds.elements:
            oracles[e] = find_oracle(ds.patterns, ds.signal(e), ds.truth(e), start_weight=weights[e],
                                     max_fits=self.oracle_max_fits)
            o = oracles[e]
            self.log(f"    oracle {e}: w={o.weight:.2e} PSNR {o.scores['psnr']:.2f} dB ({len(o.grid)} fits, "
                     f"{o.seconds:.1f} s){' AT GRID EDGE' if o.at_grid_edge else ''}")
        ref = Reference(tv_maps=maps, tv_weights=weights, tv_cost=dict(rec), oracles=oracles)
        self.references[case.measurement] = ref
        return ref

    def run(self, case: Case) -> list[dict[str, Any]]:
        """One row per element of ``case``."""
        ref = self.reference(case)
        ds = case.dataset
        result, rec = _timed_reconstruct(self.probe, ds, self.method)
        rows = []
        for e, x in zip(result.elements, result.maps):
            truth = ds.truth(e)
            d = score(x, truth, frc=False)
            t = score(ref.tv_maps[e], truth, frc=False)
            o = ref.oracles[e]
            info = result.solver_info.get(e, {})
            rows.append({
                "family": case.family, "case": case.name, "element": e, "sampling_pct": case.sampling_pct,
                "n": ds.num_patterns, "m": int(np.prod(ds.image_shape)), "measurement": case.measurement,
                "default_method": result.method + (f" -> {info['prior']}" if info.get("prior") else ""),
                "default": {**d, "weight": info.get("weight")},
                "tv_auto": {**t, "weight": ref.tv_weights[e]}, "oracle": o.as_dict(),
                "default_minus_oracle_db": d["psnr"] - o.scores["psnr"],
                "tv_auto_minus_oracle_db": t["psnr"] - o.scores["psnr"],
                "seconds": rec["seconds"], "cpu_seconds": rec["cpu_seconds"], "peak_mb": rec["peak_mb"],
                "tv_auto_cost": ref.tv_cost, "warnings": [w for w in result.warnings if w.startswith(f"{e}:")],
                "same_maps_as_tv_auto": bool(np.array_equal(np.asarray(x), ref.tv_maps[e])),
                "note": case.note})
        return rows
