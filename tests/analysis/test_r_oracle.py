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


def _strip(x):
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if k != "jsonlite_version"}
    return x


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
    assert _strip(fresh) == _strip(committed)
