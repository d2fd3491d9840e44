"""Input checks shared by the statistics modules (private)."""

from __future__ import annotations

from collections.abc import Collection
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
