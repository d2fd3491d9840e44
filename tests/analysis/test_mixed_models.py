"""Tests of analysis.mixed_models against lme4 run directly in R (tests/analysis/r_mixed/).

The expected values in r_mixed/expected.json come from r_mixed/reference.R (lme4 1.1.31 on R 4.2.2,
versions recorded in the file) on the seeded CSVs written by r_mixed/make_data.R. They are compared at
lme4's own precision (tests/analysis/tolerances.py): estimates, SEs, z and variances to 1e-4 relative
(1e-4 absolute near zero), log-likelihoods to 1e-4, and p-values over the range their statistic's
tolerance allows. The same fits on two CPUs differ in their last digits; these tests pass on both.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import mixed_models as mm
from analysis.mixed_models import lme4, results, table2_tests
from tests.analysis.tolerances import (
    LOGLIK_ATOL,
    assert_messages_match,
    assert_lme4_close,
    assert_lrt_p_close,
    assert_odds_ratio_close,
    assert_wald_p_close,
    chi2_tolerance,
    lme4_tolerance,
)

HERE = Path(__file__).parent
R_DIR = HERE / "r_mixed"

needs_rscript = pytest.mark.skipif(shutil.which("Rscript") is None, reason="Rscript not installed")


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((R_DIR / "expected.json").read_text())


@pytest.fixture(scope="module")
def reader_study() -> pd.DataFrame:
    return pd.read_csv(R_DIR / "reader_study.csv")


@pytest.fixture(scope="module")
def table(reader_study) -> pd.DataFrame:
    return mm.feature_tests(reader_study)


def _with_regime_levels(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(regime=pd.Categorical(df["regime"], categories=list(mm.REGIME_LEVELS)))


def _data(case: str) -> pd.DataFrame:
    if case == "cbpp":
        return pd.read_csv(R_DIR / "cbpp.csv", dtype={"period": str})
    if case == "cbpp_bernoulli":
        return pd.read_csv(R_DIR / "cbpp_bernoulli.csv", dtype={"period": str})
    if case == "singular":
        return pd.read_csv(R_DIR / "singular.csv")
    rs = pd.read_csv(R_DIR / "reader_study.csv")
    feature = "cardiomegaly" if case == "crossed" else case.removeprefix("reader_")
    return _with_regime_levels(rs[rs["feature"] == feature])


def assert_matches_r(result: mm.GlmerResult, case: dict) -> None:
    fixed = pd.DataFrame(case["fixed"])
    ours = result.fixed_effects
    assert list(ours["term"]) == list(fixed["term"])
    for column in ("estimate", "se", "z"):
        assert_lme4_close(ours[column], fixed[column], column)
    assert_wald_p_close(ours["p_value"], fixed["z"], "p_value")
    random = pd.DataFrame(case["random"])
    assert list(result.random_effects["group"]) == list(random["group"])
    assert list(result.random_effects["name"]) == list(random["name"])
    for column in ("variance", "sd"):
        assert_lme4_close(result.random_effects[column], random[column], column)
    correlations = pd.DataFrame(case["correlations"])
    assert len(result.random_correlations) == len(correlations)
    if len(correlations):
        assert list(result.random_correlations["name2"]) == list(correlations["name2"])
        assert_lme4_close(result.random_correlations["correlation"], correlations["correlation"], "correlation")
    assert result.loglik == pytest.approx(case["loglik"], abs=LOGLIK_ATOL)
    assert result.aic == pytest.approx(case["aic"], abs=2 * LOGLIK_ATOL)
    assert result.df == case["df"]
    assert result.n_obs == case["nobs"]
    assert result.singular is case["singular"]
    assert_messages_match(result.warnings, case["messages"], "messages")


# --------------------------------------------------------------------------------------------------
# Reference values from lme4
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [
    "cbpp", "cbpp_bernoulli", "reader_airspace_opacity", "reader_cardiomegaly", "reader_no_chf_features",
    "reader_pleural_effusion", "crossed"])
@pytest.mark.parametrize("engine", mm.ENGINES)
def test_glmer_matches_lme4(case, engine, expected):
    reference = expected["cases"][case]
    assert_matches_r(mm.glmer(reference["formula"], _data(case), engine=engine), reference)


@pytest.mark.parametrize("engine", mm.ENGINES)
def test_singular_fit_reports_lme4_message(engine, expected):
    reference = expected["cases"]["singular"]
    with pytest.warns(mm.GlmerFitWarning, match="singular"):
        result = mm.glmer(reference["formula"], _data("singular"), engine=engine)
    assert_matches_r(result, reference)
    assert result.singular and result.converged
    assert result.random_effects["variance"].iloc[0] == 0
    assert "boundary (singular) fit: see help('isSingular')" in result.warnings
    assert "boundary (singular)" in result.to_frame()["warnings"].iloc[0]


@pytest.mark.parametrize("engine", mm.ENGINES)
def test_random_slope_with_correlation_matches_lme4(engine, expected):
    reference = expected["cases"]["random_slope"]
    with pytest.warns(mm.GlmerFitWarning, match="singular"):
        result = mm.glmer(reference["formula"], _data("crossed"), engine=engine)
    assert_matches_r(result, reference)
    assert result.singular and list(result.random_effects["name"]) == ["(Intercept)", "readerB"]


@pytest.mark.parametrize("case", ["cbpp", "crossed"])
@pytest.mark.parametrize("engine", mm.ENGINES)
def test_likelihood_ratio_test_matches_anova(case, engine, expected):
    reference = expected["cases"][case]
    lrt_ref = reference["lrt"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.GlmerFitWarning)  # the crossed reduced model's, checked below
        lrt = mm.likelihood_ratio_test(reference["formula"], _data(case), lrt_ref["term"], engine=engine)
    assert lrt.reduced_formula == lrt_ref["reduced_formula"]
    assert lrt.df == lrt_ref["df"]
    assert lrt.chi2 == pytest.approx(lrt_ref["chi2"], abs=chi2_tolerance(lrt_ref["chi2"]))
    assert_lrt_p_close(lrt.p_value, lrt_ref["chi2"], lrt_ref["df"], "lrt p")
    assert lrt.loglik_full == pytest.approx(lrt_ref["loglik_full"], abs=LOGLIK_ATOL)
    assert lrt.loglik_reduced == pytest.approx(lrt_ref["loglik_reduced"], abs=LOGLIK_ATOL)
    assert_messages_match(lrt.warnings, [f"reduced: {m}" for m in lrt_ref["reduced_messages"]], "reduced")
    assert lrt.to_frame().shape == (1, 10)


@pytest.mark.parametrize("engine", mm.ENGINES)
def test_convergence_failure_surfaces(engine, expected):
    """The crossed model without regime fails lme4's gradient check: the result must say so."""
    reference = expected["cases"]["crossed"]["lrt"]
    assert any("failed to converge" in m for m in reference["reduced_messages"])
    with pytest.warns(mm.GlmerFitWarning, match="failed to converge"):
        result = mm.glmer(reference["reduced_formula"], _data("crossed"), engine=engine)
    assert not result.converged
    assert_messages_match(result.warnings, reference["reduced_messages"], "messages")


def test_feature_tests_match_lme4(table, expected):
    assert list(table.columns) == results._RESULT_COLUMNS
    assert list(table["feature"]) == [
        "airspace_opacity", "cardiomegaly", "no_chf_features", "pleural_effusion"]
    assert set(table["coefficient"]) == {"regimecorrect"}
    for row in table.itertuples():
        reference = expected["cases"][f"reader_{row.feature}"]
        coef = next(f for f in reference["fixed"] if f["term"] == "regimecorrect")
        assert row.n_obs == reference["nobs"] == 400
        for column in ("estimate", "se", "z"):
            assert_lme4_close(getattr(row, column), coef[column], f"{row.feature} {column}")
        assert_wald_p_close(row.p_value, coef["z"], f"{row.feature} p_value")
        # Wald interval, computed from R's own estimate and SE
        q = 1.959963984540054  # qnorm(0.975)
        bound_tol = float(lme4_tolerance(coef["estimate"]) + q * lme4_tolerance(coef["se"]))
        assert_odds_ratio_close(row.or_ci_low, coef["estimate"] - q * coef["se"], log_tolerance=bound_tol)
        assert_odds_ratio_close(row.or_ci_high, coef["estimate"] + q * coef["se"], log_tolerance=bound_tol)
        assert_odds_ratio_close(row.odds_ratio, coef["estimate"])
        assert row.lrt_chi2 == pytest.approx(reference["lrt"]["chi2"], abs=chi2_tolerance(reference["lrt"]["chi2"]))
        assert_lrt_p_close(row.lrt_p_value, reference["lrt"]["chi2"], 1, f"{row.feature} lrt p")
        assert row.lrt_df == 1 and not row.singular and row.converged and row.warnings == ""


# --------------------------------------------------------------------------------------------------
# Invariances and conventions
# --------------------------------------------------------------------------------------------------


def test_cbind_and_bernoulli_rows_give_the_same_fixed_effects():
    counts = mm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", _data("cbpp"))
    rows = mm.glmer("y ~ period + (1 | herd)", _data("cbpp_bernoulli"))
    assert_lme4_close(counts.fixed_effects["estimate"], rows.fixed_effects["estimate"], "estimate")
    assert_lme4_close(counts.fixed_effects["se"], rows.fixed_effects["se"], "se")
    assert counts.n_obs == 56 and rows.n_obs == 842


def test_reference_level_is_overfitted_whatever_the_input_order(reader_study, table):
    sub = reader_study[reader_study["feature"] == "cardiomegaly"]
    reordered = sub.iloc[::-1].assign(
        regime=pd.Categorical(sub["regime"].iloc[::-1], categories=["correct", "overfitted"]))
    again = mm.feature_tests(reordered)
    assert again["coefficient"].iloc[0] == "regimecorrect"
    ref = table.set_index("feature").loc["cardiomegaly"]
    assert_lme4_close(again["estimate"].iloc[0], ref["estimate"], "estimate")
    assert_lme4_close(again["se"].iloc[0], ref["se"], "se")


def test_swapping_the_reference_level_flips_the_sign(reader_study, table):
    sub = reader_study[reader_study["feature"] == "pleural_effusion"]
    flipped = mm.glmer(mm.DEFAULT_FORMULA, sub.assign(
        regime=pd.Categorical(sub["regime"], categories=["correct", "overfitted"]),
        reader=sub["reader"].map({"A": "B", "B": "A"})))
    ref = table.set_index("feature").loc["pleural_effusion"]
    row = flipped.coefficient("regimeoverfitted")
    assert_lme4_close(row["estimate"], -ref["estimate"], "estimate")
    assert_lme4_close(row["se"], ref["se"], "se")
    assert_odds_ratio_close(row["odds_ratio"], -math.log(ref["odds_ratio"]))
    q = 1.959963984540054
    bound_tol = float(lme4_tolerance(ref["estimate"]) + q * lme4_tolerance(ref["se"]))
    assert_odds_ratio_close(row["or_ci_low"], -math.log(ref["or_ci_high"]), log_tolerance=bound_tol)


def test_booleans_and_integers_give_the_same_fit(reader_study):
    sub = _with_regime_levels(reader_study[reader_study["feature"] == "airspace_opacity"])
    as_bool = mm.glmer(mm.DEFAULT_FORMULA, sub)
    as_int = mm.glmer(mm.DEFAULT_FORMULA, sub.assign(present=sub["present"].astype(int)))
    pd.testing.assert_frame_equal(as_bool.fixed_effects, as_int.fixed_effects)
    assert sub["present"].dtype == bool  # the caller's frame is not modified


def test_result_shapes(reader_study):
    result = mm.glmer(mm.DEFAULT_FORMULA, _data("reader_cardiomegaly"))
    assert list(result.fixed_effects.columns) == [
        "term", "estimate", "se", "z", "p_value", "odds_ratio", "or_ci_low", "or_ci_high"]
    frame = result.to_frame()
    assert frame.shape[0] == 1 and frame["n_fixed"].iloc[0] == 3 and frame["converged"].iloc[0]
    assert dict(result.n_groups) == {"patient_id": 50}
    assert result.random_correlations.empty
    with pytest.raises(AttributeError):
        result.loglik = 0.0  # frozen
    with pytest.raises(KeyError, match="regimecorrect"):
        result.coefficient("regimeoverfitted")


def test_r_console_and_pymer4_are_left_as_they_were():
    """pymer4 0.8.2 replaces R's console writer for good and re-imports lme4 each fit; we must not."""
    from rpy2.rinterface_lib import callbacks

    before_writer = callbacks.consolewrite_warnerror
    module = lme4._pymer4().module
    before_importr = module.importr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.GlmerFitWarning)
        for engine in mm.ENGINES:
            mm.glmer("y ~ x + (1 | g)", _data("singular"), engine=engine)
    assert callbacks.consolewrite_warnerror is before_writer
    assert module.importr is before_importr


@pytest.mark.parametrize("engine", mm.ENGINES)
def test_r_warnings_written_to_the_console_are_kept(engine):
    data = _data("singular").assign(w=lambda d: d["x"] - 0.5)
    with pytest.warns(mm.GlmerFitWarning, match="NaNs produced"):
        result = mm.glmer("y ~ log(w) + (1 | g)", data, engine=engine)  # log of negatives: R warns
    assert any("NaNs produced" in m for m in result.warnings)
    assert result.n_obs == 60


def test_engines_agree(reader_study):
    """rpy2 and pymer4 reach the same lme4: identical numbers, not merely close ones."""
    sub = _with_regime_levels(reader_study[reader_study["feature"] == "cardiomegaly"])
    formula = "present ~ regime + reader + (1 | patient_id) + (1 | gvr_id)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.GlmerFitWarning)
        fast, slow = (mm.glmer(formula, sub, engine=e) for e in ("rpy2", "pymer4"))
    pd.testing.assert_frame_equal(fast.fixed_effects, slow.fixed_effects, rtol=1e-10, atol=1e-12)
    pd.testing.assert_frame_equal(fast.random_effects, slow.random_effects, rtol=1e-10, atol=1e-12)
    assert (fast.loglik, fast.aic, fast.bic, fast.df) == pytest.approx((slow.loglik, slow.aic, slow.bic, slow.df),
                                                                      rel=1e-12)
    assert dict(fast.n_groups) == dict(slow.n_groups) == {
        "gvr_id": sub["gvr_id"].nunique(), "patient_id": sub["patient_id"].nunique()}
    assert fast.warnings == slow.warnings and fast.singular == slow.singular


@pytest.mark.parametrize("column", ["reader", "regime", "x"])
def test_missing_values_drop_their_rows_as_r_does(column, reader_study):
    """A missing string, category or number drops the row (lme4's na.omit), nothing else changes."""
    sub = _with_regime_levels(reader_study[reader_study["feature"] == "cardiomegaly"]).reset_index(drop=True)
    sub["x"] = np.linspace(-1, 1, len(sub))
    formula = "present ~ regime + reader + x + (1 | patient_id)"
    holes = sub.copy()
    rows = [3, 50, 222]
    if column == "reader":
        holes[column] = holes[column].astype(object)
        holes.loc[rows, column] = [None, np.nan, pd.NA]
    else:
        holes.loc[rows, column] = np.nan
    with_holes = mm.glmer(formula, holes)
    dropped = mm.glmer(formula, sub.drop(index=rows))
    assert with_holes.n_obs == dropped.n_obs == len(sub) - len(rows)
    pd.testing.assert_frame_equal(with_holes.fixed_effects, dropped.fixed_effects, rtol=1e-9, atol=1e-12)


def test_columns_reach_r_with_their_types_and_values():
    sess = lme4._session()
    df = pd.DataFrame({
        "small": np.array([1, -2, 3], dtype=np.int64),
        "big": np.array([2**40, 0, -(2**40) - 1], dtype=np.int64),
        "real": [0.5, np.nan, 1e300],
        "text": ["10", None, "p2"],
        "level": pd.Categorical(["b", None, "a"], categories=["b", "a"]),
    })
    describe = sess.robjects.r("""function(d) vapply(d, function(x) paste(
        class(x), paste(if (is.factor(x)) levels(x) else "", collapse = "|"),
        paste(trimws(format(x, digits = 17)), collapse = "|"), sum(is.na(x)), sep = ";"), "")""")
    described = dict(zip(df.columns, describe(lme4._r_data_frame(sess, df)), strict=True))
    assert described["small"] == "integer;;1|-2|3;0"
    assert described["big"] == "numeric;;1099511627776|0|-1099511627777;0"
    assert described["real"].startswith("numeric;;") and described["real"].endswith(";1")
    assert described["text"] == 'character;;10|NA|p2;1'
    assert described["level"] == "factor;b|a;b|NA|a;1"


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


def test_mixed_type_column_is_refused_naming_it(reader_study):
    sub = reader_study[reader_study["feature"] == "cardiomegaly"].reset_index(drop=True)
    sub["reader"] = sub["reader"].astype(object)
    sub.loc[7, "reader"] = 3
    with pytest.raises(TypeError, match=r"column 'reader' mixes text with int values \(first at row 7: 3\)"):
        mm.glmer(mm.DEFAULT_FORMULA, sub)


def test_constant_feature_raises_a_named_error(reader_study):
    data = reader_study.copy()
    data.loc[data["feature"] == "pleural_effusion", "present"] = False
    with pytest.raises(mm.ConstantResponseError, match="'pleural_effusion'.*False.*every one of 400"):
        mm.feature_tests(data)
    with pytest.raises(mm.ConstantResponseError, match="'present'"):
        mm.glmer(mm.DEFAULT_FORMULA, data[data["feature"] == "pleural_effusion"])


def test_write_r_script_refuses_a_constant_feature(reader_study, tmp_path):
    data = reader_study.copy()
    data.loc[data["feature"] == "airspace_opacity", "present"] = True
    with pytest.raises(mm.ConstantResponseError, match="airspace_opacity"):
        mm.write_r_script(data, tmp_path)
    assert not any(tmp_path.iterdir())


def test_feature_with_one_regime_raises(reader_study):
    sub = reader_study[(reader_study["feature"] == "cardiomegaly") & (reader_study["regime"] == "correct")]
    with pytest.raises(mm.FeatureTermError, match="cardiomegaly.*'regime' takes the single value 'correct'"):
        mm.feature_tests(sub)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda d: mm.glmer(mm.DEFAULT_FORMULA, d, family="gaussian"), ValueError,
         "family must be one of 'binomial'; got 'gaussian'"),
        (lambda d: mm.glmer("present ~ regime + reader", d), ValueError, "at least one random effect"),
        (lambda d: mm.glmer("present", d), ValueError, "formula must be an lme4 formula"),
        (lambda d: mm.glmer(mm.DEFAULT_FORMULA, d, engine="statsmodels"), ValueError,
         "engine must be one of 'rpy2', 'pymer4'; got 'statsmodels'"),
        (lambda d: mm.glmer(mm.DEFAULT_FORMULA, d.to_numpy()), TypeError, "pandas DataFrame"),
        (lambda d: mm.glmer("present ~ nosuch + (1 | patient_id)", d), mm.GlmerError, "nosuch"),
        (lambda d: mm.likelihood_ratio_test(mm.DEFAULT_FORMULA, d, "patient_id"), ValueError,
         r"fixed terms \['regime', 'reader'\]"),
        (lambda d: mm.feature_tests(d.drop(columns="gvr_id")), ValueError, "lacks column.*gvr_id"),
        (lambda d: mm.feature_tests(d.assign(regime="other")), ValueError, "regime must be one of"),
        (lambda d: mm.feature_tests(d.assign(present="yes")), ValueError, "present must be boolean"),
    ],
)
def test_errors_name_the_problem(call, error, match, reader_study):
    with pytest.raises(error, match=match):
        call(reader_study[reader_study["feature"] == "cardiomegaly"])


def test_import_does_not_start_r():
    code = "import sys, analysis.mixed_models; print('rpy2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=HERE.parent.parent)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------------------------------
# R without Python
# --------------------------------------------------------------------------------------------------


@pytest.mark.r
@needs_rscript
def test_written_r_script_reproduces_feature_tests(reader_study, table, tmp_path):
    files = mm.write_r_script(reader_study, tmp_path)
    assert files.script.read_text().count("library(") == 1  # lme4 only
    run = subprocess.run(["Rscript", str(files.script)], capture_output=True, text=True, timeout=120,
                         cwd="/")
    assert run.returncode == 0, run.stderr
    r = pd.read_csv(files.results, keep_default_na=False)
    assert list(r["feature"]) == list(table["feature"])
    assert list(r["coefficient"]) == list(table["coefficient"])
    # Same machine, same lme4: only the optimiser's precision separates the two.
    for column in ("estimate", "se", "z"):
        assert_lme4_close(table[column], r[column], column)
    for column in ("odds_ratio", "or_ci_low", "or_ci_high"):
        assert_lme4_close(np.log(table[column]), np.log(r[column]), column)
    assert_wald_p_close(table["p_value"], r["z"], "p_value")
    for ours, row in zip(table.itertuples(), r.itertuples()):
        assert ours.lrt_chi2 == pytest.approx(row.lrt_chi2, abs=chi2_tolerance(row.lrt_chi2))
        assert_lrt_p_close(ours.lrt_p_value, row.lrt_chi2, 1, f"{row.feature} lrt p")
    assert list(r["n_obs"]) == list(table["n_obs"]) and list(r["n_present"]) == list(table["n_present"])
    assert list(r["lrt_df"]) == list(table["lrt_df"])
    assert r["singular"].tolist() == table["singular"].tolist() == [False] * 4
    assert list(r["warnings"]) == list(table["warnings"])
    assert r["lme4_version"].iloc[0] and r["r_version"].iloc[0].startswith("R version")


@pytest.mark.r
@needs_rscript
def test_written_r_script_keeps_numeric_looking_ids_as_text(reader_study, tmp_path):
    # Patients "7" and "07" are two patients, and reader "1" a level: read as numbers in R, the
    # patients would merge and the script would fit another model than feature_tests.
    patients = sorted(reader_study["patient_id"].unique())
    ids = {p: (str(k // 2) if k % 2 == 0 else f"0{k // 2}") for k, p in enumerate(patients)}
    data = reader_study[reader_study["feature"] == "cardiomegaly"].assign(
        patient_id=lambda d: d["patient_id"].map(ids), reader=lambda d: d["reader"].map({"A": "1", "B": "2"}))
    ours = mm.feature_tests(data)
    files = mm.write_r_script(data, tmp_path)
    run = subprocess.run(["Rscript", str(files.script)], capture_output=True, text=True, timeout=120, cwd="/")
    assert run.returncode == 0, run.stderr
    r = pd.read_csv(files.results, keep_default_na=False)
    for column in ("estimate", "se"):
        assert_lme4_close(ours[column], r[column], column)
    assert ours["lrt_chi2"].iloc[0] == pytest.approx(r["lrt_chi2"].iloc[0], abs=chi2_tolerance(r["lrt_chi2"].iloc[0]))


@pytest.mark.r
@needs_rscript
def test_reference_script_reproduces_committed_expected_values(expected, tmp_path):
    out = tmp_path / "expected.json"
    run = subprocess.run(["Rscript", str(R_DIR / "reference.R"), str(out)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    fresh = json.loads(out.read_text())
    if (fresh["r_version"], fresh["lme4_version"]) != (expected["r_version"], expected["lme4_version"]):
        pytest.skip(f"expected values come from {expected['r_version']}, lme4 {expected['lme4_version']}")
    assert fresh["cases"].keys() == expected["cases"].keys()
    for name, case in expected["cases"].items():
        new = fresh["cases"][name]
        assert new["formula"] == case["formula"] and len(new["messages"]) == len(case["messages"])
        assert_messages_match(new["messages"], case["messages"], name)
        # lme4 on another CPU: equal to the optimiser's precision, not to the last digit.
        for part, columns in (("fixed", ("estimate", "se", "z")), ("random", ("variance", "sd"))):
            old_frame, new_frame = pd.DataFrame(case[part]), pd.DataFrame(new[part])
            assert list(new_frame.columns) == list(old_frame.columns), (name, part)
            for column in columns:
                assert_lme4_close(new_frame[column], old_frame[column], f"{name} {part} {column}")
        assert_wald_p_close(pd.DataFrame(new["fixed"])["p_value"], pd.DataFrame(case["fixed"])["z"], f"{name} p")
        assert new["loglik"] == pytest.approx(case["loglik"], abs=LOGLIK_ATOL)
        if "lrt" in case:
            assert new["lrt"]["chi2"] == pytest.approx(case["lrt"]["chi2"], abs=chi2_tolerance(case["lrt"]["chi2"]))
            assert_lrt_p_close(new["lrt"]["p_value"], case["lrt"]["chi2"], case["lrt"]["df"], f"{name} lrt p")


@pytest.mark.r
@needs_rscript
def test_data_script_reproduces_committed_data(tmp_path):
    run = subprocess.run(["Rscript", str(R_DIR / "make_data.R"), str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    for name in ("cbpp", "cbpp_bernoulli", "reader_study", "singular"):
        assert (tmp_path / f"{name}.csv").read_bytes() == (R_DIR / f"{name}.csv").read_bytes(), name


def test_wrapped_r_warnings_become_one_message():
    console = ["Warning messages:\n1: In log(w) : NaNs produced\n2: In vcov.merMod(object) :\n"
               "  variance-covariance matrix computed from finite-difference Hessian is\n"
               "not positive definite or contains NA values: falling back to var-cov estimated from RX\n"]
    assert lme4._console_lines(console, known=["NaNs produced"]) == [
        "variance-covariance matrix computed from finite-difference Hessian is not positive definite "
        "or contains NA values: falling back to var-cov estimated from RX"]


def test_starting_r_prints_no_warnings(clean_env):
    code = "from analysis.mixed_models import lme4; lme4._session()"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=HERE.parent.parent, env=clean_env)
    assert "Warning" not in out.stderr and "contains no packages" not in out.stderr, out.stderr


# --------------------------------------------------------------------------------------------------
# lme4's messages, one line per feature with what they mean for its p-values
# --------------------------------------------------------------------------------------------------


def test_p_value_caution_says_which_p_value_a_message_touches():
    assert mm.p_value_caution([], [], p_value=0.01, lrt_p_value=0.02) == ""
    reduced_only = mm.p_value_caution([], ["Model failed to converge with max|grad| = 0.05 (tol = 0.002)"],
                                      p_value=0.01, lrt_p_value=0.02)
    assert "reduced model" in reduced_only and "likelihood-ratio P = 0.02 may be off" in reduced_only
    assert "Wald P = 0.01 does not use" in reduced_only
    full = mm.p_value_caution(["Model failed to converge with max|grad| = 0.05"], [], p_value=0.01)
    assert full.startswith("the model did not converge: the Wald P = 0.01 may be off")
    singular = mm.p_value_caution(["boundary (singular) fit: see help('isSingular')"],
                                  ["boundary (singular) fit: see help('isSingular')"], p_value=0.3)
    assert "singular fit" in singular and "reduced" not in singular  # a singular reduced fit is still a fit
    assert "imprecise" in mm.p_value_caution(["Model is nearly unidentifiable: very large eigenvalue"], [], p_value=0.5)


def test_feature_tests_warn_once_per_feature_with_the_meaning(reader_study):
    """The crossed model's reduced fit does not converge: one warning, naming the feature, on one line."""
    sub = _with_regime_levels(reader_study[reader_study["feature"] == "cardiomegaly"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = mm.feature_tests(sub, formula="present ~ regime + reader + (1 | patient_id) + (1 | gvr_id)")
    fit_warnings = [str(w.message) for w in caught if issubclass(w.category, mm.GlmerFitWarning)]
    if table.loc[0, "optimizer"]:  # another optimizer settled it (bobyqa here): said in the table, no warning
        assert fit_warnings == []
        assert table.loc[0, "caution"].startswith("lme4's default optimizer did not settle the reduced model; "
                                                  "refitted with")
        assert "reduced, lme4's default optimizer: Model failed to converge" in table.loc[0, "warnings"]
    else:
        assert len(fit_warnings) == 1, fit_warnings
        assert "\n" not in fit_warnings[0] and table.loc[0, "caution"] in fit_warnings[0]
        assert fit_warnings[0].startswith("feature 'cardiomegaly': lme4 said: reduced: Model failed to converge")
        assert "Meaning: the reduced model (without the term) did not converge" in fit_warnings[0]


def test_a_fit_no_optimizer_settles_warns_once_with_the_meaning(reader_study, monkeypatch):
    """As above with no other optimizer to try: the default's unsettled reduced fit is kept, and said once."""
    monkeypatch.setattr(table2_tests, "OTHER_OPTIMIZERS", ())
    sub = _with_regime_levels(reader_study[reader_study["feature"] == "cardiomegaly"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = mm.feature_tests(sub, formula="present ~ regime + reader + (1 | patient_id) + (1 | gvr_id)")
    fit_warnings = [str(w.message) for w in caught if issubclass(w.category, mm.GlmerFitWarning)]
    assert table.loc[0, "optimizer"] == "" and len(fit_warnings) == 1, fit_warnings
    assert "\n" not in fit_warnings[0] and table.loc[0, "caution"] in fit_warnings[0]
    assert fit_warnings[0].startswith("feature 'cardiomegaly': lme4 said: reduced: Model failed to converge")
    assert "Meaning: the reduced model (without the term) did not converge" in fit_warnings[0]


def test_a_feature_one_regime_always_shows_is_named_as_separated_and_the_lrt_recommended():
    """Cardiomegaly marked on every GVR of the correct model: the Wald SE of a runaway estimate means nothing
    (lme4 gave an estimate of 575,647 with SE 0.011 here), lme4 need not say why, and the caution must say so
    and point at the LRT."""
    rng = np.random.default_rng(5)
    n = 120
    df = pd.DataFrame({"reader": np.tile(["A", "B"], n // 2), "round": 1, "gvr_id": [f"g{i}" for i in range(n)],
                       "regime": np.repeat(["correct", "overfitted"], n // 2),
                       "patient_id": [f"p{i % 30}" for i in range(n)], "feature": "cardiomegaly"})
    df["present"] = np.where(df["regime"] == "correct", True, rng.random(n) < 0.4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        row = mm.feature_tests(df).iloc[0]
    assert "present in every one of the 60 rows with regime 'correct' (complete separation)" in row["caution"]
    assert f"rely on the likelihood-ratio P = {row['lrt_p_value']:.2g}" in row["caution"]
    assert row["lrt_p_value"] < 1e-6 and row["odds_ratio"] > 1e6  # the LRT's evidence, and the runaway estimate
    said = [str(w.message) for w in caught if issubclass(w.category, mm.GlmerFitWarning)]
    assert len(said) == 1 and "complete separation" in said[0]
    assert mm.separation(df.assign(present=rng.random(n) < 0.5), "regime") is None


def test_a_separated_features_odds_ratio_is_inf_without_an_overflow_warning():
    # a real reading with cardiomegaly on every GVR of one model printed "overflow encountered in exp" four times
    import warnings

    from analysis.mixed_models.lme4 import _fixed_frame

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = _fixed_frame(["regimecorrect"], np.array([35.0]), np.array([400.0]), np.array([0.09]), np.array([0.93]))
    assert frame["or_ci_high"].iloc[0] == np.inf and frame["or_ci_low"].iloc[0] == 0.0


@pytest.mark.parametrize("engine", mm.ENGINES)
def test_a_fit_lme4s_default_optimizer_does_not_settle_is_refitted_with_another_and_said_so(engine):
    """The simulated readers' opacity readings of the default study (seed 20190201, `gvr reproduce` at 4b7b35e;
    r_mixed/opacity_readings.csv): lme4's default optimizer stopped with max|grad| 0.086, "nearly unidentifiable",
    and a log odds ratio's SE of 0.0008 (Wald P 0, printed "<.001") where the likelihood-ratio P is .014; bobyqa
    alone converges cleanly there. Whatever another machine's arithmetic does with the default, the fit Table 2
    reports must be a settled one with an SE a 200-against-200 comparison can have, and its Wald P must agree
    with the likelihood ratio's."""
    readings = pd.read_csv(R_DIR / "opacity_readings.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.GlmerFitWarning)
        row = mm.feature_tests(readings, engine=engine).iloc[0]
    assert bool(row["converged"]) and "not converge" not in row["caution"].replace("did not settle", "")
    assert 0.3 < row["se"] < 2.0 and 0.005 < row["p_value"] < 0.05
    assert row["p_value"] == pytest.approx(row["lrt_p_value"], rel=0.5)
    if row["optimizer"]:  # the default did not settle here: the note says so and what was used
        assert row["optimizer"] in {f"{name} (full model)" for name in table2_tests.OTHER_OPTIMIZERS}
        assert "lme4's default optimizer did not settle the full model; refitted with" in row["caution"]
        assert "full, lme4's default optimizer: " in row["warnings"]


def test_a_refit_is_kept_only_at_the_same_optimum_and_only_when_clean(monkeypatch):
    """The choice on its own, with fits made up: a clean refit at a log-likelihood at most 0.01 below the flagged
    default's, or above it, replaces it; one further below, or one with messages of its own (lme4's "Hessian is
    numerically singular" among them, which is not a singular fit), does not."""
    def result(loglik: float, messages: tuple[str, ...]) -> mm.GlmerResult:
        return mm.GlmerResult(formula="f", family="binomial", n_obs=10, n_groups={}, fixed_effects=pd.DataFrame(),
                              random_effects=pd.DataFrame(), random_correlations=pd.DataFrame(), loglik=loglik,
                              aic=0.0, bic=0.0, df=3, singular=False, converged=not messages, warnings=messages)

    hessian = "Hessian is numerically singular: parameters are not uniquely determined"  # curvature, not singular
    for flagged in (("Model failed to converge with max|grad| = 0.09 (tol = 0.002, component 1)",), (hessian,)):
        for refit, kept in (((-100.005, ()), "bobyqa"), ((-100.2, ()), "nloptwrap"), ((-90.0, ()), "bobyqa"),
                            ((-100.005, ("Model is nearly unidentifiable: very large eigenvalue",)), "nloptwrap"),
                            ((-100.005, (hessian,)), "nloptwrap")):
            fits = {None: result(-100.0, flagged), "bobyqa": result(*refit), "nloptwrap": result(-99.0, ())}
            monkeypatch.setattr(table2_tests, "_fit", lambda f, d, fam, e, optimizer=None: (fits[optimizer], None))
            (chosen, _), optimizer, first = table2_tests._settled_fit("f", pd.DataFrame(), "rpy2")
            assert optimizer == kept and chosen is fits[kept] and first == flagged, (flagged, refit)
    fits = {None: result(-100.0, ()), "bobyqa": result(-50.0, ())}
    monkeypatch.setattr(table2_tests, "_fit", lambda f, d, fam, e, optimizer=None: (fits[optimizer], None))
    assert table2_tests._settled_fit("f", pd.DataFrame(), "rpy2")[1:] == ("", ())  # a clean default stays


@pytest.mark.r
@needs_rscript
def test_written_r_script_refits_where_feature_tests_does(tmp_path):
    """The opacity readings lme4's default optimizer does not settle here: the script a statistician reruns in R
    makes the same choice of optimizer, so it gives Table 2's numbers and not the unsettled fit's."""
    readings = pd.read_csv(R_DIR / "opacity_readings.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mm.GlmerFitWarning)
        ours = mm.feature_tests(readings)
    files = mm.write_r_script(readings, tmp_path)
    run = subprocess.run(["Rscript", str(files.script)], capture_output=True, text=True, timeout=120, cwd="/")
    assert run.returncode == 0, run.stderr
    r = pd.read_csv(files.results, keep_default_na=False)
    assert list(r["optimizer"]) == list(ours["optimizer"]) and list(r["warnings"]) == list(ours["warnings"])
    for column in ("estimate", "se"):
        assert_lme4_close(ours[column], r[column], column)
    assert ours["lrt_chi2"].iloc[0] == pytest.approx(r["lrt_chi2"].iloc[0], abs=chi2_tolerance(r["lrt_chi2"].iloc[0]))
