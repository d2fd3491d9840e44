"""Loading the R oracle files of tests/analysis/r (data and expected values)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

R_DIR = Path(__file__).parent / "r"
DATA = R_DIR / "data"
EXPECTED = R_DIR / "expected"


def _num(v):
    if isinstance(v, str) and v in ("Inf", "-Inf", "NaN", "NA"):
        return {"Inf": math.inf, "-Inf": -math.inf}.get(v, math.nan)
    if isinstance(v, list):
        return [_num(x) for x in v]
    if isinstance(v, dict):
        return {k: _num(x) for k, x in v.items()}
    return v


def expected(name: str, directory: Path = EXPECTED) -> dict:
    """The expected values written by ``tests/analysis/r/<name>_reference.R``."""
    return _num(json.loads((directory / f"{name}_expected.json").read_text()))


def data(name: str) -> pd.DataFrame:
    """A seeded input file written by ``tests/analysis/r/make_data.R``."""
    return pd.read_csv(DATA / f"{name}.csv", keep_default_na=False)
