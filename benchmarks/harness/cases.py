"""Benchmark cases: one simulated structured-illumination experiment each, with its truth.

Every case is simulated by the project's own simulator: two-diffuser patterns built exactly as
``simulate_case`` builds them (same model, same seed streams) and ``simulate_dataset`` for the signals, so a
battery case made here is bit for bit ``simulate_case(phantom="battery", ...)`` and any other phantom (real
element maps, graded particles) is measured by the same physics.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["Case", "two_diffuser_patterns", "simulate_phantom", "battery_case", "quality_case", "with_txm"]


@dataclasses.dataclass
class Case:
    """One dataset to reconstruct and score. Cases with the same ``measurement`` share patterns and signals
    (only the TXM differs), so the TXM-free results (oracle, plain TV) are computed once for all of them."""

    family: str
    name: str
    dataset: Any  # nxsci.recon.Dataset (truth_maps set)
    measurement: str
    sampling_pct: float
    note: str = ""
    binder: np.ndarray | None = None

    @property
    def elements(self) -> list[str]:
        return list(self.dataset.elements)


def two_diffuser_patterns(size: int, n: int, seed: int, feature_size: float = 2.0) -> np.ndarray:
    """The ``n`` two-diffuser patterns ``simulate_case(size=size, seed=seed, feature_size=...)`` uses."""
    from nxsci.recon import TwoDiffuserModel
    from nxsci.recon.sim.simulate import _int_seed

    s_pat, _ = np.random.SeedSequence([int(seed), 1]).spawn(2)
    model = TwoDiffuserModel((size, size), seed=_int_seed(s_pat), grit_px=(0.75 * feature_size, 2.0 * feature_size))
    return model.patterns(model.random_schedule(n, seed=_int_seed(s_pat.spawn(1)[0])))


def simulate_phantom(phantom: Any, *, sampling: float, seed: int, photons: float = 1e5,
                     feature_size: float = 2.0) -> Any:
    """A dataset of ``phantom`` (an ``nxsci.recon.Phantom``) with ``simulate_case``'s patterns, noise streams and
    defaults (recorded frames at 1000 counts per unit intensity, no stage shifts)."""
    from nxsci.recon import simulate_dataset
    from nxsci.recon.sim.simulate import _int_seed

    size = phantom.shape[0]
    if phantom.shape != (size, size):
        raise ValueError(f"square phantoms only, got {phantom.shape}")
    n = max(1, int(round(sampling * size * size)))
    _, s_data = np.random.SeedSequence([int(seed), 1]).spawn(2)
    return simulate_dataset(phantom, two_diffuser_patterns(size, n, seed, feature_size), photons=photons,
                            seed=_int_seed(s_data), attrs={"sampling": float(sampling), "size": size, "seed": int(seed)})


def quality_case(image: str, *, size: int, pct: float, seed: int, pattern_model: str = "two-diffuser",
                 feature_size: float = 2.0, photons: float = 1e5) -> tuple[Any, np.ndarray | None]:
    """The recon_quality benchmark's case: ``simulate_case`` of a named phantom, and the battery's binder mask."""
    from nxsci.recon import battery_phantom, simulate_case

    ds = simulate_case(phantom=image, size=size, sampling=pct / 100.0, pattern_model=pattern_model,
                       feature_size=feature_size, photons=photons, seed=seed)
    return ds, (battery_phantom(size, seed).binder_mask if image == "battery" else None)


def battery_case(*, size: int, pct: float, seed: int, photons: float = 1e5) -> Case:
    """The reference family: a battery phantom, its TXM the optical density of the sample."""
    ds, binder = quality_case("battery", size=size, pct=pct, seed=seed, photons=photons)
    return Case(family="battery", name=f"seed {seed}", dataset=ds, measurement=f"battery seed {seed}",
                sampling_pct=pct, note="simulate_case battery, TXM = optical density", binder=binder)


def with_txm(case: Case, family: str, name: str, txm: np.ndarray | None, note: str) -> Case:
    """The same measurement with another TXM image (``None``: no TXM)."""
    ds = dataclasses.replace(case.dataset, txm=None if txm is None else np.asarray(txm, dtype=np.float32))
    return dataclasses.replace(case, family=family, name=name, dataset=ds, note=note)
