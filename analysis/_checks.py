"""Input checks shared by the statistics modules (private)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np


def check_option(name: str, value: Any, allowed: Collection[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise a ValueError naming all three."""
    if not any(value is a or (value == a and type(value) is type(a)) for a in allowed):
        shown = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {shown}; got {value!r}")
    return value


def check_level(level: float) -> float:
    """Return a confidence level strictly between 0 and 1, or raise a ValueError."""
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be strictly between 0 and 1 (e.g. 0.95); got {level!r}")
    return level


def as_finite_1d(x: Any, name: str, *, allow_inf: bool = False) -> np.ndarray:
    """Convert ``x`` to a 1-D float array, refusing NaN (and infinities unless ``allow_inf``)."""
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional; got shape {arr.shape}")
    try:
        arr = arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric; got dtype {arr.dtype}") from exc
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains {int(np.isnan(arr).sum())} NaN value(s); drop or impute them first")
    if not allow_inf and np.isinf(arr).any():
        raise ValueError(f"{name} contains infinite value(s); drop them first")
    return arr


def as_rng(rng: Any) -> np.random.Generator:
    """Return a numpy Generator from ``rng`` (a Generator, an int seed or None for fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None; got {type(rng).__name__}")


def check_assessments(assessments: Any, *, needs: Sequence[str], integer_present: bool = False):
    """A reader-assessments table (``data_schema``'s reader_assessments) holding the columns `needs`.

    One check for every statistic that reads the table: its column names, regimes and unique key come
    from the data_schema model, so they cannot drift from the bundle's table.

    Parameters
    ----------
    assessments : pandas.DataFrame
        The table, or the part of it a statistic needs.
    needs : sequence of str
        Columns the caller reads (a subset of the schema's).
    integer_present : bool, default False
        Accept ``present`` as 0/1 integers as well as booleans (R's convention).

    Raises
    ------
    TypeError
        When `assessments` is not a DataFrame.
    ValueError
        For a missing column, no rows, an unknown regime, a ``present`` that is not boolean or has
        missing values, or a duplicated (reader, round, gvr_id, feature) row.
    """
    import pandas as pd

    from data_schema.registry import get_spec
    from data_schema.tables import REGIMES

    spec = get_spec("reader_assessments")
    columns = list(spec.model.to_schema().columns)
    unknown = [c for c in needs if c not in columns]
    if unknown:
        raise ValueError(f"needs names column(s) {unknown} that the reader_assessments table does not have")
    if not isinstance(assessments, pd.DataFrame):
        raise TypeError(f"assessments must be a pandas DataFrame; got {type(assessments).__name__}")
    missing = [c for c in needs if c not in assessments.columns]
    if missing:
        raise ValueError(f"assessments lacks column(s) {missing}; expected the reader_assessments table "
                         f"({', '.join(columns)})")
    if assessments.empty:
        raise ValueError("assessments has no rows")
    if "regime" in needs:
        regimes = set(assessments["regime"].astype(str).unique())
        if not regimes <= set(REGIMES):
            raise ValueError(f"assessments.regime must be one of {REGIMES}; got {sorted(regimes - set(REGIMES))}")
    if "present" in needs:
        present = assessments["present"]
        if present.isna().any():
            raise ValueError("assessments.present has missing values")
        is_bool = pd.api.types.is_bool_dtype(present.dtype)
        if not is_bool and not (integer_present and set(pd.unique(present)) <= {0, 1}):
            shown = sorted(map(str, pd.unique(present)))[:5]
            allowed = "boolean (or 0/1)" if integer_present else "boolean"
            raise ValueError(f"assessments.present must be {allowed}; got dtype {present.dtype}, values {shown}")
    key = list(spec.primary_key)
    if all(c in assessments.columns for c in key):
        dup = assessments.duplicated(key)
        if dup.any():
            raise ValueError(f"assessments has {int(dup.sum())} duplicated ({', '.join(key)}) rows")
    return assessments
