"""Wilcoxon-Mann-Whitney rank-sum test, exactly as R's ``wilcox.test(x, y)``.

Examples
--------
>>> from analysis.rank_tests import mann_whitney
>>> r = mann_whitney([1.1, 2.3, 3.8, 4.0], [2.2, 5.1, 6.3, 7.7, 8.0])
>>> r.statistic, round(r.p_value, 6), r.method
(3.0, 0.111111, 'exact')
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from fractions import Fraction
from functools import lru_cache
from math import comb
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis._checks import as_finite_1d, check_option
from analysis.errors import AllTiedError

__all__ = ["MannWhitneyResult", "mann_whitney", "mann_whitney_cdf"]

ALTERNATIVES = ("two-sided", "less", "greater")
EXACT = (None, True, False)


@dataclass(frozen=True)
class MannWhitneyResult:
    """Result of the Wilcoxon-Mann-Whitney test.

    Attributes
    ----------
    statistic : float
        R's W: the rank sum of ``x`` minus ``n_x (n_x + 1) / 2`` (the Mann-Whitney U of ``x``, ties
        counting one half). ``n_x * n_y - statistic`` is the U of ``y``.
    p_value : float
        p-value for ``alternative``.
    method : str
        ``"exact"`` or ``"normal"`` (normal approximation with tie correction, plus continuity
        correction when ``correct``).
    alternative : str
        ``"two-sided"``, ``"less"`` or ``"greater"`` (``x`` shifted below / above ``y``).
    n_x, n_y : int
        Sample sizes.
    correct : bool
        Whether a continuity correction was applied (False for the exact test).
    """

    statistic: float
    p_value: float
    method: str
    alternative: str
    n_x: int
    n_y: int
    correct: bool

    def to_frame(self) -> pd.DataFrame:
        """Return the result as a tidy one-row DataFrame, one column per field."""
        return pd.DataFrame([asdict(self)])


@lru_cache(maxsize=64)
def _counts(m: int, n: int) -> tuple[int, ...]:
    """Number of arrangements with U = 0, 1, ..., m n (exact integers).

    Coefficients of the Gaussian binomial :math:`\\binom{m+n}{n}_q =
    \\prod_{i=1}^{n} (1 - q^{m+i}) / (1 - q^i)`, built factor by factor.
    """
    size = m * n + 1
    c = np.zeros(size, dtype=object)
    c[0] = 1
    for i in range(1, n + 1):
        step = m + i
        if step < size:
            c[step:] = c[step:] - c[: size - step]  # times (1 - q^(m+i))
        for r in range(i):  # divided by (1 - q^i): running sums with stride i
            c[r::i] = np.cumsum(c[r::i])
    return tuple(int(v) for v in c)


def mann_whitney_cdf(q: float, m: int, n: int, *, lower_tail: bool = True) -> float:
    """Null distribution of the Mann-Whitney statistic, as R's ``pwilcox(q, m, n)``.

    Parameters
    ----------
    q : float
        Quantile; ``floor(q + 1e-7)`` is used as R does.
    m, n : int
        Sample sizes (positive).
    lower_tail : bool, default True
        ``P(W <= q)`` if True, else ``P(W > q)``.

    Returns
    -------
    float
        The probability, computed from exact integer counts.

    Raises
    ------
    ValueError
        If ``m`` or ``n`` is not positive.

    Notes
    -----
    Under the null every one of the :math:`\\binom{m+n}{n}` orderings is equally likely; the number
    with :math:`W = k` is the coefficient of :math:`q^k` in the Gaussian binomial coefficient
    :math:`\\binom{m+n}{n}_q` (Mann & Whitney 1947). Memory and time grow as :math:`m n^2`, so this is
    meant for the small samples for which R uses it (both below 50).

    References
    ----------
    .. [1] Mann HB, Whitney DR. On a test of whether one of two random variables is stochastically
       larger than the other. Ann Math Stat 1947;18:50-60. doi:10.1214/aoms/1177730491

    Examples
    --------
    >>> round(mann_whitney_cdf(2, 4, 5), 6)
    0.031746
    """
    m, n = int(m), int(n)
    if m < 1 or n < 1:
        raise ValueError(f"m and n must be positive; got m={m}, n={n}")
    k = int(np.floor(q + 1e-7))
    c = _counts(min(m, n), max(m, n))  # the distribution is symmetric in (m, n)
    total = comb(m + n, n)
    if k < 0:
        below = 0
    elif k >= m * n:
        below = total
    else:
        below = sum(c[: k + 1])
    p = Fraction(below if lower_tail else total - below, total)
    return float(p)


def mann_whitney(
    x: Any,
    y: Any,
    *,
    exact: bool | None = None,
    correct: bool = True,
    alternative: str = "two-sided",
) -> MannWhitneyResult:
    """Wilcoxon rank-sum (Mann-Whitney U) test of ``x`` against ``y``, as R's ``wilcox.test(x, y)``.

    Parameters
    ----------
    x, y : array-like of float
        The two samples.
    exact : bool or None, default None
        Use the exact null distribution. None (R's default): exact when both samples have fewer than
        50 values and there are no ties. With ties the exact test is unavailable and the normal
        approximation is used, with a warning whenever the exact test was asked for or chosen by
        default, as R ("cannot compute exact p-value with ties").
    correct : bool, default True
        Continuity correction of the normal approximation.
    alternative : {"two-sided", "less", "greater"}, default "two-sided"
        "greater" means ``x`` tends to be larger than ``y``.

    Returns
    -------
    MannWhitneyResult
        ``statistic, p_value, method, alternative, n_x, n_y, correct``.

    Raises
    ------
    AllTiedError
        If every value is tied (the normal approximation has zero variance; R gives p = NaN).
    ValueError
        If a sample is empty or holds NaN or infinite values (R silently drops them), or an option
        is not one of its allowed values.

    Notes
    -----
    :math:`W = \\sum_{i} R(x_i) - n_x(n_x+1)/2` with midranks :math:`R` in the pooled sample.
    Exact: :math:`p = \\min(1, 2\\min(P(W \\le w), P(W \\ge w)))` from the null distribution of
    :func:`mann_whitney_cdf`, as R. Normal approximation:
    :math:`z = (W - n_x n_y/2 - c)/\\sigma`, with
    :math:`\\sigma^2 = \\frac{n_x n_y}{12}\\big(n_x + n_y + 1 - \\frac{\\sum_t (t^3 - t)}{(n_x+n_y)(n_x+n_y-1)}\\big)`
    (:math:`t` the sizes of tied groups) and :math:`c = \\mathrm{sign}(W - n_x n_y/2)/2` (two-sided),
    :math:`1/2` (greater), :math:`-1/2` (less), or 0 without correction;
    :math:`p = 2\\min(\\Phi(z), 1-\\Phi(z))` for two-sided.

    References
    ----------
    .. [1] Mann HB, Whitney DR. Ann Math Stat 1947;18:50-60. doi:10.1214/aoms/1177730491
    .. [2] Wilcoxon F. Individual comparisons by ranking methods. Biometrics Bull 1945;1:80-83.
       doi:10.2307/3001968

    Examples
    --------
    >>> r = mann_whitney([1, 2, 2, 3, 4], [2, 3, 5, 6, 6, 7])
    >>> r.statistic, round(r.p_value, 6), r.method
    (4.5, 0.064147, 'normal')
    """
    check_option("exact", exact, EXACT)
    check_option("correct", correct, (True, False))
    check_option("alternative", alternative, ALTERNATIVES)
    xs = as_finite_1d(x, "x")
    ys = as_finite_1d(y, "y")
    if xs.size == 0 or ys.size == 0:
        raise ValueError(f"x and y need at least one value each; got {xs.size} and {ys.size}")
    nx, ny = xs.size, ys.size
    ranks = stats.rankdata(np.concatenate([xs, ys]))
    w = float(ranks[:nx].sum() - nx * (nx + 1) / 2.0)
    _, tie_sizes = np.unique(ranks, return_counts=True)
    ties = bool((tie_sizes > 1).any())
    use_exact = (nx < 50 and ny < 50) if exact is None else exact
    if use_exact and ties:
        warnings.warn("cannot compute exact p-value with ties; using the normal approximation", stacklevel=2)
    if use_exact and not ties:
        if alternative == "two-sided":
            if w > nx * ny / 2.0:
                p = mann_whitney_cdf(w - 1, nx, ny, lower_tail=False)
            else:
                p = mann_whitney_cdf(w, nx, ny)
            p = min(2.0 * p, 1.0)
        elif alternative == "greater":
            p = mann_whitney_cdf(w - 1, nx, ny, lower_tail=False)
        else:
            p = mann_whitney_cdf(w, nx, ny)
        return MannWhitneyResult(w, p, "exact", alternative, nx, ny, False)
    z = w - nx * ny / 2.0
    t = tie_sizes.astype(np.float64)
    sigma2 = (nx * ny / 12.0) * ((nx + ny + 1) - np.sum(t**3 - t) / ((nx + ny) * (nx + ny - 1)))
    if not sigma2 > 0:
        raise AllTiedError(
            f"all {nx + ny} values are tied: the rank-sum test has no information (R returns p = NaN)"
        )
    if correct:
        c = {"two-sided": float(np.sign(z)) * 0.5, "greater": 0.5, "less": -0.5}[alternative]
    else:
        c = 0.0
    zc = (z - c) / np.sqrt(sigma2)
    if alternative == "two-sided":
        p = 2.0 * min(stats.norm.cdf(zc), stats.norm.sf(zc))
    elif alternative == "greater":
        p = stats.norm.sf(zc)
    else:
        p = stats.norm.cdf(zc)
    return MannWhitneyResult(w, float(p), "normal", alternative, nx, ny, bool(correct))
