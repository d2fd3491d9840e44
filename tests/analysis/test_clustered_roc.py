"""Obuchowski's clustered AUC variance: against the formula computed by brute force, and against the sampling
spread of the AUC over simulated cohorts whose patients have several radiographs (where DeLong's is too narrow)."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.clustered_roc import clustered_auc
from analysis.errors import OneClassError
from analysis.roc import auc


def _brute(y, s, c):
    """Obuchowski's variance from the pairwise kernel, cluster by cluster, with no shared code."""
    y, s, c = np.asarray(y, bool), np.asarray(s, float), np.asarray(c)
    cases, controls = np.flatnonzero(y), np.flatnonzero(~y)
    psi = (s[cases][:, None] > s[controls][None, :]) + 0.5 * (s[cases][:, None] == s[controls][None, :])
    a = psi.mean()
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    labels = sorted(set(c.tolist()))
    m, n, k = len(cases), len(controls), len(labels)
    x = np.array([v10[c[cases] == lab].sum() for lab in labels])
    z = np.array([v01[c[controls] == lab].sum() for lab in labels])
    mi = np.array([(c[cases] == lab).sum() for lab in labels])
    ni = np.array([(c[controls] == lab).sum() for lab in labels])
    s10 = k / ((k - 1) * m) * np.sum((x - mi * a) ** 2)
    s01 = k / ((k - 1) * n) * np.sum((z - ni * a) ** 2)
    s11 = k / (k - 1) * np.sum((x - mi * a) * (z - ni * a))
    return a, s10 / m + s01 / n + 2 * s11 / (m * n)


def test_it_is_obuchowskis_formula_with_ties_and_clusters_of_any_mix():
    rng = np.random.default_rng(4)
    y = rng.random(60) < 0.4
    s = np.round(rng.normal(y * 0.8, 1.0), 1)  # ties
    c = rng.integers(0, 17, 60).astype(str)
    r = clustered_auc(y, s, c)
    a, var = _brute(y, s, c)
    assert r.auc == pytest.approx(a, abs=1e-12) and r.auc == pytest.approx(auc(y, s).auc, abs=1e-12)
    assert r.se == pytest.approx(np.sqrt(var), rel=1e-10)
    assert r.ci_low == pytest.approx(max(0.0, a - 1.959963984540054 * np.sqrt(var)), rel=1e-9)


def test_one_radiograph_a_patient_is_delongs_variance_but_for_the_small_sample_factors():
    rng = np.random.default_rng(5)
    y = np.r_[np.ones(30, bool), np.zeros(50, bool)]
    s = rng.normal(y * 1.0, 1.0)
    r, d = clustered_auc(y, s, np.arange(80)), auc(y, s)
    # Obuchowski: I/(I-1) over M^2; DeLong: 1/((M-1)M); with I = 80, M = 30, N = 50 the two differ by < 2.5 %
    assert r.se == pytest.approx(d.se, rel=0.025) and r.se != d.se


def test_with_patients_of_several_radiographs_its_interval_has_the_width_the_data_have():
    """Patients of 1-4 radiographs sharing the outcome and a patient effect on the score: over 300 cohorts the
    AUC's spread is matched by Obuchowski's SE and underestimated by DeLong's, which treats each radiograph as
    a patient."""
    rng = np.random.default_rng(0)
    aucs, obu, dl = [], [], []
    for _ in range(300):
        sizes = rng.integers(1, 5, 120)
        patient = np.repeat(np.arange(120), sizes)
        sick = (rng.random(120) < 0.45)[patient]
        score = sick * 0.8 + rng.normal(0, 1.0, 120)[patient] + rng.normal(0, 0.5, len(patient))
        r = clustered_auc(sick, score, patient)
        aucs.append(r.auc)
        obu.append(r.se)
        dl.append(auc(sick, score).se)
    spread = float(np.std(aucs, ddof=1))
    assert np.mean(obu) == pytest.approx(spread, rel=0.12)  # 300 cohorts: the spread itself is known to ~4 %
    assert np.mean(dl) < 0.8 * spread


def test_bad_clusters_are_refused():
    with pytest.raises(ValueError, match="one label per subject"):
        clustered_auc([1, 0, 1, 0], [0.2, 0.1, 0.4, 0.3], ["a", "b"])
    with pytest.raises(ValueError, match="missing label"):
        clustered_auc([1, 0, 1, 0], [0.2, 0.1, 0.4, 0.3], ["a", None, "b", "b"])
    with pytest.raises(OneClassError, match="at least 2 clusters"):
        clustered_auc([1, 0, 1, 0], [0.2, 0.1, 0.4, 0.3], ["a"] * 4)
