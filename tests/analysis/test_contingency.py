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


def _one_way(case: str) -> tuple[np.ndarray, np.ndarray | None, bool]:
    g = data("goodness_of_fit")
    g = g[g["case"] == case]
    p = None if (g["p"] == "NA").all() else g["p"].astype(float).to_numpy()
    return g["count"].astype(float).to_numpy(), p, str(g["rescale_p"].iloc[0]).upper() == "TRUE"


@pytest.mark.parametrize("case", sorted(EXP["goodness_of_fit"]))
@pytest.mark.parametrize("shape", ["vector", "row", "column"])
def test_one_way_table_is_a_goodness_of_fit_test_as_chisq_test(case, shape):
    """R's chisq.test(x, p = ...) on a vector, or on a matrix with one row or one column."""
    ref = EXP["goodness_of_fit"][case]
    counts, p, rescale = _one_way(case)
    table = {"vector": counts, "row": counts[None, :], "column": counts[:, None]}[shape]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = chi_square(table, p=p, rescale_p=rescale)
    assert res.statistic == pytest.approx(ref["statistic"], rel=1e-12, abs=1e-12)
    assert res.p_value == pytest.approx(ref["p_value"], rel=1e-12)
    assert res.df == ref["df"] and res.method == ref["method"] and not res.correct
    np.testing.assert_allclose(res.expected, ref["expected"], rtol=1e-12)
    assert any(issubclass(w.category, ApproximationWarning) for w in caught) == ref["warned"]


def test_goodness_of_fit_ignores_yates_and_is_invariant_to_order():
    counts = np.array([18.0, 25, 31, 26])
    base = chi_square(counts)
    assert chi_square(counts, correct=False).statistic == base.statistic
    assert chi_square(counts[::-1]).statistic == pytest.approx(base.statistic, rel=1e-15)
    given = chi_square(counts, p=[0.1, 0.2, 0.3, 0.4])
    assert chi_square(counts[::-1], p=[0.4, 0.3, 0.2, 0.1]).statistic == pytest.approx(given.statistic, rel=1e-15)


@pytest.mark.parametrize(("table", "kwargs", "message"), [
    ([5], {}, "at least 2 categories"),
    ([0, 0], {}, "at least one count must be positive"),
    ([3, -1], {}, "non-negative and finite"),
    ([3, np.nan], {}, "non-negative and finite"),
    ([3, 4], {"p": [0.5, 0.6]}, "must sum to 1"),
    ([3, 4], {"p": [0.2, 0.3, 0.5]}, "one probability per category"),
    ([3, 4], {"p": [-0.5, 1.5]}, "non-negative"),
    ([3, 4], {"p": [0, 1]}, "probability 0"),
    ([[3, 4], [5, 6]], {"p": [0.5, 0.5]}, "one-way table only"),
    ([3, 4], {"rescale_p": "yes"}, "rescale_p must be one of"),
])
def test_goodness_of_fit_refuses_what_r_refuses(table, kwargs, message):
    with pytest.raises(ValueError, match=message):
        chi_square(table, **kwargs)


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
    with pytest.raises(ValueError, match="2-D array"):
        chi_square(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="2 rows"):
        fisher_exact([[1, 2, 3]])  # Fisher's test has no one-way form
    with pytest.raises(ValueError, match="non-negative"):
        fisher_exact([[1, -1], [2, 3]])
    with pytest.raises(ValueError, match="whole-number"):
        fisher_exact([[1.5, 1], [2, 3]])
    with pytest.raises(ValueError, match="max_tables"):
        fisher_exact([[5, 5, 5], [5, 5, 5], [5, 5, 5]], max_tables=10)
    with pytest.raises(ValueError, match="correct must be one of"):
        chi_square([[1, 2], [3, 4]], correct="yes")
