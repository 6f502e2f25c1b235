"""Progress that means something: fractions that track the work, and logs without redrawn bars."""

from __future__ import annotations

import io
import re
import sys

import numpy as np
import pytest

from nxsci.recon import PatternPhysics, get_solver, reconstruct, simulate_case
from nxsci.recon._progress import LineProgress, fraction_progress

TINY_SIREN = {"width": 8, "depth": 1, "steps": 40}


class _FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_line_progress_prints_rarely_and_always_the_end() -> None:
    out, clock = io.StringIO(), _FakeClock()
    shown = LineProgress("Mn, Co", out, clock=clock)
    for k in range(1001):  # a solver reporting 1000 times, 0.01 s apart
        clock.now = 0.01 * k
        shown.update(k / 1000, f"step {k}")
    shown.close()
    lines = out.getvalue().splitlines()
    assert 10 <= len(lines) <= 12  # start, every 10 %, end
    assert lines[0] == "Mn, Co:   0% step 0" and lines[-1] == "Mn, Co: 100% step 1000"


def test_line_progress_prints_a_slow_step_after_the_interval_and_the_last_state_on_close() -> None:
    out, clock = io.StringIO(), _FakeClock()
    shown = LineProgress("Ni", out, clock=clock)
    shown.update(0.0, "start")
    clock.now = 45.0  # no 10 % advance, but 30 s without a line
    shown.update(0.02, "slow")
    shown.update(0.03, "still slow")  # neither 10 % nor 30 s: not printed now...
    shown.close()  # ...but it is the last state: printed on close
    assert out.getvalue().splitlines() == ["Ni:   0% start", "Ni:   2% slow", "Ni:   3% still slow"]


def test_a_terminal_gets_a_bar_and_anything_else_plain_lines() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(fraction_progress("x", io.StringIO()), LineProgress)
    bar = fraction_progress("x", Terminal())
    assert not isinstance(bar, LineProgress)
    bar.close()


def test_reconstruct_writes_a_handful_of_plain_lines_to_a_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """stderr redirected to a file: no carriage returns, a few lines, registration and solve reach 100 %."""
    ds = simulate_case(phantom="camera", size=32, sampling=0.2, seed=0, shift_sigma=0.5)
    assert ds.sample_in is not None  # registration runs too, with its own progress
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    reconstruct(ds, method="tv", progress=True)
    text = log.getvalue()
    assert "\r" not in text and len(text) < 2048
    lines = text.splitlines()
    assert 2 <= len(lines) <= 30
    assert re.fullmatch(r"registering patterns: 100% \d+/\d+ frames", [ln for ln in lines if "registering" in ln][-1])
    assert lines[-1].startswith("X: 100%")


def _fractions_by_step(seen: list[tuple[float, str]]) -> list[tuple[float, int, int]]:
    """(fraction, k, n) of every report whose text says 'step k/n'."""
    out = []
    for frac, text in seen:
        m = re.search(r"step (\d+)/(\d+)", text)
        if m:
            out.append((frac, int(m.group(1)), int(m.group(2))))
    return out


def test_siren_paper_fraction_is_steps_done_over_total() -> None:
    ds = simulate_case(phantom="battery", size=24, sampling=0.2, seed=0)
    seen: list[tuple[float, str]] = []
    get_solver("siren-paper", TINY_SIREN)(ds.signal("Co"), PatternPhysics(ds.patterns), guide=ds.txm,
                                          progress=lambda f, t: seen.append((f, t)))
    fracs = [f for f, _ in seen]
    assert fracs == sorted(fracs) and fracs[-1] == pytest.approx(1.0)
    steps = _fractions_by_step(seen)
    assert len(steps) >= 10  # a short run still reports often (every step up to 20 steps apart)
    for frac, k, n in steps:
        assert n == TINY_SIREN["steps"] and frac == pytest.approx(k / n, abs=1e-6)


def test_siren_paper_per_element_fractions_split_the_run_evenly() -> None:
    """siren-paper fits one network per element: element i's step k of n is (i + k/n) / E of the solve."""
    ds = simulate_case(phantom="battery", size=24, sampling=0.2, seed=0)
    ys = np.stack([ds.signal(e) for e in ds.elements])
    seen: list[tuple[float, str]] = []
    get_solver("siren-paper", TINY_SIREN).reconstruct_all(ys, PatternPhysics(ds.patterns), guide=ds.txm,
                                                          progress=lambda f, t: seen.append((f, t)))
    fracs = [f for f, _ in seen]
    assert fracs == sorted(fracs) and fracs[-1] == pytest.approx(1.0)
    matched = [(f, re.search(r"element (\d+)/(\d+), step (\d+)/(\d+)", t)) for f, t in seen]
    matched = [(f, m) for f, m in matched if m]
    assert {m.group(1) for _, m in matched} == {"1", "2", "3"}  # the text says whose step it is
    for frac, m in matched:
        i, e, k, n = (int(v) for v in m.groups())
        assert frac == pytest.approx((i - 1 + k / n) / e, abs=1e-6)


def test_siren_reports_its_warm_start_instead_of_sitting_at_zero() -> None:
    """The default siren spends most of its time fitting the warm start: that must move the fraction."""
    ds = simulate_case(phantom="battery", size=24, sampling=0.2, seed=0)
    seen: list[tuple[float, str]] = []
    params = {"width": 8, "depth": 1, "steps": 20, "warm_steps": 40, "lam": 0.0}
    get_solver("siren", params)(ds.signal("Co"), PatternPhysics(ds.patterns), guide=ds.txm,
                                progress=lambda f, t: seen.append((f, t)))
    fracs = [f for f, _ in seen]
    assert fracs == sorted(fracs) and fracs[-1] == pytest.approx(1.0)
    warm = [f for f, t in seen if t.startswith("fitting the warm start")]
    assert warm and 0.0 < max(warm) < 0.7 and len({round(f, 3) for f in warm}) >= 5
    train = [f for f, t in seen if "residual" in t]
    assert min(train) >= max(warm)


def test_tv_family_fractions_rise_steadily_to_one() -> None:
    """Every element's weight searches move the fraction; it must not sit far below 1 and then jump there."""
    ds = simulate_case(phantom="battery", size=32, sampling=0.2, seed=1)
    ys = np.stack([ds.signal(e) for e in ds.elements])
    sigma = np.stack([ds.sigma(e) for e in ds.elements])
    seen: list[tuple[float, str]] = []
    get_solver("composition-tv").reconstruct_all(ys, PatternPhysics(ds.patterns), guide=ds.txm, sigma=sigma,
                                                 progress=lambda f, t: seen.append((f, t)))
    fracs = [f for f, _ in seen]
    assert fracs == sorted(fracs) and fracs[-1] == 1.0
    before_end = max(f for f, t in seen if not t.startswith("weights"))
    assert before_end >= 0.9
    finals = {t for _, t in seen if re.fullmatch(r"final fit \d+/\d+", t)}
    assert finals == {f"final fit {k}/{len(ds.elements)}" for k in range(1, len(ds.elements) + 1)}
