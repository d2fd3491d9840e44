"""Progress on long work: log lines when stderr is not a terminal (modelling.progress)."""

from __future__ import annotations

import logging

import pytest

from modelling import progress as mp


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def lines(caplog):
    caplog.set_level(logging.INFO, logger="gvr.progress")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "gvr.progress"]


def test_a_line_at_start_every_interval_and_at_the_end(lines):
    clock = Clock()
    with mp.LogProgress(total=100, desc="decoder", unit="it", every=30, clock=clock) as bar:
        for _ in range(100):
            clock.t += 1.0  # one iteration a second
            bar.set_postfix(w="0.125")
            bar.update(1)
    got = lines()
    assert got[0] == "decoder: start, 100 it"
    periodic = got[1:-1]
    assert periodic == ["decoder: 30/100 it (30 %), 1 it/s, ETA 1 min 10 s [w=0.125]",
                        "decoder: 60/100 it (60 %), 1 it/s, ETA 40.0 s [w=0.125]",
                        "decoder: 90/100 it (90 %), 1 it/s, ETA 10.0 s [w=0.125]"]
    assert got[-1] == "decoder: done, 100 it in 1 min 40 s [w=0.125]"


def test_slow_work_reads_as_seconds_per_unit_and_a_resumed_run_counts_its_own_rate(lines):
    clock = Clock()
    bar = mp.LogProgress(total=10, desc="encoder", initial=4, every=0, clock=clock)
    clock.t += 5.0
    bar.update(1)
    bar.close()
    bar.close()  # closing twice says nothing more
    got = lines()
    assert got == ["encoder: start, 10 it, resuming at 4", "encoder: 5/10 it (50 %), 5 s/it, ETA 25.0 s",
                   "encoder: stopped at 5/10 it after 5.0 s"]


def test_time_passing_with_nothing_done_reads_as_zero_a_second(lines):
    clock = Clock()
    bar = mp.LogProgress(total=3, desc="moving codes", unit="code", every=0, clock=clock)
    clock.t += 5.0
    bar.update(0)  # no code has reached its target yet
    assert lines()[-1] == "moving codes: 0/3 code (0 %), 0 code/s"


def test_an_exception_inside_is_logged_as_stopped(lines):
    clock = Clock()
    with pytest.raises(RuntimeError):
        with mp.LogProgress(total=3, desc="x", every=0, clock=clock) as bar:
            bar.update(1)
            raise RuntimeError("boom")
    assert lines()[-1].startswith("x: stopped at 1/3 it")


@pytest.mark.parametrize(("value", "tty", "kind"), [
    (None, False, "log"), (None, True, "bar"), ("log", True, "log"), ("bar", False, "bar"), ("1", False, "bar"),
    ("0", True, "off")])
def test_mode_follows_the_terminal_unless_forced(value, tty, kind, monkeypatch):
    if value is None:
        monkeypatch.delenv("GVR_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("GVR_PROGRESS", value)
    monkeypatch.setattr(mp.sys.stderr, "isatty", lambda: tty, raising=False)
    made = mp.progress(total=2, desc="t")
    if kind == "log":
        assert isinstance(made, mp.LogProgress)
    else:
        assert not isinstance(made, mp.LogProgress) and made.disable == (kind == "off")
    made.close()


def test_a_bad_interval_is_refused(monkeypatch):
    monkeypatch.setenv("GVR_PROGRESS", "log")
    monkeypatch.setenv("GVR_PROGRESS_EVERY", "soon")
    with pytest.raises(ValueError, match="GVR_PROGRESS_EVERY"):
        mp.progress(total=1, desc="t")


@pytest.mark.parametrize(("seconds", "text"), [(4.21, "4.2 s"), (185, "3 min 05 s"), (3720, "1 h 02 min")])
def test_durations(seconds, text):
    assert mp.format_duration(seconds) == text


def test_the_two_stage_samplers_fit_reports_its_steps(lines, monkeypatch):
    """It ran without a line for 31 s on a busy machine, where the README promises one every 30 s."""
    import numpy as np

    from modelling.nets.code_sampler import fit_code_sampler

    monkeypatch.setenv("GVR_PROGRESS", "log")
    fit_code_sampler(np.random.default_rng(0).standard_normal((40, 4)), seed=1, steps=5)
    said = [line for line in lines() if line.startswith("two-stage sampler")]
    assert said == ["two-stage sampler: start, 5 step", said[-1]] and said[-1].startswith("two-stage sampler: done, 5 step in")
