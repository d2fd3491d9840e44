"""Table 2 of the paper: features identified by blinded readers on GVRs of the two models.

Counts per model (regime), reader, reading and feature; pooled counts per model and feature;
intra- and interobserver kappas (:mod:`analysis.agreement`); and the mixed-effects logistic
regression of each feature on the model (:func:`analysis.mixed_models.table2_tests`).

Examples
--------
>>> import pandas as pd
>>> rows = [{"reader": r, "round": k, "gvr_id": f"g{g}", "regime": "correct" if g < 2 else "overfitted",
...          "patient_id": f"p{g}", "feature": "cardiomegaly", "present": g in (0, 1, 2) and not (r == "B" and g == 2),
...          "simulated": True} for r in "AB" for k in (1, 2) for g in range(4)]
>>> t = table2(pd.DataFrame(rows), mixed_models=False)
>>> t.display.loc[("Correctly trained model", "Pooled result"), ("Cardiomegaly", "First reading")]
'8/8 (100)'
>>> t.pooled[["regime", "feature", "n_present", "n_total"]].to_dict("records")[1]
{'regime': 'overfitted', 'feature': 'cardiomegaly', 'n_present': 2, 'n_total': 8}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis._checks import check_assessments, check_option
from analysis.agreement import inter_observer, intra_observer
from analysis.formatting import format_count_percent, format_p, render_csv, render_html

__all__ = ["Table2Result", "table2", "feature_order", "mixed_p_sentence", "FEATURE_LABELS", "REGIME_LABELS"]

REGIME_LABELS = {"correct": "Correctly trained model", "overfitted": "Overfitted model"}
FEATURE_LABELS = {
    "cardiomegaly": "Cardiomegaly",
    "pleural_effusion": "Pleural Effusion",
    "airspace_opacity": "Airspace Opacity",
    "no_chf_features": "No CHF features",
    "reduced_body_mass": "Reduced body mass",
}
_READINGS = {1: "First reading", 2: "Second reading"}
_COLUMNS = ("reader", "round", "gvr_id", "regime", "patient_id", "feature", "present")
UNDEFINED = ("raise", "drop")


def feature_order(features: Any) -> list[str]:
    """The paper's order of features (Table 2, then reduced body mass), then any others sorted.

    Examples
    --------
    >>> feature_order(["zebra", "no_chf_features", "cardiomegaly"])
    ['cardiomegaly', 'no_chf_features', 'zebra']
    """
    present = set(features)
    known = [f for f in FEATURE_LABELS if f in present]
    return known + sorted(present - set(known))


def _feature_label(feature: str) -> str:
    return FEATURE_LABELS.get(feature, feature.replace("_", " ").capitalize())


def _reading_label(k: int) -> str:
    return _READINGS.get(int(k), f"Reading {int(k)}")


@dataclass(frozen=True)
class Table2Result:
    """Table 2: reader counts, pooled counts, agreement and mixed-model tests.

    Attributes
    ----------
    counts : pandas.DataFrame
        One row per regime, reader, round and feature: ``regime, reader, round, feature,
        n_present`` (GVRs marked) and ``n_total`` (GVRs read).
    pooled : pandas.DataFrame
        One row per regime and feature, pooled over readers and rounds as the paper: ``regime,
        feature, n_present, n_total, proportion``.
    intra : pandas.DataFrame
        Intraobserver kappa per reader and feature (:func:`analysis.agreement.intra_observer`).
    inter : pandas.DataFrame
        Interobserver kappa per feature and pair of readers
        (:func:`analysis.agreement.inter_observer`).
    mixed : pandas.DataFrame
        One row per feature from :func:`analysis.mixed_models.table2_tests` (regime effect, Wald
        and likelihood-ratio p-values, lme4 warnings) plus ``error`` (why a feature could not be
        fitted, else empty). Empty (with a ``feature`` column only) when ``mixed_models=False``.
    display : pandas.DataFrame
        Strings in the paper's layout: rows (model, reader or "Pooled result"), columns (feature,
        reading); a pooled cell sits under the first reading and spans the feature in HTML.
    caption : str
        The table's caption.
    notes : tuple of str
        Notes under the table: the kappas and p-values, as the paper's note.
    """

    counts: pd.DataFrame = field(repr=False)
    pooled: pd.DataFrame = field(repr=False)
    intra: pd.DataFrame = field(repr=False)
    inter: pd.DataFrame = field(repr=False)
    mixed: pd.DataFrame = field(repr=False)
    display: pd.DataFrame = field(repr=False)
    caption: str
    notes: tuple[str, ...]

    def to_frame(self) -> pd.DataFrame:
        """Return the tidy counts (one row per regime, reader, round and feature)."""
        return self.counts.copy()

    def to_html(self) -> str:
        """The display table as HTML with its caption and notes."""
        return render_html(self.display, caption=self.caption, notes=self.notes, table_id="tbl-table2")

    def to_csv(self) -> str:
        """The display table as CSV text."""
        return render_csv(self.display)


def _check(assessments: Any) -> pd.DataFrame:
    return check_assessments(assessments, needs=_COLUMNS)


def _mixed(assessments: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    from analysis.errors import UndefinedStatisticError
    from analysis.mixed_models import FeatureTermError, GlmerError, feature_tests, formula_for

    records: list[dict[str, Any]] = []
    columns: list[str] = ["feature"]
    formula = formula_for(assessments)
    for feature in features:
        sub = assessments[assessments["feature"] == feature]
        try:
            fitted = feature_tests(sub, formula=formula)
        except (UndefinedStatisticError, FeatureTermError, GlmerError) as exc:  # e.g. one regime, or all alike
            records.append({"feature": feature, "error": str(exc)})
            continue
        columns = list(fitted.columns)
        records += [dict(r, error="") for r in fitted.to_dict("records")]
    return pd.DataFrame(records, columns=[*columns, "error"] if "error" not in columns else columns)


def table2(
    assessments: pd.DataFrame,
    *,
    mixed_models: bool = True,
    undefined: str = "drop",
) -> Table2Result:
    """Tabulate the blinded readers' assessments of GVRs as the paper's Table 2.

    Parameters
    ----------
    assessments : pandas.DataFrame
        The bundle's ``reader_assessments`` table (``reader, round, gvr_id, regime, patient_id,
        feature, present``; ``present`` boolean).
    mixed_models : bool, default True
        Fit the mixed-effects logistic regression per feature
        (:func:`analysis.mixed_models.table2_tests`, which needs R with lme4). With False,
        ``mixed`` is an empty frame and the notes give no p-values.
    undefined : {"drop", "raise"}, default "drop"
        What to do with a kappa that is undefined (a reader gave one answer throughout): leave it
        out (it reads "undefined" in the notes) or raise
        :class:`~analysis.errors.ConstantRaterError`.

    Returns
    -------
    Table2Result
        ``counts, pooled, intra, inter, mixed, display, caption, notes``.

    Raises
    ------
    ValueError
        If a column is missing, ``regime`` has another value, ``present`` is not boolean, rows are
        duplicated, or the table is empty.
    analysis.errors.ConstantRaterError
        If a kappa is undefined and ``undefined="raise"``.

    Notes
    -----
    A feature's count for a reader, reading and model is the number of that model's GVRs the
    reader marked it on, over the number read (the paper: 50 per model). The pooled result adds
    them over readers and readings (the paper: "153/200 (76.5)"). Kappas pool both models' GVRs.
    The mixed model is ``present ~ regime + reader + (1 | patient_id)`` fitted by ``glmer`` per
    feature; a feature that was marked always or never, or seen under one regime only, gets its
    reason in ``mixed.error`` instead of numbers. The notes give the Wald p of the regime effect
    (lme4's ``summary``), or the likelihood-ratio p where the regime separates a feature completely
    (:func:`mixed_p_sentence`); both are in ``mixed``.

    References
    ----------
    .. [1] Cohen J. Educ Psychol Meas 1960;20:37-46. doi:10.1177/001316446002000104
    .. [2] Bates D, Maechler M, Bolker B, Walker S. J Stat Softw 2015;67(1):1-48.
       doi:10.18637/jss.v067.i01
    .. [3] Seah JCY, et al. Radiology 2019;290:514-522. doi:10.1148/radiol.2018180887

    Examples
    --------
    See the module docstring.
    """
    check_option("undefined", undefined, UNDEFINED)
    t = _check(assessments)
    features = feature_order(t["feature"].unique())
    regimes = [r for r in REGIME_LABELS if r in set(t["regime"])]
    readers = sorted(t["reader"].unique())
    rounds = sorted(int(k) for k in t["round"].unique())

    counts = (t.groupby(["regime", "reader", "round", "feature"], sort=False)["present"]
              .agg(n_present="sum", n_total="size").reset_index())
    counts["n_present"] = counts["n_present"].astype(int)
    counts["n_total"] = counts["n_total"].astype(int)
    counts["round"] = counts["round"].astype(int)
    counts["_r"] = counts["regime"].map({r: i for i, r in enumerate(REGIME_LABELS)})
    counts["_f"] = counts["feature"].map({f: i for i, f in enumerate(features)})
    counts = (counts.sort_values(["_r", "reader", "round", "_f"]).drop(columns=["_r", "_f"])
              .reset_index(drop=True))[["regime", "reader", "round", "feature", "n_present", "n_total"]]

    pooled = (counts.groupby(["regime", "feature"], sort=False)[["n_present", "n_total"]].sum().reset_index())
    pooled["proportion"] = pooled["n_present"] / pooled["n_total"]

    intra = intra_observer(t, undefined=undefined) if len(rounds) >= 2 else _empty_intra()
    inter = inter_observer(t, undefined=undefined) if len(readers) >= 2 else _empty_inter()
    mixed = _mixed(t, features) if mixed_models else pd.DataFrame({"feature": pd.Series([], dtype=str)})

    c = counts.set_index(["regime", "reader", "round", "feature"])
    p = pooled.set_index(["regime", "feature"])
    columns = pd.MultiIndex.from_tuples([(_feature_label(f), _reading_label(k)) for f in features for k in rounds],
                                        names=["Feature", "Reading"])
    index, data = [], []
    for regime in regimes:
        for reader in readers:
            index.append((REGIME_LABELS[regime], f"Reader {reader}"))
            data.append([
                f"{c.loc[(regime, reader, k, f), 'n_present']}/{c.loc[(regime, reader, k, f), 'n_total']}"
                if (regime, reader, k, f) in c.index else ""
                for f in features for k in rounds
            ])
        index.append((REGIME_LABELS[regime], "Pooled result"))
        row = []
        for f in features:
            cell = (format_count_percent(int(p.loc[(regime, f), "n_present"]), int(p.loc[(regime, f), "n_total"]),
                                         digits=1) if (regime, f) in p.index else "")
            row += [cell] + [""] * (len(rounds) - 1)
        data.append(row)
    display = pd.DataFrame(data, columns=columns,
                           index=pd.MultiIndex.from_tuples(index, names=["Model", "Reader"]))
    notes = _notes(intra, inter, mixed, features, readers)
    return Table2Result(counts=counts, pooled=pooled, intra=intra, inter=inter, mixed=mixed, display=display,
                        caption="Table 2: Number of Features Identified by Blinded Readers on GVRs", notes=notes)


def mixed_p_sentence(mixed: pd.DataFrame, features: list[str], *, source: str = "",
                     name=None, reasons: bool = False) -> str:
    """One sentence with each feature's P value for the correct versus overfitted difference, from a table of
    :func:`analysis.mixed_models.feature_tests` rows (``feature``, ``p_value``, and where present
    ``lrt_p_value``, ``separation`` and ``error``): the Wald P, or for a feature the regime separates
    completely the likelihood-ratio P, said as such (:func:`analysis.mixed_models.reported_p`). A feature
    without a P value is "not estimable" (with its reason when `reasons`). Empty when `mixed` has no
    ``p_value`` column or none of `features`.

    >>> mixed = pd.DataFrame({"feature": ["cardiomegaly", "pleural_effusion"], "p_value": [0.031, 0.9975],
    ...                       "lrt_p_value": [0.02, 5e-23], "separation": ["", "present in every one of the 80 rows "
    ...                       "with regime 'correct'"]})
    >>> print(mixed_p_sentence(mixed, ["cardiomegaly", "pleural_effusion"]))  # doctest: +NORMALIZE_WHITESPACE
    The P value (mixed-effects logistic regression, Wald) for the correct versus overfitted difference was .03
    for cardiomegaly; for pleural effusion, present in every one of the 80 rows with regime 'correct'
    (complete separation, where the Wald test says nothing), the likelihood-ratio P was <.001.
    """
    from analysis.mixed_models import reported_p

    if "p_value" not in mixed.columns:
        return ""
    name = name or _in_sentence
    wald, lrt = [], []
    for f in features:
        rows = mixed[mixed["feature"] == f]
        if not len(rows):
            continue
        row = rows.iloc[0]
        p, test = reported_p(row)
        if test == "likelihood-ratio":
            lrt.append(f"for {name(f)}, {row['separation']} (complete separation, where the Wald test says "
                       f"nothing), the likelihood-ratio P was {format_p(p)}")
        elif np.isfinite(p):
            wald.append(f"{format_p(p)} for {name(f)}")
        else:
            error = str(row.get("error", "") or "") if reasons else ""
            wald.append(f"not estimable for {name(f)}" + (f" ({error})" if error and error != "nan" else ""))
    if not wald and not lrt:
        return ""
    if wald:
        text = (f"The P value (mixed-effects logistic regression, Wald{source}) for the correct versus overfitted "
                "difference was " + _listed(wald) + ("; " + "; ".join(lrt) if lrt else ""))
    else:
        text = ("The P value (mixed-effects logistic regression) for the correct versus overfitted difference: "
                + "; ".join(lrt))
    return text + "."


def _listed(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + (", and " if len(parts) > 2 else " and ") + parts[-1]


def _empty_intra() -> pd.DataFrame:
    return pd.DataFrame(columns=["reader", "feature", "round_a", "round_b", "kappa", "se", "ci_low", "ci_high",
                                 "n", "level"])


def _empty_inter() -> pd.DataFrame:
    return pd.DataFrame(columns=["feature", "reader_a", "reader_b", "rounds", "kappa", "se", "ci_low", "ci_high",
                                 "n", "level"])


def _in_sentence(feature: str) -> str:
    """A feature's label inside a sentence, acronyms kept: "cardiomegaly", "no CHF features"."""
    return " ".join(w if w.isupper() else w.lower() for w in _feature_label(feature).split())


def _kappas(rows: pd.DataFrame) -> dict[str, str]:
    """Per feature, its kappa with the 95% CI: "0.78 (95% CI: 0.65, 0.90)", or what a CI without width means."""
    return {r.feature: kappa_text(r.kappa, r.se, r.ci_low, r.ci_high, r.level) for r in rows.itertuples()}


def kappa_text(kappa: float, se: float, ci_low: float, ci_high: float, level: float = 0.95) -> str:
    """A kappa with its interval, or, where the asymptotic variance is 0 (Fleiss, Cohen and Everitt 1969, as
    psych's ``cohen.kappa``), why: perfect agreement, or one of the pair giving one answer throughout, when
    kappa is 0 whatever the other answered, so a "95% CI: 0.00, 0.00" would claim a precision the answers do
    not have.

    >>> kappa_text(0.78, 0.06, 0.66, 0.90)
    '0.78 (95% CI: 0.66, 0.90)'
    >>> kappa_text(0.0, 0.0, 0.0, 0.0)
    '0.00 (one of the two gave one answer throughout, so kappa is 0 whatever the other answered; no interval)'
    >>> kappa_text(1.0, 0.0, 1.0, 1.0)
    '1.00 (perfect agreement; the asymptotic interval has no width)'
    """
    # a zero variance comes out as an SE of about 1e-9 (the square root of a 1e-17 residue of O(1) sums); a real
    # one is at least about 1/n, so 1e-6 tells them apart for any number of GVRs read
    if abs(se) < 1e-6 and abs(kappa) < 1e-6:
        return (f"{kappa:z.2f} (one of the two gave one answer throughout, so kappa is 0 whatever the other "
                "answered; no interval)")
    if abs(se) < 1e-6 and abs(kappa - 1) < 1e-6:
        return f"{kappa:z.2f} (perfect agreement; the asymptotic interval has no width)"
    return f"{kappa:z.2f} ({100 * level:g}% CI: {ci_low:z.2f}, {ci_high:z.2f})"


def _kappa_list(values: dict[str, str], features: list[str]) -> str:
    parts = [f"{values[f]} for {_in_sentence(f)}" if f in values
             else f"undefined for {_in_sentence(f)} (the same answer throughout: chance agreement is 1)"
             for f in features]
    return _listed(parts)


def _notes(intra: pd.DataFrame, inter: pd.DataFrame, mixed: pd.DataFrame, features: list[str],
           readers: list[str]) -> tuple[str, ...]:
    notes = ["Note.—Counts are GVRs with the feature over GVRs read; the pooled result adds both readers "
             "and both readings, with percentages in parentheses. CHF = congestive heart failure, "
             "GVR = Generative Visual Rationale."]
    sentences = []
    for reader in readers:
        got = intra[intra["reader"] == reader]
        if len(got):
            sentences.append(f"The intraobserver κ for reader {reader} was "
                             f"{_kappa_list(_kappas(got), features)}.")
    if len(inter) and inter[["reader_a", "reader_b"]].drop_duplicates().shape[0] == 1:
        sentences.append(f"The interobserver κ was {_kappa_list(_kappas(inter), features)}.")
    elif len(inter):
        for (ra, rb), g in inter.groupby(["reader_a", "reader_b"]):
            sentences.append(f"The interobserver κ of readers {ra} and {rb} was "
                             f"{_kappa_list(_kappas(g), features)}.")
    said = mixed_p_sentence(mixed, features)
    if said:
        sentences.append(said + (" With one reader the model has no reader term." if len(readers) == 1 else ""))
    if sentences:
        notes.append(" ".join(sentences))
    return tuple(notes)
