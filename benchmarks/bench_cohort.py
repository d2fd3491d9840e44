"""Phantom cohort generation: wall time, throughput and peak memory.

Target (issue 3): the paper-scale cohort (103,489 radiographs at 128 px) in at most 10 minutes on a
2-core machine, streaming to disk with at most 2 GB of memory.

    .venv/bin/python benchmarks/bench_cohort.py                 # paper profile
    .venv/bin/python benchmarks/bench_cohort.py --profile default
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from modelling.stages.cohort import build_cohort
from modelling.config import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="Write the bundle here and keep it.")
    args = parser.parse_args()

    cfg = load_config(args.profile)
    out = args.keep or Path(tempfile.mkdtemp(prefix="bench-cohort-"))
    n = cfg.cohort.labelled_radiographs + cfg.cohort.unlabelled_radiographs
    start = time.perf_counter()
    build_cohort(cfg, out, workers=args.workers, force=True)
    seconds = time.perf_counter() - start
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    workers = args.workers or os.cpu_count()
    size_mb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    print(f"{date.today()} {platform.node()} ({os.cpu_count()} cores): profile {args.profile}, "
          f"{n:,} radiographs at {cfg.image_size} px, {workers} workers: {seconds:.1f} s "
          f"({n / seconds:.0f} img/s); peak RSS main {self_mb:.0f} MB, largest worker {child_mb:.0f} MB, "
          f"upper bound on the total {self_mb + workers * child_mb:.0f} MB; bundle {size_mb:.0f} MB")
    if args.keep is None:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
