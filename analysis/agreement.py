"""Cohen's kappa with the asymptotic standard error of psych's ``cohen.kappa``, and the study's
intra- and interobserver agreement tables.

Examples
--------
>>> from analysis.agreement import cohen_kappa
>>> round(cohen_kappa([1, 1, 0, 0, 1, 0], [1, 1, 0, 1, 1, 0]).kappa, 4)
0.6667
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis._checks import check_assessments, check_level, check_option
from analysis.errors import ConstantRaterError, UndefinedStatisticError

__all__ = ["KappaResult", "cohen_kappa", "intra_observer", "inter_observer"]

WEIGHTS = (None, "linear", "quadratic")
UNDEFINED = ("raise", "drop")
ASSESSMENT_COLUMNS = ("reader", "round", "gvr_id", "regime", "feature", "present")


@dataclass(frozen=True)
class KappaResult:
    """Cohen's kappa with its asymptotic standard error and confidence interval.

    Attributes
    ----------
    kappa : float
        Cohen's kappa (weighted when ``weights`` is not None).
    se : float
        Asymptotic standard error (psych's ``sqrt(var.kappa)`` or ``sqrt(var.weighted)``).
    ci_low, ci_high : float
        ``kappa -/+ z * se``, clipped to [-1, 1] as psych does.
    n : int
        Number of subjects rated by both raters.
    weights : str or None
        None, ``"linear"`` or ``"quadratic"``.
    level : float
        Confidence level.
    n_categories : int
        Number of categories (union of both raters' values, or those given).
    """

    kappa: float
    se: float
    ci_low: float
    ci_high: float
    n: int
    weights: str | None
    level: float
    n_categories: int

    def to_frame(self) -> pd.DataFrame:
        """Return the result as a tidy one-row DataFrame, one column per field."""
        return pd.DataFrame([asdict(self)])


def _categories(a: np.ndarray, b: np.ndarray, categories: Any) -> list[Any]:
    if categories is None:
        try:
            return sorted(set(a.tolist()) | set(b.tolist()))
        except TypeError as exc:
            raise ValueError("ratings of mixed types cannot be ordered; pass categories=[...]") from exc
    cats = list(categories)
    if len(set(cats)) != len(cats):
        raise ValueError(f"categories must be distinct; got {cats!r}")
    missing = (set(a.tolist()) | set(b.tolist())) - set(cats)
    if missing:
        raise ValueError(f"ratings {sorted(map(repr, missing))} are not among categories {cats!r}")
    return cats


def cohen_kappa(
    rater_a: Any,
    rater_b: Any,
    *,
    weights: str | None = None,
    level: float = 0.95,
    categories: Any = None,
) -> KappaResult:
    """Cohen's (weighted) kappa for two raters, exactly as R's ``psych::cohen.kappa``.

    Parameters
    ----------
    rater_a, rater_b : array-like, shape (n,)
        Ratings of the same subjects by the two raters (numbers, strings or booleans).
    weights : {None, "linear", "quadratic"}, default None
        None for Cohen's unweighted kappa; otherwise agreement weights
        :math:`w_{ij} = 1 - |i-j|/(k-1)` (linear) or :math:`1 - (i-j)^2/(k-1)^2` (quadratic, psych's
        ``weighted.kappa`` by default) over the ordered categories.
    level : float, default 0.95
        Confidence level (psych's ``alpha = 1 - level``).
    categories : sequence, optional
        The ordered categories (psych's ``levels``). Default: the sorted union of both raters'
        values, as psych's ``levels(as.factor(...))`` for numbers and booleans.

    Returns
    -------
    KappaResult
        ``kappa, se, ci_low, ci_high, n, weights, level, n_categories``.

    Raises
    ------
    ConstantRaterError
        If both raters gave the same single rating to every subject (chance agreement is 1).
    ValueError
        On missing ratings (None or NaN), lengths that differ, no subjects, or an unknown
        ``weights``.

    Notes
    -----
    With :math:`p_{ij}` the proportions of the k x k table, :math:`p_{i.}, p_{.j}` its margins,
    :math:`p_o = \\sum_i p_{ii}`, :math:`p_c = \\sum_i p_{i.} p_{.i}`, :math:`\\kappa = (p_o - p_c)/(1 - p_c)`
    and (Fleiss, Cohen & Everitt 1969)

    .. math:: \\widehat{Var}(\\kappa) = \\frac{1}{N(1-p_c)^4}\\Big[\\sum_i p_{ii}\\big((1-p_c) -
       (p_{i.}+p_{.i})(1-p_o)\\big)^2 + (1-p_o)^2\\sum_{i\\ne j} p_{ij}(p_{.i}+p_{j.})^2 -
       (p_o p_c - 2p_c + p_o)^2\\Big].

    Weighted: :math:`p_o^w = \\sum w_{ij}p_{ij}`, :math:`p_c^w = \\sum w_{ij}p_{i.}p_{.j}`,
    :math:`\\kappa_w = (p_o^w - p_c^w)/(1-p_c^w)` and

    .. math:: \\widehat{Var}(\\kappa_w) = \\frac{1}{N(1-p_c^w)^4}\\Big[\\sum_{ij} p_{ij}\\big(w_{ij}(1-p_c^w)
       - (a_i + b_j)(1-p_o^w)\\big)^2 - (p_o^w p_c^w - 2p_c^w + p_o^w)^2\\Big]

    with psych's :math:`a_i = \\sum_k w_{ki} p_{.k}` and :math:`b_j = p_{j.}\\sum_k w_{jk}`. Fleiss et al.
    have :math:`b_j = \\sum_k w_{kj} p_{k.}` instead; this function follows psych 2.2.9 (so it
    differs from statsmodels' ``cohens_kappa(wt=...)`` variance for more than two categories; with
    two categories there are no off-diagonal weights and both agree). A negative variance (rounding
    at perfect agreement) is set to 0 as psych does. The interval is
    :math:`\\kappa \\pm z_{1-\\alpha/2}SE` clipped to [-1, 1] as psych does (psych also warns; this
    function does not).

    References
    ----------
    .. [1] Cohen J. A coefficient of agreement for nominal scales. Educ Psychol Meas 1960;20:37-46.
       doi:10.1177/001316446002000104
    .. [2] Fleiss JL, Cohen J, Everitt BS. Large sample standard errors of kappa and weighted kappa.
       Psychol Bull 1969;72:323-327. doi:10.1037/h0028106
    .. [3] Cohen J. Weighted kappa. Psychol Bull 1968;70:213-220. doi:10.1037/h0026256

    Examples
    --------
    >>> r = cohen_kappa([1, 2, 3, 1, 2, 3, 3, 2, 1, 1], [1, 2, 3, 2, 2, 3, 1, 2, 1, 2])
    >>> round(r.kappa, 4), round(r.se, 4), r.n
    (0.5522, 0.2092, 10)
    >>> round(cohen_kappa([1, 2, 3, 1, 2], [1, 2, 3, 2, 2], weights="quadratic").kappa, 4)
    0.8
    """
    check_option("weights", weights, WEIGHTS)
    level = check_level(level)
    a = np.asarray(rater_a, dtype=object)
    b = np.asarray(rater_b, dtype=object)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"rater_a and rater_b must be one-dimensional; got shapes {a.shape} and {b.shape}")
    if a.size != b.size:
        raise ValueError(f"rater_a and rater_b must rate the same subjects; got {a.size} and {b.size} ratings")
    if a.size == 0:
        raise ValueError("no ratings given")
    for name, r in (("rater_a", a), ("rater_b", b)):
        if pd.isna(r).any():
            raise ValueError(f"{name} has {int(pd.isna(r).sum())} missing rating(s); drop those subjects first")
    cats = _categories(a, b, categories)
    k = len(cats)
    index = {c: i for i, c in enumerate(cats)}
    table = np.zeros((k, k))
    np.add.at(table, ([index[v] for v in a.tolist()], [index[v] for v in b.tolist()]), 1.0)
    n = int(a.size)
    x = table / n
    rs, cs = x.sum(axis=1), x.sum(axis=0)
    po, pc = float(np.trace(x)), float(rs @ cs)
    if pc >= 1.0 or k < 2:
        raise ConstantRaterError(
            f"both raters gave every one of the {n} subjects the same rating {a[0]!r}: chance agreement "
            "is 1 and kappa is undefined; report the raw agreement instead"
        )
    if weights is None:
        kappa = (po - pc) / (1.0 - pc)
        s = rs[:, None] + cs[None, :]
        first = float(np.sum(np.diag(x) * ((1.0 - pc) - np.diag(s) * (1.0 - po)) ** 2))
        t = cs[:, None] + rs[None, :]
        off = float(np.sum(x * t**2) - np.trace(x * t**2))
        var = (first + (1.0 - po) ** 2 * off - (po * pc - 2.0 * pc + po) ** 2) / (n * (1.0 - pc) ** 4)
    else:
        i, j = np.indices((k, k))
        power = 1 if weights == "linear" else 2
        w = 1.0 - np.abs(i - j) ** power / (k - 1) ** power
        wpo = float(np.sum(w * x))
        wpc = float(np.sum(w * np.outer(rs, cs)))
        if wpc >= 1.0:
            raise ConstantRaterError("weighted chance agreement is 1: kappa is undefined")
        kappa = (wpo - wpc) / (1.0 - wpc)
        colw = (w * cs[:, None]).sum(axis=0)  # psych: colSums(w * cs)
        roww = (w * rs[:, None]).sum(axis=1)  # psych: rowSums(w * rs)
        inner = w * (1.0 - wpc) - (colw[:, None] + roww[None, :]) * (1.0 - wpo)
        var = (float(np.sum(x * inner**2)) - (wpo * wpc - 2.0 * wpc + wpo) ** 2) / (n * (1.0 - wpc) ** 4)
    var = max(var, 0.0)
    se = float(np.sqrt(var))
    z = float(stats.norm.ppf(1.0 - (1.0 - level) / 2.0))
    return KappaResult(
        kappa=float(kappa),
        se=se,
        ci_low=float(min(max(kappa - z * se, -1.0), 1.0)),
        ci_high=float(min(max(kappa + z * se, -1.0), 1.0)),
        n=n,
        weights=weights,
        level=level,
        n_categories=k,
    )


def _check_assessments(assessments: pd.DataFrame) -> pd.DataFrame:
    return check_assessments(assessments, needs=ASSESSMENT_COLUMNS)


def _kappa_row(keys: dict[str, Any], a: pd.Series, b: pd.Series, undefined: str, level: float,
               *, pairs: str) -> dict | None:
    """`pairs` names what a pair of ratings is ("both readings", "both readers"), for the error when none is."""
    if len(a) == 0:  # nothing rated twice: as undefined as one answer throughout
        if undefined == "raise":
            named = ", ".join(f"{k} {v!r}" for k, v in keys.items() if v != "")
            raise UndefinedStatisticError(f"{named}: no GVR was rated in {pairs}, so kappa is undefined")
        return None
    try:
        res = cohen_kappa(a.astype(bool).to_numpy(), b.astype(bool).to_numpy(), level=level)
    except UndefinedStatisticError:
        if undefined == "raise":
            raise
        return None
    row = dict(keys)
    row.update(kappa=res.kappa, se=res.se, ci_low=res.ci_low, ci_high=res.ci_high, n=res.n, level=res.level)
    return row


_OUT = ["kappa", "se", "ci_low", "ci_high", "n", "level"]


def intra_observer(
    assessments: pd.DataFrame, *, level: float = 0.95, undefined: str = "raise"
) -> pd.DataFrame:
    """Intraobserver kappa per reader and feature: each reader's round 1 against their round 2.

    Parameters
    ----------
    assessments : pandas.DataFrame
        The tidy ``reader_assessments`` table (columns ``reader, round, gvr_id, regime, patient_id,
        feature, present, simulated``; only the first six are used).
    level : float, default 0.95
        Confidence level of the kappa intervals.
    undefined : {"raise", "drop"}, default "raise"
        What to do when a kappa is undefined (a reader gave one answer throughout both rounds, read
        no GVR in both, or read only once): raise, or leave that row out.

    Returns
    -------
    pandas.DataFrame
        One row per reader and feature with columns ``reader, feature, round_a, round_b, kappa, se,
        ci_low, ci_high, n, level``; ``round_a`` and ``round_b`` are the reader's two lowest rounds.

    Raises
    ------
    ConstantRaterError
        If a reader gave one answer throughout and ``undefined="raise"``.
    UndefinedStatisticError
        If a reader rated no GVR in both rounds and ``undefined="raise"``.
    ValueError
        If columns are missing, rows are duplicated, or (with ``undefined="raise"``) a reader has
        fewer than two rounds.

    Notes
    -----
    Pooled over both models' GVRs (regimes), as the note to the paper's Table 2; only GVRs that the
    reader read in both rounds enter (an inner join on ``gvr_id``). Unweighted Cohen's kappa on
    present/absent: see :func:`cohen_kappa`.

    References
    ----------
    .. [1] Cohen J. Educ Psychol Meas 1960;20:37-46. doi:10.1177/001316446002000104
    .. [2] Seah JCY, et al. Radiology 2019;290:514-522. doi:10.1148/radiol.2018180887

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"reader": "A", "round": [1] * 4 + [2] * 4, "gvr_id": ["g1", "g2", "g3", "g4"] * 2,
    ...                   "regime": "correct", "feature": "cardiomegaly",
    ...                   "present": [True, False, True, False, True, False, False, False]})
    >>> intra_observer(t)[["reader", "feature", "kappa", "n"]]
      reader       feature  kappa  n
    0      A  cardiomegaly    0.5  4
    """
    check_option("undefined", undefined, UNDEFINED)
    level = check_level(level)
    t = _check_assessments(assessments)
    rows = []
    for (reader, feature), g in t.groupby(["reader", "feature"], sort=True):
        rounds = sorted(g["round"].unique())
        if len(rounds) < 2:
            if undefined == "drop":  # a reader who read once has no intraobserver kappa
                continue
            raise ValueError(f"reader {reader!r} has only round(s) {[int(r) for r in rounds]} for {feature!r}; "
                             "need two (undefined='drop' leaves such a reader out)")
        ra, rb = rounds[0], rounds[1]
        first = g[g["round"] == ra].set_index("gvr_id")["present"]
        second = g[g["round"] == rb].set_index("gvr_id")["present"]
        both = first.index.intersection(second.index).sort_values()
        row = _kappa_row(
            {"reader": reader, "feature": feature, "round_a": int(ra), "round_b": int(rb)},
            first.loc[both], second.loc[both], undefined, level, pairs="both readings",
        )
        if row is not None:
            rows.append(row)
    return pd.DataFrame(rows, columns=["reader", "feature", "round_a", "round_b", *_OUT])


def inter_observer(
    assessments: pd.DataFrame,
    *,
    rounds: Any = None,
    level: float = 0.95,
    undefined: str = "raise",
) -> pd.DataFrame:
    """Interobserver kappa per feature and pair of readers, pooled over models and rounds.

    Parameters
    ----------
    assessments : pandas.DataFrame
        The tidy ``reader_assessments`` table (see :func:`intra_observer`).
    rounds : int, sequence of int or None, default None
        Rounds to use. Default: every round both readers read. Within each round, reader A's answer
        on a GVR is paired with reader B's answer on the same GVR in the same round, and the pairs of
        all rounds are pooled into one table (so each GVR counts once per round).
    level : float, default 0.95
        Confidence level of the kappa intervals.
    undefined : {"raise", "drop"}, default "raise"
        What to do with an undefined kappa (see :func:`intra_observer`).

    Returns
    -------
    pandas.DataFrame
        One row per feature and pair of readers with columns ``feature, reader_a, reader_b, rounds,
        kappa, se, ci_low, ci_high, n, level``; ``rounds`` lists the rounds pooled, e.g. ``"1,2"``.

    Raises
    ------
    ConstantRaterError
        If a kappa is undefined and ``undefined="raise"``.
    ValueError
        If columns are missing, rows are duplicated, fewer than two readers are present, or a
        requested round is absent.

    Notes
    -----
    The paper's Table 2 note gives one interobserver kappa per feature, pooled over both models'
    GVRs, without saying which reading; pooling both readings (round r of A against round r of B)
    uses all the data and is the default here; pass ``rounds=1`` for the first reading only.
    The pooled pairs are not independent (the same GVR appears once per round), so the standard
    error is somewhat optimistic. Unweighted Cohen's kappa on present/absent: see
    :func:`cohen_kappa`.

    References
    ----------
    .. [1] Cohen J. Educ Psychol Meas 1960;20:37-46. doi:10.1177/001316446002000104
    .. [2] Seah JCY, et al. Radiology 2019;290:514-522. doi:10.1148/radiol.2018180887

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"reader": ["A"] * 4 + ["B"] * 4, "round": 1, "gvr_id": ["g1", "g2", "g3", "g4"] * 2,
    ...                   "regime": "correct", "feature": "cardiomegaly",
    ...                   "present": [True, False, True, False, True, False, False, False]})
    >>> inter_observer(t)[["feature", "reader_a", "reader_b", "rounds", "kappa", "n"]]
            feature reader_a reader_b rounds  kappa  n
    0  cardiomegaly        A        B      1    0.5  4
    """
    check_option("undefined", undefined, UNDEFINED)
    level = check_level(level)
    t = _check_assessments(assessments)
    if rounds is not None:
        wanted = [int(r) for r in np.atleast_1d(rounds)]
        absent = sorted(set(wanted) - set(t["round"].unique().tolist()))
        if absent:
            raise ValueError(f"rounds {absent} are not in assessments (it has {sorted(t['round'].unique())})")
        t = t[t["round"].isin(wanted)]
    readers = sorted(t["reader"].unique())
    if len(readers) < 2:
        raise ValueError(f"interobserver agreement needs at least two readers; got {readers}")
    rows = []
    for feature, g in t.groupby("feature", sort=True):
        for ra, rb in combinations(readers, 2):
            wide = g[g["reader"].isin([ra, rb])].pivot(index=["round", "gvr_id"], columns="reader", values="present")
            if ra not in wide.columns or rb not in wide.columns:
                continue
            wide = wide.dropna().sort_index()
            used = ",".join(str(r) for r in sorted(wide.index.get_level_values("round").unique()))
            row = _kappa_row(
                {"feature": feature, "reader_a": ra, "reader_b": rb, "rounds": used},
                wide[ra], wide[rb], undefined, level, pairs="the same reading by both readers",
            )
            if row is not None:
                rows.append(row)
    return pd.DataFrame(rows, columns=["feature", "reader_a", "reader_b", "rounds", *_OUT])
