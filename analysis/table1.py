"""Table 1 of the paper: demographics of the test, training and unlabelled sets, with their tests.

Its display goes through :mod:`analysis.formatting`, as every table's does.

Examples
--------
>>> import pandas as pd
>>> patients = pd.DataFrame({"patient_id": ["p1", "p2", "p3", "p4", "p5", "p6"],
...                          "sex": ["F", "M", "F", "M", "F", "M"],
...                          "age_years": [70.0, 80.0, 65.0, 75.0, 40.0, 30.0]})
>>> splits = pd.DataFrame({"image_id": ["i1", "i2", "i3", "i4", "i5", "i6", "i7"],
...                        "patient_id": ["p1", "p2", "p3", "p4", "p5", "p6", "p1"],
...                        "set": ["test", "test", "train", "train", "unlabelled", "unlabelled", "test"]})
>>> pairing = pd.DataFrame({"image_id": ["i1", "i2", "i3", "i4", "i7"], "result_id": ["r1", "r2", "r3", "r4", "r5"],
...                         "hours_apart": 1.0, "bnp_ng_l": [50.0, 400.0, 90.0, 1200.0, 300.0]})
>>> t = table1(patients, splits[["image_id", "patient_id"]], splits, pairing)
>>> t.display.loc["Total no. of radiographs"].tolist()
['3', '2', '2']
>>> t.display.loc["No. of radiographs with BNP < 100 ng/L"].tolist()
['1/3 (33)', '1/2 (50)', '…']
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.contingency import chi_square
from analysis.descriptive import mean_sd, median_iqr
from analysis.formatting import MISSING, format_count_percent, format_p, render_csv, render_html
from analysis.rank_tests import mann_whitney

__all__ = ["Table1Result", "table1"]

#: Sets in the paper's column order, with their column labels.
SET_LABELS = {"test": "Test Set", "train": "Training Set", "unlabelled": "Unlabeled Set"}
DASH = "–"  # en dash of ranges

_TEST_COLUMNS = ["characteristic", "test", "group_a", "group_b", "n_a", "n_b", "statistic", "df",
                 "p_value", "method", "warnings"]


# --------------------------------------------------------------------------------------------------
# result
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table1Result:
    """Table 1: the characteristics of each set and the tests between sets.

    Attributes
    ----------
    values : pandas.DataFrame
        Tidy, one row per number: ``set`` (test, train, unlabelled or all), ``characteristic``
        (radiographs, bnp, bnp_below_threshold, patients, age, female, male), ``statistic`` (n,
        count, proportion, median, q1, q3, mean, sd, min, max) and ``value`` (unrounded float).
    tests : pandas.DataFrame
        One row per test: ``characteristic``, ``test`` (mann_whitney or chi_square), ``group_a``,
        ``group_b`` (set names, joined by "+" when pooled), ``n_a``, ``n_b``,
        ``statistic`` (R's W or X-squared), ``df`` (NaN for Mann-Whitney), ``p_value``, ``method``
        and ``warnings`` (messages the test raised, joined by "; ").
    display : pandas.DataFrame
        The paper's layout, strings: one column per set (Test Set, Training Set, Unlabeled Set),
        rows indexed by characteristic, rounded for display.
    threshold : float
        The BNP cutoff in ng/L.
    caption : str
        The table's caption.
    notes : tuple of str
        The notes printed under the table (test results and footnotes).
    """

    values: pd.DataFrame = field(repr=False)
    tests: pd.DataFrame = field(repr=False)
    display: pd.DataFrame = field(repr=False)
    threshold: float
    caption: str
    notes: tuple[str, ...]

    def to_frame(self) -> pd.DataFrame:
        """Return the tidy long table of values (a table: one row per number, not one row)."""
        return self.values.copy()

    def to_html(self) -> str:
        """The display table as HTML with its caption and notes (see :func:`render_html`)."""
        return render_html(self.display, caption=self.caption, notes=self.notes, table_id="tbl-table1")

    def to_csv(self) -> str:
        """The display table as CSV text (see :func:`render_csv`)."""
        return render_csv(self.display)


# --------------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------------


def _need(frame: Any, name: str, columns: tuple[str, ...]) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame; got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; expected the bundle's {name} table")
    return frame


def _check_inputs(patients, radiographs, splits, pairing) -> None:
    _need(patients, "patients", ("patient_id", "sex", "age_years"))
    _need(radiographs, "radiographs", ("image_id", "patient_id"))
    _need(splits, "splits", ("image_id", "patient_id", "set"))
    _need(pairing, "pairing", ("image_id", "bnp_ng_l"))
    for frame, name, key in ((patients, "patients", "patient_id"), (splits, "splits", "image_id"),
                             (radiographs, "radiographs", "image_id"), (pairing, "pairing", "image_id")):
        repeated = frame[key][frame[key].duplicated()]
        if len(repeated):  # a repeated key would be counted twice by the lookups below
            raise ValueError(f"{name}.{key} must be unique; {len(repeated)} repeat(s), e.g. "
                             f"{sorted(map(str, repeated.unique()))[:3]}")
    for frame, name, column in ((patients, "patients", "age_years"), (pairing, "pairing", "bnp_ng_l")):
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.isna().any():
            key = "patient_id" if name == "patients" else "image_id"
            rows = frame.loc[values.isna(), key]
            raise ValueError(f"{name}.{column} must be a number; {len(rows)} row(s) are missing or not numbers, "
                             f"e.g. {key} {list(map(str, rows))[:3]}")
    unknown_sets = sorted(set(splits["set"].unique()) - set(SET_LABELS))
    if unknown_sets:
        raise ValueError(f"splits.set must be one of {list(SET_LABELS)}; got {unknown_sets}")
    in_splits, in_radiographs = set(splits["image_id"]), set(radiographs["image_id"])
    if in_splits != in_radiographs:
        only_s, only_r = sorted(in_splits - in_radiographs), sorted(in_radiographs - in_splits)
        raise ValueError(
            f"splits and radiographs must list the same radiographs; {len(only_s)} only in splits "
            f"(e.g. {only_s[:3]}), {len(only_r)} only in radiographs (e.g. {only_r[:3]})"
        )
    unknown = sorted(set(splits["patient_id"]) - set(patients["patient_id"]))
    if unknown:
        raise ValueError(f"{len(unknown)} patient(s) of splits are not in patients (e.g. {unknown[:3]})")
    labelled = splits.loc[splits["set"].isin(["train", "test"]), "image_id"]
    unpaired = sorted(set(labelled) - set(pairing["image_id"]))
    if unpaired:
        raise ValueError(
            f"{len(unpaired)} train/test radiograph(s) have no BNP in pairing (e.g. {unpaired[:3]}); "
            "labelled radiographs are those with a paired result"
        )


# --------------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------------


def _caught(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    return result, "; ".join(dict.fromkeys(str(w.message) for w in caught))


def _mw_row(characteristic: str, a_name: str, b_name: str, a: np.ndarray, b: np.ndarray) -> dict | None:
    if a.size == 0 or b.size == 0:
        return None
    res, note = _caught(mann_whitney, a, b)
    return {"characteristic": characteristic, "test": "mann_whitney", "group_a": a_name, "group_b": b_name,
            "n_a": res.n_x, "n_b": res.n_y, "statistic": res.statistic, "df": np.nan, "p_value": res.p_value,
            "method": res.method, "warnings": note}


def _chi_row(groups: dict[str, pd.Series], a_name: str, b_name: str) -> dict | None:
    a, b = groups.values()
    if a.size == 0 or b.size == 0:
        return None
    table = np.array([[int((s == "F").sum()), int((s == "M").sum())] for s in (a, b)])
    if (table.sum(axis=0) == 0).any():
        return None  # one sex only: nothing to test
    res, note = _caught(chi_square, table)
    return {"characteristic": "sex", "test": "chi_square", "group_a": a_name, "group_b": b_name,
            "n_a": int(a.size), "n_b": int(b.size), "statistic": res.statistic, "df": res.df,
            "p_value": res.p_value, "method": res.method, "warnings": note}


# --------------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------------


def table1(
    patients: pd.DataFrame,
    radiographs: pd.DataFrame,
    splits: pd.DataFrame,
    pairing: pd.DataFrame,
    *,
    threshold: float = 100.0,
) -> Table1Result:
    """Demographics of the test, training and unlabelled sets (the paper's Table 1) and their tests.

    Parameters
    ----------
    patients : pandas.DataFrame
        The bundle's ``patients`` table (``patient_id, sex, age_years``).
    radiographs : pandas.DataFrame
        The bundle's ``radiographs`` table; only ``image_id`` and ``patient_id`` are used, to check
        that ``splits`` covers exactly the radiographs.
    splits : pandas.DataFrame
        The bundle's ``splits`` table (``image_id, patient_id, set``).
    pairing : pandas.DataFrame
        The bundle's ``pairing`` table (``image_id, bnp_ng_l``): the BNP of each labelled radiograph.
    threshold : float, default 100.0
        BNP cutoff in ng/L; a radiograph counts as below it when ``bnp_ng_l < threshold``.

    Returns
    -------
    Table1Result
        ``values`` (tidy), ``tests``, ``display`` (paper layout), ``threshold``, ``caption``, ``notes``.

    Raises
    ------
    ValueError
        If a column is missing, a key repeats (``patients.patient_id``, ``image_id`` of ``splits``,
        ``radiographs`` or ``pairing``), an age or BNP is missing, ``splits`` and
        ``radiographs`` list different radiographs, a patient
        is not in ``patients``, a train/test radiograph has no paired BNP, or ``threshold`` is not
        positive.

    Notes
    -----
    Per radiograph: the radiographs of each set, with BNP from ``pairing`` (train and test only; the
    unlabelled set has none, shown as "…" as in the paper). Per patient: the distinct patients
    with a radiograph in the set, with age ``patients.age_years`` (age at the first radiograph) and
    sex. A patient with radiographs in two sets counts in both (in the synthetic cohort and in the
    paper patients belong to one set; train and test never share one).

    Tests, as the note to the paper's Table 1: the Wilcoxon-Mann-Whitney test (R's
    ``wilcox.test`` defaults: exact when both samples are under 50 without ties, else normal with
    continuity correction) of age (per patient) test vs training and labelled (test + training) vs
    unlabelled, and of BNP (per radiograph) test vs training; Pearson's chi-square test (R's
    ``chisq.test``, Yates-corrected for 2 x 2) of sex test vs training and labelled vs unlabelled. Numbers are not rounded except in ``display`` and ``notes``.

    References
    ----------
    .. [1] Mann HB, Whitney DR. On a test of whether one of two random variables is stochastically
       larger than the other. Ann Math Stat 1947;18:50-60. doi:10.1214/aoms/1177730491
    .. [2] Seah JCY, et al. Radiology 2019;290:514-522. doi:10.1148/radiol.2018180887

    Examples
    --------
    See the module docstring.
    """
    threshold = float(threshold)
    if not np.isfinite(threshold) or threshold <= 0:
        raise ValueError(f"threshold must be a positive BNP in ng/L (e.g. 100.0); got {threshold!r}")
    _check_inputs(patients, radiographs, splits, pairing)
    person = patients.set_index("patient_id")
    bnp = pairing.set_index("image_id")["bnp_ng_l"]

    rows: list[tuple[str, str, str, float]] = []
    ages: dict[str, np.ndarray] = {}
    sexes: dict[str, pd.Series] = {}
    bnps: dict[str, np.ndarray] = {}
    for name in SET_LABELS:
        images = splits[splits["set"] == name]
        pats = pd.unique(images["patient_id"])
        rows.append((name, "radiographs", "n", float(len(images))))
        if name != "unlabelled":
            values = bnp.loc[images["image_id"]].to_numpy(dtype=float)
            bnps[name] = values
            if values.size:
                m = median_iqr(values)
                rows += [(name, "bnp", "n", float(m.n)), (name, "bnp", "median", m.median),
                         (name, "bnp", "q1", m.q1), (name, "bnp", "q3", m.q3)]
                below = int((values < threshold).sum())
                rows += [(name, "bnp_below_threshold", "count", float(below)),
                         (name, "bnp_below_threshold", "n", float(values.size)),
                         (name, "bnp_below_threshold", "proportion", below / values.size)]
        rows.append((name, "patients", "n", float(len(pats))))
        age = person.loc[pats, "age_years"].to_numpy(dtype=float)
        sex = person.loc[pats, "sex"]
        ages[name], sexes[name] = age, sex
        if age.size >= 2:
            ms = mean_sd(age)
            rows += [(name, "age", "n", float(ms.n)), (name, "age", "mean", ms.mean), (name, "age", "sd", ms.sd)]
        if age.size:
            rows += [(name, "age", "min", float(age.min())), (name, "age", "max", float(age.max()))]
        for code, label in (("F", "female"), ("M", "male")):
            count = int((sex == code).sum())
            rows += [(name, label, "count", float(count)), (name, label, "n", float(sex.size))]
            if sex.size:
                rows.append((name, label, "proportion", count / sex.size))
    rows.append(("all", "radiographs", "n", float(len(splits))))
    rows.append(("all", "patients", "n", float(splits["patient_id"].nunique())))
    values = pd.DataFrame(rows, columns=["set", "characteristic", "statistic", "value"])

    labelled_age = np.concatenate([ages["test"], ages["train"]])
    tests = [
        _mw_row("age", "test", "train", ages["test"], ages["train"]),
        _mw_row("age", "test+train", "unlabelled", labelled_age, ages["unlabelled"]),
        _mw_row("bnp", "test", "train", bnps["test"], bnps["train"]),
        _chi_row({"test": sexes["test"], "train": sexes["train"]}, "test", "train"),
        _chi_row({"labelled": pd.concat([sexes["test"], sexes["train"]]), "unlabelled": sexes["unlabelled"]},
                 "test+train", "unlabelled"),
    ]
    test_frame = pd.DataFrame([t for t in tests if t is not None], columns=_TEST_COLUMNS)
    display = _display(values, threshold)
    notes = _notes(test_frame, threshold)
    return Table1Result(values=values, tests=test_frame, display=display, threshold=threshold,
                        caption="Table 1: Demographics of the Data Sets", notes=notes)


def _display(values: pd.DataFrame, threshold: float) -> pd.DataFrame:
    v = values.set_index(["set", "characteristic", "statistic"])["value"]

    def get(s: str, c: str, st: str) -> float | None:
        return float(v[(s, c, st)]) if (s, c, st) in v.index else None

    def cell(s: str, kind: str) -> str:
        if kind == "radiographs" or kind == "patients":
            return f"{int(get(s, kind, 'n'))}"
        if kind == "bnp":
            med = get(s, "bnp", "median")
            return MISSING if med is None else f"{med:.0f} ({get(s, 'bnp', 'q1'):.0f}{DASH}{get(s, 'bnp', 'q3'):.0f})"
        if kind in ("bnp_below_threshold", "female", "male"):
            n = get(s, kind, "n")
            return MISSING if not n else format_count_percent(int(get(s, kind, "count")), int(n))
        if kind == "age":
            mean = get(s, "age", "mean")
            return MISSING if mean is None else f"{mean:.0f} ({get(s, 'age', 'sd'):.0f})"
        if kind == "age_range":
            lo = get(s, "age", "min")
            return MISSING if lo is None else f"{lo:.0f}{DASH}{get(s, 'age', 'max'):.0f}"
        raise KeyError(kind)

    cut = f"{threshold:g}"
    layout = [
        (f"Per radiograph ({int(get('all', 'radiographs', 'n'))} total radiographs)", None),
        ("Total no. of radiographs", "radiographs"),
        ("Median BNP (ng/L)*", "bnp"),
        (f"No. of radiographs with BNP < {cut} ng/L", "bnp_below_threshold"),
        (f"Per patient ({int(get('all', 'patients', 'n'))} unique patients)", None),
        ("Total no. of patients", "patients"),
        ("Mean age (SD) (y)", "age"),
        ("Age range (y)", "age_range"),
        ("No. of female patients", "female"),
        ("No. of male patients", "male"),
    ]
    data = {label: [("" if kind is None else cell(s, kind)) for s in SET_LABELS] for label, kind in layout}
    out = pd.DataFrame.from_dict(data, orient="index", columns=list(SET_LABELS.values()))
    out.index.name = "Characteristic"
    return out


_TEST_WORDS = {
    ("age", "test", "train"): "age, test vs training set",
    ("age", "test+train", "unlabelled"): "age, labeled (test and training) vs unlabeled set",
    ("bnp", "test", "train"): "BNP, test vs training set",
    ("sex", "test", "train"): "sex, test vs training set",
    ("sex", "test+train", "unlabelled"): "sex, labeled vs unlabeled set",
}


def _notes(tests: pd.DataFrame, threshold: float) -> tuple[str, ...]:
    parts = []
    for row in tests.itertuples(index=False):
        what = _TEST_WORDS.get((row.characteristic, row.group_a, row.group_b),
                               f"{row.characteristic}, {row.group_a} vs {row.group_b}")
        kind = "Mann-Whitney U test" if row.test == "mann_whitney" else "chi-square test"
        p = format_p(row.p_value)
        parts.append(f"{kind} of {what}: P {p[0] + ' ' + p[1:] if p[0] in '<>' else '= ' + p}")
    notes = []
    if parts:
        notes.append("Note.—" + "; ".join(parts) + ".")
    notes += [
        "Each patient may have more than one radiograph; the test and training sets are separated at "
        "the patient level.",
        "* Data in parentheses are interquartile ranges; BNP = B-type natriuretic peptide.",
        "Counts are n/N with percentages in parentheses; SD = standard deviation.",
    ]
    return tuple(notes)


# --------------------------------------------------------------------------------------------------
# renderers shared by the tables
# --------------------------------------------------------------------------------------------------
