"""analysis.agreement against psych 2.2.9 (tests/analysis/r/agreement_reference.R) and invariances."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.agreement import cohen_kappa, inter_observer, intra_observer
from analysis.errors import ConstantRaterError
from tests.analysis.oracle import data, expected

EXP = expected("agreement")
RATINGS = {case: (g["a"].to_numpy(), g["b"].to_numpy()) for case, g in data("kappa_cases").groupby("case")}


def test_oracle_records_versions():
    assert EXP["meta"]["psych_version"] == "2.2.9"


@pytest.mark.parametrize("tag", sorted(EXP["kappa"]))
@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_kappa_matches_psych(tag, weights):
    ref = EXP["kappa"][tag]
    a, b = RATINGS[ref["case"]]
    r = ref["none" if weights is None else weights]
    res = cohen_kappa(a, b, weights=weights, level=ref["level"])
    assert res.n == ref["n"]
    assert res.kappa == pytest.approx(r["kappa"], abs=1e-9)
    assert res.se == pytest.approx(r["se"], abs=1e-9)
    assert res.ci_low == pytest.approx(r["low"], abs=1e-9)
    assert res.ci_high == pytest.approx(r["high"], abs=1e-9)


@pytest.mark.parametrize("case", sorted(RATINGS))
@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_kappa_is_symmetric_in_raters(case, weights):
    a, b = RATINGS[case]
    ab, ba = cohen_kappa(a, b, weights=weights), cohen_kappa(b, a, weights=weights)
    assert ab.kappa == pytest.approx(ba.kappa, abs=1e-12)
    if weights is None or len(set(a) | set(b)) == 2:  # psych's weighted SE is not symmetric (see Notes)
        assert ab.se == pytest.approx(ba.se, abs=1e-12)


def test_unweighted_kappa_matches_statsmodels_and_labels_do_not_matter():
    from statsmodels.stats.inter_rater import cohens_kappa as sm_kappa

    a, b = RATINGS["nominal3"]
    k = cohen_kappa(a, b)
    table = pd.crosstab(a, b).to_numpy()
    sm = sm_kappa(table)
    assert k.kappa == pytest.approx(sm.kappa, abs=1e-12)
    assert k.se == pytest.approx(np.sqrt(sm.var_kappa), abs=1e-12)
    names = np.array(["x", "y", "z"])
    assert cohen_kappa(names[a - 1], names[b - 1]).kappa == pytest.approx(k.kappa, abs=1e-12)


def test_binary_weights_equal_unweighted():
    a, b = RATINGS["binary"]
    k = cohen_kappa(a, b)
    for w in ("linear", "quadratic"):
        assert cohen_kappa(a, b, weights=w).kappa == pytest.approx(k.kappa, abs=1e-12)


def test_booleans_and_categories():
    a = [True, False, True, True]
    b = [True, False, False, True]
    assert cohen_kappa(a, b).kappa == pytest.approx(cohen_kappa([1, 0, 1, 1], [1, 0, 0, 1]).kappa)
    # an explicit order changes weighted kappa but not the unweighted one
    x, y = [1, 2, 3, 3, 2], [1, 3, 3, 2, 2]
    assert cohen_kappa(x, y, categories=[3, 1, 2]).kappa == pytest.approx(cohen_kappa(x, y).kappa)
    with pytest.raises(ValueError, match="not among categories"):
        cohen_kappa(x, y, categories=[1, 2])


def test_constant_raters_raise():
    with pytest.raises(ConstantRaterError, match="same rating"):
        cohen_kappa([1, 1, 1], [1, 1, 1])
    with pytest.raises(ConstantRaterError):
        cohen_kappa([True] * 5, [True] * 5, weights="linear")


def test_one_constant_rater_gives_zero_as_psych():
    a, b = RATINGS["one_constant"]
    assert cohen_kappa(a, b).kappa == 0.0


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "match"),
    [
        ([1, 2], [1], {}, "same subjects"),
        ([1, None], [1, 2], {}, "missing"),
        ([1.0, np.nan], [1, 2], {}, "missing"),
        ([1, 2], [1, 2], {"weights": "cubic"}, r"weights must be one of None, 'linear', 'quadratic'; got 'cubic'"),
        ([], [], {}, "no ratings"),
    ],
)
def test_bad_inputs(a, b, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cohen_kappa(a, b, **kwargs)


def test_to_frame():
    f = cohen_kappa([1, 0, 1, 0], [1, 0, 0, 0]).to_frame()
    assert f.shape[0] == 1 and {"kappa", "se", "ci_low", "ci_high", "n", "weights", "level"} <= set(f.columns)


# ---------------------------------------------------------------- study helpers


def _assessments(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    gvrs = [(f"g{i}", "correct" if i < 10 else "overfitted", f"p{i}") for i in range(20)]
    truth = {(g, f): rng.random() < 0.5 for g, _, _ in gvrs for f in ("cardiomegaly", "pleural_effusion")}
    for reader, noise in (("A", 0.2), ("B", 0.1)):
        for rnd in (1, 2):
            for g, regime, patient in gvrs:
                for f in ("cardiomegaly", "pleural_effusion"):
                    present = truth[(g, f)] ^ (rng.random() < noise)
                    rows.append((reader, rnd, g, regime, patient, f, bool(present), True))
    cols = ["reader", "round", "gvr_id", "regime", "patient_id", "feature", "present", "simulated"]
    return pd.DataFrame(rows, columns=cols)


def test_intra_observer_equals_cohen_kappa_of_the_two_rounds():
    t = _assessments()
    out = intra_observer(t)
    assert list(out[["reader", "feature"]].itertuples(index=False, name=None)) == [
        ("A", "cardiomegaly"), ("A", "pleural_effusion"), ("B", "cardiomegaly"), ("B", "pleural_effusion")]
    sel = t[(t.reader == "B") & (t.feature == "pleural_effusion")]
    r1 = sel[sel["round"] == 1].sort_values("gvr_id")["present"].to_numpy()
    r2 = sel[sel["round"] == 2].sort_values("gvr_id")["present"].to_numpy()
    row = out[(out.reader == "B") & (out.feature == "pleural_effusion")].iloc[0]
    assert row["kappa"] == pytest.approx(cohen_kappa(r1, r2).kappa)
    assert row["n"] == 20  # pooled over both regimes


def test_inter_observer_pools_rounds_by_default():
    t = _assessments(1)
    out = inter_observer(t)
    assert set(out["feature"]) == {"cardiomegaly", "pleural_effusion"}
    assert (out["n"] == 40).all() and (out["rounds"] == "1,2").all()
    sel = t[t.feature == "cardiomegaly"].sort_values(["round", "gvr_id"])
    a = sel[sel.reader == "A"]["present"].to_numpy()
    b = sel[sel.reader == "B"]["present"].to_numpy()
    assert out[out.feature == "cardiomegaly"]["kappa"].iloc[0] == pytest.approx(cohen_kappa(a, b).kappa)
    first = inter_observer(t, rounds=1)
    assert (first["n"] == 20).all() and (first["rounds"] == "1").all()


def test_helpers_handle_undefined_kappas():
    t = _assessments(2)
    t.loc[(t.reader == "A") & (t.feature == "cardiomegaly"), "present"] = False
    with pytest.raises(ConstantRaterError):
        intra_observer(t)
    out = intra_observer(t, undefined="drop")
    assert ("A", "cardiomegaly") not in set(zip(out.reader, out.feature))
    with pytest.raises(ValueError, match="undefined must be one of"):
        intra_observer(t, undefined="nan")


def test_helpers_check_the_table():
    t = _assessments()
    with pytest.raises(ValueError, match="lacks column"):
        intra_observer(t.drop(columns="present"))
    with pytest.raises(ValueError, match="duplicated"):
        inter_observer(pd.concat([t, t.iloc[:1]]))
    with pytest.raises(ValueError, match="two readers"):
        inter_observer(t[t.reader == "A"])
    with pytest.raises(ValueError, match="need two"):
        intra_observer(t[t["round"] == 1])
