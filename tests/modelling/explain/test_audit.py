"""The audit's rule (modelling.explain.audit): every branch on constructed evidence, and its truth."""

from __future__ import annotations

import numpy as np
import pytest

from modelling.explain.audit import (
    FLAGGED,
    PASSED,
    THRESHOLD,
    UNDECIDED,
    Evidence,
    decide,
    mask_share,
    measured_effusion_smaller,
    reliance_verdict,
)


def shares(disease: float, non_disease: float) -> dict:
    """Mean shares per mask with the disease weight on the heart and the rest on the shortcut."""
    return {"share_heart": disease, "share_effusion": 0.0, "share_opacity": 0.0, "share_soft_tissue": 0.0,
            "share_device": 0.05, "share_markers": 0.0, "share_shortcut": non_disease,
            "share_outside": 1 - disease - non_disease, "share_disease": disease, "share_non_disease": non_disease}


def test_masks_decide_when_present_and_flag_a_mostly_non_disease_explanation():
    flagged = decide(Evidence(mask_shares=shares(0.1, 0.3), ctr_lower=0.9, ctr_measured=20))
    assert flagged["decision"] == FLAGGED and flagged["basis"] == "masks"
    assert flagged["non_disease_share"] == pytest.approx(0.75)
    assert any("non-disease share 0.75" in line for line in flagged["used"])
    assert any("projection" in line for line in flagged["not_checked"])
    passed = decide(Evidence(mask_shares=shares(0.3, 0.1), ctr_lower=0.1, ctr_measured=20))
    assert passed["decision"] == PASSED and passed["non_disease_share"] == pytest.approx(0.25)


def test_exactly_half_is_not_more_than_half():
    assert decide(Evidence(mask_shares=shares(0.2, 0.2)))["decision"] == PASSED


def test_device_and_outside_weight_count_for_neither_side():
    s = shares(0.1, 0.1) | {"share_device": 0.5, "share_outside": 0.3}
    assert mask_share(s) == pytest.approx(0.5)
    nothing = {"share_device": 1.0, "share_disease": 0.0, "share_non_disease": 0.0}
    assert mask_share(nothing) is None
    assert decide(Evidence(mask_shares=nothing, ctr_lower=0.8, ctr_measured=3))["basis"] == "measured changes"


def test_per_mask_shares_without_the_unions_are_refused_not_passed():
    # Read as "no mask evidence", a model with most of its GVR weight on the shortcut had passed.
    per_mask = {k: v for k, v in shares(0.1, 0.6).items() if k not in ("share_disease", "share_non_disease")}
    with pytest.raises(KeyError, match="share_disease and share_non_disease"):
        decide(Evidence(mask_shares=per_mask, ctr_lower=0.9, ctr_measured=20))


def test_the_mask_share_counts_overlapping_masks_once_and_soft_tissue_and_markers_as_non_disease():
    # Disease masks overlap (an effusion over the heart): adding their shares counted such pixels twice
    # and pushed N toward "passed".
    from data_schema.tables import MASK_FEATURES
    from modelling.explain.faithfulness import scores

    masks = {m: np.zeros((4, 4), bool) for m in MASK_FEATURES}
    masks["heart"][0, :2] = masks["effusion"][0, :2] = masks["opacity"][0, :2] = True  # one region, three masks
    masks["soft_tissue"][3, 0] = masks["markers"][3, 1] = True
    weight = np.zeros((4, 4))
    weight[0, :2], weight[3, :2] = 1.0, 1.0
    s = scores(weight, masks, ["heart"])
    assert s["share_heart"] == s["share_effusion"] == s["share_disease"] == pytest.approx(0.5)
    assert s["share_non_disease"] == pytest.approx(0.5)
    assert mask_share(s) == pytest.approx(0.5)  # summing the three disease masks would give 0.25


def test_true_counterfactual_disagreement_is_a_caveat_not_a_decision():
    disagree = decide(Evidence(mask_shares=shares(0.3, 0.1), true_change_r=-0.1))
    assert disagree["decision"] == PASSED and len(disagree["caveats"]) == 1
    agree = decide(Evidence(mask_shares=shares(0.3, 0.1), true_change_r=0.4))
    assert agree["caveats"] == [] and any("0.40" in line for line in agree["used"])


def test_without_masks_measured_changes_decide_and_say_what_was_not_checked():
    shown = decide(Evidence(ctr_lower=0.8, ctr_measured=10, effusion_smaller=0.2, effusion_measured=5))
    assert shown["decision"] == PASSED and shown["basis"] == "measured changes"
    assert any("shortcuts" in line for line in shown["not_checked"])
    hidden = decide(Evidence(ctr_lower=0.3, ctr_measured=10, effusion_smaller=0.5, effusion_measured=4))
    assert hidden["decision"] == FLAGGED
    one = decide(Evidence(ctr_lower=0.2, ctr_measured=10))  # no effusion measured: the CTR alone decides
    assert one["decision"] == FLAGGED
    assert any("effusion smaller (no GVR" in line for line in one["not_checked"])


def test_nothing_measurable_is_undecided():
    out = decide(Evidence(ctr_lower=None, ctr_measured=0))
    assert out["decision"] == UNDECIDED and out["basis"] == "none"
    assert decide(Evidence(ctr_lower=0.9, ctr_measured=0))["decision"] == UNDECIDED  # a share of nothing


def test_reliance_truth_uses_absolute_falls_and_leaves_the_pacemaker_out():
    base = {"heart": 0.9, "effusion": 0.8, "opacity": 0.03, "body_mass": 0.64, "projection": 0.26,
            "markers": -0.17, "shortcut": 0.0}
    truth = reliance_verdict(base | {"pacemaker": 5.0})
    assert truth["share"] == pytest.approx((0.64 + 0.26 + 0.17) / (0.64 + 0.26 + 0.17 + 0.9 + 0.8 + 0.03))
    assert not truth["flagged"]
    assert reliance_verdict(base | {"shortcut": 2.0})["flagged"]
    assert reliance_verdict({})["share"] is None and not reliance_verdict({})["flagged"]
    assert reliance_verdict({"heart": 1.0, "shortcut": 1.0})["share"] == THRESHOLD
    assert not reliance_verdict({"heart": 1.0, "shortcut": 1.0})["flagged"]


def test_effusion_on_real_data_needs_asymmetric_lungs():
    d = np.array([[0.5, 0.8], [0.8, 0.79], [np.nan, 0.8], [0.9, 0.6]])
    h = np.array([[0.8, 0.8], [0.5, 0.5], [0.8, 0.8], [0.9, 0.5]])
    assert measured_effusion_smaller(d, h) == (0.5, 2)  # row 0 clears, row 3 does not; row 1 is symmetric
    assert measured_effusion_smaller(d[1:3], h[1:3]) == (None, 0)
