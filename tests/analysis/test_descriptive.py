"""analysis.descriptive against R's quantile(type = 7), mean and sd."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.descriptive import mean_sd, median_iqr, quantile
from tests.analysis.oracle import data, expected

EXP = expected("descriptive")
VALUES = {case: g["value"].to_numpy(float) for case, g in data("descriptive").groupby("case")}


@pytest.mark.parametrize("case", sorted(EXP["descriptive"]))
def test_matches_r(case):
    ref = EXP["descriptive"][case]
    v = VALUES[case]
    np.testing.assert_allclose(quantile(v, ref["probs"]), ref["quantiles"], rtol=1e-12)
    r = median_iqr(v)
    assert (r.q1, r.median, r.q3) == pytest.approx([ref["quantiles"][i] for i in (3, 4, 5)], rel=1e-12)
    m = mean_sd(v)
    assert (m.mean, m.sd) == pytest.approx((ref["mean"], ref["sd"]), rel=1e-12)


def test_scalar_and_errors():
    assert isinstance(quantile([1, 2, 3], 0.5), float)
    with pytest.raises(ValueError, match="probabilities"):
        quantile([1, 2], 1.5)
    with pytest.raises(ValueError, match="NaN"):
        median_iqr([1, np.nan])
    with pytest.raises(ValueError, match="at least 2"):
        mean_sd([1.0])
    assert median_iqr([1, 2]).to_frame().shape == (1, 4)
