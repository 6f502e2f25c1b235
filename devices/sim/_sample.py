"""The simulated sample: the battery phantom, a scikit-image sample, or maps loaded from a file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nxsci.recon import NATURAL_IMAGES, NxsciError, Phantom, battery_phantom, natural_phantom

from ._params import SampleParams

__all__ = ["load_sample"]

_IMAGE_SUFFIXES = {".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp"}


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    from skimage import transform

    if img.shape[-2:] == (size, size):
        return img
    shape = (*img.shape[:-2], size, size)
    return transform.resize(img, shape, order=1, anti_aliasing=True, preserve_range=True, mode="reflect")


def _from_image(path: Path, element: str, size: int) -> Phantom:
    from skimage import color, io

    img = np.asarray(io.imread(path), dtype=np.float64)
    if img.ndim == 3:
        img = color.rgb2gray(img[..., :3])
    if img.ndim != 2:
        raise NxsciError(f"sample image {path} must be a 2-D grayscale or RGB image, got shape {img.shape}")
    img = _resize(img, size)
    lo, hi = float(img.min()), float(img.max())
    img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    od = 0.05 + 0.6 * img
    return Phantom(maps=img[None], elements=[element], txm=od, transmission=np.exp(-od), name=path.stem)


def _from_hdf5(path: Path, params: SampleParams, size: int) -> Phantom:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if params.maps_dataset not in f:
                raise NxsciError(f"sample file {path} has no dataset '{params.maps_dataset}'")
            dset = f[params.maps_dataset]
            maps = np.asarray(dset, dtype=np.float64)
            elements = [e.decode() if isinstance(e, bytes) else str(e) for e in dset.attrs.get("elements", [])]
            txm = (np.asarray(f[params.txm_dataset], dtype=np.float64)
                   if params.txm_dataset and params.txm_dataset in f else None)
    except OSError as exc:
        raise NxsciError(f"cannot read sample file {path}: {exc}") from exc
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3 or len(elements) != maps.shape[0]:
        raise NxsciError(f"{path}:{params.maps_dataset} must be (E, H, W) with an 'elements' attribute naming "
                         f"E elements, got shape {maps.shape} and elements {elements}")
    if not np.all(np.isfinite(maps)) or maps.min() < 0:
        raise NxsciError(f"{path}:{params.maps_dataset} must be finite and >= 0")
    maps = np.clip(_resize(maps, size), 0.0, None)
    od = _resize(txm, size) if txm is not None else 0.05 + maps.sum(axis=0) / max(float(maps.sum(axis=0).max()), 1e-12)
    return Phantom(maps=maps, elements=elements, txm=od, transmission=np.exp(-np.clip(od, 0.0, None)), name=path.stem)


def load_sample(params: SampleParams, size: int) -> Phantom:
    """The sample named by ``params.phantom`` at ``size`` x ``size`` pixels."""
    name = params.phantom
    if name == "battery":
        return battery_phantom(size, params.seed)
    if name in NATURAL_IMAGES:
        ph = natural_phantom(name, size)
        return Phantom(maps=ph.maps, elements=[params.element], txm=ph.txm, transmission=ph.transmission, name=name)
    path = Path(name).expanduser()
    if not path.is_file():
        raise NxsciError(f"sample '{name}' is neither 'battery', a built-in image ({', '.join(NATURAL_IMAGES)}) "
                         f"nor an existing file")
    if path.suffix.lower() in _IMAGE_SUFFIXES:
        return _from_image(path, params.element, size)
    if path.suffix.lower() in {".h5", ".hdf5", ".nxs"}:
        return _from_hdf5(path, params, size)
    raise NxsciError(f"sample file {path} must be an image ({', '.join(sorted(_IMAGE_SUFFIXES))}) or HDF5 (.h5)")
