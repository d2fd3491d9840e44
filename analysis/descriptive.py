"""Descriptive statistics as R computes them: type-7 quantiles, median and IQR, mean and SD.

Examples
--------
>>> from analysis.descriptive import median_iqr
>>> median_iqr([1, 2, 3, 4, 10]).to_frame()
   median   q1   q3  n
0     3.0  2.0  4.0  5
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis._checks import as_finite_1d

__all__ = ["MedianIQR", "MeanSD", "quantile", "median_iqr", "mean_sd"]


def _values(x: Any, minimum: int = 1) -> np.ndarray:
    v = as_finite_1d(x, "x")
    if v.size < minimum:
        raise ValueError(f"x needs at least {minimum} value(s); got {v.size}")
    return v


def quantile(x: Any, q: Any) -> Any:
    """Sample quantiles as R's ``quantile(x, q, type = 7)`` (the default).

    Parameters
    ----------
    x : array-like of float
        Data (no NaN: R's ``quantile`` refuses NA unless ``na.rm = TRUE``).
    q : float or array-like of float
        Probabilities in [0, 1].

    Returns
    -------
    float or numpy.ndarray
        A float for a scalar ``q``, an array of the shape of ``q`` otherwise.

    Raises
    ------
    ValueError
        If ``x`` is empty or holds NaN or infinity, or a probability is outside [0, 1].

    Notes
    -----
    Type 7 (Hyndman & Fan 1996): with :math:`x_{(1)} \\le \\dots \\le x_{(n)}`, :math:`h = (n-1)q`,
    :math:`Q(q) = x_{(\\lfloor h \\rfloor + 1)} + (h - \\lfloor h \\rfloor)(x_{(\\lfloor h \\rfloor + 2)} -
    x_{(\\lfloor h \\rfloor + 1)})`.

    References
    ----------
    .. [1] Hyndman RJ, Fan Y. Sample quantiles in statistical packages. Am Stat 1996;50:361-365.
       doi:10.1080/00031305.1996.10473566

    Examples
    --------
    >>> quantile([1, 2, 3, 4, 10], [0.25, 0.9]).round(12).tolist()
    [2.0, 7.6]
    """
    v = _values(x)
    p = np.asarray(q, dtype=np.float64)
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"q must hold probabilities in [0, 1]; got {q!r}")
    out = np.quantile(v, p, method="linear")
    return float(out) if p.ndim == 0 else out


@dataclass(frozen=True)
class MedianIQR:
    """Median and interquartile range (type-7 quartiles).

    Attributes
    ----------
    median, q1, q3 : float
        The 0.5, 0.25 and 0.75 type-7 quantiles.
    n : int
        Number of values.
    """

    median: float
    q1: float
    q3: float
    n: int

    def to_frame(self) -> pd.DataFrame:
        """Return the result as a tidy one-row DataFrame, one column per field."""
        return pd.DataFrame([asdict(self)])


@dataclass(frozen=True)
class MeanSD:
    """Mean and sample standard deviation.

    Attributes
    ----------
    mean : float
        Arithmetic mean.
    sd : float
        Standard deviation with denominator n - 1 (R's ``sd``).
    n : int
        Number of values.
    """

    mean: float
    sd: float
    n: int

    def to_frame(self) -> pd.DataFrame:
        """Return the result as a tidy one-row DataFrame, one column per field."""
        return pd.DataFrame([asdict(self)])


def median_iqr(x: Any) -> MedianIQR:
    """Median with first and third quartiles, as R's ``quantile(x, c(.5, .25, .75))``.

    Parameters
    ----------
    x : array-like of float
        Data (no NaN).

    Returns
    -------
    MedianIQR
        ``median, q1, q3, n``.

    Raises
    ------
    ValueError
        If ``x`` is empty or holds NaN or infinity.

    Notes
    -----
    Quartiles by :func:`quantile` (type 7); the IQR is ``q3 - q1``.

    References
    ----------
    .. [1] Hyndman RJ, Fan Y. Am Stat 1996;50:361-365. doi:10.1080/00031305.1996.10473566

    Examples
    --------
    >>> r = median_iqr([3, 1, 2, 8])
    >>> r.median, r.q1, r.q3
    (2.5, 1.75, 4.25)
    """
    v = _values(x)
    med, q1, q3 = np.quantile(v, [0.5, 0.25, 0.75], method="linear")
    return MedianIQR(float(med), float(q1), float(q3), int(v.size))


def mean_sd(x: Any) -> MeanSD:
    """Mean and standard deviation as R's ``mean`` and ``sd`` (denominator n - 1).

    Parameters
    ----------
    x : array-like of float
        Data (no NaN), at least two values.

    Returns
    -------
    MeanSD
        ``mean, sd, n``.

    Raises
    ------
    ValueError
        If ``x`` has fewer than two values (R's ``sd`` gives NA) or holds NaN or infinity.

    Notes
    -----
    :math:`\\bar x = \\sum x_i / n`, :math:`s = \\sqrt{\\sum (x_i - \\bar x)^2 / (n - 1)}`.

    References
    ----------
    .. [1] Bessel's correction; see e.g. Altman DG, Bland JM. Standard deviations and standard errors.
       BMJ 2005;331:903. doi:10.1136/bmj.331.7521.903

    Examples
    --------
    >>> r = mean_sd([2, 4, 4, 4, 5, 5, 7, 9])
    >>> r.mean, round(r.sd, 6)
    (5.0, 2.13809)
    """
    v = _values(x, minimum=2)
    return MeanSD(float(np.mean(v)), float(np.std(v, ddof=1)), int(v.size))
