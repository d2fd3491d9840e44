"""Pearson's chi-squared test and Fisher's exact test for contingency tables, as R's
``chisq.test`` and ``fisher.test``.

Examples
--------
>>> from analysis.contingency import chi_square, fisher_exact
>>> round(chi_square([[153, 47], [64, 136]]).p_value, 12) < 1e-6
True
>>> round(fisher_exact([[3, 1], [1, 3]]).p_value, 6)
0.485714
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from analysis.errors import ApproximationWarning, EmptyMarginError

__all__ = ["ChiSquareResult", "FisherResult", "chi_square", "fisher_exact"]

_REL_ERR = 1.0 + 1e-7  # R's fisher.test: probabilities within this factor of the observed count as "as extreme"


def _as_table(table: Any, *, integer: bool) -> np.ndarray:
    x = np.asarray(table, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"table must be a 2-D array with at least 2 rows and 2 columns; got shape {x.shape}")
    if np.isnan(x).any() or np.isinf(x).any():
        raise ValueError("table must hold finite counts (no NaN or infinity)")
    if (x < 0).any():
        raise ValueError("table must hold non-negative counts")
    if integer and (x != np.round(x)).any():
        raise ValueError("table must hold whole-number counts for Fisher's exact test")
    rows, cols = x.sum(axis=1), x.sum(axis=0)
    if (rows == 0).any() or (cols == 0).any():
        raise EmptyMarginError(
            f"table has an all-zero row or column (row sums {rows.tolist()}, column sums {cols.tolist()}); "
            "drop it first"
        )
    return x


@dataclass(frozen=True)
class ChiSquareResult:
    """Pearson's chi-squared test of independence, or of goodness of fit for a one-way table.

    Attributes
    ----------
    statistic : float
        The X-squared statistic (with Yates' correction when applied).
    df : int
        Degrees of freedom: (rows - 1)(columns - 1), or categories - 1 for a one-way table.
    p_value : float
        Upper-tail chi-squared probability.
    expected : numpy.ndarray
        Expected counts: under independence, row sum x column sum / total; for a one-way table,
        total x p.
    method : str
        R's method string, e.g. "Pearson's Chi-squared test with Yates' continuity correction".
    correct : bool
        Whether Yates' correction was applied (only ever for 2 x 2 tables).

    Notes
    -----
    :meth:`to_frame` replaces ``expected`` by its minimum, ``min_expected``, to stay one row.
    """

    statistic: float
    df: int
    p_value: float
    expected: np.ndarray = field(repr=False)
    method: str
    correct: bool

    def to_frame(self) -> pd.DataFrame:
        """Return a tidy one-row DataFrame (``expected`` summarised as ``min_expected``)."""
        row = {k: v for k, v in asdict(self).items() if k != "expected"}
        row["min_expected"] = float(np.min(self.expected))
        return pd.DataFrame([row])


@dataclass(frozen=True)
class FisherResult:
    """Fisher's exact test of independence (two-sided).

    Attributes
    ----------
    p_value : float
        Two-sided p-value: the probability of the tables no more likely than the observed one.
    odds_ratio : float or None
        Conditional maximum-likelihood odds ratio (2 x 2 only; None otherwise); may be 0 or inf.
    ci_low, ci_high : float or None
        Conditional confidence interval of the odds ratio at ``level`` (2 x 2 only).
    level : float
        Confidence level.
    method : str
        "Fisher's Exact Test for Count Data".
    n_tables : int
        Number of tables with the observed margins (the support enumerated).
    """

    p_value: float
    odds_ratio: float | None
    ci_low: float | None
    ci_high: float | None
    level: float
    method: str
    n_tables: int

    def to_frame(self) -> pd.DataFrame:
        """Return the result as a tidy one-row DataFrame, one column per field."""
        return pd.DataFrame([asdict(self)])


def _as_counts(x: np.ndarray) -> np.ndarray:
    """A one-way table for the goodness-of-fit test, checked as R's ``chisq.test`` checks a vector."""
    x = x.ravel()
    if x.size < 2:
        raise ValueError(f"a one-way table must have at least 2 categories; got {x.size}")
    if np.isnan(x).any() or np.isinf(x).any() or (x < 0).any():
        raise ValueError("all counts must be non-negative and finite")
    if x.sum() == 0:
        raise ValueError("at least one count must be positive")
    return x


def _probabilities(p: Any, k: int, *, rescale_p: bool) -> np.ndarray:
    if p is None:
        return np.full(k, 1.0 / k)
    probs = np.asarray(p, dtype=np.float64).ravel()
    if probs.size != k:
        raise ValueError(f"p must have one probability per category ({k}); got {probs.size}")
    if np.isnan(probs).any() or np.isinf(probs).any() or (probs < 0).any():
        raise ValueError(f"p must hold non-negative finite probabilities; got {probs.tolist()}")
    if rescale_p:
        if probs.sum() == 0:
            raise ValueError("p sums to 0 and cannot be rescaled")
        return probs / probs.sum()
    # R: abs(sum(p) - 1) > sqrt(.Machine$double.eps) is an error unless rescale.p = TRUE
    if abs(probs.sum() - 1.0) > np.sqrt(np.finfo(float).eps):
        raise ValueError(f"p must sum to 1 (sums to {probs.sum():.12g}); pass rescale_p=True to rescale it")
    return probs


def _warn_small(expected: np.ndarray) -> None:
    if (expected < 5).any():
        warnings.warn(
            f"Chi-squared approximation may be incorrect: smallest expected count is {expected.min():.3g} "
            "(< 5); consider fisher_exact",
            ApproximationWarning,
            stacklevel=3,
        )


def chi_square(table: Any, *, correct: bool = True, p: Any = None, rescale_p: bool = False) -> ChiSquareResult:
    """Pearson's chi-squared test, as R's ``chisq.test``: independence for a two-way table,
    goodness of fit for a one-way table.

    Parameters
    ----------
    table : array-like, shape (k,) or (r, c)
        Counts. A one-way table (a vector, or a matrix with one row or one column, as R) is tested
        for goodness of fit against ``p``; a two-way table with r >= 2 and c >= 2 for independence.
    correct : bool, default True
        Apply Yates' continuity correction (2 x 2 tables only, as R; ignored for one-way tables).
    p : array-like, shape (k,), optional
        Expected proportions of a one-way table's categories; default uniform (R's ``p``). Refused
        for a two-way table, whose expected counts come from its margins.
    rescale_p : bool, default False
        Divide ``p`` by its sum (R's ``rescale.p``); otherwise ``p`` must sum to 1.

    Returns
    -------
    ChiSquareResult
        ``statistic, df, p_value, expected, method, correct``.

    Raises
    ------
    EmptyMarginError
        If a row or column of a two-way table sums to 0 (an expected count would be 0; R returns NaN).
    ValueError
        If the table holds negative or missing counts, a one-way table has fewer than 2 categories or
        no positive count, ``p`` does not match it or does not sum to 1, or ``p`` comes with a two-way
        table.

    Warns
    -----
    ApproximationWarning
        If any expected count is below 5 ("Chi-squared approximation may be incorrect", as R).

    Notes
    -----
    Two-way: :math:`E_{ij} = R_i C_j / N`, :math:`X^2 = \\sum_{ij} (|O_{ij} - E_{ij}| - Y)^2 / E_{ij}` with
    :math:`Y = \\min(0.5, \\min_{ij}|O_{ij} - E_{ij}|)` for a corrected 2 x 2 table (R caps the correction
    so it never overshoots) and :math:`Y = 0` otherwise; :math:`p = P(\\chi^2_{(r-1)(c-1)} > X^2)`.

    One-way: :math:`E_i = N p_i`, :math:`X^2 = \\sum_i (O_i - E_i)^2 / E_i`,
    :math:`p = P(\\chi^2_{k-1} > X^2)`, with no continuity correction (as R).

    References
    ----------
    .. [1] Pearson K. On the criterion that a given system of deviations... Philos Mag 1900;50:157-175.
       doi:10.1080/14786440009463897
    .. [2] Yates F. Contingency tables involving small numbers and the chi-squared test.
       Suppl J R Stat Soc 1934;1:217-235. doi:10.2307/2983604

    Examples
    --------
    >>> r = chi_square([[12, 5], [7, 14]])
    >>> round(r.statistic, 6), r.df, round(r.p_value, 6)
    (3.831933, 1, 0.050285)
    >>> g = chi_square([71, 42])
    >>> g.method, round(g.statistic, 6), g.df, round(g.p_value, 6)
    ('Chi-squared test for given probabilities', 7.442478, 1, 0.00637)
    """
    if correct not in (True, False):
        raise ValueError(f"correct must be one of True, False; got {correct!r}")
    if rescale_p not in (True, False):
        raise ValueError(f"rescale_p must be one of True, False; got {rescale_p!r}")
    raw = np.asarray(table, dtype=np.float64)
    if raw.ndim == 1 or (raw.ndim == 2 and 1 in raw.shape):
        return _goodness_of_fit(_as_counts(raw), p, rescale_p=rescale_p)
    if p is not None:
        raise ValueError("p applies to a one-way table only; a two-way table's expected counts come from its margins")
    x = _as_table(table, integer=False)
    n = x.sum()
    expected = np.outer(x.sum(axis=1), x.sum(axis=0)) / n
    df = (x.shape[0] - 1) * (x.shape[1] - 1)
    yates = bool(correct and x.shape == (2, 2))
    if yates:
        y = min(0.5, float(np.min(np.abs(x - expected))))
        method = "Pearson's Chi-squared test with Yates' continuity correction"
    else:
        y = 0.0
        method = "Pearson's Chi-squared test"
    statistic = float(np.sum((np.abs(x - expected) - y) ** 2 / expected))
    _warn_small(expected)
    return ChiSquareResult(
        statistic=statistic,
        df=int(df),
        p_value=float(stats.chi2.sf(statistic, df)),
        expected=expected,
        method=method,
        correct=yates,
    )


def _goodness_of_fit(x: np.ndarray, p: Any, *, rescale_p: bool) -> ChiSquareResult:
    expected = x.sum() * _probabilities(p, x.size, rescale_p=rescale_p)
    if (expected == 0).any():
        raise ValueError("p gives a category probability 0: its expected count would be 0 (R returns NaN)")
    statistic = float(np.sum((x - expected) ** 2 / expected))
    _warn_small(expected)
    df = x.size - 1
    return ChiSquareResult(statistic=statistic, df=int(df), p_value=float(stats.chi2.sf(statistic, df)),
                           expected=expected, method="Chi-squared test for given probabilities", correct=False)


def _log_table_probs(tables: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """log P of each table (last two axes) under independence given the margins."""
    n = rows.sum()
    const = special.gammaln(rows + 1).sum() + special.gammaln(cols + 1).sum() - special.gammaln(n + 1)
    return const - special.gammaln(tables + 1).sum(axis=(-2, -1))


def _enumerate(rows: np.ndarray, cols: np.ndarray, max_tables: int) -> np.ndarray:
    """Every table with the given (integer) margins, filled column by column."""
    r, c = rows.size, cols.size
    out: list[np.ndarray] = []
    table = np.zeros((r, c), dtype=np.int64)

    def fill_column(j: int, remaining: np.ndarray) -> None:
        if j == c - 1:
            table[:, j] = remaining
            out.append(table.copy())
            if len(out) > max_tables:
                raise ValueError(
                    f"more than max_tables={max_tables} tables share these margins; the exact "
                    "enumeration is meant for small tables (use R's fisher.test or raise max_tables)"
                )
            return
        left_after = cols[j + 1 :].sum()

        def fill_cell(i: int, left: int, rem: np.ndarray) -> None:
            if i == r - 1:
                if left > rem[i] or rem[i] - left > left_after:
                    return
                table[i, j] = left
                rem2 = rem.copy()
                rem2[i] -= left
                fill_column(j + 1, rem2)
                return
            cap_rest = rem[i + 1 :].sum()
            for v in range(max(0, left - cap_rest), min(left, rem[i]) + 1):
                table[i, j] = v
                rem2 = rem.copy()
                rem2[i] -= v
                fill_cell(i + 1, left - v, rem2)

        fill_cell(0, int(cols[j]), remaining)

    fill_column(0, rows.astype(np.int64).copy())
    return np.stack(out)


def fisher_exact(table: Any, *, level: float = 0.95, max_tables: int = 2_000_000) -> FisherResult:
    """Fisher's exact test (two-sided), as R's ``fisher.test(table)``.

    Parameters
    ----------
    table : array-like of int, shape (r, c)
        Counts, r >= 2 and c >= 2.
    level : float, default 0.95
        Confidence level of the odds-ratio interval (2 x 2 only).
    max_tables : int, default 2_000_000
        Largest number of r x c tables to enumerate before giving up.

    Returns
    -------
    FisherResult
        ``p_value, odds_ratio, ci_low, ci_high, level, method, n_tables``.

    Raises
    ------
    EmptyMarginError
        If a row or column sums to 0.
    ValueError
        On a malformed table, non-integer counts, or more than ``max_tables`` tables to enumerate.

    Notes
    -----
    Given the margins, a table has probability
    :math:`P = \\prod_i R_i! \\prod_j C_j! / (N! \\prod_{ij} O_{ij}!)`. The two-sided p-value is
    :math:`\\sum P(T)` over tables :math:`T` with :math:`P(T) \\le P_{obs}(1 + 10^{-7})`, R's definition
    (R uses the network algorithm for r x c; here every table with the margins is enumerated, which
    is exact and fine for the small tables of the study). For 2 x 2 the odds ratio is the conditional
    MLE, the mean of the noncentral hypergeometric distribution set equal to the observed count, and the
    interval inverts its two one-sided tests at :math:`\\alpha/2`, as R; roots are found to about
    1e-12 relative. R's ``uniroot`` stops at an absolute tolerance on the odds ratio's reciprocal, so
    for large odds ratios R is the less accurate: its MLE can differ by a few in 1e4 and its upper
    limit by several percent (``[[10, 1], [1, 10]]``: 4,518 in R, 4,744 here, where the one-sided
    tail probability is 0.025 as it should be; at R's limit it is 0.026).

    References
    ----------
    .. [1] Fisher RA. On the interpretation of chi-squared from contingency tables, and the calculation
       of P. J R Stat Soc 1922;85:87-94. doi:10.2307/2340521
    .. [2] Mehta CR, Patel NR. A network algorithm for performing Fisher's exact test in r x c
       contingency tables. J Am Stat Assoc 1983;78:427-434. doi:10.1080/01621459.1983.10477989

    Examples
    --------
    >>> r = fisher_exact([[10, 2], [3, 15]])
    >>> round(r.p_value, 6), round(r.odds_ratio, 3)
    (0.000537, 21.305)
    """
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be strictly between 0 and 1; got {level!r}")
    x = _as_table(table, integer=True).astype(np.int64)
    rows, cols = x.sum(axis=1), x.sum(axis=0)
    method = "Fisher's Exact Test for Count Data"
    if x.shape == (2, 2):
        return _fisher_2x2(x, level, method)
    tables = _enumerate(rows, cols, int(max_tables))
    logp = _log_table_probs(tables.astype(np.float64), rows.astype(np.float64), cols.astype(np.float64))
    logp_obs = _log_table_probs(x.astype(np.float64), rows.astype(np.float64), cols.astype(np.float64))
    p = np.exp(logp - logp.max())
    p_obs = np.exp(logp_obs - logp.max())
    pval = float(p[p <= p_obs * _REL_ERR].sum() / p.sum())
    return FisherResult(min(pval, 1.0), None, None, None, level, method, int(tables.shape[0]))


def _fisher_2x2(x: np.ndarray, level: float, method: str) -> FisherResult:
    m, n, k, obs = int(x[:, 0].sum()), int(x[:, 1].sum()), int(x[0, :].sum()), int(x[0, 0])
    lo, hi = max(0, k - n), min(k, m)
    support = np.arange(lo, hi + 1)
    logdc = stats.hypergeom.logpmf(support, m + n, m, k)

    def dnhyper(ncp: float) -> np.ndarray:
        d = logdc + np.log(ncp) * support
        d = np.exp(d - d.max())
        return d / d.sum()

    def mnhyper(ncp: float) -> float:
        if ncp == 0:
            return float(lo)
        if np.isinf(ncp):
            return float(hi)
        return float(np.sum(support * dnhyper(ncp)))

    def pnhyper(q: int, ncp: float, upper: bool) -> float:
        if ncp == 1:
            return float(stats.hypergeom.sf(q - 1, m + n, m, k) if upper else stats.hypergeom.cdf(q, m + n, m, k))
        if ncp == 0:
            return float(q <= lo if upper else q >= lo)
        if np.isinf(ncp):
            return float(q <= hi if upper else q >= hi)
        d = dnhyper(ncp)
        return float(d[support >= q].sum() if upper else d[support <= q].sum())

    d = dnhyper(1.0)
    pval = float(min(d[d <= d[obs - lo] * _REL_ERR].sum(), 1.0))

    def root(f, a: float, b: float) -> float:
        return float(optimize.brentq(f, a, b, xtol=1e-14, rtol=1e-13, maxiter=500))

    if obs == lo:
        est = 0.0
    elif obs == hi:
        est = float("inf")
    else:
        mu = mnhyper(1.0)
        if mu > obs:
            est = root(lambda t: mnhyper(t) - obs, 0.0, 1.0)
        elif mu < obs:
            est = 1.0 / root(lambda t: mnhyper(1.0 / t) - obs, np.finfo(float).eps, 1.0)
        else:
            est = 1.0
    alpha = (1.0 - level) / 2.0

    def ncp_upper() -> float:
        if obs == hi:
            return float("inf")
        p = pnhyper(obs, 1.0, upper=False)
        if p < alpha:
            return root(lambda t: pnhyper(obs, t, upper=False) - alpha, 0.0, 1.0)
        if p > alpha:
            return 1.0 / root(lambda t: pnhyper(obs, 1.0 / t, upper=False) - alpha, np.finfo(float).eps, 1.0)
        return 1.0

    def ncp_lower() -> float:
        if obs == lo:
            return 0.0
        p = pnhyper(obs, 1.0, upper=True)
        if p > alpha:
            return root(lambda t: pnhyper(obs, t, upper=True) - alpha, 0.0, 1.0)
        if p < alpha:
            return 1.0 / root(lambda t: pnhyper(obs, 1.0 / t, upper=True) - alpha, np.finfo(float).eps, 1.0)
        return 1.0

    return FisherResult(pval, est, ncp_lower(), ncp_upper(), level, method, int(support.size))
