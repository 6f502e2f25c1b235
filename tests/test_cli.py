"""The ``nxsci`` command line as a user runs it: real subprocesses, exit codes, files written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from nxsci.recon import load_result, psnr, load_dataset

NXSCI = str(Path(sys.executable).with_name("nxsci"))


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NXSCI, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "sim.h5"
    out = run("simulate", "-o", str(path), "--size", "32", "--sampling", "0.2", "--seed", "3",
              "--shift-sigma", "0.8")
    assert out.returncode == 0, out.stderr
    assert "elements Mn, Co, Ni" in out.stdout
    return path


def test_the_default_says_which_prior_each_element_got(small_dataset: Path, tmp_path: Path) -> None:
    """``auto`` (the default) prints, per element, the prior it chose and the held-out evidence; the result
    file keeps the same record."""
    out_file = tmp_path / "auto.h5"
    out = run("reconstruct", str(small_dataset), "-o", str(out_file), "--quiet")
    assert out.returncode == 0, out.stderr
    assert "method auto" in out.stdout
    priors = load_result(out_file).priors()
    assert set(priors) == {"Mn", "Co", "Ni"}
    for element, prior in priors.items():
        assert prior["prior"] in {"composition-tv", "tv"} and "txm_blur_px" in prior and "txm_offset_px" in prior
        line = next(line for line in out.stdout.splitlines() if line.strip().startswith(f"{element}:"))
        assert f"prior {prior['prior']} (" in line, line
        if "significance" in prior:
            assert f"held-out {prior['significance']:+.1f} SE" in line, line


def test_reconstruct_writes_a_result_with_provenance(small_dataset: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "maps.h5"
    out = run("reconstruct", str(small_dataset), "-o", str(out_file), "--method", "tv", "--elements", "Co,Ni",
              "--param", "weight=1e-4", "--param", "iterations=800")
    assert out.returncode == 0, out.stderr
    assert "Co:" in out.stdout and "weight 0.0001" in out.stdout
    res = load_result(out_file)
    assert res.elements == ["Co", "Ni"] and res.maps.shape == (2, 32, 32)
    assert res.provenance["input_sha256"] and res.provenance["nxsci_version"]
    ds = load_dataset(small_dataset)
    assert res.provenance["registration"]  # sample-in frames present -> registered
    assert psnr(res.map("Ni"), ds.truth("Ni")) > 20
    # the existing output is protected ...
    again = run("reconstruct", str(small_dataset), "-o", str(out_file), "--method", "pinv")
    assert again.returncode == 2 and "exists" in again.stderr and "--overwrite" in again.stderr
    assert load_result(out_file).method == "tv"
    # ... unless asked
    assert run("reconstruct", str(small_dataset), "-o", str(out_file), "--method", "pinv", "--overwrite",
               "-q").returncode == 0
    assert load_result(out_file).method == "pinv"


def test_patterns_command_prints_quality_and_writes_figures(small_dataset: Path, tmp_path: Path) -> None:
    out = run("patterns", str(small_dataset), "-o", str(tmp_path / "figs"), "--max-targets", "128")
    assert out.returncode == 0, out.stderr
    delta = float(out.stdout.split("mean dependence")[1].split()[0])
    assert 0.2 < delta < 0.7  # recorded-like two-diffuser sets are strongly correlated
    pngs = list((tmp_path / "figs").glob("*.png"))
    assert len(pngs) >= 4 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def _write_bad(path: Path, change: str) -> None:
    n, h, w = 10, 8, 8
    with h5py.File(path, "w") as f:
        f.attrs["nxsci_format"] = "1"
        pats = np.ones((n, h, w))
        sig = np.ones((n, 2))
        if change == "mismatch":
            sig = np.ones((n - 1, 2))
        if change == "nan":
            pats[0, 0, 0] = np.nan
        if change == "rank":
            pats = np.ones((n, h * w))
        if change == "empty":
            pats, sig = np.ones((0, h, w)), np.ones((0, 2))
        f["patterns"] = pats
        f["signals"] = sig
        if change != "no-elements":
            f["signals"].attrs["elements"] = ["Mn", "Ni"]


@pytest.mark.parametrize(("change", "message"), [
    ("mismatch", "mismatched number of patterns"),
    ("nan", "NaN"),
    ("rank", "rank 3"),
    ("empty", "empty"),
    ("no-elements", "missing attribute 'elements'"),
])
def test_bad_input_files_exit_2_with_a_clear_message(tmp_path: Path, change: str, message: str) -> None:
    bad = tmp_path / "bad.h5"
    _write_bad(bad, change)
    out = run("reconstruct", str(bad), "-o", str(tmp_path / "o.h5"), "--method", "pinv")
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "o.h5").exists()


def test_unknown_element_method_param_and_file_errors(small_dataset: Path, tmp_path: Path) -> None:
    cases = [
        (["--elements", "Fe"], "unknown element 'Fe'"),
        (["--method", "magic"], "unknown method 'magic'"),
        (["--method", "tv", "--param", "iterations=-1"], "invalid parameters"),
        (["--method", "tv", "--param", "nonsense"], "KEY=VALUE"),
    ]
    for extra, message in cases:
        out = run("reconstruct", str(small_dataset), "-o", str(tmp_path / "x.h5"), *extra)
        assert out.returncode == 2, (extra, out.stderr)
        assert message in out.stderr and "Traceback" not in out.stderr
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    out = run("reconstruct", str(text), "-o", str(tmp_path / "x.h5"))
    assert out.returncode == 2 and "not an HDF5 file" in out.stderr
    cut = tmp_path / "cut.h5"
    cut.write_bytes(small_dataset.read_bytes()[:4096])
    out = run("reconstruct", str(cut), "-o", str(tmp_path / "x.h5"))
    assert out.returncode == 2 and ("truncated" in out.stderr or "cannot read" in out.stderr)
