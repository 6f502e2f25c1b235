"""The robustness benchmark runs end to end and its harness builds the cases it claims to build."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
FAMILIES = ("battery", "txm-offset", "txm-blur-noise", "txm-mild-blur-noise", "txm-noise", "txm-natural-image",
            "txm-wrong-species", "txm-zernike-halo", "graded", "no-txm", "real-xrf-no-txm", "real-eels-haadf")
REAL = Path("/work/shared/data/real")


@pytest.fixture(autouse=True)
def _bench_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))


@pytest.mark.slow
@pytest.mark.skipif(not REAL.is_dir(), reason="real element maps not available")
def test_quick_run_has_every_family_and_finite_numbers(tmp_path: Path) -> None:
    out = tmp_path / "robustness.json"
    md = tmp_path / "robustness.md"
    run = subprocess.run([sys.executable, str(BENCH / "robustness.py"), "--quick", "--json", str(out), "--md", str(md)],
                         capture_output=True, text=True, timeout=900, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["complete"]
    rows = report["results"]
    assert {r["family"] for r in rows} == set(FAMILIES)
    for r in rows:
        for value in (r["default"]["psnr"], r["tv_auto"]["psnr"], r["oracle"]["psnr"], r["default_minus_oracle_db"],
                      r["tv_auto_minus_oracle_db"], r["seconds"], r["peak_mb"], r["default"]["ssim"]):
            assert isinstance(value, float) and math.isfinite(value), r
    # no TXM: the default is joint TV, each element keeping plain TV (then exactly tv's maps) where held-out
    # measurements favour it
    for r in rows:
        if r["family"] in ("no-txm", "real-xrf-no-txm"):
            assert r["default_method"] in ("auto -> tv", "auto -> joint-tv"), r
            assert r["same_maps_as_tv_auto"] or r["default_method"] == "auto -> joint-tv", r
    # battery (informative TXM): composition TV where the held-out evidence suffices; at this toy size (32x32,
    # N = 102) it does not for every element (64x64: every element, tests/test_model_choice.py)
    battery = [r["default_method"] for r in rows if r["family"] == "battery"]
    assert "auto -> composition-tv" in battery and set(battery) <= {"auto -> composition-tv", "auto -> tv"}
    assert {r["element"] for r in rows if r["family"] == "real-xrf-no-txm"} == {"Fe", "Cr", "P", "S"}  # Si dropped
    table = run.stdout
    assert "Summary per family" in table and md.read_text().strip() == table.strip()
    for fam in FAMILIES:
        assert f"| {fam} |" in table


def test_battery_case_is_simulate_case() -> None:
    from harness.cases import simulate_phantom

    from nxsci.recon import battery_phantom, simulate_case

    ref = simulate_case(phantom="battery", size=24, sampling=0.1, seed=5)
    got = simulate_phantom(battery_phantom(24, 5), sampling=0.1, seed=5)
    assert np.array_equal(ref.patterns, got.patterns) and np.array_equal(ref.signals, got.signals)
    assert np.array_equal(ref.truth_maps, got.truth_maps)


def test_txm_variants_change_only_the_image() -> None:
    from harness import txm_variants as tv
    from harness.cases import battery_case

    from nxsci.recon import battery_phantom

    base = battery_case(size=32, pct=5.0, seed=0)
    txm = base.dataset.txm.astype(np.float64)
    moved = tv.shifted(txm, 5.0)
    assert np.allclose(moved[10:20, 10:20], txm[7:17, 14:24], atol=0.05 * np.ptp(txm))  # (dy, dx) = (3, -4)
    assert np.array_equal(tv.shifted(txm, 0.0), txm)
    halo = tv.zernike_halo(txm)
    assert halo.min() < 0 < halo.max()  # dark halos outside particles, bright rims
    ph = battery_phantom(32, 0)
    wrong = tv.wrong_species(ph)
    thick = tv.battery_species_thickness(ph.maps)
    lco = thick["LCO"] > 0.2 * thick["LCO"].max()
    assert wrong[lco].mean() < 0.5 * ph.txm[lco].mean()  # the Co particles nearly vanish
    assert wrong.max() > 1.2 * ph.txm.max()  # a foreign species outshines everything
    assert (np.abs(wrong - ph.txm) > 0.5)[ph.maps.sum(axis=0) == 0].any()  # ... where no map has anything


def test_graded_phantom_has_radial_composition() -> None:
    from harness.graded import graded_phantom

    ph = graded_phantom(48, 1)
    mn, co, ni = ph.maps.astype(np.float64)
    total = mn + co + ni
    inside = total > 0.2 * total.max()
    frac_mn = np.where(inside, mn / np.maximum(total, 1e-9), np.nan)
    assert np.nanmax(frac_mn) > 0.25 and np.nanmin(frac_mn[ni > 0.2 * ni.max()]) < 0.1  # Mn-rich shells, Ni-rich cores
    assert ph.binder_mask is not None and ph.binder_mask.any() and total[ph.binder_mask].max() == 0


@pytest.mark.skipif(not REAL.is_dir(), reason="real element maps not available")
def test_real_maps_load_and_bin() -> None:
    from harness.real_maps import real_phantom

    xrf, has_struct = real_phantom("hxn-xrf", 32)
    assert not has_struct and xrf.elements == ["Fe", "Cr", "P", "S"] and xrf.maps.shape == (4, 32, 32)
    full, _ = real_phantom("hxn-xrf", 64)
    assert np.allclose(xrf.maps.sum(axis=(1, 2)), full.maps.sum(axis=(1, 2)), rtol=1e-5)  # block sums
    eels, has_struct = real_phantom("eels", 64)
    assert has_struct and eels.elements == ["Co", "Mn", "O"] and float(eels.txm.min()) > 0


def test_oracle_search_brackets_the_best() -> None:
    from harness.oracle import oracle_search

    seen: list[float] = []

    def fit(w: float) -> dict[str, float]:
        seen.append(w)
        return {"mse": (np.log10(w) + 3.3) ** 2}

    best, runs = oracle_search(fit, -20, step=2)
    assert 10 ** (best / 4) == pytest.approx(10 ** -3.25)
    assert len(runs) == len(seen) <= 14 and min(runs) < best < max(runs)
