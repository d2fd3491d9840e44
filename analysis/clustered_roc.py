"""The AUC with its interval when subjects come in clusters: a patient's several radiographs.

DeLong's variance (:func:`analysis.roc.auc`) treats every radiograph as an independent subject. A patient's
radiographs share the patient, so their scores (and often their outcomes) are correlated and DeLong's interval
is too narrow. Obuchowski's estimator sums each cluster's DeLong placements and takes the variance between
clusters instead; with one radiograph per cluster it is DeLong's up to the factors I/(I-1) against m/(m-1)
and n/(n-1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from analysis._checks import check_level
from analysis.errors import OneClassError
from analysis.roc import AucResult, _placements, _split

__all__ = ["clustered_auc"]


def clustered_auc(y_true: Any, score: Any, clusters: Any, *, level: float = 0.95) -> AucResult:
    """AUC with Obuchowski's variance for clustered data (``method="obuchowski"``).

    Parameters
    ----------
    y_true : array-like of {0, 1} or bool, shape (n,)
        Outcome; 1 marks a case.
    score : array-like of float, shape (n,)
        Predictor; higher means disease.
    clusters : array-like, shape (n,)
        The cluster of each subject (a patient's identifier for each radiograph); any hashable labels.
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    AucResult
        The same AUC as :func:`analysis.roc.auc`, with ``se`` from Obuchowski's variance and the interval
        ``auc +- z se`` clipped to [0, 1].

    Raises
    ------
    OneClassError
        With one class only, or fewer than 2 clusters.
    ValueError
        On missing cluster labels or mismatched lengths (and whatever :func:`analysis.roc.auc` refuses).

    Notes
    -----
    With :math:`I` clusters, cluster :math:`i` holding :math:`m_i` cases and :math:`n_i` controls
    (:math:`M = \\sum m_i`, :math:`N = \\sum n_i`), and DeLong's placements summed per cluster,
    :math:`X_i = \\sum V_{10}` over its cases and :math:`Y_i = \\sum V_{01}` over its controls:
    :math:`S_{10} = \\frac{I}{(I-1)M}\\sum_i (X_i - m_i\\hat A)^2`,
    :math:`S_{01} = \\frac{I}{(I-1)N}\\sum_i (Y_i - n_i\\hat A)^2`,
    :math:`S_{11} = \\frac{I}{I-1}\\sum_i (X_i - m_i\\hat A)(Y_i - n_i\\hat A)`, and
    :math:`\\widehat{Var}(\\hat A) = S_{10}/M + S_{01}/N + 2 S_{11}/(MN)`.

    References
    ----------
    .. [1] Obuchowski NA. Nonparametric analysis of clustered ROC curve data. Biometrics 1997;53:567-578.
       doi:10.2307/2533958

    Examples
    --------
    >>> r = clustered_auc([1, 0, 1, 0, 1, 0], [0.9, 0.2, 0.7, 0.4, 0.3, 0.35], ["a", "a", "b", "b", "c", "c"])
    >>> round(r.auc, 4), r.method, r.n_pos, r.n_neg
    (0.7778, 'obuchowski', 3, 3)
    """
    level = check_level(level)
    y = np.asarray(y_true)
    labels = np.asarray(clusters, dtype=object)
    if labels.ndim != 1 or labels.shape != y.shape:
        raise ValueError(f"clusters must give one label per subject; got {labels.size} labels for {y.size} subjects")
    missing = np.array([v is None or (isinstance(v, float) and np.isnan(v)) for v in labels], dtype=bool)
    if missing.any():
        raise ValueError(f"clusters has {int(missing.sum())} missing label(s); every subject needs its cluster")
    cases, controls = _split(y, score)
    pl = _placements(cases, controls)
    pos = y.astype(bool)
    # each subject's placement: cases come first in the placements' codes, in the order of y's cases
    v10 = pl.v10[pl.codes[: pl.m]]
    v01 = pl.v01[pl.codes[pl.m:]]
    _, index = np.unique(labels.astype(str), return_inverse=True)
    index = index.ravel()
    k = int(index.max()) + 1
    if k < 2:
        raise OneClassError(f"Obuchowski's variance needs at least 2 clusters; got {k}")
    x = np.bincount(index[pos], weights=v10, minlength=k)
    yy = np.bincount(index[~pos], weights=v01, minlength=k)
    m_i = np.bincount(index[pos], minlength=k)
    n_i = np.bincount(index[~pos], minlength=k)
    a = pl.auc
    dx, dy = x - m_i * a, yy - n_i * a
    scale = k / (k - 1)
    s10 = scale * float(np.sum(dx * dx)) / pl.m
    s01 = scale * float(np.sum(dy * dy)) / pl.n
    s11 = scale * float(np.sum(dx * dy))
    var = s10 / pl.m + s01 / pl.n + 2.0 * s11 / (pl.m * pl.n)
    se = float(np.sqrt(max(var, 0.0)))
    z = float(stats.norm.ppf(1.0 - (1.0 - level) / 2.0))
    return AucResult(auc=a, ci_low=float(min(max(a - z * se, 0.0), 1.0)), ci_high=float(min(max(a + z * se, 0.0), 1.0)),
                     se=se, n_pos=pl.m, n_neg=pl.n, method="obuchowski", level=level, n_boot=0)
