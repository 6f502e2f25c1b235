"""Real element maps (``/work/shared/data/real``) as phantoms: the measured map is the truth.

Files hold ``maps`` (E, H, W, block sums), ``elements`` and, where one exists, a co-registered ``struct``
image (block mean), which serves as the TXM. Loaded with plain ``np.load`` (no pickle). Other sizes than the
file's are made by integer block binning (sums for maps, means for the structural image), as the files were.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["REAL_DIR", "REAL_SETS", "real_phantom"]

REAL_DIR = Path(os.environ.get("NXSCI_REAL_DATA", "/work/shared/data/real"))
#: name -> (file stem, elements dropped, why)
REAL_SETS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "hxn-xrf": ("hxn_xrf_fe_aggregate", ("Si",),
                "Si dropped: its K map shows the support's fluorescence shadowed by the particles (absorption "
                "contrast), not an element distribution"),
    "eels": ("co3o4_mn3o4_eels", (), "HAADF (acquired simultaneously) as the TXM"),
}


def _bin(a: np.ndarray, f: int, *, mean: bool) -> np.ndarray:
    h, w = a.shape[-2:]
    b = a.reshape(*a.shape[:-2], h // f, f, w // f, f).sum(axis=(-3, -1))
    return b / (f * f) if mean else b


def _load(stem: str, size: int) -> dict[str, np.ndarray]:
    """The file whose side is a multiple of ``size`` (smallest first), binned down to ``size``."""
    for side in (64, 128):
        path = REAL_DIR / f"{stem}-{side}.npz"
        if side % size == 0 and path.exists():
            with np.load(path, allow_pickle=False) as d:
                f = side // size
                out = {"maps": _bin(np.asarray(d["maps"], dtype=np.float64), f, mean=False),
                       "elements": np.asarray(d["elements"])}
                if "struct" in d.files:
                    out["struct"] = _bin(np.asarray(d["struct"], dtype=np.float64), f, mean=True)
                return out
    raise FileNotFoundError(f"no {stem}-<64|128>.npz in {REAL_DIR} that bins to {size} px")


def real_phantom(name: str, size: int = 64):  # -> tuple[nxsci.recon.Phantom, bool]
    """The real set ``name`` as a Phantom (maps, TXM = its structural image), and whether it has one.
    Without a structural image the Phantom's TXM is a placeholder the caller removes (``txm=None``)."""
    from nxsci.recon import Phantom

    stem, dropped, _ = REAL_SETS[name]
    d = _load(stem, size)
    elements = [str(e) for e in d["elements"].tolist()]
    keep = [i for i, e in enumerate(elements) if e not in dropped]
    maps = np.clip(d["maps"][keep], 0.0, None)
    struct = d.get("struct")
    txm = np.zeros(maps.shape[1:]) if struct is None else struct
    return Phantom(maps=maps, elements=[elements[i] for i in keep], txm=txm, transmission=np.ones(maps.shape[1:]),
                   name=name), struct is not None
