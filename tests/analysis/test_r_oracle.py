"""The committed expected files really come from R: rerun the R scripts and compare (needs Rscript)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.analysis.oracle import EXPECTED, R_DIR

ROOT = R_DIR.parents[2]
SCRIPTS = ["agreement", "rank_tests", "contingency", "descriptive", "roc"]


# Closed-form arithmetic, but through libm's exp, log and pnorm, which glibc runs on different code
# paths on different CPUs (FMA or not): equal to the last ulp or two, so compared at 1e-12 relative.
CLOSED_FORM_RTOL = 1e-12


def _assert_same(fresh, committed, where="") -> None:
    if isinstance(committed, dict):
        keys = set(committed) - {"jsonlite_version"}
        assert set(fresh) - {"jsonlite_version"} == keys, where
        for k in keys:
            _assert_same(fresh[k], committed[k], f"{where}.{k}")
    elif isinstance(committed, list):
        assert isinstance(fresh, list) and len(fresh) == len(committed), where
        for i, (a, b) in enumerate(zip(fresh, committed)):
            _assert_same(a, b, f"{where}[{i}]")
    elif isinstance(committed, float) and not isinstance(fresh, str):
        assert fresh == pytest.approx(committed, rel=CLOSED_FORM_RTOL, abs=1e-300), where
    else:
        assert fresh == committed, where


@pytest.mark.r
@pytest.mark.slow
@pytest.mark.parametrize("name", SCRIPTS)
def test_rerun_reference_script(name, tmp_path: Path):
    if shutil.which("Rscript") is None:
        pytest.skip("Rscript not installed")
    subprocess.run(
        ["Rscript", str(R_DIR / f"{name}_reference.R"), str(tmp_path)], cwd=ROOT, check=True,
        capture_output=True, timeout=120,
    )
    fresh = json.loads((tmp_path / f"{name}_expected.json").read_text())
    committed = json.loads((EXPECTED / f"{name}_expected.json").read_text())
    _assert_same(fresh, committed, name)
