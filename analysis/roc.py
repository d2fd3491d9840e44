"""Area under the ROC curve with DeLong or bootstrap confidence intervals, as R's pROC.

Conventions (those of ``pROC::roc(response, predictor, levels = c(0, 1), direction = "<")``):
a higher score means disease, a subject is called positive when ``score >= threshold``, and an AUC
below 0.5 is reported as it is, never flipped. Ties between a case and a control count one half.

Examples
--------
>>> from analysis.roc import auc
>>> res = auc([0, 0, 1, 1, 0, 1], [0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
>>> round(res.auc, 4), res.method
(0.8889, 'delong')
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis._checks import as_finite_1d, as_rng, check_level, check_option
from analysis.errors import OneClassError

__all__ = [
    "AucResult",
    "DelongTestResult",
    "RocCurve",
    "SensSpecResult",
    "auc",
    "auc_value",
    "delong_test",
    "roc_curve",
    "sensitivity_specificity",
]

CI_METHODS = ("delong", "bootstrap")
_BOOT_CELLS = 1 << 22  # resampled values held in memory at once by the bootstrap


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class AucResult:
    """AUC with its standard error and confidence interval.

    Attributes
    ----------
    auc : float
        Area under the empirical ROC curve, P(case > control) + P(tie) / 2.
    ci_low, ci_high : float
        Confidence interval at ``level``, clipped to [0, 1] as pROC does.
    se : float
        Standard error: DeLong's (``method="delong"``) or the SD of the bootstrap AUCs.
    n_pos, n_neg : int
        Number of cases (``y_true == 1``) and controls (``y_true == 0``).
    method : str
        ``"delong"`` or ``"bootstrap"``.
    level : float
        Confidence level of the interval.
    n_boot : int
        Bootstrap replicates used (0 for DeLong).
    """

    auc: float
    ci_low: float
    ci_high: float
    se: float
    n_pos: int
    n_neg: int
    method: str
    level: float
    n_boot: int = 0

    def to_frame(self) -> pd.DataFrame:
        """Return the result as a tidy one-row DataFrame, one column per field."""
        return pd.DataFrame([asdict(self)])


@dataclass(frozen=True)
class DelongTestResult:
    """DeLong's test for two correlated AUCs on the same subjects (pROC's paired ``roc.test``).

    Attributes
    ----------
    auc_a, auc_b : float
        AUCs of ``score_a`` and ``score_b``.
    difference : float
        ``auc_a - auc_b``.
    se : float
        Standard error of the difference, sqrt(var_a + var_b - 2 cov).
    z : float
        ``difference / se`` (0 when both are 0, as pROC).
    p_value : float
        Two-sided p-value, ``2 * Phi(-|z|)``.
    ci_low, ci_high : float
        Confidence interval of the difference at ``level`` (not clipped).
    level : float
        Confidence level.
    n_pos, n_neg : int
        Number of cases and controls.
    method : str
        Always ``"delong_paired"``.
    """

    auc_a: float
    auc_b: float
    difference: float
    se: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float
    level: float
    n_pos: int
    n_neg: int
    method: str = "delong_paired"

    def to_frame(self) -> pd.DataFrame:
        """Return the result as a tidy one-row DataFrame, one column per field."""
        return pd.DataFrame([asdict(self)])


@dataclass(frozen=True)
class RocCurve:
    """Empirical ROC curve at every threshold that changes it (pROC's ``coords(roc, "all")``).

    Attributes
    ----------
    thresholds : numpy.ndarray
        Increasing thresholds: ``-inf``, the midpoints between consecutive distinct scores, ``+inf``.
    sensitivity : numpy.ndarray
        Fraction of cases with ``score >= threshold``.
    specificity : numpy.ndarray
        Fraction of controls with ``score < threshold``.
    n_pos, n_neg : int
        Number of cases and controls.

    Notes
    -----
    A curve is a table: :meth:`to_frame` gives one row per threshold (not one row).
    """

    thresholds: np.ndarray
    sensitivity: np.ndarray
    specificity: np.ndarray
    n_pos: int
    n_neg: int

    def to_frame(self) -> pd.DataFrame:
        """Return a tidy DataFrame with one row per threshold."""
        return pd.DataFrame({
            "threshold": self.thresholds,
            "sensitivity": self.sensitivity,
            "specificity": self.specificity,
        })


@dataclass(frozen=True)
class SensSpecResult:
    """Sensitivity and specificity at one threshold (``score >= threshold`` is positive).

    Attributes
    ----------
    threshold : float
        The threshold used.
    sensitivity, specificity : float
        ``tp / (tp + fn)`` and ``tn / (tn + fp)``.
    tp, fn, tn, fp : int
        Confusion counts.
    """

    threshold: float
    sensitivity: float
    specificity: float
    tp: int
    fn: int
    tn: int
    fp: int

    def to_frame(self) -> pd.DataFrame:
        """Return the result as a tidy one-row DataFrame, one column per field."""
        return pd.DataFrame([asdict(self)])


# --------------------------------------------------------------------------- internals


def _split(y_true: Any, score: Any, *, score_name: str = "score") -> tuple[np.ndarray, np.ndarray]:
    """Return (cases, controls) scores after checking the inputs."""
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"y_true must be one-dimensional; got shape {y.shape}")
    if y.dtype.kind == "f" and np.isnan(y).any():
        raise ValueError("y_true contains NaN; drop the subjects without an outcome first")
    if y.dtype.kind not in "biuf":
        raise ValueError(f"y_true must hold 0/1 or booleans; got dtype {y.dtype}")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise ValueError(f"y_true must hold only 0 and 1 (or booleans); got e.g. {y[bad][0]!r}")
    s = as_finite_1d(score, score_name, allow_inf=True)
    if s.shape != y.shape:
        raise ValueError(f"y_true and {score_name} must have the same length; got {y.size} and {s.size}")
    pos = y.astype(bool)
    cases, controls = s[pos], s[~pos]
    if cases.size == 0 or controls.size == 0:
        have = "controls" if cases.size == 0 else "cases"
        raise OneClassError(
            f"y_true holds only {have} ({y.size} subjects): an AUC needs at least one case (1) and "
            "one control (0)"
        )
    return cases, controls


@dataclass(frozen=True)
class _Placements:
    """Per-value DeLong placements of cases and controls (internal)."""

    auc: float
    codes: np.ndarray  # code of each subject's score among the distinct scores (cases first)
    case_count: np.ndarray
    control_count: np.ndarray
    v10: np.ndarray  # per distinct value: fraction of controls below + half the controls tied
    v01: np.ndarray  # per distinct value: fraction of cases above + half the cases tied
    m: int
    n: int

    def variance(self) -> float:
        """DeLong variance S10/m + S01/n (sample variances with m-1 and n-1, as pROC)."""
        if self.m < 2 or self.n < 2:
            raise OneClassError(
                f"DeLong's variance needs at least 2 cases and 2 controls; got {self.m} and {self.n}"
            )
        s10 = float(np.sum(self.case_count * (self.v10 - self.auc) ** 2)) / (self.m - 1)
        s01 = float(np.sum(self.control_count * (self.v01 - self.auc) ** 2)) / (self.n - 1)
        return s10 / self.m + s01 / self.n


def _placements(cases: np.ndarray, controls: np.ndarray) -> _Placements:
    m, n = cases.size, controls.size
    values, codes = np.unique(np.concatenate([cases, controls]), return_inverse=True)
    codes = codes.ravel()
    k = values.size
    case_count = np.bincount(codes[:m], minlength=k)
    control_count = np.bincount(codes[m:], minlength=k)
    controls_below = np.cumsum(control_count) - control_count
    cases_above = m - np.cumsum(case_count)
    # twice the Mann-Whitney count of the cases: integers, exact in float64 up to 2**53
    twice_u = 2 * controls_below + control_count
    auc_value = float(np.dot(case_count.astype(np.float64), twice_u)) / (2.0 * m * n)
    v10 = twice_u / (2.0 * n)
    v01 = (2 * cases_above + case_count) / (2.0 * m)
    return _Placements(auc_value, codes, case_count, control_count, v10, v01, m, n)


def _bootstrap_aucs(
    cases: np.ndarray, controls: np.ndarray, *, n_boot: int, stratified: bool, rng: np.random.Generator
) -> np.ndarray:
    """AUCs of ``n_boot`` bootstrap samples, vectorised over chunks of replicates."""
    m, n = cases.size, controls.size
    _, codes = np.unique(np.concatenate([cases, controls]), return_inverse=True)
    codes = codes.ravel()
    k = int(codes.max()) + 1
    chunk = max(1, _BOOT_CELLS // max(m + n, 2 * k))
    out = np.empty(n_boot)
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        offsets = (np.arange(b) * k)[:, None]
        if stratified:
            case_codes = codes[:m][rng.integers(0, m, size=(b, m))]
            control_codes = codes[m:][rng.integers(0, n, size=(b, n))]
            case_count = np.bincount((case_codes + offsets).ravel(), minlength=b * k).reshape(b, k)
            control_count = np.bincount((control_codes + offsets).ravel(), minlength=b * k).reshape(b, k)
        else:
            draw = rng.integers(0, m + n, size=(b, m + n))
            is_case = draw < m
            cell = (codes[draw] + offsets + np.where(is_case, 0, b * k)).ravel()
            both = np.bincount(cell, minlength=2 * b * k)
            case_count = both[: b * k].reshape(b, k)
            control_count = both[b * k :].reshape(b, k)
        mb = case_count.sum(axis=1)
        nb = control_count.sum(axis=1)
        twice_u = 2 * (np.cumsum(control_count, axis=1) - control_count) + control_count
        num = np.einsum("ij,ij->i", case_count.astype(np.float64), twice_u.astype(np.float64))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[done : done + b] = num / (2.0 * mb * nb)
        done += b
    return out


# --------------------------------------------------------------------------- public API


def auc(
    y_true: Any,
    score: Any,
    *,
    ci: str = "delong",
    level: float = 0.95,
    n_boot: int = 2000,
    stratified: bool = True,
    rng: np.random.Generator | int | None = None,
) -> AucResult:
    """Area under the ROC curve with a DeLong or bootstrap confidence interval.

    Parameters
    ----------
    y_true : array-like of {0, 1} or bool, shape (n,)
        Outcome; 1 (True) marks a case (disease), 0 a control.
    score : array-like of float, shape (n,)
        Predictor; a higher score means disease (pROC's ``direction = "<"``).
    ci : {"delong", "bootstrap"}, default "delong"
        How to compute the standard error and the interval.
    level : float, default 0.95
        Confidence level.
    n_boot : int, default 2000
        Bootstrap replicates (``ci="bootstrap"`` only).
    stratified : bool, default True
        Resample cases and controls separately, keeping their numbers (pROC's
        ``boot.stratified = TRUE``). Unstratified replicates with one class are dropped with a
        warning, as pROC does.
    rng : numpy.random.Generator, int or None
        Source of randomness for the bootstrap.

    Returns
    -------
    AucResult
        ``auc, ci_low, ci_high, se, n_pos, n_neg, method, level, n_boot``.

    Raises
    ------
    OneClassError
        If ``y_true`` holds one class only, or (DeLong) fewer than 2 cases or 2 controls.
    ValueError
        On NaN, labels other than 0/1, mismatched lengths or an unknown ``ci``.

    Notes
    -----
    With cases :math:`X_1..X_m` and controls :math:`Y_1..Y_n`,
    :math:`\\hat A = \\frac{1}{mn}\\sum_i\\sum_j \\psi(X_i, Y_j)`, :math:`\\psi = 1, 1/2, 0` when
    :math:`X > Y, X = Y, X < Y`. DeLong's placements are
    :math:`V_{10}(X_i) = (R_Z(X_i) - R_X(X_i))/n` and :math:`V_{01}(Y_j) = 1 - (R_Z(Y_j) - R_Y(Y_j))/m`
    with :math:`R` midranks in the pooled sample :math:`Z`, among the cases and among the controls
    (Sun & Xu 2014: one sort, :math:`O(N \\log N)`); then
    :math:`\\widehat{Var}(\\hat A) = S_{10}/m + S_{01}/n` with :math:`S` the sample variances
    (denominators :math:`m-1`, :math:`n-1`). The DeLong interval is
    :math:`\\hat A \\pm z_{1-\\alpha/2}\\,SE` clipped to [0, 1], as pROC's ``ci.auc(method = "delong")``.
    The bootstrap interval is the type-7 quantile interval of the replicate AUCs and ``se`` their
    standard deviation, as pROC's ``ci.auc(method = "bootstrap")`` and ``var(method = "bootstrap")``;
    replicates cannot match R draw for draw.

    References
    ----------
    .. [1] DeLong ER, DeLong DM, Clarke-Pearson DL. Comparing the areas under two or more correlated
       receiver operating characteristic curves: a nonparametric approach. Biometrics 1988;44:837-845.
       doi:10.2307/2531595
    .. [2] Sun X, Xu W. Fast implementation of DeLong's algorithm for comparing the areas under
       correlated receiver operating characteristic curves. IEEE Signal Process Lett 2014;21:1389-1393.
       doi:10.1109/LSP.2014.2337313
    .. [3] Robin X, et al. pROC: an open-source package for R and S+ to analyze and compare ROC curves.
       BMC Bioinformatics 2011;12:77. doi:10.1186/1471-2105-12-77

    Examples
    --------
    >>> res = auc([0, 0, 0, 1, 1, 1], [0.1, 0.3, 0.5, 0.4, 0.8, 0.9])
    >>> round(res.auc, 4), round(res.ci_low, 4), round(res.ci_high, 4)
    (0.8889, 0.5809, 1.0)
    >>> boot = auc([0, 0, 0, 1, 1, 1], [0.1, 0.3, 0.5, 0.4, 0.8, 0.9], ci="bootstrap", rng=1)
    >>> boot.method, boot.n_boot
    ('bootstrap', 2000)
    """
    check_option("ci", ci, CI_METHODS)
    level = check_level(level)
    cases, controls = _split(y_true, score)
    pl = _placements(cases, controls)
    z = float(stats.norm.ppf(1.0 - (1.0 - level) / 2.0))
    if ci == "delong":
        se = float(np.sqrt(pl.variance()))
        low, high = pl.auc - z * se, pl.auc + z * se
        used = 0
    else:
        n_boot = int(n_boot)
        if n_boot < 2:
            raise ValueError(f"n_boot must be at least 2; got {n_boot}")
        aucs = _bootstrap_aucs(cases, controls, n_boot=n_boot, stratified=bool(stratified), rng=as_rng(rng))
        keep = np.isfinite(aucs)
        if not keep.all():
            warnings.warn(
                f"{int((~keep).sum())} bootstrap replicate(s) drew one class only and were ignored "
                "(as pROC); use stratified=True to avoid them",
                RuntimeWarning,
                stacklevel=2,
            )
            aucs = aucs[keep]
            if aucs.size < 2:
                raise OneClassError("fewer than 2 bootstrap replicates held both classes")
        low, high = np.quantile(aucs, [(1.0 - level) / 2.0, 1.0 - (1.0 - level) / 2.0])
        se = float(np.std(aucs, ddof=1))
        used = int(aucs.size)
    return AucResult(
        auc=pl.auc,
        ci_low=float(min(max(low, 0.0), 1.0)),
        ci_high=float(min(max(high, 0.0), 1.0)),
        se=se,
        n_pos=pl.m,
        n_neg=pl.n,
        method=ci,
        level=level,
        n_boot=used,
    )


def auc_value(y_true: Any, score: Any) -> float:
    """The AUC alone, P(case > control) + P(tie) / 2, defined with one case and one control, where DeLong's
    interval (:func:`auc`) needs two of each.

    >>> auc_value([1, 1, 1, 0], [0.9, 0.8, 0.4, 0.5])
    0.6666666666666666
    """
    cases, controls = _split(y_true, score)
    return _placements(cases, controls).auc


def delong_test(y_true: Any, score_a: Any, score_b: Any, *, level: float = 0.95) -> DelongTestResult:
    """DeLong's test comparing two correlated AUCs measured on the same subjects.

    Parameters
    ----------
    y_true : array-like of {0, 1} or bool, shape (n,)
        Outcome shared by both predictors.
    score_a, score_b : array-like of float, shape (n,)
        The two predictors (higher means disease), aligned subject by subject.
    level : float, default 0.95
        Confidence level of the interval for the difference.

    Returns
    -------
    DelongTestResult
        ``auc_a, auc_b, difference, se, z, p_value, ci_low, ci_high, level, n_pos, n_neg, method``.

    Raises
    ------
    OneClassError
        If there are fewer than 2 cases or 2 controls.
    ValueError
        On NaN, labels other than 0/1 or mismatched lengths.

    Notes
    -----
    With the placements of :func:`auc` for both predictors, the covariance matrix is
    :math:`S = S_{10}/m + S_{01}/n` (2 x 2 sample covariances of the placements), and
    :math:`z = (\\hat A_a - \\hat A_b) / \\sqrt{S_{aa} + S_{bb} - 2 S_{ab}}`,
    :math:`p = 2\\Phi(-|z|)`, the interval :math:`\\hat A_a - \\hat A_b \\pm z_{1-\\alpha/2} SE`: pROC's
    ``roc.test(method = "delong", paired = TRUE)``. When the difference and its SE are both 0
    (identical rankings) pROC sets z = 0, and so does this function.

    References
    ----------
    .. [1] DeLong ER, DeLong DM, Clarke-Pearson DL. Biometrics 1988;44:837-845. doi:10.2307/2531595
    .. [2] Sun X, Xu W. IEEE Signal Process Lett 2014;21:1389-1393. doi:10.1109/LSP.2014.2337313

    Examples
    --------
    >>> y = [0, 0, 0, 0, 1, 1, 1, 1]
    >>> res = delong_test(y, [1, 2, 3, 5, 4, 6, 7, 8], [2, 1, 6, 4, 3, 8, 5, 7])
    >>> round(res.auc_a, 4), round(res.auc_b, 4), round(res.p_value, 4)
    (0.9375, 0.8125, 0.3865)
    """
    level = check_level(level)
    cases_a, controls_a = _split(y_true, score_a, score_name="score_a")
    cases_b, controls_b = _split(y_true, score_b, score_name="score_b")
    pa, pb = _placements(cases_a, controls_a), _placements(cases_b, controls_b)
    m, n = pa.m, pa.n
    if m < 2 or n < 2:
        raise OneClassError(f"DeLong's test needs at least 2 cases and 2 controls; got {m} and {n}")
    xa = pa.v10[pa.codes[:m]] - pa.auc
    xb = pb.v10[pb.codes[:m]] - pb.auc
    ya = pa.v01[pa.codes[m:]] - pa.auc
    yb = pb.v01[pb.codes[m:]] - pb.auc
    var_diff = (np.dot(xa - xb, xa - xb) / (m - 1)) / m + (np.dot(ya - yb, ya - yb) / (n - 1)) / n
    se = float(np.sqrt(max(var_diff, 0.0)))
    d = pa.auc - pb.auc
    if se == 0.0:
        z = 0.0 if d == 0.0 else float(np.copysign(np.inf, d))
    else:
        z = d / se
    crit = float(stats.norm.ppf(1.0 - (1.0 - level) / 2.0))
    return DelongTestResult(
        auc_a=pa.auc,
        auc_b=pb.auc,
        difference=d,
        se=se,
        z=z,
        p_value=float(2.0 * stats.norm.sf(abs(z))),
        ci_low=d - crit * se,
        ci_high=d + crit * se,
        level=level,
        n_pos=m,
        n_neg=n,
    )


def _thresholds(values: np.ndarray) -> np.ndarray:
    """pROC's ``roc.utils.thresholds`` for direction "<" (midpoints, near-tie fix)."""
    u = np.unique(values)
    lo = np.concatenate([[-np.inf], u])
    hi = np.concatenate([u, [np.inf]])
    with np.errstate(over="ignore", invalid="ignore"):
        t1 = (lo + hi) / 2.0
    t2 = lo / 2.0 + hi / 2.0
    t = np.where(np.abs(t1) > 1e100, t2, t1)
    t = np.where(np.isnan(t), t2, t)
    # a midpoint that rounds onto the lower neighbour moves up onto the upper one (pROC, "<")
    inner = np.arange(1, u.size)
    onto_lower = t[inner] == u[inner - 1]
    t[inner[onto_lower]] = u[inner[onto_lower]]
    return t


def roc_curve(y_true: Any, score: Any) -> RocCurve:
    """Empirical ROC curve at all distinct thresholds, as pROC's ``coords(roc, "all")``.

    Parameters
    ----------
    y_true : array-like of {0, 1} or bool, shape (n,)
        Outcome; 1 marks a case.
    score : array-like of float, shape (n,)
        Predictor; higher means disease.

    Returns
    -------
    RocCurve
        ``thresholds`` (increasing, from ``-inf`` to ``+inf``), ``sensitivity``, ``specificity``,
        ``n_pos``, ``n_neg``.

    Raises
    ------
    OneClassError
        If ``y_true`` holds one class only.
    ValueError
        On NaN or infinite scores, labels other than 0/1 or mismatched lengths.

    Notes
    -----
    Thresholds are pROC's: :math:`-\\infty`, the midpoints :math:`(u_{k-1} + u_k)/2` of consecutive
    distinct scores, :math:`+\\infty`. At threshold :math:`t`, sensitivity is
    :math:`\\#\\{X_i \\ge t\\}/m` and specificity :math:`\\#\\{Y_j < t\\}/n`.

    References
    ----------
    .. [1] Robin X, et al. BMC Bioinformatics 2011;12:77. doi:10.1186/1471-2105-12-77

    Examples
    --------
    >>> curve = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> curve.thresholds.round(4).tolist()
    [-inf, 0.225, 0.375, 0.6, inf]
    >>> curve.sensitivity.tolist(), curve.specificity.tolist()
    ([1.0, 1.0, 0.5, 0.5, 0.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    cases, controls = _split(y_true, score)
    if not (np.isfinite(cases).all() and np.isfinite(controls).all()):  # no threshold lies beyond +-inf
        raise ValueError("score contains infinite values; a ROC curve needs finite scores (pROC refuses them too)")
    t = _thresholds(np.concatenate([cases, controls]))
    se = (cases.size - np.searchsorted(np.sort(cases), t, side="left")) / cases.size
    sp = np.searchsorted(np.sort(controls), t, side="left") / controls.size
    return RocCurve(thresholds=t, sensitivity=se, specificity=sp, n_pos=cases.size, n_neg=controls.size)


def sensitivity_specificity(y_true: Any, score: Any, threshold: float) -> SensSpecResult:
    """Sensitivity and specificity when ``score >= threshold`` is called positive.

    Parameters
    ----------
    y_true : array-like of {0, 1} or bool, shape (n,)
        Outcome; 1 marks a case.
    score : array-like of float, shape (n,)
        Predictor; higher means disease.
    threshold : float
        Cut-off; a score equal to it is positive (pROC's "controls < t <= cases").

    Returns
    -------
    SensSpecResult
        ``threshold, sensitivity, specificity, tp, fn, tn, fp``.

    Raises
    ------
    OneClassError
        If ``y_true`` holds one class only.
    ValueError
        On NaN (in the data or the threshold), labels other than 0/1 or mismatched lengths.

    Notes
    -----
    :math:`Se = TP/(TP+FN)`, :math:`Sp = TN/(TN+FP)` with :math:`TP = \\#\\{X_i \\ge t\\}`,
    :math:`TN = \\#\\{Y_j < t\\}`.

    References
    ----------
    .. [1] Altman DG, Bland JM. Diagnostic tests 1: sensitivity and specificity. BMJ 1994;308:1552.
       doi:10.1136/bmj.308.6943.1552

    Examples
    --------
    >>> r = sensitivity_specificity([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.8], 0.5)
    >>> r.sensitivity, r.specificity, r.fp
    (1.0, 0.5, 1)
    """
    threshold = float(threshold)
    if np.isnan(threshold):
        raise ValueError("threshold is NaN; give a number")
    cases, controls = _split(y_true, score)
    tp = int(np.sum(cases >= threshold))
    tn = int(np.sum(controls < threshold))
    return SensSpecResult(
        threshold=threshold,
        sensitivity=tp / cases.size,
        specificity=tn / controls.size,
        tp=tp,
        fn=cases.size - tp,
        tn=tn,
        fp=controls.size - tn,
    )
