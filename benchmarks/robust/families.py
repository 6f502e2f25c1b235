"""The case families of the robustness benchmark: data the simulator did not make.

Every family is built on the project's simulator (``harness.cases``); the TXM variants keep the battery
measurement and change only the image the reconstruction is given. Deterministic for given seeds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from harness import txm_variants as tv
from harness.cases import Case, battery_case, simulate_phantom, with_txm
from harness.graded import graded_phantom
from harness.real_maps import REAL_SETS, real_phantom

__all__ = ["FAMILIES", "OFFSETS_PX", "build_cases"]

#: family names, in the report's order
FAMILIES: tuple[str, ...] = ("battery", "txm-offset", "txm-blur-noise", "txm-mild-blur-noise", "txm-noise",
                             "txm-natural-image", "txm-wrong-species", "txm-zernike-halo", "graded", "no-txm",
                             "real-xrf-no-txm", "real-eels-haadf")
#: TXM offsets from the patterns' frame, px
OFFSETS_PX = (1.0, 2.5, 5.0)
#: the natural image given as a "TXM"
NATURAL_IMAGE = "camera"


def _perturbed(base: Case) -> list[Case]:
    """Every TXM variant of one battery measurement (same patterns and signals)."""
    from nxsci.recon import battery_phantom

    txm = base.dataset.txm
    seed = int(base.dataset.attrs["seed"])
    size = base.dataset.image_shape[0]
    s = f"seed {seed}"
    offsets = ", ".join(f"{px:g}" for px in OFFSETS_PX)
    out = [with_txm(base, "txm-offset", f"{s}, {px:g} px", tv.shifted(txm, px),
                    f"battery TXM shifted by {offsets} px along (dy, dx) = {tv.SHIFT_DIRECTION} after simulation "
                    "(scipy.ndimage.shift, order 1, edges extended); measurement unchanged")
           for px in OFFSETS_PX]
    out.append(with_txm(base, "txm-blur-noise", s, tv.blurred_noisy(txm, seed=seed),
                        "battery TXM blurred (Gaussian sigma 2 px) + white noise of 7.5 % of its range"))
    out.append(with_txm(base, "txm-mild-blur-noise", s, tv.blurred_noisy(txm, sigma=1.25, seed=seed),
                        "battery TXM blurred (Gaussian sigma 1.25 px) + white noise of 7.5 % of its range"))
    out.append(with_txm(base, "txm-noise", s, tv.blurred_noisy(txm, sigma=0.0, seed=seed),
                        "battery TXM, sharp, + white noise of 7.5 % of its range (a short exposure)"))
    out.append(with_txm(base, "txm-natural-image", s, tv.natural_image_txm(size, NATURAL_IMAGE),
                        f"scikit-image '{NATURAL_IMAGE}' (as an optical density) given as the TXM"))
    out.append(with_txm(base, "txm-wrong-species", s, tv.wrong_species(battery_phantom(size, seed)),
                        "battery TXM with the LCO (Co) particles at 5 % of their absorption and 3 strongly "
                        "absorbing particles of a species in no map"))
    out.append(with_txm(base, "txm-zernike-halo", s, tv.zernike_halo(txm),
                        "Zernike-like phase contrast: optical density - 0.7 x its Gaussian blur (sigma 3 px)"))
    return out


def _graded(size: int, pct: float, seed: int, photons: float) -> Case:
    ds = simulate_phantom(graded_phantom(size, seed), sampling=pct / 100.0, seed=seed, photons=photons)
    return Case(family="graded", name=f"seed {seed}", dataset=ds, measurement=f"graded seed {seed}",
                sampling_pct=pct, note="Ni-rich cores, Mn-rich shells (composition ~ radius^2) and LCO particles; "
                                       "TXM = optical density (composition-weighted absorption)")


def _real(name: str, size: int, pct: float, seed: int, photons: float) -> Case:
    phantom, has_struct = real_phantom(name, size)
    ds = simulate_phantom(phantom, sampling=pct / 100.0, seed=seed, photons=photons)
    if not has_struct:
        ds = dataclasses.replace(ds, txm=None)
    family = "real-eels-haadf" if has_struct else "real-xrf-no-txm"
    return Case(family=family, name=f"{name}, seed {seed}", dataset=ds, measurement=f"{name} seed {seed}",
                sampling_pct=pct, note=f"{REAL_SETS[name][0]}: {', '.join(phantom.elements)}; {REAL_SETS[name][2]}")


def build_cases(*, size: int, pct: float, seeds: Sequence[int], photons: float = 1e5,
                families: Sequence[str] | None = None) -> list[Case]:
    """Every case of the chosen families at one sampling, in the report's order."""
    want = set(families or FAMILIES)
    cases: list[Case] = []
    bases = {seed: battery_case(size=size, pct=pct, seed=seed, photons=photons) for seed in seeds}
    if "battery" in want:
        cases += bases.values()
    perturbed = [c for seed in seeds for c in _perturbed(bases[seed])]
    for fam in dict.fromkeys(c.family for c in perturbed):  # the TXM variants, in FAMILIES' order
        if fam in want:
            cases += [c for c in perturbed if c.family == fam]
    if "graded" in want:
        cases += [_graded(size, pct, seed, photons) for seed in seeds]
    if "no-txm" in want:
        cases += [with_txm(bases[seed], "no-txm", f"seed {seed}", None, "battery measurement, dataset.txm = None")
                  for seed in seeds]
    if "real-xrf-no-txm" in want:
        cases.append(_real("hxn-xrf", size, pct, seeds[0], photons))
    if "real-eels-haadf" in want:
        cases.append(_real("eels", size, pct, seeds[0], photons))
    return cases
