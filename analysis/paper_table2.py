"""The paper's published Table 2: its counts, a reanalysis, and which stated kappas the counts allow.

The counts are typed from the paper into ``analysis/data/paper_table2.csv`` (see the README there).
The paper gives only marginal counts per reader and reading, so its kappas cannot be recomputed;
:func:`kappa_compatibility` finds every kappa the counts allow and checks the stated one among them.

Examples
--------
>>> counts = load_paper_table2()
>>> counts.shape
(32, 6)
>>> r = reanalyse(counts)
>>> r.pooled.loc[(r.pooled["regime"] == "correct") & (r.pooled["feature"] == "cardiomegaly"), "display"].item()
'153/200 (76.5)'
>>> c = kappa_compatibility(counts, "A", "pleural_effusion")
>>> c.compatible, round(c.nearest_kappa, 2)
(True, 0.43)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.agreement import cohen_kappa
from analysis.contingency import chi_square, fisher_exact
from analysis.formatting import format_count_percent
from analysis.table2 import feature_order

__all__ = [
    "DATA_PATH", "STATED_INTRA_KAPPA", "STATED_INTER_KAPPA", "STATED_P", "load_paper_table2",
    "Reanalysis", "reanalyse", "KappaCompatibility", "kappa_compatibility", "inter_kappa_compatibility",
]

DATA_PATH = Path(__file__).parent / "data" / "paper_table2.csv"

#: Table 2's note: "The intraobserver k for reader A was 0.78 for cardiomegaly, 0.43 for pleural
#: effusion, 0.26 for airspace opacity, and 0.76 for no CHF features. The intraobserver k for reader
#: B was 0.75 for cardiomegaly, 0.79 for pleural effusion, 0.75 for airspace opacity, and 0.81 for
#: no CHF features."
STATED_INTRA_KAPPA = {
    ("A", "cardiomegaly"): 0.78, ("A", "pleural_effusion"): 0.43,
    ("A", "airspace_opacity"): 0.26, ("A", "no_chf_features"): 0.76,
    ("B", "cardiomegaly"): 0.75, ("B", "pleural_effusion"): 0.79,
    ("B", "airspace_opacity"): 0.75, ("B", "no_chf_features"): 0.81,
}
#: Table 2's note: "The interobserver k was 0.64 for cardiomegaly, 0.31 for pleural effusion, 0.20 for
#: airspace opacity, and 0.67 for no CHF features."
STATED_INTER_KAPPA = {"cardiomegaly": 0.64, "pleural_effusion": 0.31, "airspace_opacity": 0.20,
                      "no_chf_features": 0.67}
#: Table 2's note: "The P value for the correct versus overfitted difference was .001 for
#: cardiomegaly, .003 for pleural effusion, .38 for airspace opacity, and .001 for no CHF features."
#: (The Results text gives "P < .001" for cardiomegaly and for no CHF features.)
STATED_P = {"cardiomegaly": 0.001, "pleural_effusion": 0.003, "airspace_opacity": 0.38, "no_chf_features": 0.001}

_COLUMNS = ("regime", "reader", "round", "feature", "count", "n")
_REGIMES = ("correct", "overfitted")


def load_paper_table2(path: str | Path | None = None) -> pd.DataFrame:
    """The counts of the paper's Table 2, one row per model, reader, reading and feature.

    Parameters
    ----------
    path : path-like, optional
        A CSV of the same layout; default :data:`DATA_PATH`.

    Returns
    -------
    pandas.DataFrame
        ``regime`` (correct, overfitted), ``reader`` (A, B), ``round`` (1, 2), ``feature``,
        ``count`` (GVRs with the feature) and ``n`` (GVRs read, 50), 32 rows.

    Examples
    --------
    >>> load_paper_table2().iloc[0].to_dict()
    {'regime': 'correct', 'reader': 'A', 'round': 1, 'feature': 'cardiomegaly', 'count': 35, 'n': 50}
    """
    counts = pd.read_csv(path or DATA_PATH, dtype={"reader": str, "regime": str, "feature": str},
                         keep_default_na=False)
    return _check(counts)


def _check(counts: Any) -> pd.DataFrame:
    if not isinstance(counts, pd.DataFrame):
        raise TypeError(f"counts must be a pandas DataFrame; got {type(counts).__name__}")
    missing = [c for c in _COLUMNS if c not in counts.columns]
    if missing:
        raise ValueError(f"counts lacks column(s) {missing}; expected {list(_COLUMNS)} (see load_paper_table2)")
    bad = set(counts["regime"]) - set(_REGIMES)
    if bad:
        raise ValueError(f"counts.regime must be one of {list(_REGIMES)}; got {sorted(bad)}")
    if ((counts["count"] < 0) | (counts["count"] > counts["n"])).any():
        raise ValueError("counts.count must lie between 0 and n")
    if counts.duplicated(["regime", "reader", "round", "feature"]).any():
        raise ValueError("counts has duplicated (regime, reader, round, feature) rows")
    return counts


# --------------------------------------------------------------------------------------------------
# reanalysis of the counts
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reanalysis:
    """Tests of correct vs overfitted on the published counts.

    Attributes
    ----------
    pooled : pandas.DataFrame
        Per regime and feature: ``count``, ``n`` (over readers and readings), ``proportion`` and
        ``display`` (as printed, e.g. ``"153/200 (76.5)"``).
    per_reading : pandas.DataFrame
        Per reader, reading and feature, the 2 x 2 table correct/overfitted x present/absent:
        ``count_correct, n_correct, count_overfitted, n_overfitted``, Fisher's exact test
        (``fisher_p``, ``odds_ratio``: conditional MLE, correct vs overfitted) and Pearson's
        chi-square with Yates' correction (``chi2``, ``chi2_p``, ``chi2_warnings``).
    pooled_tests : pandas.DataFrame
        The same tests on the pooled counts (e.g. 153/200 vs 64/200), with ``stated_p`` (the paper's
        mixed-model P) beside them.
    """

    pooled: pd.DataFrame = field(repr=False)
    per_reading: pd.DataFrame = field(repr=False)
    pooled_tests: pd.DataFrame = field(repr=False)

    def to_frame(self) -> pd.DataFrame:
        """Return ``pooled_tests`` (one row per feature)."""
        return self.pooled_tests.copy()


def _tests(row: dict[str, Any]) -> dict[str, Any]:
    a, na, b, nb = row["count_correct"], row["n_correct"], row["count_overfitted"], row["n_overfitted"]
    table = np.array([[a, na - a], [b, nb - b]])
    fisher = fisher_exact(table)
    out = dict(row, fisher_p=fisher.p_value, odds_ratio=fisher.odds_ratio)
    if (table.sum(axis=0) == 0).any():
        out.update(chi2=np.nan, chi2_p=np.nan, chi2_warnings="a column of the table is empty: no chi-square")
        return out
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chi = chi_square(table)
    out.update(chi2=chi.statistic, chi2_p=chi.p_value,
               chi2_warnings="; ".join(dict.fromkeys(str(w.message) for w in caught)))
    return out


def reanalyse(counts: pd.DataFrame) -> Reanalysis:
    """Pooled proportions and correct-vs-overfitted tests from Table 2's counts.

    Parameters
    ----------
    counts : pandas.DataFrame
        As :func:`load_paper_table2` returns.

    Returns
    -------
    Reanalysis
        ``pooled``, ``per_reading``, ``pooled_tests``.

    Raises
    ------
    ValueError
        If a column is missing, a count is outside [0, n], or a row is duplicated.

    Notes
    -----
    The paper's P values come from a mixed-effects logistic regression on the individual
    assessments, which were not published. These tests use the counts only: per reader and
    reading the 50 + 50 GVRs are independent, so Fisher's and the chi-square test are valid there;
    the pooled tests treat the 200 + 200 assessments as independent although each GVR was read
    four times (twice by two readers), so their P values are too small by construction and serve
    only as a rough check of the published ones.

    References
    ----------
    .. [1] Fisher RA. J R Stat Soc 1922;85:87-94. doi:10.2307/2340521
    .. [2] Seah JCY, et al. Radiology 2019;290:514-522. doi:10.1148/radiol.2018180887

    Examples
    --------
    >>> r = reanalyse(load_paper_table2())
    >>> r.per_reading.shape[0], r.pooled_tests.shape[0]
    (16, 4)
    """
    c = _check(counts)
    features = feature_order(c["feature"].unique())
    pooled = c.groupby(["regime", "feature"], sort=False)[["count", "n"]].sum().reset_index()
    pooled["proportion"] = pooled["count"] / pooled["n"]
    pooled["display"] = [format_count_percent(int(k), int(n), digits=1) for k, n in zip(pooled["count"], pooled["n"])]

    wide = c.pivot_table(index=["reader", "round", "feature"], columns="regime", values=["count", "n"],
                         aggfunc="sum").reset_index()
    rows = []
    for _, r in wide.iterrows():
        rows.append(_tests({"reader": r[("reader", "")], "round": int(r[("round", "")]), "feature": r[("feature", "")],
                            "count_correct": int(r[("count", "correct")]), "n_correct": int(r[("n", "correct")]),
                            "count_overfitted": int(r[("count", "overfitted")]),
                            "n_overfitted": int(r[("n", "overfitted")])}))
    per_reading = pd.DataFrame(rows)
    order = {f: i for i, f in enumerate(features)}
    per_reading = (per_reading.assign(_f=per_reading["feature"].map(order))
                   .sort_values(["reader", "round", "_f"]).drop(columns="_f").reset_index(drop=True))

    p = pooled.set_index(["regime", "feature"])
    tests = []
    for f in features:
        row = _tests({"feature": f, "count_correct": int(p.loc[("correct", f), "count"]),
                      "n_correct": int(p.loc[("correct", f), "n"]),
                      "count_overfitted": int(p.loc[("overfitted", f), "count"]),
                      "n_overfitted": int(p.loc[("overfitted", f), "n"])})
        row["stated_p"] = STATED_P.get(f, np.nan)
        tests.append(row)
    return Reanalysis(pooled=pooled, per_reading=per_reading, pooled_tests=pd.DataFrame(tests))


# --------------------------------------------------------------------------------------------------
# kappas compatible with the counts
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KappaCompatibility:
    """The kappas that the marginal counts allow, and whether a stated kappa is among them.

    Attributes
    ----------
    kind : str
        ``"intra"`` (a reader's reading 1 vs 2) or ``"inter"`` (reader A vs B within a reading).
    reader : str
        The reader (intra), or the two readers joined by "," (inter).
    feature : str
        The feature.
    margins : tuple of (int, int, int)
        Per pooled 2 x 2 table (per model, and per reading for inter): the two raters' counts of
        "present" and the number of GVRs.
    agreements : tuple of int
        Every feasible number of GVRs marked present by both, summed over the tables.
    kappas : tuple of float
        Cohen's kappa of the pooled table for each of ``agreements`` (increasing).
    kappa_min, kappa_max : float
        The smallest and largest of ``kappas``.
    stated_kappa : float or None
        The paper's kappa (two decimals), if any.
    compatible : bool or None
        Whether some feasible kappa rounds to ``stated_kappa`` (within 0.005); None without one.
    nearest_kappa : float or None
        The feasible kappa nearest ``stated_kappa``.
    nearest_agreement : int or None
        Its number of GVRs marked present by both.
    """

    kind: str
    reader: str
    feature: str
    margins: tuple[tuple[int, int, int], ...]
    agreements: tuple[int, ...] = field(repr=False)
    kappas: tuple[float, ...] = field(repr=False)
    kappa_min: float
    kappa_max: float
    stated_kappa: float | None
    compatible: bool | None
    nearest_kappa: float | None
    nearest_agreement: int | None

    def to_frame(self) -> pd.DataFrame:
        """One row: every field but the tuples of agreements and kappas (their count instead)."""
        return pd.DataFrame([{
            "kind": self.kind, "reader": self.reader, "feature": self.feature,
            "n_feasible": len(self.kappas), "kappa_min": self.kappa_min, "kappa_max": self.kappa_max,
            "stated_kappa": self.stated_kappa, "compatible": self.compatible,
            "nearest_kappa": self.nearest_kappa, "nearest_agreement": self.nearest_agreement,
        }])


def _pooled_kappa(x: int, a: int, b: int, n: int) -> float:
    """Kappa of the 2 x 2 table [[x, a - x], [b - x, n - a - b + x]] via analysis.agreement."""
    rater_1 = np.repeat([True, True, False, False], [x, a - x, b - x, n - a - b + x])
    rater_2 = np.repeat([True, False, True, False], [x, a - x, b - x, n - a - b + x])
    return cohen_kappa(rater_1, rater_2).kappa


def _compatibility(kind: str, reader: str, feature: str, margins: list[tuple[int, int, int]],
                   stated: float | None) -> KappaCompatibility:
    lo = sum(max(0, a + b - n) for a, b, n in margins)
    hi = sum(min(a, b) for a, b, n in margins)
    a_all, b_all, n_all = (sum(m[i] for m in margins) for i in range(3))
    agreements = tuple(range(lo, hi + 1))
    kappas = tuple(_pooled_kappa(x, a_all, b_all, n_all) for x in agreements)
    compatible = nearest = nearest_x = None
    if stated is not None:
        i = int(np.argmin([abs(k - stated) for k in kappas]))
        nearest, nearest_x = kappas[i], agreements[i]
        compatible = bool(abs(nearest - stated) <= 0.005 + 1e-9)
    return KappaCompatibility(kind=kind, reader=reader, feature=feature, margins=tuple(margins),
                              agreements=agreements, kappas=kappas, kappa_min=min(kappas), kappa_max=max(kappas),
                              stated_kappa=stated, compatible=compatible, nearest_kappa=nearest,
                              nearest_agreement=nearest_x)


def _count(c: pd.DataFrame, regime: str, reader: str, k: int, feature: str) -> tuple[int, int]:
    hit = c[(c["regime"] == regime) & (c["reader"] == reader) & (c["round"] == k) & (c["feature"] == feature)]
    if len(hit) != 1:
        raise ValueError(f"counts has no row for regime {regime!r}, reader {reader!r}, round {k}, feature {feature!r}")
    return int(hit["count"].iloc[0]), int(hit["n"].iloc[0])


def kappa_compatibility(counts: pd.DataFrame, reader: str, feature: str, *,
                        stated: float | None = None) -> KappaCompatibility:
    """The intraobserver kappas (reading 1 vs 2, both models pooled) that Table 2's counts allow.

    Parameters
    ----------
    counts : pandas.DataFrame
        As :func:`load_paper_table2` returns.
    reader : str
        ``"A"`` or ``"B"``.
    feature : str
        A feature of ``counts``.
    stated : float, optional
        The kappa to check; default the paper's (:data:`STATED_INTRA_KAPPA`), None if it has none.

    Returns
    -------
    KappaCompatibility
        Feasible agreements and kappas, their range, and whether ``stated`` is among them.

    Raises
    ------
    ValueError
        If ``counts`` lacks the reader's rows for the feature, or is malformed.

    Notes
    -----
    For each model the reader's 50 GVRs form a 2 x 2 table of reading 1 against reading 2 with known
    margins :math:`n_1` and :math:`n_2` (the published counts) and unknown agreement :math:`x`, the
    GVRs marked in both readings: :math:`\\max(0, n_1 + n_2 - 50) \\le x \\le \\min(n_1, n_2)`. The
    paper's kappa pools the two models' 100 GVRs (its note: "Each reader assessed 100 GVRs"), so
    the pooled table is :math:`[[X, N_1 - X], [N_2 - X, 100 - N_1 - N_2 + X]]` with :math:`X = x_c + x_o`
    and :math:`N_i` the sums over models; every :math:`X` between the sums of the bounds is feasible
    and Cohen's kappa (computed by :func:`analysis.agreement.cohen_kappa`) increases with it. The
    stated kappa is compatible when a feasible kappa rounds to it (within 0.005).

    References
    ----------
    .. [1] Cohen J. Educ Psychol Meas 1960;20:37-46. doi:10.1177/001316446002000104
    .. [2] Seah JCY, et al. Radiology 2019;290:514-522. doi:10.1148/radiol.2018180887

    Examples
    --------
    >>> c = kappa_compatibility(load_paper_table2(), "B", "airspace_opacity")
    >>> c.margins, round(c.kappa_max, 2), c.compatible
    (((14, 14, 50), (6, 6, 50)), 1.0, True)
    """
    c = _check(counts)
    margins = []
    for regime in _REGIMES:
        (a, n), (b, n2) = _count(c, regime, reader, 1, feature), _count(c, regime, reader, 2, feature)
        if n != n2:
            raise ValueError(f"reader {reader!r} read {n} and {n2} GVRs of {regime!r} in the two readings; "
                             "intraobserver agreement needs the same GVRs")
        margins.append((a, b, n))
    if stated is None:
        stated = STATED_INTRA_KAPPA.get((reader, feature))
    return _compatibility("intra", reader, feature, margins, stated)


def inter_kappa_compatibility(counts: pd.DataFrame, feature: str, *, rounds: tuple[int, ...] = (1, 2),
                              readers: tuple[str, str] = ("A", "B"),
                              stated: float | None = None) -> KappaCompatibility:
    """The interobserver kappas (reader A vs B, both models pooled) that Table 2's counts allow.

    Parameters
    ----------
    counts : pandas.DataFrame
        As :func:`load_paper_table2` returns.
    feature : str
        A feature of ``counts``.
    rounds : tuple of int, default (1, 2)
        Readings pooled: within each, reader A's answer on a GVR is paired with reader B's (as
        :func:`analysis.agreement.inter_observer`); the paper does not say which it used.
    readers : tuple of two str, default ("A", "B")
        The two readers.
    stated : float, optional
        The kappa to check; default the paper's (:data:`STATED_INTER_KAPPA`).

    Returns
    -------
    KappaCompatibility
        As :func:`kappa_compatibility`, with one margin per model and reading.

    Raises
    ------
    ValueError
        If ``counts`` lacks a needed row.

    Notes
    -----
    As :func:`kappa_compatibility`, with one 2 x 2 table (reader A vs reader B) per model and
    reading, each of unknown agreement within its bounds, pooled.

    Examples
    --------
    >>> c = inter_kappa_compatibility(load_paper_table2(), "cardiomegaly")
    >>> len(c.margins), c.compatible, round(c.nearest_kappa, 3)
    (4, False, 0.649)
    >>> inter_kappa_compatibility(load_paper_table2(), "cardiomegaly", rounds=(1,)).compatible
    True
    """
    c = _check(counts)
    margins = []
    for regime in _REGIMES:
        for k in rounds:
            (a, n), (b, n2) = _count(c, regime, readers[0], k, feature), _count(c, regime, readers[1], k, feature)
            if n != n2:
                raise ValueError(f"readers {readers} read {n} and {n2} GVRs of {regime!r} in reading {k}")
            margins.append((a, b, n))
    if stated is None:
        stated = STATED_INTER_KAPPA.get(feature)
    return _compatibility("inter", ",".join(readers), feature, margins, stated)
