"""The audit's rule (modelling.explain.audit): every branch on constructed evidence, and its truth."""

from __future__ import annotations

import numpy as np
import pytest

from modelling.explain.audit import (
    FLAGGED,
    PASSED,
    RESPONSE_FLOOR,
    THRESHOLD,
    UNDECIDED,
    Evidence,
    decide,
    mask_share,
    measured_effusion_smaller,
    region_effects,
    reliance_verdict,
)


def shares(disease: float, non_disease: float) -> dict:
    """Mean shares per mask with the disease weight on the heart and the rest on the shortcut."""
    return {"share_heart": disease, "share_effusion": 0.0, "share_opacity": 0.0, "share_soft_tissue": 0.0,
            "share_device": 0.05, "share_markers": 0.0, "share_shortcut": non_disease,
            "share_outside": 1 - disease - non_disease, "share_disease": disease, "share_non_disease": non_disease}


def test_the_share_by_area_decides_where_the_region_response_is_not_measured():
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
    measured = region(0.5, 1.5)
    disagree = decide(Evidence(mask_shares=shares(0.3, 0.1), region_effects=measured, true_change_r=-0.1))
    assert disagree["decision"] == PASSED and len(disagree["caveats"]) == 1
    agree = decide(Evidence(mask_shares=shares(0.3, 0.1), region_effects=measured, true_change_r=0.4))
    assert agree["caveats"] == [] and any("0.40" in line and "not deciding" in line for line in agree["reported"])
    assert not any("0.40" in line for line in agree["used"])


def test_where_the_masks_decide_the_measured_changes_are_reported_not_used():
    """The CLI prints `used` as the evidence of the decision: a CTR lower in 95 % of GVRs must not read as
    evidence against a flag it played no part in."""
    flagged = decide(Evidence(region_effects=region(3.0, 1.0), ctr_lower=0.95, ctr_measured=20,
                              effusion_smaller=0.9, effusion_measured=10))
    assert flagged["decision"] == FLAGGED
    assert not any("cardiothoracic" in line or "effusion smaller" in line for line in flagged["used"])
    assert sum("not deciding" in line and ("cardiothoracic" in line or "effusion smaller" in line)
               for line in flagged["reported"]) == 2
    measured = decide(Evidence(ctr_lower=0.95, ctr_measured=20))  # without masks they decide, and are used
    assert measured["basis"] == "measured changes" and any("cardiothoracic" in line for line in measured["used"])


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


def _region_case():
    """Two 6 x 6 GVRs: the heart (rows 3-5) overlapped by an effusion, a one-pixel shortcut marker, and soft
    tissue; the healthy reconstruction is 100 darker everywhere."""
    masks = []
    for _ in range(2):
        m = {name: np.zeros((6, 6), bool) for name in ("heart", "effusion", "opacity", "shortcut", "markers",
                                                      "soft_tissue")}
        m["heart"][3:, 2:4] = m["effusion"][3:, :4] = True
        m["shortcut"][0, 0] = True
        m["soft_tissue"][:, 5] = True
        masks.append(m)
    return masks, np.full((2, 6, 6), 200, np.uint8), np.full((2, 6, 6), 100, np.uint8)


def test_region_effects_weigh_a_small_region_by_the_models_response_not_its_area():
    masks, diseased, healthy = _region_case()

    def model(x):  # reads the one-pixel marker three times as strongly as the whole heart
        x = x.astype(float) / 100
        return 3 * x[:, 0, 0] + x[:, 3:, 2:4].mean(axis=(1, 2))

    e = region_effects(model, diseased, healthy, masks)
    assert e["whole"] == pytest.approx(4.0)
    assert e["non_disease"] == pytest.approx(3.0) and e["disease"] == pytest.approx(1.0)
    assert e["share"] == pytest.approx(0.75)
    # O: the marker lies outside the disease masks, so O reads it as E does (nothing else moves the model)
    assert e["outside"] == pytest.approx(3.0) and e["outside_share"] == pytest.approx(0.75)
    # the heart and effusion overlap; each alone has the heart's effect, the union counts it once
    assert e["by_mask"]["heart"] == e["by_mask"]["effusion"] == pytest.approx(1.0)
    assert e["by_mask"]["shortcut"] == pytest.approx(3.0) and e["by_mask"]["soft_tissue"] == 0.0


def test_the_outside_response_counts_everything_but_the_disease_and_device_masks():
    masks, diseased, healthy = _region_case()
    for m in masks:
        m["device"] = np.zeros((6, 6), bool)
        m["device"][1, 1] = True

    def model(x):  # an unmasked corner (how the patient stands), the pacemaker, and the heart
        x = x.astype(float) / 100
        return 2 * x[:, 1, 3] + 5 * x[:, 1, 1] + x[:, 3:, 2:4].mean(axis=(1, 2))

    e = region_effects(model, diseased, healthy, masks)
    assert e["non_disease"] == pytest.approx(0.0) and e["disease"] == pytest.approx(1.0)
    assert e["outside"] == pytest.approx(2.0)  # the pacemaker's fall (5) is neither side's
    assert e["outside_share"] == pytest.approx(2 / 3) and e["share"] == pytest.approx(0.0)


def test_a_region_that_raises_the_prediction_counts_by_the_size_of_its_response():
    masks, diseased, healthy = _region_case()

    def model(x):  # the healthy marker pixel raises the prediction three times as much as the heart lowers it
        x = x.astype(float) / 100
        return -3 * x[:, 0, 0] + x[:, 3:, 2:4].mean(axis=(1, 2))

    e = region_effects(model, diseased, healthy, masks)
    assert e["outside"] == pytest.approx(-3.0) and e["disease"] == pytest.approx(1.0)
    assert e["outside_share"] == pytest.approx(0.75) and e["share"] == pytest.approx(0.75)
    assert decide(Evidence(region_effects=e))["decision"] == FLAGGED


def test_a_model_that_predicts_nan_is_an_error_not_a_model_that_does_not_respond():
    masks, diseased, healthy = _region_case()
    with pytest.raises(ValueError, match="NaN or infinity for 2 of 2"):
        region_effects(lambda x: np.full(len(x), np.nan), diseased, healthy, masks)


def test_gvrs_of_radiographs_without_any_disease_mask_are_left_out_and_said():
    """A real radiograph whose segmentation lacks the heart would count its whole change as outside the disease
    masks and push O toward flagging."""
    masks, diseased, healthy = _region_case()
    for name in ("heart", "effusion", "opacity"):
        masks[1][name] = np.zeros((6, 6), bool)
    healthy = healthy.copy()
    healthy[1] = 200  # the second GVR's change would count wholly outside

    def model(x):  # reads the middle of the image, where the first radiograph's heart lies
        return x[:, 3:, 2:4].astype(float).mean(axis=(1, 2)) / 100

    e = region_effects(model, diseased, healthy, masks)
    assert e["no_disease_masks"] == 1
    assert e["disease"] == pytest.approx(1.0) and e["outside"] == pytest.approx(0.0)  # the first GVR alone
    d = decide(Evidence(region_effects=e))
    assert d["decision"] == PASSED and any("1 GVR(s) whose radiograph has no disease mask" in c for c in d["caveats"])
    none_left = region_effects(model, diseased[1:], healthy[1:], masks[1:])
    assert none_left["outside_share"] is None and none_left["no_disease_masks"] == 1


def test_region_effects_treat_a_missing_mask_as_empty_and_refuse_mismatched_inputs():
    masks, diseased, healthy = _region_case()
    masks = [{k: v for k, v in m.items() if k != "shortcut"} for m in masks]  # real data without the marker
    e = region_effects(lambda x: x[:, 0, 0].astype(float), diseased, healthy, masks)
    assert e["non_disease"] == 0.0 and e["disease"] == 0.0 and e["share"] is None
    # what no mask covers (here the marker without its mask; on the phantom, body mass and the projection)
    # still counts outside the disease masks
    assert e["outside"] == pytest.approx(100.0) and e["outside_share"] == 1.0
    with pytest.raises(ValueError, match="mask sets must match"):
        region_effects(lambda x: x[:, 0, 0], diseased, healthy, masks[:1])
    assert region_effects(lambda x: x[:, 0, 0], diseased[:0], healthy[:0], [])["share"] is None


def region(outside: float, disease: float, non_disease: float | None = None) -> dict:
    """Region effects with the fall outside the disease masks (O's), in the disease masks and, by default the
    same as outside, in the non-disease masks alone (E's)."""
    non_disease = outside if non_disease is None else non_disease
    d = abs(disease)
    share = (lambda fall: abs(fall) / (abs(fall) + d) if abs(fall) + d else None)
    return {"whole": outside + disease, "non_disease": non_disease, "disease": disease, "outside": outside,
            "by_mask": {}, "share": share(non_disease), "outside_share": share(outside)}


def test_the_response_outside_the_disease_masks_decides_and_the_share_by_area_is_reported_beside_it():
    """A marker shortcut: the GVRs' change lies mostly in the disease masks by area (N 0.25), but the model's
    prediction falls three times as much from the pixels outside them (O 0.75): the region response decides."""
    flagged = decide(Evidence(mask_shares=shares(0.3, 0.1), region_effects=region(3.0, 1.0),
                              region_gvrs="the GVRs shortened by 300 steps, 50 of 50"))
    assert flagged["decision"] == FLAGGED and flagged["basis"] == "masks" and flagged["decided_by"] == "outside_share"
    assert flagged["outside_share"] == 0.75 and flagged["non_disease_share"] == pytest.approx(0.25)
    assert any("non-disease share 0.75" in line and "shortened by 300 steps" in line
               and "outside the disease and device masks" in line for line in flagged["used"])
    assert any("0.25" in line and "not deciding" in line for line in flagged["reported"])
    assert not any("0.25" in line for line in flagged["used"])
    assert "outside the disease and device masks" in flagged["rule"]
    assert flagged["not_checked"] == []  # the projection shows outside the masks, where O counts it
    # the other way round: a change mostly outside the disease masks that the model does not respond to
    passed = decide(Evidence(mask_shares=shares(0.1, 0.6), region_effects=region(0.2, 1.8)))
    assert passed["decision"] == PASSED and passed["outside_share"] == pytest.approx(0.1)


def test_a_region_response_of_exactly_half_passes_and_a_rise_counts_by_its_size():
    assert decide(Evidence(region_effects=region(1.0, 1.0)))["decision"] == PASSED
    # pasting the non-disease pixels raises the prediction: the model still responds to them
    assert decide(Evidence(region_effects=region(-3.0, 1.0)))["decision"] == FLAGGED


def test_without_a_region_response_the_share_by_area_decides_with_a_caveat():
    nil = decide(Evidence(mask_shares=shares(0.1, 0.3), region_effects=region(0.0, 0.0)))
    assert nil["decision"] == FLAGGED and nil["decided_by"] == "non_disease_share"
    assert nil["outside_share"] is None and nil["region_share"] is None
    assert any("by less than 0.01 log BNP in all" in c for c in nil["caveats"])
    assert "by area" in nil["rule"]
    absent = decide(Evidence(mask_shares=shares(0.3, 0.1)))  # no response measured (a caller without a model)
    assert absent["decision"] == PASSED and absent["decided_by"] == "non_disease_share"
    assert absent["caveats"] == ["the model's response by region was not measured; decided by the change's area, "
                                 "which counts only the change inside the masks (60% of it lies outside every mask)"]


def test_masks_that_neither_the_change_nor_the_model_reaches_leave_the_measured_changes_to_decide():
    """The GVRs change nothing inside any mask and the model responds to neither region: the masks were
    there, so the audit must not say it had none, and the measured changes decide."""
    nothing = {"share_device": 0.0, "share_outside": 1.0, "share_disease": 0.0, "share_non_disease": 0.0}
    d = decide(Evidence(mask_shares=nothing, region_effects=region(0.0, 0.0), ctr_lower=0.2, ctr_measured=8))
    assert d["decision"] == FLAGGED and d["basis"] == "measured changes"
    assert not any("no masks" in line for line in d["not_checked"])
    assert any("change nothing in the masks" in line for line in d["not_checked"])


def test_a_caveat_says_how_many_gvrs_could_be_shortened():
    some = decide(Evidence(region_effects=region(1.0, 3.0), region_shortened=(12, 50)))
    assert some["decision"] == PASSED
    assert any("only 12 of 50 GVRs could be shortened" in c for c in some["caveats"])
    assert not decide(Evidence(region_effects=region(1.0, 3.0), region_shortened=(50, 50)))["caveats"]


def test_without_masks_no_region_share_is_reported():
    without = decide(Evidence(ctr_lower=0.9, ctr_measured=10))
    assert without["outside_share"] is None and without["region_share"] is None
    assert without["non_disease_share"] is None and without["reported"] == []
    assert without["decided_by"] is None


def test_the_response_to_the_non_disease_masks_alone_is_reported_and_never_decides():
    """E above one half with O below it (a model the marker's pixels move, pulled back by what no mask covers):
    the model passes (O decides), and E is among the reported lines."""
    effects = region(0.3, 0.7, non_disease=2.8)
    assert effects["share"] == pytest.approx(0.8) and effects["outside_share"] == pytest.approx(0.3)
    d = decide(Evidence(mask_shares=shares(0.3, 0.1), region_effects=effects))
    assert d["decision"] == PASSED and d["decided_by"] == "outside_share" and d["region_share"] == pytest.approx(0.8)
    assert any("non-disease masks alone" in line and "share 0.80" in line for line in d["reported"])
    assert not any("0.80" in line for line in d["used"])
    # E defined and O not (the outside and disease falls below the floor): the share by area decides, E reported
    faint = region(0.001, 0.002, non_disease=0.4) | {"outside_share": None}
    n = decide(Evidence(mask_shares=shares(0.3, 0.1), region_effects=faint))
    assert n["decided_by"] == "non_disease_share" and n["decision"] == PASSED  # N 0.25
    assert any("non-disease masks alone" in line for line in n["reported"])


def test_falls_that_round_to_nothing_give_no_share_and_the_audit_says_so():
    """A tiny model whose regions move its prediction by a thousandth of log BNP: a share of those falls is noise
    (a new user's test drive saw PASSED on 'by -0.00 ... by 0.00')."""
    masks, diseased, healthy = _region_case()

    def faint(x):
        x = x.astype(float) / 100
        return 0.0003 * x[:, 0, 0] + 0.0004 * x[:, 3:, 2:4].mean(axis=(1, 2))

    e = region_effects(faint, diseased, healthy, masks)
    assert 0 < abs(e["non_disease"]) + abs(e["disease"]) < RESPONSE_FLOOR and e["share"] is None
    assert region_effects(lambda x: 100 * faint(x), diseased, healthy, masks)["share"] == pytest.approx(3 / 7)
    nil = decide(Evidence(mask_shares=shares(0.1, 0.3), region_effects=e))
    assert nil["decided_by"] == "non_disease_share" and any("by less than 0.01 log BNP in all" in c for c in nil["caveats"])
    raised = decide(Evidence(mask_shares=shares(0.1, 0.3), region_effects={
        "whole": -0.2, "non_disease": None, "disease": 0.5, "outside": -0.05, "share": None, "outside_share": 0.09}))
    assert "raise the predicted log BNP by 0.05" in raised["used"][0] and "-0.0" not in raised["used"][0]


def test_features_not_segmented_are_said_and_an_empty_non_disease_union_decides_nothing():
    """A user's masks of the disease features only: no share of 0 passes the model, and without a device mask the
    pacemaker counted outside the disease masks is said."""
    only_disease = {"share_heart": 0.35, "share_effusion": 0.0, "share_opacity": 0.0, "share_outside": 0.65,
                    "share_disease": 0.35, "share_non_disease": float("nan")}
    unsegmented = ("soft_tissue", "device", "markers", "shortcut")
    d = decide(Evidence(mask_shares=only_disease, region_effects=region(0.001, 0.002) | {"outside_share": None},
                        unsegmented=unsegmented))
    assert d["decision"] == UNDECIDED and d["non_disease_share"] is None
    assert any("no non-disease feature was segmented" in line for line in d["not_checked"])
    o = decide(Evidence(mask_shares=only_disease, region_effects=region(0.6, 0.4), unsegmented=unsegmented))
    assert o["decision"] == FLAGGED and any("no device mask was given" in c for c in o["caveats"])
    assert not any("device mask" in c for c in decide(Evidence(region_effects=region(0.6, 0.4)))["caveats"])
