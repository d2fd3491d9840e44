"""Tolerances for comparing with R, each taken from the method's own precision.

An iterative fit's last digits depend on the CPU (BLAS kernels, libm code paths, the order of sums),
so an expected value written on one machine is compared at the precision the method promises, never
at the digits that machine printed.

lme4 (glmer, Laplace)
    The optimiser (bobyqa, then Nelder-Mead) stops when its parameters move by about 1e-5 relative.
    The committed reference shows it: the same data given as binomial counts (``cbpp``) and as
    Bernoulli rows (``cbpp_bernoulli``) give estimates 1.0e-5, SEs 1.2e-5 and z 1.8e-5 apart
    (relative); two CPUs gave z 2.7e-5 apart on ``cbpp_bernoulli``. Estimates, SEs, z and variances
    are compared at ``LME4_RTOL`` relative with an absolute floor of ``LME4_ATOL`` (log-odds units,
    for coefficients near zero): ten times the optimiser's stopping precision.
    The log-likelihood is stationary at the optimum, so a parameter error moves it to second order
    only; ``LOGLIK_ATOL`` leaves room for the inner PIRLS loop's own tolerance.

p-values
    A p-value's tolerance follows from its statistic's: a Wald p-value 2 Phi(-|z|) must lie between
    the p-values of ``|z| + dz`` and ``|z| - dz``; a likelihood-ratio p-value between those of
    ``chi2 + d`` and ``chi2 - d``. Where z is large a small dz moves p by a large relative amount
    (d log p / dz is about -|z|), which a fixed relative tolerance on p gets wrong.

Closed-form statistics (AUC, DeLong, kappa, Mann-Whitney, chi-square) stay at 1e-9 or tighter.
"""

from __future__ import annotations

import math
import re

import numpy as np
from scipy import stats

LME4_RTOL = 1e-4
LME4_ATOL = 1e-4
LOGLIK_ATOL = 1e-4


def lme4_tolerance(expected) -> np.ndarray:
    """The largest acceptable |actual - expected| for an lme4 estimate, SE, z or variance."""
    return LME4_ATOL + LME4_RTOL * np.abs(np.asarray(expected, dtype=float))


def assert_lme4_close(actual, expected, what: str = "") -> None:
    """``actual`` agrees with lme4's ``expected`` to the optimiser's precision (element-wise)."""
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    off = np.abs(actual - expected)
    bad = ~(off <= lme4_tolerance(expected))
    if bad.any():
        raise AssertionError(f"{what}: {actual[bad]} vs lme4's {expected[bad]} "
                             f"(|difference| {off[bad]} > tolerance {lme4_tolerance(expected)[bad]})")


def wald_p_bounds(z) -> tuple[np.ndarray, np.ndarray]:
    """The range of two-sided Wald p-values consistent with ``z`` at lme4's precision."""
    z = np.abs(np.asarray(z, dtype=float))
    dz = lme4_tolerance(z)
    return 2 * stats.norm.sf(z + dz), 2 * stats.norm.sf(np.maximum(z - dz, 0.0))


def assert_wald_p_close(p, z_expected, what: str = "") -> None:
    """A Wald p-value that lme4 could have printed for the reference ``z`` (within z's tolerance)."""
    p = np.asarray(p, dtype=float)
    low, high = wald_p_bounds(z_expected)
    bad = ~((p >= low * (1 - 1e-12)) & (p <= high * (1 + 1e-12)))
    if bad.any():
        raise AssertionError(f"{what}: p {p[bad]} outside [{low[bad]}, {high[bad]}], the range that "
                             f"z = {np.asarray(z_expected, dtype=float)[bad]} allows at lme4's precision")


def chi2_tolerance(chi2_expected: float) -> float:
    """A likelihood-ratio statistic is twice a difference of two log-likelihoods."""
    return 4 * LOGLIK_ATOL + LME4_RTOL * abs(chi2_expected)


def assert_lrt_p_close(p: float, chi2_expected: float, df: int, what: str = "") -> None:
    """A likelihood-ratio p-value consistent with the reference chi-square at its tolerance."""
    d = chi2_tolerance(chi2_expected)
    low = stats.chi2.sf(chi2_expected + d, df)
    high = stats.chi2.sf(max(chi2_expected - d, 0.0), df)
    if not (low * (1 - 1e-12) <= p <= high * (1 + 1e-12)):
        raise AssertionError(f"{what}: p {p} outside [{low}, {high}], the range that chi2 = {chi2_expected} "
                             f"(df {df}) allows at lme4's precision")


def assert_odds_ratio_close(actual: float, log_expected: float, *, log_tolerance: float | None = None,
                            what: str = "") -> None:
    """exp() of an lme4 quantity: compared on the log scale, where lme4's tolerance applies.

    ``log_tolerance`` defaults to the estimate's; a Wald bound ``estimate -/+ q se`` passes
    ``lme4_tolerance(estimate) + q lme4_tolerance(se)``.
    """
    tol = float(lme4_tolerance(log_expected)) if log_tolerance is None else log_tolerance
    if not abs(math.log(actual) - log_expected) <= tol:
        raise AssertionError(f"{what}: {actual} vs exp({log_expected}) = {math.exp(log_expected)} "
                             f"(log scale tolerance {tol})")


_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
MESSAGE_NUMBER_RTOL = 0.1


def _same_message(actual: str, expected: str) -> bool:
    if _NUMBER.sub("#", actual) != _NUMBER.sub("#", expected):
        return False
    return all(math.isclose(float(a), float(b), rel_tol=MESSAGE_NUMBER_RTOL)
               for a, b in zip(_NUMBER.findall(actual), _NUMBER.findall(expected)))


def assert_messages_match(actual, expected, what: str = "") -> None:
    """Every lme4 message in ``expected`` is among ``actual``, its numbers within 10 %.

    A convergence message quotes the gradient where the optimiser stopped (``max|grad| = 0.051378``):
    a point that did not converge, so its digits are the least reproducible of all. The text must
    match exactly; only the numbers in it are compared loosely.
    """
    for message in expected:
        if not any(_same_message(a, message) for a in actual):
            raise AssertionError(f"{what}: lme4's message {message!r} not among {list(actual)!r}")
