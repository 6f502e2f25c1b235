"""Particles with composition gradients: Ni-rich cores, Mn-rich shells (concentration-gradient NMC).

Composition TV assumes each particle's composition (map / TXM thickness) is constant; here it varies with
the radius, and the TXM optical density follows the composition too (each metal absorbs differently), so
neither the map nor the TXM is a scaled thickness. Maps = thickness x composition(radius).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["METAL_ABSORPTION", "graded_phantom"]

#: TXM optical density per unit thickness of each metal, solved from the battery phantom's species
#: absorptions (LCO 0.9 = Co; LNO 0.6 = Ni; NMC 712 0.75 = 0.7 Ni + 0.2 Mn + 0.1 Co), so the two phantoms
#: share one absorption scale
METAL_ABSORPTION = {"Mn": 1.2, "Co": 0.9, "Ni": 0.6}
ELEMENTS = ["Mn", "Co", "Ni"]
BINDER_ABSORPTION = 0.18


def _discs(rng: np.random.Generator, size: int, cover: float = 0.4) -> list[tuple[float, float, float]]:
    """Non-overlapping discs (cy, cx, r), log-uniform radii, until ``cover`` of the field is filled."""
    r_min, r_max = min(3.0, size / 10.0), max(4.0, size / 5.0)
    discs: list[tuple[float, float, float]] = []
    area, fails = 0.0, 0
    while area < cover * size * size and fails < 400:
        r = float(np.exp(rng.uniform(np.log(r_min), np.log(r_max))))
        cy, cx = rng.uniform(r + 1.0, size - r - 2.0, 2)
        if all(np.hypot(cy - y, cx - x) >= r + q + 1.0 for y, x, q in discs):
            discs.append((float(cy), float(cx), r))
            area += np.pi * r * r
        else:
            fails += 1
    return discs


def graded_phantom(size: int = 64, seed: int = 0):  # -> nxsci.recon.Phantom
    """Mn/Co/Ni maps of concentration-gradient particles, one binder particle (TXM only), TXM = optical density.

    Each particle: dome thickness (the battery phantom's profile), composition from core to surface
    (radius rho = 0..1) ``core + (shell - core) rho^2``; about 3 in 4 particles are graded NMC (core Ni 0.8-0.88,
    Mn 0.02-0.08, Co the rest; shell Mn 0.3-0.5, Co 0.1, Ni the rest), the others homogeneous LCO (Co).
    """
    from nxsci.recon import Phantom

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 2026]))
    discs = _discs(rng, size)
    binder_disc = discs.pop(int(np.argmin([d[2] for d in discs])))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    maps = np.zeros((3, size, size))
    od = np.zeros((size, size))
    field = ndimage.gaussian_filter(rng.standard_normal((size, size)), 1.5, mode="wrap")
    texture = 1.0 + 0.04 * (field - field.mean()) / field.std()  # a few-% density texture, as the battery's
    r_max = max(d[2] for d in discs)
    kinds = ["LCO", "graded"] + ["graded" if rng.random() < 0.75 else "LCO" for _ in discs[2:]]
    for (cy, cx, r), kind in zip(discs, kinds):
        rho = np.hypot(yy - cy, xx - cx) / r
        cov = np.clip(r * (1.0 - rho) + 0.5, 0.0, 1.0)
        thick = (0.5 + 0.5 * np.sqrt(r / r_max)) * (0.35 + 0.65 * np.sqrt(np.clip(1 - rho**2, 0, 1))) * cov * texture
        if kind == "LCO":
            comp = {"Mn": 0.0 * rho, "Co": 1.0 + 0.0 * rho, "Ni": 0.0 * rho}
        else:
            core_mn, shell_mn = rng.uniform(0.02, 0.08), rng.uniform(0.3, 0.5)
            core_ni = rng.uniform(0.8, 0.88)
            core = {"Mn": core_mn, "Ni": core_ni, "Co": 1.0 - core_mn - core_ni}
            shell = {"Mn": shell_mn, "Co": 0.1, "Ni": 0.9 - shell_mn}
            g = np.clip(rho, 0.0, 1.0) ** 2
            comp = {el: core[el] + (shell[el] - core[el]) * g for el in ELEMENTS}
        for e, el in enumerate(ELEMENTS):
            maps[e] += comp[el] * thick
            od += METAL_ABSORPTION[el] * comp[el] * thick
    cy, cx, r = binder_disc
    rho = np.hypot(yy - cy, xx - cx) / r
    cov = np.clip(r * (1.0 - rho) + 0.5, 0.0, 1.0)
    od += BINDER_ABSORPTION * (0.5 + 0.5 * np.sqrt(np.clip(1 - rho**2, 0, 1))) * cov
    od += 0.03
    return Phantom(maps=np.clip(maps, 0.0, None), elements=list(ELEMENTS), txm=od, transmission=np.exp(-od),
                   name="graded", binder_mask=cov > 0.5)
