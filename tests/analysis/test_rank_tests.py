"""analysis.rank_tests against R's wilcox.test and pwilcox (tests/analysis/r/rank_tests_reference.R)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from analysis.errors import AllTiedError
from analysis.rank_tests import mann_whitney, mann_whitney_cdf
from tests.analysis.oracle import data, expected

EXP = expected("rank_tests")
SAMPLES = {
    case: (g.loc[g.group == "x", "value"].to_numpy(float), g.loc[g.group == "y", "value"].to_numpy(float))
    for case, g in data("wilcox_cases").groupby("case")
}
ALT = {"two.sided": "two-sided", "less": "less", "greater": "greater"}


@pytest.mark.parametrize("ref", EXP["wilcox"], ids=lambda r: f"{r['case']}-{r['alternative']}-{r['correct']}-{r['exact']}")
def test_matches_wilcox_test(ref):
    x, y = SAMPLES[ref["case"]]
    exact = None if ref["exact"] == "NULL" else False
    res = mann_whitney(x, y, exact=exact, correct=ref["correct"], alternative=ALT[ref["alternative"]])
    assert res.statistic == pytest.approx(ref["statistic"], abs=1e-9)
    assert res.p_value == pytest.approx(ref["p_value"], abs=1e-9)
    assert res.method == ("exact" if ref["method"].startswith("Wilcoxon rank sum exact") else "normal")


@pytest.mark.parametrize("ref", EXP["pwilcox"], ids=lambda r: f"m{r['m']}-n{r['n']}")
def test_null_distribution_matches_pwilcox(ref):
    for q, lo, up in zip(ref["q"], ref["lower"], ref["upper"]):
        assert mann_whitney_cdf(q, ref["m"], ref["n"]) == pytest.approx(lo, abs=1e-12)
        assert mann_whitney_cdf(q, ref["m"], ref["n"], lower_tail=False) == pytest.approx(up, abs=1e-12)


@pytest.mark.parametrize("case", sorted(SAMPLES))
def test_u_statistics_sum_to_nx_ny(case):
    x, y = SAMPLES[case]
    assert mann_whitney(x, y).statistic + mann_whitney(y, x).statistic == x.size * y.size


def test_asymptotic_agrees_with_scipy():
    x, y = SAMPLES["age_like"]
    ours = mann_whitney(x, y, exact=False)
    theirs = stats.mannwhitneyu(x, y, method="asymptotic", use_continuity=True)
    assert ours.p_value == pytest.approx(theirs.pvalue, abs=1e-12)


def test_exact_with_ties_warns_and_falls_back():
    x, y = SAMPLES["small_ties"]
    with pytest.warns(UserWarning, match="ties"):
        res = mann_whitney(x, y, exact=True)
    assert res.method == "normal"


def test_all_tied_raises():
    with pytest.raises(AllTiedError, match="tied"):
        mann_whitney([2, 2, 2], [2, 2])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"alternative": "two.sided"}, r"alternative must be one of 'two-sided', 'less', 'greater'; got 'two.sided'"),
     ({"exact": "yes"}, "exact must be one of"), ({"correct": 1}, "correct must be one of")],
)
def test_options_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mann_whitney([1, 2], [3, 4], **kwargs)


def test_bad_data():
    with pytest.raises(ValueError, match="NaN"):
        mann_whitney([1, np.nan], [3, 4])
    with pytest.raises(ValueError, match="at least one"):
        mann_whitney([], [3, 4])
    assert mann_whitney([1, 2], [3, 4]).to_frame().shape[0] == 1


def test_ties_warn_when_the_exact_test_is_chosen_by_default_as_r():
    # R: wilcox.test(c(1, 2, 2, 3), c(2, 4, 5)) warns "cannot compute exact p-value with ties".
    with pytest.warns(UserWarning, match="cannot compute exact p-value with ties"):
        mann_whitney([1, 2, 2, 3], [2, 4, 5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mann_whitney([1, 2, 2, 3], [2, 4, 5], exact=False)  # the normal approximation asked for: no warning
