"""analysis.roc against pROC 1.18 (tests/analysis/r/roc_reference.R) and by its invariances."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.errors import OneClassError, UndefinedStatisticError
from analysis.roc import AucResult, auc, delong_test, roc_curve, sensitivity_specificity
from tests.analysis.oracle import data, expected

EXP = expected("roc")


def _cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    asah = data("asah")
    out = {f"asah_{p}": (asah["y"].to_numpy(), asah[p].to_numpy(float)) for p in ("s100b", "wfns", "ndka")}
    sim = data("roc_cases")
    for case, g in sim.groupby("case", sort=False):
        out[case] = (g["y"].to_numpy(), g["score"].to_numpy(float))
        out[f"{case}_b"] = (g["y"].to_numpy(), g["score_b"].to_numpy(float))
    return out


CASES = _cases()


def test_oracle_records_versions():
    assert EXP["meta"]["pROC_version"] == "1.18.0"
    assert EXP["meta"]["r_version"].startswith("R version 4.2")


@pytest.mark.parametrize("case", sorted(EXP["auc"]))
def test_auc_and_delong_match_proc(case):
    y, s = CASES[case]
    ref = EXP["auc"][case]
    assert "se_delong" in ref, f"roc_reference.R wrote no DeLong variance for {case}"
    res = auc(y, s)
    assert res.auc == pytest.approx(ref["auc"], abs=1e-9)
    assert (res.n_pos, res.n_neg) == (ref["n_pos"], ref["n_neg"])
    assert res.se == pytest.approx(ref["se_delong"], abs=1e-6)
    assert res.ci_low == pytest.approx(ref["delong_low"], abs=1e-6)
    assert res.ci_high == pytest.approx(ref["delong_high"], abs=1e-6)
    r90 = auc(y, s, level=0.90)
    assert (r90.ci_low, r90.ci_high) == pytest.approx((ref["delong90_low"], ref["delong90_high"]), abs=1e-6)


@pytest.mark.parametrize("case", sorted(EXP["auc"]))
def test_roc_curve_matches_proc_coords(case):
    y, s = CASES[case]
    ref = EXP["auc"][case]
    curve = roc_curve(y, s)
    np.testing.assert_allclose(curve.thresholds, ref["thresholds"], rtol=1e-12)
    np.testing.assert_allclose(curve.sensitivity, ref["sensitivity"], atol=1e-12)
    np.testing.assert_allclose(curve.specificity, ref["specificity"], atol=1e-12)
    frame = curve.to_frame()
    assert list(frame.columns) == ["threshold", "sensitivity", "specificity"]
    # each finite threshold agrees with sensitivity_specificity (score >= threshold is positive)
    t = curve.thresholds[len(curve.thresholds) // 2]
    ss = sensitivity_specificity(y, s, t)
    k = len(curve.thresholds) // 2
    assert (ss.sensitivity, ss.specificity) == (curve.sensitivity[k], curve.specificity[k])


@pytest.mark.parametrize("name", sorted(EXP["delong_test"]))
def test_delong_test_matches_roc_test(name):
    ref = EXP["delong_test"][name]
    y, a = CASES[ref["a"]]
    _, b = CASES[ref["b"]]
    res = delong_test(y, a, b)
    assert res.auc_a == pytest.approx(ref["auc_a"], abs=1e-9)
    assert res.auc_b == pytest.approx(ref["auc_b"], abs=1e-9)
    assert res.z == pytest.approx(ref["z"], abs=1e-6)
    assert res.p_value == pytest.approx(ref["p_value"], abs=1e-6)
    assert (res.ci_low, res.ci_high) == pytest.approx((ref["ci_low"], ref["ci_high"]), abs=1e-6)
    assert res.difference == pytest.approx(res.auc_a - res.auc_b)


@pytest.mark.parametrize("case", sorted(EXP["bootstrap"]))
def test_bootstrap_ci_close_to_proc(case):
    """Replicates differ from R's; both intervals carry Monte Carlo error of about 0.003 here."""
    y, s = CASES[case]
    ref = EXP["bootstrap"][case]
    res = auc(y, s, ci="bootstrap", n_boot=2000, rng=7)
    assert res.method == "bootstrap" and res.n_boot == 2000
    assert res.ci_low == pytest.approx(ref["low"], abs=0.02)
    assert res.ci_high == pytest.approx(ref["high"], abs=0.02)
    # and the bootstrap SE is close to DeLong's
    assert res.se == pytest.approx(auc(y, s).se, rel=0.2)


def test_bootstrap_is_deterministic_for_a_seed():
    y, s = CASES["asah_s100b"]
    a = auc(y, s, ci="bootstrap", n_boot=500, rng=3)
    b = auc(y, s, ci="bootstrap", n_boot=500, rng=np.random.default_rng(3))
    c = auc(y, s, ci="bootstrap", n_boot=500, rng=4)
    assert a == b
    assert a != c


def test_bootstrap_replicates_are_rank_aucs():
    """The vectorised replicate AUC equals the AUC recomputed on the resampled data."""
    from analysis.roc import _bootstrap_aucs

    y, s = CASES["ties"]
    cases, controls = s[y == 1], s[y == 0]
    got = _bootstrap_aucs(cases, controls, n_boot=5, stratified=True, rng=np.random.default_rng(11))
    rng = np.random.default_rng(11)  # one chunk: all case draws, then all control draws
    case_draws = cases[rng.integers(0, cases.size, size=(5, cases.size))]
    control_draws = controls[rng.integers(0, controls.size, size=(5, controls.size))]
    for g, ci, co in zip(got, case_draws, control_draws):
        yy = np.r_[np.ones(ci.size), np.zeros(co.size)]
        assert g == pytest.approx(auc(yy, np.r_[ci, co]).auc, abs=1e-12)


def test_unstratified_bootstrap_runs():
    y, s = CASES["continuous"]
    res = auc(y, s, ci="bootstrap", stratified=False, n_boot=300, rng=1)
    assert res.ci_low < res.auc < res.ci_high


# ---------------------------------------------------------------- invariances


@pytest.mark.parametrize("case", ["asah_s100b", "ties", "continuous", "n5"])
def test_auc_invariances(case):
    y, s = CASES[case]
    base = auc(y, s)
    mono = auc(y, np.exp(3 * s) + 7)
    assert mono.auc == pytest.approx(base.auc, abs=1e-12)
    assert mono.se == pytest.approx(base.se, abs=1e-12)
    flipped = auc(y, -s)
    assert flipped.auc == pytest.approx(1 - base.auc, abs=1e-12)
    assert flipped.se == pytest.approx(base.se, abs=1e-12)
    assert base.ci_low <= base.auc <= base.ci_high
    assert 0 <= base.ci_low and base.ci_high <= 1


def test_auc_below_half_is_not_flipped():
    y, s = CASES["below_half"]
    assert auc(y, s).auc < 0.5


def test_perfect_separation():
    y, s = CASES["perfect"]
    res = auc(y, s)
    assert (res.auc, res.se, res.ci_low, res.ci_high) == (1.0, 0.0, 1.0, 1.0)


def test_delong_test_of_a_predictor_with_itself():
    y, s = CASES["continuous"]
    res = delong_test(y, s, 2 * s + 1)
    assert (res.z, res.p_value, res.difference) == (0.0, 1.0, 0.0)


def test_result_frame_is_one_tidy_row():
    y, s = CASES["n5"]
    frame = auc(y, s).to_frame()
    assert frame.shape[0] == 1
    assert {"auc", "ci_low", "ci_high", "se", "n_pos", "n_neg", "method", "level"} <= set(frame.columns)
    assert delong_test(y, s, CASES["n5_b"][1]).to_frame().shape[0] == 1
    assert sensitivity_specificity(y, s, 0.5).to_frame().shape[0] == 1


def test_results_are_frozen():
    res = auc([0, 1, 0, 1], [0.1, 0.9, 0.3, 0.4])
    assert isinstance(res, AucResult)
    with pytest.raises(AttributeError):
        res.auc = 0.5  # type: ignore[misc]


def test_boolean_labels():
    assert auc([False, True, False, True], [1, 2, 3, 4]).auc == auc([0, 1, 0, 1], [1, 2, 3, 4]).auc


# ---------------------------------------------------------------- errors


def test_one_class_raises():
    with pytest.raises(OneClassError, match="only controls"):
        auc([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(OneClassError):
        roc_curve([1, 1], [0.1, 0.2])
    with pytest.raises(UndefinedStatisticError):
        delong_test([1, 1, 1], [1, 2, 3], [3, 2, 1])


def test_one_case_has_no_delong_variance():
    with pytest.raises(OneClassError, match="at least 2 cases"):
        auc([0, 0, 1], [0.1, 0.2, 0.3])


@pytest.mark.parametrize(
    ("y", "s", "match"),
    [
        ([0, 1, 0], [0.1, np.nan, 0.3], "NaN"),
        ([0, 1, np.nan], [0.1, 0.2, 0.3], "NaN"),
        ([0, 2, 1], [0.1, 0.2, 0.3], "only 0 and 1"),
        ([0, 1], [0.1, 0.2, 0.3], "same length"),
    ],
)
def test_bad_inputs(y, s, match):
    with pytest.raises(ValueError, match=match):
        auc(y, s)


def test_closed_options_are_checked():
    with pytest.raises(ValueError, match=r"ci must be one of 'delong', 'bootstrap'; got 'wald'"):
        auc([0, 1, 0, 1], [1, 2, 3, 4], ci="wald")
    with pytest.raises(ValueError, match="level"):
        auc([0, 1, 0, 1], [1, 2, 3, 4], level=95)


def test_roc_curve_refuses_infinite_scores():
    # pROC refuses them; the curve would otherwise have thresholds out of order and never reach (0, 0).
    with pytest.raises(ValueError, match="infinite values"):
        roc_curve([0, 1, 0, 1], [1, np.inf, 0, np.inf])
