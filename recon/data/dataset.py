"""The dataset model and the HDF5 interchange file (``nxsci_format = "1"``).

One documented layout lets data from any beamline be reconstructed offline; the in-memory
:class:`Dataset` validates itself so that bad input fails early with a message naming the problem.

File layout (all arrays C-ordered, pattern index first)::

    /                       attrs: nxsci_format="1", nxsci_version, created
    /patterns               float (N, H, W)   illumination patterns (sample-out frames)
    /signals                float (N, E)      fitted XRF intensity per pattern and element
                            attrs: elements = ["Mn", "Co", ...]
    /signals_sigma          float (N, E)      optional: 1-sigma uncertainty of the signals
    /txm                    float (H, W)      optional: transmission image of the sample
    /sample_in              float (N, H, W)   optional: sample-in frames (registration)
    /spectra                float (N, C)      optional: raw MCA spectra
                            attrs: energy_zero_keV, energy_gain_keV (energy = zero + gain * channel)
    /dark                   float (H, W)      optional: dark frame (already subtracted from patterns)
    /metadata/<name>        (N, ...)          optional: per-pattern values (e.g. diffuser positions)
    /truth/maps             float (E, H, W)   optional, simulations only: true element maps
                            attrs: elements
    /truth/shifts           float (N, 2)      optional, simulations only: true (dy, dx) pattern shifts
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._errors import DatasetError, OutputError, OutputExistsError, UnknownElementError

FORMAT_VERSION = "1"

__all__ = ["FORMAT_VERSION", "Dataset", "load_dataset", "save_dataset", "nxsci_version", "open_h5"]


def nxsci_version() -> str:
    """The installed nxsci version (``"unknown"`` when running from an uninstalled tree)."""
    try:
        from importlib.metadata import version

        return version("nxsci")
    except Exception:  # pragma: no cover - only without installation
        return "unknown"


def _finite(name: str, arr: np.ndarray) -> None:
    if arr.size == 0:
        raise DatasetError(f"'{name}' is empty (shape {arr.shape})")
    if np.issubdtype(arr.dtype, np.number) and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise DatasetError(f"'{name}' contains {bad} NaN or infinite value(s)")


def _rank(name: str, arr: np.ndarray, ndim: int, meaning: str) -> None:
    if arr.ndim != ndim:
        raise DatasetError(f"'{name}' must have rank {ndim} {meaning}, got shape {arr.shape}")


@dataclasses.dataclass
class Dataset:
    """Everything a reconstruction needs: patterns A, signals y per element, optional TXM and raw data."""

    patterns: np.ndarray
    signals: np.ndarray
    elements: list[str]
    txm: np.ndarray | None = None
    signals_sigma: np.ndarray | None = None
    sample_in: np.ndarray | None = None
    spectra: np.ndarray | None = None
    spectra_attrs: dict[str, Any] = dataclasses.field(default_factory=dict)
    dark: np.ndarray | None = None
    metadata: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    truth_maps: np.ndarray | None = None
    truth_shifts: np.ndarray | None = None
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.patterns = np.asarray(self.patterns, dtype=np.float32)
        self.signals = np.asarray(self.signals, dtype=np.float64)
        if self.signals.ndim == 1:
            self.signals = self.signals[:, None]
        self.elements = [str(e) for e in self.elements]
        self.validate()

    # -- shape facts -----------------------------------------------------------------
    @property
    def num_patterns(self) -> int:
        return int(self.patterns.shape[0])

    @property
    def image_shape(self) -> tuple[int, int]:
        return (int(self.patterns.shape[1]), int(self.patterns.shape[2]))

    @property
    def sampling_ratio(self) -> float:
        """N / M: number of patterns over number of pixels."""
        h, w = self.image_shape
        return self.num_patterns / float(h * w)

    def validate(self) -> None:
        """Raise :class:`DatasetError` naming the first problem found."""
        p = self.patterns
        _rank("patterns", p, 3, "(N, H, W)")
        _finite("patterns", p)
        n, h, w = p.shape
        _rank("signals", self.signals, 2, "(N, E)")
        _finite("signals", self.signals)
        if self.signals.shape[0] != n:
            raise DatasetError(
                f"mismatched number of patterns: 'patterns' has N={n} but 'signals' has N={self.signals.shape[0]}"
            )
        if not self.elements:
            raise DatasetError("missing 'elements': the signals need one element symbol per column")
        if len(self.elements) != self.signals.shape[1]:
            raise DatasetError(
                f"'signals' has {self.signals.shape[1]} column(s) but 'elements' names {len(self.elements)}: {self.elements}"
            )
        if len(set(self.elements)) != len(self.elements):
            raise DatasetError(f"'elements' has duplicates: {self.elements}")
        if self.txm is not None:
            self.txm = np.asarray(self.txm, dtype=np.float32)
            _rank("txm", self.txm, 2, "(H, W)")
            _finite("txm", self.txm)
            if self.txm.shape != (h, w):
                raise DatasetError(f"'txm' has shape {self.txm.shape} but the patterns are {(h, w)}")
        if self.signals_sigma is not None:
            self.signals_sigma = np.asarray(self.signals_sigma, dtype=np.float64)
            if self.signals_sigma.shape != self.signals.shape:
                raise DatasetError(
                    f"'signals_sigma' has shape {self.signals_sigma.shape}, expected {self.signals.shape}"
                )
            _finite("signals_sigma", self.signals_sigma)
        if self.sample_in is not None:
            self.sample_in = np.asarray(self.sample_in, dtype=np.float32)
            _rank("sample_in", self.sample_in, 3, "(N, H, W)")
            _finite("sample_in", self.sample_in)
            if self.sample_in.shape != p.shape:
                raise DatasetError(f"'sample_in' has shape {self.sample_in.shape} but 'patterns' has {p.shape}")
        if self.spectra is not None:
            self.spectra = np.asarray(self.spectra)
            _rank("spectra", self.spectra, 2, "(N, channels)")
            _finite("spectra", self.spectra)
            if self.spectra.shape[0] != n:
                raise DatasetError(f"'spectra' has N={self.spectra.shape[0]} but 'patterns' has N={n}")
        if self.dark is not None:
            self.dark = np.asarray(self.dark, dtype=np.float32)
            _finite("dark", self.dark)
            if self.dark.shape[-2:] != (h, w):
                raise DatasetError(f"'dark' has shape {self.dark.shape}, frames are {(h, w)}")
        for key, value in self.metadata.items():
            value = np.asarray(value)
            if value.ndim == 0 or value.shape[0] != n:
                raise DatasetError(f"metadata '{key}' must have one entry per pattern (N={n}), got shape {value.shape}")
            self.metadata[key] = value
        if self.truth_maps is not None:
            self.truth_maps = np.asarray(self.truth_maps, dtype=np.float32)
            if self.truth_maps.shape != (len(self.elements), h, w):
                raise DatasetError(
                    f"'truth/maps' has shape {self.truth_maps.shape}, expected {(len(self.elements), h, w)}"
                )
        if self.truth_shifts is not None:
            self.truth_shifts = np.asarray(self.truth_shifts, dtype=np.float64)
            if self.truth_shifts.shape != (n, 2):
                raise DatasetError(f"'truth/shifts' has shape {self.truth_shifts.shape}, expected {(n, 2)}")

    # -- element access ---------------------------------------------------------------
    def element_index(self, element: str) -> int:
        try:
            return self.elements.index(element)
        except ValueError:
            raise UnknownElementError(
                f"unknown element '{element}': this dataset has {', '.join(self.elements)}"
            ) from None

    def select_elements(self, elements: Sequence[str] | None) -> list[str]:
        """Validate a requested element list (``None`` means all)."""
        if elements is None:
            return list(self.elements)
        chosen = [e.strip() for e in elements if e.strip()]
        if not chosen:
            raise DatasetError("no element requested")
        for e in chosen:
            self.element_index(e)
        return chosen

    def signal(self, element: str) -> np.ndarray:
        return self.signals[:, self.element_index(element)]

    def sigma(self, element: str) -> np.ndarray | None:
        if self.signals_sigma is None:
            return None
        return self.signals_sigma[:, self.element_index(element)]

    def truth(self, element: str) -> np.ndarray | None:
        if self.truth_maps is None:
            return None
        return self.truth_maps[self.element_index(element)]

    def subset(self, indices: np.ndarray | Sequence[int]) -> "Dataset":
        """The same dataset restricted to some patterns (for hold-out tests and sampling sweeps)."""
        idx = np.asarray(indices)
        return dataclasses.replace(
            self,
            patterns=self.patterns[idx],
            signals=self.signals[idx],
            signals_sigma=None if self.signals_sigma is None else self.signals_sigma[idx],
            sample_in=None if self.sample_in is None else self.sample_in[idx],
            spectra=None if self.spectra is None else self.spectra[idx],
            metadata={k: v[idx] for k, v in self.metadata.items()},
            truth_shifts=None if self.truth_shifts is None else self.truth_shifts[idx],
            elements=list(self.elements),
        )


# -- file I/O -------------------------------------------------------------------------


def open_h5(path: str | os.PathLike[str]) -> h5py.File:
    """Open an HDF5 file for reading, turning every low-level failure into a clear :class:`DatasetError`."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file")
    if p.is_dir():
        raise DatasetError(f"{p}: is a directory, expected an HDF5 file")
    try:
        is_hdf5 = h5py.is_hdf5(p)
    except Exception as exc:  # unreadable file
        raise DatasetError(f"{p}: cannot read ({exc})") from None
    if not is_hdf5:
        raise DatasetError(f"{p}: not an HDF5 file (no HDF5 signature)")
    try:
        return h5py.File(p, "r")
    except Exception as exc:
        raise DatasetError(f"{p}: corrupt or truncated HDF5 file ({exc})") from None


def _read(f: h5py.File, name: str, path: Path) -> np.ndarray:
    try:
        obj = f[name]
    except KeyError:
        raise DatasetError(f"{path}: missing dataset '/{name}'") from None
    if not isinstance(obj, h5py.Dataset):
        raise DatasetError(f"{path}: '/{name}' is a group, expected a dataset")
    try:
        return np.asarray(obj[()])
    except Exception as exc:
        raise DatasetError(f"{path}: cannot read '/{name}' (corrupt or truncated file: {exc})") from None


def _decode_list(value: Any) -> list[str]:
    if isinstance(value, (str, bytes)):
        value = [value]
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(value)]


def load_dataset(path: str | os.PathLike[str]) -> Dataset:
    """Read and validate an interchange file; raises :class:`DatasetError` on any problem."""
    p = Path(path)
    with open_h5(p) as f:
        fmt = f.attrs.get("nxsci_format")
        if fmt is None:
            raise DatasetError(f"{p}: not an nxsci interchange file (attribute 'nxsci_format' missing)")
        fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
        if fmt != FORMAT_VERSION:
            raise DatasetError(f"{p}: unsupported nxsci_format '{fmt}' (this version reads '{FORMAT_VERSION}')")
        if f.attrs.get("kind", "dataset") in ("result", b"result"):
            raise DatasetError(f"{p}: is a reconstruction result file, not an input dataset")
        patterns = _read(f, "patterns", p)
        signals = _read(f, "signals", p)
        if "elements" not in f["signals"].attrs:
            raise DatasetError(f"{p}: missing attribute 'elements' on '/signals'")
        elements = _decode_list(f["signals"].attrs["elements"])
        opt = {name: _read(f, name, p) if name in f else None
               for name in ("txm", "signals_sigma", "sample_in", "spectra", "dark")}
        spectra_attrs = dict(f["spectra"].attrs) if "spectra" in f else {}
        metadata = {k: _read(f, f"metadata/{k}", p) for k in f["metadata"]} if "metadata" in f else {}
        truth_maps = truth_shifts = None
        if "truth" in f:
            truth_maps = _read(f, "truth/maps", p) if "maps" in f["truth"] else None
            truth_shifts = _read(f, "truth/shifts", p) if "shifts" in f["truth"] else None
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    try:
        return Dataset(patterns=patterns, signals=signals, elements=elements, spectra_attrs=spectra_attrs,
                       metadata=metadata, truth_maps=truth_maps, truth_shifts=truth_shifts, attrs=attrs, **opt)
    except DatasetError as exc:
        raise DatasetError(f"{p}: {exc}") from None


def check_writable(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """Refuse to clobber an existing file unless asked, and find out now (not after hours of work) whether
    the file can be written there at all. Directories are not made: a mistyped directory is an error."""
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{p} is a directory; name the output file (e.g. {p / 'maps.h5'})")
    if p.exists() and not overwrite:
        raise OutputExistsError(f"{p} exists; pass overwrite=True (--overwrite) to replace it")
    parent = p.parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {p}: directory {parent} does not exist (create it first)")
    try:  # the only reliable test (root, read-only mounts, /proc): create a file there
        with tempfile.NamedTemporaryFile(dir=parent, prefix=f".{p.name}.probe-"):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write {p}: {exc.strerror or exc}") from None
    return p


def atomic_h5_write(path: Path, writer: Any) -> None:
    """Write through a temporary file then rename, so a failure never leaves a half-written output."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        try:
            with h5py.File(tmp, "w") as f:
                writer(f)
            os.replace(tmp, path)
        except OSError as exc:  # disk full, permissions changed meanwhile: say so, keep the rest intact
            raise OutputError(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def save_dataset(ds: Dataset, path: str | os.PathLike[str], *, overwrite: bool = False,
                 attrs: Mapping[str, Any] | None = None) -> Path:
    """Write ``ds`` in the interchange layout (atomically; never over an existing file unless asked)."""
    ds.validate()
    p = check_writable(path, overwrite)

    def write(f: h5py.File) -> None:
        for k, v in {**ds.attrs, **(attrs or {})}.items():
            if k not in ("nxsci_format",):
                f.attrs[k] = v
        f.attrs["nxsci_format"] = FORMAT_VERSION
        f.attrs["kind"] = "dataset"
        f.attrs["nxsci_version"] = nxsci_version()
        f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat()
        f.create_dataset("patterns", data=ds.patterns, compression="gzip", compression_opts=1)
        sig = f.create_dataset("signals", data=ds.signals)
        sig.attrs["elements"] = np.array(ds.elements, dtype=h5py.string_dtype())
        for name in ("txm", "signals_sigma", "dark"):
            if getattr(ds, name) is not None:
                f.create_dataset(name, data=getattr(ds, name))
        if ds.sample_in is not None:
            f.create_dataset("sample_in", data=ds.sample_in, compression="gzip", compression_opts=1)
        if ds.spectra is not None:
            spec = f.create_dataset("spectra", data=ds.spectra, compression="gzip", compression_opts=1)
            for k, v in ds.spectra_attrs.items():
                spec.attrs[k] = v
        if ds.metadata:
            g = f.create_group("metadata")
            for k, v in ds.metadata.items():
                g.create_dataset(k, data=v)
        if ds.truth_maps is not None or ds.truth_shifts is not None:
            g = f.create_group("truth")
            if ds.truth_maps is not None:
                m = g.create_dataset("maps", data=ds.truth_maps)
                m.attrs["elements"] = np.array(ds.elements, dtype=h5py.string_dtype())
            if ds.truth_shifts is not None:
                g.create_dataset("shifts", data=ds.truth_shifts)

    atomic_h5_write(p, write)
    return p
