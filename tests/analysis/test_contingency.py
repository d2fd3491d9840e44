"""analysis.contingency against R's chisq.test and fisher.test (tests/analysis/r/contingency_reference.R)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from analysis.contingency import chi_square, fisher_exact
from analysis.errors import ApproximationWarning, EmptyMarginError
from tests.analysis.oracle import data, expected

EXP = expected("contingency")


def _tables() -> dict[str, np.ndarray]:
    out = {}
    for case, g in data("tables").groupby("case"):
        m = np.zeros((g["row"].max(), g["col"].max()))
        m[g["row"] - 1, g["col"] - 1] = g["count"]
        out[case] = m
    return out


TABLES = _tables()


def _on_uniroot_scale(v: float) -> float:
    """R finds an odds ratio t <= 1 as a root in (0, 1) and t > 1 as 1 / root, both by uniroot with
    absolute tolerance ~1.2e-4; compare on that scale (ours are solved to ~1e-13)."""
    return v if v <= 1 else 1.0 / v


@pytest.mark.parametrize("case", sorted(EXP["tables"]))
@pytest.mark.parametrize("correct", [True, False])
def test_chi_square_matches_chisq_test(case, correct):
    ref = EXP["tables"][case]["chisq_correct" if correct else "chisq_plain"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = chi_square(TABLES[case], correct=correct)
    assert res.statistic == pytest.approx(ref["statistic"], abs=1e-9)
    assert res.p_value == pytest.approx(ref["p_value"], abs=1e-9)
    assert res.df == ref["df"]
    assert res.method == ref["method"]
    np.testing.assert_allclose(res.expected.ravel(order="F"), ref["expected"], rtol=1e-12)
    assert any(issubclass(w.category, ApproximationWarning) for w in caught) == ref["warned"]
    assert res.to_frame().shape[0] == 1


@pytest.mark.parametrize("case", sorted(EXP["tables"]))
def test_fisher_matches_fisher_test(case):
    ref = EXP["tables"][case]["fisher"]
    res = fisher_exact(TABLES[case])
    assert res.p_value == pytest.approx(ref["p_value"], abs=1e-9)
    if "odds_ratio" in ref:
        for field in ("odds_ratio", "ci_low", "ci_high"):
            assert _on_uniroot_scale(getattr(res, field)) == pytest.approx(
                _on_uniroot_scale(ref[field]), abs=2.5e-4
            ), field
    else:
        assert res.odds_ratio is None
    assert res.to_frame().shape[0] == 1


def test_fisher_is_invariant_to_transposition():
    t = TABLES["r2x3"]
    assert fisher_exact(t).p_value == pytest.approx(fisher_exact(t.T).p_value, abs=1e-12)


def test_fisher_2x2_enumeration_agrees_with_closed_form():
    from analysis.contingency import _enumerate, _log_table_probs

    t = TABLES["small_expected"].astype(int)
    tabs = _enumerate(t.sum(1), t.sum(0), 100)
    p = np.exp(_log_table_probs(tabs.astype(float), t.sum(1).astype(float), t.sum(0).astype(float)))
    assert p.sum() == pytest.approx(1.0)
    assert tabs.shape[0] == fisher_exact(t).n_tables


def test_errors():
    with pytest.raises(EmptyMarginError):
        chi_square([[0, 0], [1, 2]])
    with pytest.raises(ValueError, match="2 rows"):
        chi_square([1, 2, 3])
    with pytest.raises(ValueError, match="non-negative"):
        fisher_exact([[1, -1], [2, 3]])
    with pytest.raises(ValueError, match="whole-number"):
        fisher_exact([[1.5, 1], [2, 3]])
    with pytest.raises(ValueError, match="max_tables"):
        fisher_exact([[5, 5, 5], [5, 5, 5], [5, 5, 5]], max_tables=10)
    with pytest.raises(ValueError, match="correct must be one of"):
        chi_square([[1, 2], [3, 4]], correct="yes")
