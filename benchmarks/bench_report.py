"""Manuscript rendering: the report scripts' kernels side by side against one after another, same run.

`gvr reproduce` ends by rendering every script in ``reports/`` against the study
(:func:`modelling.stages.report.render_reports`), each in a Jupyter kernel of its own. Most of a
page's time is its kernel's start and imports, so the kernels run side by side, one per core. The
reference is the same scripts rendered one after another (:func:`~modelling.stages.report.render_report`
per script), timed in the same run; both must give the same bytes.

    .venv/bin/python benchmarks/bench_report.py study

It writes nothing into the study: the pages go to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modelling.stages.report import render_report, render_reports, report_scripts  # noqa: E402


def compare(study, scripts=None) -> dict:
    """Seconds to render `scripts` (default: every report script) side by side and one after another."""
    study = Path(study)
    if not (study / "manifest.json").is_file():
        raise SystemExit(f"error: no study bundle at {study}: run `make reproduce` first")
    scripts = [Path(s) for s in (scripts if scripts is not None else report_scripts())]
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        start = time.perf_counter()
        pages = [p.read_bytes() for p in render_reports(study, tmp, scripts=scripts)]
        side_by_side = time.perf_counter() - start
    start = time.perf_counter()
    one_by_one = [render_report(script, study) for script in scripts]
    one_after_another = time.perf_counter() - start
    return {"scripts": [s.name for s in scripts], "side_by_side_s": round(side_by_side, 2),
            "one_after_another_s": round(one_after_another, 2),
            "ratio": round(side_by_side / one_after_another, 3), "same_bytes": pages == one_by_one,
            "cores": os.cpu_count(), "machine": platform.processor() or platform.machine(),
            "date": date.today().isoformat()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path)
    args = ap.parse_args(argv)
    print(json.dumps(compare(args.study)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
