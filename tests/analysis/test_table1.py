"""Table 1: values against direct pandas computation, tests against analysis' tested functions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.contingency import chi_square
from analysis.rank_tests import mann_whitney
from analysis.formatting import format_count_percent, format_p, render_csv, render_html
from analysis.table1 import table1


def _cohort(seed: int = 0):
    rng = np.random.default_rng(seed)
    n_pat = 120
    sets = np.array(["test"] * 20 + ["train"] * 50 + ["unlabelled"] * 50)
    patients = pd.DataFrame({
        "patient_id": [f"p{i:03d}" for i in range(n_pat)],
        "sex": rng.choice(["F", "M"], n_pat),
        "age_years": np.round(np.where(sets == "unlabelled", rng.normal(57, 20, n_pat),
                                       rng.normal(74, 15, n_pat)).clip(0, 110), 2),
    })
    per = rng.integers(1, 4, n_pat)
    pid = np.repeat(patients["patient_id"].to_numpy(), per)
    pset = np.repeat(sets, per)
    images = [f"i{i:04d}" for i in range(pid.size)]
    splits = pd.DataFrame({"image_id": images, "patient_id": pid, "set": pset})
    radiographs = splits[["image_id", "patient_id"]].copy()
    lab = splits[splits["set"] != "unlabelled"]
    pairing = pd.DataFrame({"image_id": lab["image_id"].to_numpy(), "result_id": [f"r{i}" for i in range(len(lab))],
                            "hours_apart": 2.0, "bnp_ng_l": np.round(np.exp(rng.normal(5.8, 1.2, len(lab))))})
    return patients, radiographs, splits, pairing


@pytest.fixture(scope="module")
def data():
    return _cohort()


@pytest.fixture(scope="module")
def result(data):
    return table1(*data)


def _value(result, s, c, st):
    v = result.values
    hit = v[(v["set"] == s) & (v["characteristic"] == c) & (v["statistic"] == st)]
    assert len(hit) == 1, (s, c, st)
    return float(hit["value"].iloc[0])


def test_values_match_direct_pandas(data, result):
    patients, _, splits, pairing = data
    for s in ("test", "train", "unlabelled"):
        img = splits[splits["set"] == s]
        assert _value(result, s, "radiographs", "n") == len(img)
        pats = patients[patients["patient_id"].isin(img["patient_id"])]
        assert _value(result, s, "patients", "n") == len(pats)
        assert _value(result, s, "age", "mean") == pytest.approx(pats["age_years"].mean(), rel=1e-12)
        assert _value(result, s, "age", "sd") == pytest.approx(pats["age_years"].std(ddof=1), rel=1e-12)
        assert _value(result, s, "age", "min") == pats["age_years"].min()
        assert _value(result, s, "age", "max") == pats["age_years"].max()
        assert _value(result, s, "female", "count") == (pats["sex"] == "F").sum()
        assert _value(result, s, "male", "count") == (pats["sex"] == "M").sum()
        if s != "unlabelled":
            b = pairing.set_index("image_id").loc[img["image_id"], "bnp_ng_l"]
            assert _value(result, s, "bnp", "median") == pytest.approx(b.median(), rel=1e-12)
            assert _value(result, s, "bnp", "q1") == pytest.approx(b.quantile(0.25), rel=1e-12)
            assert _value(result, s, "bnp", "q3") == pytest.approx(b.quantile(0.75), rel=1e-12)
            assert _value(result, s, "bnp_below_threshold", "count") == (b < 100).sum()
    assert not ((result.values["set"] == "unlabelled") & (result.values["characteristic"] == "bnp")).any()
    assert _value(result, "all", "patients", "n") == splits["patient_id"].nunique()


def test_tests_equal_the_statistics_modules(data, result):
    patients, _, splits, pairing = data
    person = patients.set_index("patient_id")

    def ages(sets):
        return person.loc[pd.unique(splits[splits["set"].isin(sets)]["patient_id"]), "age_years"].to_numpy()

    t = result.tests.set_index(["characteristic", "group_a", "group_b"])
    mw = mann_whitney(ages(["test"]), ages(["train"]))
    assert t.loc[("age", "test", "train"), "p_value"] == mw.p_value
    assert t.loc[("age", "test", "train"), "statistic"] == mw.statistic
    mw = mann_whitney(np.concatenate([ages(["test"]), ages(["train"])]), ages(["unlabelled"]))
    assert t.loc[("age", "test+train", "unlabelled"), "p_value"] == mw.p_value
    bnp = pairing.set_index("image_id")["bnp_ng_l"]
    mw = mann_whitney(bnp.loc[splits[splits["set"] == "test"]["image_id"]].to_numpy(),
                      bnp.loc[splits[splits["set"] == "train"]["image_id"]].to_numpy())
    assert t.loc[("bnp", "test", "train"), "p_value"] == mw.p_value
    sex = lambda sets: person.loc[pd.unique(splits[splits["set"].isin(sets)]["patient_id"]), "sex"]  # noqa: E731
    tab = [[(sex(["test"]) == "F").sum(), (sex(["test"]) == "M").sum()],
           [(sex(["train"]) == "F").sum(), (sex(["train"]) == "M").sum()]]
    assert t.loc[("sex", "test", "train"), "p_value"] == chi_square(tab).p_value
    assert t.loc[("sex", "test", "train"), "df"] == 1
    assert len(result.tests) == 5


def test_display_layout_and_strings(data, result):
    d = result.display
    assert list(d.columns) == ["Test Set", "Training Set", "Unlabeled Set"]
    assert d.loc["Median BNP (ng/L)*", "Unlabeled Set"] == "…"
    n = int(_value(result, "test", "radiographs", "n"))
    below = int(_value(result, "test", "bnp_below_threshold", "count"))
    assert d.loc["No. of radiographs with BNP < 100 ng/L", "Test Set"] == f"{below}/{n} ({100 * below / n:.0f})"
    assert d.loc["Mean age (SD) (y)", "Training Set"] == (
        f"{_value(result, 'train', 'age', 'mean'):.0f} ({_value(result, 'train', 'age', 'sd'):.0f})")
    assert d.index[0].startswith(f"Per radiograph ({len(data[2])} total")


def test_threshold_moves_the_count(data):
    low = table1(*data, threshold=50.0)
    assert "No. of radiographs with BNP < 50 ng/L" in low.display.index
    b = data[3]["bnp_ng_l"]
    total = sum(_value(low, s, "bnp_below_threshold", "count") for s in ("test", "train"))
    assert total == (b < 50).sum()


def test_renderers(result):
    text = result.to_html()
    assert text.startswith('<table class="gvr-table" id="tbl-table1"><caption>Table 1')
    assert "BNP &lt; 100" in text and "Note.—Mann-Whitney" in text
    assert text.count("<tr>") == len(result.display) + 2  # header, rows, footer
    csv = pd.read_csv(pd.io.common.StringIO(result.to_csv()), keep_default_na=False, index_col=0)
    assert csv.equals(result.display.rename_axis("Characteristic"))


def test_render_html_spans_pooled_cells():
    cols = pd.MultiIndex.from_tuples([("X", "1"), ("X", "2"), ("Y", "1"), ("Y", "2")])
    d = pd.DataFrame([["a", "", "b", "c"]], columns=cols, index=["r"])
    text = render_html(d, caption="c & d", notes=["n<1"])
    assert '<td colspan="2" style="text-align: center">a</td><td>b</td><td>c</td>' in text
    assert "c &amp; d" in text and "n&lt;1" in text
    assert render_csv(d).splitlines()[0] == ",X - 1,X - 2,Y - 1,Y - 2"


def test_formatters():
    assert format_count_percent(153, 200, digits=1) == "153/200 (76.5)"
    assert format_count_percent(40, 200, digits=1) == "40/200 (20)"
    assert format_count_percent(301, 1518) == "301/1518 (20)"
    assert [format_p(p) for p in (0.0009, 0.003, 0.381, 0.05)] == ["<.001", ".003", ".38", ".05"]


def test_errors(data):
    patients, radiographs, splits, pairing = data
    with pytest.raises(ValueError, match="no BNP in pairing"):
        table1(patients, radiographs, splits, pairing.iloc[1:])
    with pytest.raises(ValueError, match="same radiographs"):
        table1(patients, radiographs.iloc[1:], splits, pairing)
    with pytest.raises(ValueError, match="not in patients"):
        table1(patients.iloc[1:], radiographs, splits, pairing)
    with pytest.raises(ValueError, match="threshold must be a positive"):
        table1(*data, threshold=0)
    with pytest.raises(ValueError, match="lacks column"):
        table1(patients.drop(columns="sex"), radiographs, splits, pairing)


def test_repeated_keys_and_missing_values_are_refused_naming_them(data):
    # A repeated key used to be counted twice by the lookups (2 radiographs, "2/3" below the cutoff).
    patients, radiographs, splits, pairing = data
    first = pairing["image_id"].iloc[0]
    with pytest.raises(ValueError, match=rf"pairing.image_id must be unique; 1 repeat\(s\), e.g. \['{first}'\]"):
        table1(patients, radiographs, splits, pd.concat([pairing, pairing.iloc[:1]]))
    with pytest.raises(ValueError, match=r"patients.patient_id must be unique"):
        table1(pd.concat([patients, patients.iloc[:1]]), radiographs, splits, pairing)
    with pytest.raises(ValueError, match=r"splits.image_id must be unique"):
        table1(patients, radiographs, pd.concat([splits, splits.iloc[:1]]), pairing)
    missing = patients.copy()
    missing.loc[missing.index[2], "age_years"] = np.nan
    with pytest.raises(ValueError, match=rf"patients.age_years must be a number; 1 row\(s\).*"
                                         rf"patient_id \['{missing['patient_id'].iloc[2]}'\]"):
        table1(missing, radiographs, splits, pairing)


def test_percentages_round_half_up_in_every_row():
    # 890/2000 is 44.5 % and 91/200 45.5 %: binary floating point printed them as 44 and 46
    assert [format_count_percent(c, n) for c, n in ((890, 2000), (91, 200), (1, 3))] == [
        "890/2000 (45)", "91/200 (46)", "1/3 (33)"]


def test_a_complete_separation_says_so_instead_of_a_zero_width_interval():
    from analysis.formatting import fmt_ci
    from analysis.roc import auc

    separated = auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], ci="delong")
    assert fmt_ci(separated) == "1.00 (cases and controls completely separated: DeLong's interval has no width)"
    assert fmt_ci(auc([0, 1, 0, 1], [0.1, 0.2, 0.8, 0.9], ci="delong")).startswith("0.75 (95% CI: ")
