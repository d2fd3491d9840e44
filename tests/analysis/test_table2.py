"""Table 2: counts against direct pandas computation, kappas against analysis.agreement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.agreement import cohen_kappa, inter_observer, intra_observer
from analysis.table2 import feature_order, table2

FEATURES = ["cardiomegaly", "pleural_effusion", "airspace_opacity", "no_chf_features"]
P_CORRECT = {"cardiomegaly": 0.75, "pleural_effusion": 0.25, "airspace_opacity": 0.18, "no_chf_features": 0.2}
P_OVER = {"cardiomegaly": 0.3, "pleural_effusion": 0.08, "airspace_opacity": 0.06, "no_chf_features": 0.6}


def synthetic_assessments(seed: int = 7) -> pd.DataFrame:
    """2 readers x 2 rounds x 100 GVRs (50 per regime) x 4 features, round 2 repeating round 1 mostly."""
    rng = np.random.default_rng(seed)
    gvrs = pd.DataFrame({"gvr_id": [f"g{i:03d}" for i in range(100)],
                         "regime": ["correct"] * 50 + ["overfitted"] * 50,
                         "patient_id": [f"p{i:02d}" for i in rng.integers(0, 70, 100)]})
    rows = []
    for reader, keep in (("A", 0.8), ("B", 0.9)):
        for feature in FEATURES:
            p = np.where(gvrs["regime"] == "correct", P_CORRECT[feature], P_OVER[feature])
            first = rng.random(100) < p
            second = np.where(rng.random(100) < keep, first, rng.random(100) < p)
            for k, answers in ((1, first), (2, second)):
                rows.append(gvrs.assign(reader=reader, round=k, feature=feature, present=answers.astype(bool)))
    df = pd.concat(rows, ignore_index=True)
    df["simulated"] = True
    return df[["reader", "round", "gvr_id", "regime", "patient_id", "feature", "present", "simulated"]]


@pytest.fixture(scope="module")
def assessments():
    return synthetic_assessments()


@pytest.fixture(scope="module")
def result(assessments):
    return table2(assessments, mixed_models=False)


def test_counts_match_pandas(assessments, result):
    for (regime, reader, k, feature), g in assessments.groupby(["regime", "reader", "round", "feature"]):
        row = result.counts[(result.counts["regime"] == regime) & (result.counts["reader"] == reader)
                            & (result.counts["round"] == k) & (result.counts["feature"] == feature)]
        assert len(row) == 1
        assert row["n_present"].iloc[0] == g["present"].sum()
        assert row["n_total"].iloc[0] == len(g) == 50
    assert len(result.counts) == 2 * 2 * 2 * 4


def test_pooled_match_pandas(assessments, result):
    for (regime, feature), g in assessments.groupby(["regime", "feature"]):
        row = result.pooled[(result.pooled["regime"] == regime) & (result.pooled["feature"] == feature)].iloc[0]
        assert (row["n_present"], row["n_total"]) == (g["present"].sum(), 200)
        assert row["proportion"] == g["present"].sum() / 200


def test_kappas_are_analysis_agreement(assessments, result):
    pd.testing.assert_frame_equal(result.intra, intra_observer(assessments))
    pd.testing.assert_frame_equal(result.inter, inter_observer(assessments))
    a = assessments[(assessments["reader"] == "A") & (assessments["feature"] == "cardiomegaly")]
    k = cohen_kappa(a[a["round"] == 1].sort_values("gvr_id")["present"].to_numpy(),
                    a[a["round"] == 2].sort_values("gvr_id")["present"].to_numpy()).kappa
    got = result.intra[(result.intra["reader"] == "A") & (result.intra["feature"] == "cardiomegaly")]["kappa"]
    assert got.iloc[0] == pytest.approx(k, abs=1e-15)


def test_display_layout(assessments, result):
    d = result.display
    assert d.index.tolist() == [("Correctly trained model", "Reader A"), ("Correctly trained model", "Reader B"),
                                ("Correctly trained model", "Pooled result"), ("Overfitted model", "Reader A"),
                                ("Overfitted model", "Reader B"), ("Overfitted model", "Pooled result")]
    assert d.columns.get_level_values(0).unique().tolist() == ["Cardiomegaly", "Pleural Effusion",
                                                               "Airspace Opacity", "No CHF features"]
    g = assessments[(assessments["regime"] == "overfitted") & (assessments["reader"] == "B")
                    & (assessments["round"] == 2) & (assessments["feature"] == "pleural_effusion")]
    assert d.loc[("Overfitted model", "Reader B"), ("Pleural Effusion", "Second reading")] == f"{g['present'].sum()}/50"
    n = assessments[(assessments["regime"] == "correct") & (assessments["feature"] == "cardiomegaly")]["present"].sum()
    pct = f"{100 * n / 200:.1f}".rstrip("0").rstrip(".")
    assert d.loc[("Correctly trained model", "Pooled result"), ("Cardiomegaly", "First reading")] == f"{n}/200 ({pct})"
    assert d.loc[("Correctly trained model", "Pooled result"), ("Cardiomegaly", "Second reading")] == ""
    text = result.to_html()
    assert 'id="tbl-table2"' in text and f'<td colspan="2" style="text-align: center">{n}/200 ({pct})</td>' in text
    kA = result.intra.set_index(["reader", "feature"]).loc[("A", "cardiomegaly"), "kappa"]
    assert f"The intraobserver κ for reader A was {kA:.2f} (95% CI: " in result.notes[1] and "for no CHF features" in result.notes[1]
    assert result.to_csv().splitlines()[0].startswith("Model,Reader,Cardiomegaly - First reading")
    assert list(result.mixed.columns) == ["feature"] and result.mixed.empty


def test_undefined_kappa_dropped_or_raised(assessments):
    const = assessments.copy()
    mask = (const["reader"] == "A") & (const["feature"] == "airspace_opacity")
    const.loc[mask, "present"] = False
    t = table2(const, mixed_models=False)
    assert not ((t.intra["reader"] == "A") & (t.intra["feature"] == "airspace_opacity")).any()
    assert "undefined for airspace opacity (the same answer throughout: chance agreement is 1)" in t.notes[1]
    from analysis.errors import ConstantRaterError

    with pytest.raises(ConstantRaterError):
        table2(const, mixed_models=False, undefined="raise")


def test_errors(assessments):
    with pytest.raises(ValueError, match="lacks column"):
        table2(assessments.drop(columns="present"), mixed_models=False)
    with pytest.raises(ValueError, match="must be boolean"):
        table2(assessments.assign(present=assessments["present"].astype(int)), mixed_models=False)
    with pytest.raises(ValueError, match="duplicated"):
        table2(pd.concat([assessments, assessments.iloc[:1]]), mixed_models=False)
    with pytest.raises(ValueError, match="undefined must be one of"):
        table2(assessments, mixed_models=False, undefined="ignore")


def test_feature_order():
    assert feature_order(["no_chf_features", "x_new", "airspace_opacity", "cardiomegaly"]) == [
        "cardiomegaly", "airspace_opacity", "no_chf_features", "x_new"]


from analysis import mixed_models  # noqa: E402


@pytest.mark.r
@pytest.mark.filterwarnings("ignore::UserWarning")  # lme4 convergence notes; they are kept in mixed.warnings
def test_mixed_models_are_feature_tests(assessments):
    t = table2(assessments, mixed_models=True)
    direct = mixed_models.feature_tests(assessments)
    got = t.mixed.set_index("feature").loc[direct["feature"]].reset_index()
    pd.testing.assert_frame_equal(got.drop(columns="error"), direct, check_exact=False, rtol=1e-10)
    assert (got["error"] == "").all()
    p = float(direct.loc[direct["feature"] == "cardiomegaly", "p_value"].iloc[0])
    from analysis.formatting import format_p

    assert f"{format_p(p)} for cardiomegaly" in t.notes[1]


@pytest.mark.r
@pytest.mark.filterwarnings("ignore::UserWarning")  # the separation's GlmerFitWarning; the note is what is checked
def test_a_feature_one_model_always_shows_gets_the_likelihood_ratio_p_not_the_walds(assessments):
    """Effusion ticked on every reading of the correct model's GVRs: lme4's estimate runs off, and its Wald P is
    whatever the curvature where the optimiser stopped gives (>.99 in a review's example, beside a 100 % against
    36 % difference; .002 here). The note gives the likelihood-ratio P and says why."""
    sep = assessments.copy()
    sep.loc[(sep["feature"] == "pleural_effusion") & (sep["regime"] == "correct"), "present"] = True
    t = table2(sep, mixed_models=True)
    row = t.mixed.set_index("feature").loc["pleural_effusion"]
    assert row["lrt_p_value"] < 1e-6 and row["odds_ratio"] > 1e3  # the estimate runs off
    assert row["separation"].startswith("present in every one of the 200 rows with regime 'correct'")
    assert "for pleural effusion, present in every one of the 200 rows" in t.notes[1]
    assert "the likelihood-ratio P was <.001" in t.notes[1]
    from analysis.formatting import format_p

    assert f"{format_p(row['p_value'])} for pleural effusion" not in t.notes[1]
    assert f"{format_p(t.mixed.set_index('feature').loc['cardiomegaly', 'p_value'])} for cardiomegaly" in t.notes[1]
    cardio = t.mixed.set_index("feature").loc["cardiomegaly"]
    assert cardio["separation"] == "" and mixed_models.reported_p(cardio) == (cardio["p_value"], "Wald")


@pytest.mark.r
def test_mixed_model_of_a_constant_feature_gives_its_reason(assessments):
    one = assessments[assessments["feature"] == "cardiomegaly"].assign(feature="reduced_body_mass", present=False)
    t = table2(one, mixed_models=True)
    assert t.mixed["feature"].tolist() == ["reduced_body_mass"]
    assert "reduced_body_mass" in t.mixed.loc[0, "error"]


def test_the_statistics_share_one_check_of_the_assessments_table(assessments):
    """agreement, table2 and the mixed models read the reader-assessments table through one check,
    whose columns and key are data_schema's: the same bad table gets the same message from each."""
    from analysis import agreement
    from analysis._checks import check_assessments
    from analysis.mixed_models import table2_tests as ft

    bad = assessments.assign(regime="underfitted")
    messages = set()
    for check in (lambda d: check_assessments(d, needs=("regime",)), agreement._check_assessments, _check_table2,
                  ft._check_assessments):
        with pytest.raises(ValueError, match="must be one of") as info:
            check(bad)
        messages.add(str(info.value))
    assert messages == {"assessments.regime must be one of ['correct', 'overfitted']; got ['underfitted']"}
    with pytest.raises(ValueError, match="does not have"):
        check_assessments(assessments, needs=("colour",))


def _check_table2(df):
    from analysis.table2 import _check

    return _check(df)


@pytest.mark.r
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_table2_takes_what_its_docstring_accepts(assessments):
    # The seven documented columns (no `simulated`); one reader, whose model has no reader term (it used to
    # give lme4's error instead of a P value); a reader who read once beside one who read twice. Each used to
    # raise from inside the table.
    seven = assessments.drop(columns="simulated")
    cardio = seven[seven["feature"] == "cardiomegaly"]
    t = table2(cardio, mixed_models=True)
    assert (t.mixed["error"] == "").all() and len(t.mixed) == 1
    one_reader = table2(cardio[cardio["reader"] == "A"], mixed_models=True)
    assert one_reader.mixed.loc[0, "error"] == "" and np.isfinite(one_reader.mixed.loc[0, "p_value"])
    assert one_reader.pooled["n_total"].sum() == 200
    once = cardio[(cardio["reader"] == "A") | (cardio["round"] == 1)]
    kept = table2(once, mixed_models=False)
    assert kept.intra["reader"].tolist() == ["A"]
    with pytest.raises(ValueError, match=r"reader 'B' has only round\(s\) \[1\] for 'cardiomegaly'"):
        table2(once, mixed_models=False, undefined="raise")


def test_a_reader_with_no_gvr_read_twice_has_no_kappa_and_says_why(assessments):
    cardio = assessments[(assessments["feature"] == "cardiomegaly")]
    split = cardio[~((cardio["reader"] == "B") & (cardio["round"] == 2) & (cardio["gvr_id"] < "g050"))
                   & ~((cardio["reader"] == "B") & (cardio["round"] == 1) & (cardio["gvr_id"] >= "g050"))]
    assert intra_observer(split, undefined="drop")["reader"].tolist() == ["A"]
    from analysis.errors import UndefinedStatisticError

    with pytest.raises(UndefinedStatisticError, match="reader 'B', feature 'cardiomegaly'.*no GVR was rated in both"):
        intra_observer(split, undefined="raise")


def test_two_readers_who_read_no_gvr_alike_have_no_interobserver_kappa_and_say_so(assessments):
    cardio = assessments[assessments["feature"] == "cardiomegaly"]
    apart = cardio[((cardio["reader"] == "A") & (cardio["gvr_id"] < "g050"))
                   | ((cardio["reader"] == "B") & (cardio["gvr_id"] >= "g050"))]
    from analysis.errors import UndefinedStatisticError

    with pytest.raises(UndefinedStatisticError, match="reader_a 'A', reader_b 'B'.* in the same reading by both"):
        inter_observer(apart)


@pytest.mark.r
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_one_reader_is_fitted_without_a_reader_term(assessments):
    """The paper's model has readers as fixed effects; one reader has none to estimate (R stopped at its
    contrasts), so the same model is fitted without the term, and the notes say so."""
    one = assessments[assessments["reader"] == "A"]
    t = table2(one, mixed_models=True)
    direct = mixed_models.feature_tests(one, formula="present ~ regime + (1 | patient_id)")
    got = t.mixed.set_index("feature").loc[direct["feature"]].reset_index()
    pd.testing.assert_frame_equal(got.drop(columns="error"), direct, check_exact=False, rtol=1e-10)
    assert (got["error"] == "").all() and "With one reader the model has no reader term." in t.notes[1]


def test_a_kappa_of_a_reading_with_one_answer_throughout_has_no_interval_and_says_why(assessments):
    """Reader A ticked cardiomegaly on every GVR in the second reading: kappa is 0 whatever the first reading
    said and its asymptotic variance 0 (psych agrees), which printed "0.00 (95% CI: 0.00, 0.00)"."""
    t = assessments.copy()
    t.loc[(t["reader"] == "A") & (t["round"] == 2) & (t["feature"] == "cardiomegaly"), "present"] = True
    result = table2(t, mixed_models=False)
    row = result.intra.set_index(["reader", "feature"]).loc[("A", "cardiomegaly")]
    assert abs(row["kappa"]) < 1e-6 and row["se"] < 1e-6  # 0, to the residue of sums of floats
    note = result.notes[1]
    assert ("0.00 (one of the two gave one answer throughout, so kappa is 0 whatever the other answered; "
            "no interval) for cardiomegaly") in note
    assert "CI: 0.00, 0.00" not in note and note.count("95% CI") == len(result.intra) + len(result.inter) - 1


def test_every_kappa_with_one_answer_throughout_is_said_so_whatever_the_float_residue():
    """A zero variance comes out as an SE of about 1e-9 for many counts (37 of 100 gave 1.15e-9): a tolerance at
    the last bit printed "(95% CI: 0.00, 0.00)" for a third of them."""
    from analysis.table2 import kappa_text

    for n in (50, 100):
        for k in range(1, n):
            r = cohen_kappa(np.arange(n) < k, np.ones(n, bool))
            assert kappa_text(r.kappa, r.se, r.ci_low, r.ci_high).endswith("whatever the other answered; no interval)")
            same = cohen_kappa(np.arange(n) < k, np.arange(n) < k)
            assert "perfect agreement" in kappa_text(same.kappa, same.se, same.ci_low, same.ci_high)
