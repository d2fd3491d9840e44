"""Progress on long work: a bar on a terminal, timestamped log lines everywhere else.

On a terminal, tqdm draws a bar with rate and ETA. When stderr is a file or a pipe (``make reproduce
> log``, CI, a batch job), a bar would either print nothing or flood the log with carriage returns,
so the same calls log through :mod:`logging` instead (logger ``gvr.progress``, level INFO): a line at
the start, a line at least every ``GVR_PROGRESS_EVERY`` seconds (default 30) with the count, rate,
ETA and the latest losses, and a line at the end with the time taken. ``GVR_PROGRESS=bar`` forces
the bar, ``log`` the lines, ``0`` silences both.

The command line shows ``gvr.progress`` at INFO (:func:`modelling.cli._main`); a library caller
decides for itself, as with any logger.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from tqdm.auto import tqdm

log = logging.getLogger("gvr.progress")

DEFAULT_EVERY_S = 30.0


def format_duration(seconds: float) -> str:
    """``4.2 s``, ``3 min 05 s``, ``1 h 02 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _mode() -> str:
    forced = os.environ.get("GVR_PROGRESS", "").strip().lower()
    if forced in ("0", "off", "none"):
        return "off"
    if forced in ("1", "bar"):
        return "bar"
    if forced == "log":
        return "log"
    return "bar" if sys.stderr.isatty() else "log"


def _every() -> float:
    raw = os.environ.get("GVR_PROGRESS_EVERY")
    if raw is None:
        return DEFAULT_EVERY_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"GVR_PROGRESS_EVERY must be a number of seconds; got {raw!r}") from None
    if value < 0:
        raise ValueError(f"GVR_PROGRESS_EVERY must be >= 0 seconds; got {raw!r}")
    return value


class LogProgress:
    """tqdm's ``update``/``set_postfix``/``close`` interface, written as log lines.

    Parameters
    ----------
    total : int
        Units of work in all (for the percentage and the ETA).
    desc : str
        What is being done, the start of every line.
    unit : str
        The unit of work, e.g. ``"it"`` or ``"img"``.
    initial : int
        Units already done (a resumed run): the rate counts only what this run does.
    every : float
        Seconds between lines while the work goes on.
    clock : callable
        The time source (``time.monotonic``); tests pass their own.
    """

    def __init__(self, *, total: int, desc: str, unit: str = "it", initial: int = 0,
                 every: float = DEFAULT_EVERY_S, clock=time.monotonic, logger: logging.Logger = log) -> None:
        self.total, self.desc, self.unit = int(total), desc, unit
        self.n = self._initial = int(initial)
        self.every, self._clock, self._log = every, clock, logger
        self._start = self._last = clock()
        self._postfix = ""
        self._closed = False
        resumed = f", resuming at {self.n:,}" if self.n else ""
        self._log.info("%s: start, %s %s%s", desc, f"{self.total:,}", unit, resumed)

    def __enter__(self) -> "LogProgress":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(failed=exc_type is not None)

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self._postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self._postfix = s

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self._clock()
        if now - self._last >= self.every and self.n < self.total:
            self._last = now
            self._log.info("%s", self._line(now))

    def _line(self, now: float) -> str:
        elapsed = now - self._start
        done = self.n - self._initial
        rate = done / elapsed if elapsed > 0 else float("nan")
        pct = f" ({100 * self.n / self.total:.0f} %)" if self.total else ""
        eta = (f", ETA {format_duration((self.total - self.n) / rate)}"
               if self.total and rate == rate and rate > 0 else "")
        # nothing done yet (a move whose codes have not reached their targets) reads as 0 per second
        speed = f"{rate:.3g} {self.unit}/s" if rate >= 1 or not rate > 0 else f"{1 / rate:.3g} s/{self.unit}"
        post = f" [{self._postfix}]" if self._postfix else ""
        return f"{self.desc}: {self.n:,}/{self.total:,} {self.unit}{pct}, {speed}{eta}{post}"

    def close(self, *, failed: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        took = format_duration(self._clock() - self._start)
        if failed or self.n < self.total:
            self._log.info("%s: stopped at %s/%s %s after %s", self.desc, f"{self.n:,}", f"{self.total:,}",
                           self.unit, took)
        else:
            post = f" [{self._postfix}]" if self._postfix else ""
            self._log.info("%s: done, %s %s in %s%s", self.desc, f"{self.n - self._initial:,}", self.unit, took, post)


def progress(*, total: int, desc: str, unit: str = "it", initial: int = 0):
    """A progress reporter for ``total`` units of work: a tqdm bar on a terminal, log lines otherwise."""
    mode = _mode()
    if mode == "log":
        return LogProgress(total=total, desc=desc, unit=unit, initial=initial, every=_every())
    return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=mode == "off", dynamic_ncols=True,
                mininterval=1.0, smoothing=0.1)


def note(message: str, *args: Any) -> None:
    """One line on the progress channel: a step of a stage that has no count of its own."""
    log.info(message, *args)
