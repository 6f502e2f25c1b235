"""Interchange file: round trip, and every kind of bad input named clearly."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from nxsci.recon import (Dataset, DatasetError, OutputExistsError, ReconResult, UnknownElementError, load_dataset,
                         load_result, save_dataset, save_result)


def _dataset(n: int = 12, h: int = 8, w: int = 9) -> Dataset:
    rng = np.random.default_rng(0)
    return Dataset(patterns=rng.random((n, h, w)), signals=rng.random((n, 2)), elements=["Mn", "Ni"],
                   txm=rng.random((h, w)), sample_in=rng.random((n, h, w)),
                   metadata={"diffuser_x": np.arange(n, dtype=float)}, truth_maps=rng.random((2, h, w)),
                   truth_shifts=rng.normal(size=(n, 2)))


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    ds = _dataset()
    path = save_dataset(ds, tmp_path / "d.h5")
    back = load_dataset(path)
    np.testing.assert_array_equal(back.patterns, ds.patterns)
    np.testing.assert_array_equal(back.signals, ds.signals)
    assert back.elements == ["Mn", "Ni"]
    np.testing.assert_array_equal(back.txm, ds.txm)
    np.testing.assert_array_equal(back.metadata["diffuser_x"], np.arange(12))
    np.testing.assert_allclose(back.truth_shifts, ds.truth_shifts)
    with h5py.File(path) as f:
        assert f.attrs["nxsci_format"] == "1"
        assert list(f["signals"].attrs["elements"]) == [b"Mn", b"Ni"] or \
            [str(e) for e in f["signals"].attrs["elements"]] == ["Mn", "Ni"]


def test_existing_output_is_never_overwritten_unless_asked(tmp_path: Path) -> None:
    path = save_dataset(_dataset(), tmp_path / "d.h5")
    before = path.read_bytes()
    with pytest.raises(OutputExistsError, match="exists"):
        save_dataset(_dataset(n=5), path)
    assert path.read_bytes() == before
    save_dataset(_dataset(n=5), path, overwrite=True)
    assert load_dataset(path).num_patterns == 5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(signals=np.ones((11, 2))), "mismatched number of patterns"),
        (dict(patterns=np.full((12, 8, 9), np.nan)), "NaN"),
        (dict(signals=np.full((12, 2), np.inf)), "NaN or infinite"),
        (dict(patterns=np.ones((12, 72))), "rank 3"),
        (dict(patterns=np.ones((0, 8, 9)), signals=np.ones((0, 2))), "empty"),
        (dict(elements=[]), "missing 'elements'"),
        (dict(elements=["Mn"]), "names 1"),
        (dict(txm=np.ones((7, 7))), "'txm' has shape"),
    ],
)
def test_bad_datasets_name_the_problem(change: dict, message: str) -> None:
    fields = dict(patterns=np.ones((12, 8, 9)), signals=np.ones((12, 2)), elements=["Mn", "Ni"])
    fields.update(change)
    with pytest.raises(DatasetError, match=message):
        Dataset(**fields)


def test_unknown_element_is_named() -> None:
    with pytest.raises(UnknownElementError, match="unknown element 'Fe'.*Mn, Ni"):
        _dataset().select_elements(["Fe"])


def test_not_hdf5_truncated_and_foreign_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(DatasetError, match="not an HDF5 file"):
        load_dataset(text)
    good = save_dataset(_dataset(n=64, h=32, w=32), tmp_path / "good.h5")
    cut = tmp_path / "cut.h5"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DatasetError, match="corrupt or truncated|cannot read"):
        load_dataset(cut)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = 1
    with pytest.raises(DatasetError, match="nxsci_format"):
        load_dataset(foreign)
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(tmp_path / "missing.h5")


def test_missing_elements_attribute_in_file(tmp_path: Path) -> None:
    path = save_dataset(_dataset(), tmp_path / "d.h5")
    with h5py.File(path, "a") as f:
        del f["signals"].attrs["elements"]
    with pytest.raises(DatasetError, match="missing attribute 'elements'"):
        load_dataset(path)


def test_result_file_round_trip(tmp_path: Path) -> None:
    res = ReconResult(maps=np.ones((2, 4, 4)), elements=["Mn", "Ni"], method="tv",
                      parameters={"weight": 1e-6}, metrics={"Mn": {"psnr": 30.0}}, timings={"Mn_s": 1.0},
                      provenance={"input_sha256": "abc"})
    path = save_result(res, tmp_path / "r.h5")
    back = load_result(path)
    assert back.method == "tv" and back.elements == ["Mn", "Ni"]
    assert back.maps.dtype == np.float32
    assert back.metrics["Mn"]["psnr"] == 30.0
    assert back.provenance["input_sha256"] == "abc" and back.provenance["nxsci_version"]
    with pytest.raises(DatasetError, match="reconstruction result file"):
        load_dataset(path)
