"""Benchmark: analysis.mixed_models.glmer against the same glmer call in R.

Fits the paper's model, ``present ~ regime + reader + (1 | patient_id)``, to one feature
(cardiomegaly, 400 assessments) of the seeded simulated reading in
``tests/analysis/r_mixed/reader_study.csv``:

- ours: ``glmer()`` with each engine: ``"rpy2"`` (the default: the formula's columns sent to R and
  glmer plus the extraction of its results in one R call) and ``"pymer4"`` (pymer4's ``Lmer.fit``),
  each including the result's tidy tables, isSingular and the warning capture, timed with
  ``time.perf_counter`` after the one-time R start-up, which is timed and reported separately;
- R: ``glmer(...)`` timed with ``system.time`` inside Rscript, after loading lme4 and one warm-up fit
  (R start-up excluded).

Blocks of the two alternate, to share the machine's load; the medians are compared.
Target: ours at most 25 % slower than R (ratio <= 1.25), for the default engine.

Run from the repository root:  .venv/bin/python benchmarks/bench_glmer.py [--reps 10] [--blocks 3]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

from analysis import mixed_models as mm
from analysis.mixed_models import lme4

ROOT = Path(__file__).resolve().parent.parent

DATA = ROOT / "tests" / "analysis" / "r_mixed" / "reader_study.csv"
FEATURE = "cardiomegaly"

R_CODE = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = FALSE)
d <- d[d$feature == args[2], ]
d$present <- as.integer(as.logical(d$present))
d$regime <- factor(d$regime, levels = c("overfitted", "correct"))
f <- present ~ regime + reader + (1 | patient_id)
invisible(glmer(f, data = d, family = binomial))  # warm-up
reps <- as.integer(args[3])
t_fit <- replicate(reps, system.time(glmer(f, data = d, family = binomial))[["elapsed"]])
t_sum <- replicate(reps, system.time({m <- glmer(f, data = d, family = binomial); summary(m)})[["elapsed"]])
cat(t_fit, "\n", t_sum, "\n", sep = " ")
"""


def run_r(script: Path, reps: int) -> tuple[list[float], list[float]]:
    out = subprocess.run(["Rscript", str(script), str(DATA), FEATURE, str(reps)],
                         capture_output=True, text=True, check=True)
    fit_line, sum_line = out.stdout.strip().splitlines()[-2:]
    return [float(x) for x in fit_line.split()], [float(x) for x in sum_line.split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10, help="fits per block on each side")
    parser.add_argument("--blocks", type=int, default=3, help="alternating blocks")
    args = parser.parse_args()

    table = pd.read_csv(DATA)
    data = table[table["feature"] == FEATURE].assign(
        regime=lambda d: pd.Categorical(d["regime"], categories=list(mm.REGIME_LEVELS)))

    t0 = time.perf_counter()
    lme4._session()  # start R, load lme4
    startup = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("error", mm.GlmerFitWarning)  # the benchmark model must fit cleanly
        for engine in mm.ENGINES:  # warm-up (and pymer4's import)
            mm.glmer(mm.DEFAULT_FORMULA, data, engine=engine)

        ours: dict[str, list[float]] = {engine: [] for engine in mm.ENGINES}
        r_fit: list[float] = []
        r_sum: list[float] = []
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "bench_glmer.R"
            script.write_text(R_CODE)
            for _ in range(args.blocks):
                fit, summ = run_r(script, args.reps)
                r_fit += fit
                r_sum += summ
                for _ in range(args.reps):
                    for engine in mm.ENGINES:
                        t = time.perf_counter()
                        mm.glmer(mm.DEFAULT_FORMULA, data, engine=engine)
                        ours[engine].append(time.perf_counter() - t)

    med_r, med_rs, best_r = statistics.median(r_fit), statistics.median(r_sum), min(r_fit)
    print(f"bench_glmer {datetime.date.today()} {platform.node()} ({os.cpu_count()} cores), "
          f"{FEATURE}: {len(data)} rows, {mm.DEFAULT_FORMULA}, {len(r_fit)} fits each")
    print(f"  R start-up through rpy2 with lme4 (once per process): {startup:.2f} s")
    print(f"  R glmer() (system.time):            median {med_r * 1e3:.1f} ms, best {best_r * 1e3:.1f} ms")
    print(f"  R glmer() + summary():              median {med_rs * 1e3:.1f} ms")
    for engine, times in ours.items():
        med, best = statistics.median(times), min(times)
        ratio = med / med_r
        verdict = "met" if ratio <= 1.25 else "NOT met"
        target = f"target <= 1.25: {verdict}" if engine == mm.ENGINES[0] else "no target"
        print(f"  glmer(engine={engine!r}): median {med * 1e3:.1f} ms, best {best * 1e3:.1f} ms; "
              f"ratio to R glmer() {ratio:.2f} ({target}); best/best {best / best_r:.2f}; "
              f"to R glmer()+summary() {med / med_rs:.2f}")


if __name__ == "__main__":
    main()
