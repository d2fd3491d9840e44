"""Named errors and warnings of the statistics in :mod:`analysis`.

A statistic that is undefined for the data given (an AUC on one class, a kappa on constant ratings,
a rank test on all-tied values) raises a subclass of :class:`UndefinedStatisticError` instead of
returning NaN, so that a report can never print a silent NaN.

Examples
--------
>>> from analysis.errors import OneClassError, UndefinedStatisticError
>>> issubclass(OneClassError, UndefinedStatisticError) and issubclass(OneClassError, ValueError)
True
"""

from __future__ import annotations

__all__ = [
    "UndefinedStatisticError",
    "OneClassError",
    "ConstantRaterError",
    "AllTiedError",
    "EmptyMarginError",
    "ApproximationWarning",
]


class UndefinedStatisticError(ValueError):
    """The statistic is mathematically undefined for the data given (R would return NA or NaN)."""


class OneClassError(UndefinedStatisticError):
    """An ROC statistic was asked for data with only cases or only controls (or too few of one)."""


class ConstantRaterError(UndefinedStatisticError):
    """Both raters gave one and the same rating to every subject: chance agreement is 1, kappa is 0/0."""


class AllTiedError(UndefinedStatisticError):
    """Every value in a rank test is tied: the null variance is 0 (R's ``wilcox.test`` gives p = NaN)."""


class EmptyMarginError(UndefinedStatisticError):
    """A contingency table has an all-zero row or column, so an expected count is 0."""


class ApproximationWarning(UserWarning):
    """A large-sample approximation may be inaccurate (R: "Chi-squared approximation may be incorrect")."""
