"""The regime target: where the two models' reliance differs, their GVRs differ the same way (P < 0.01)."""

from __future__ import annotations

from analysis.regimes import regime_differences, regime_target


def _row(rc, ro, cc, co, p):
    return {"reliance_correct": rc, "reliance_overfitted": ro, "gvr_coefficient_correct": cc,
            "gvr_coefficient_overfitted": co, "p": p}


def test_a_feature_neither_model_relies_on_is_not_counted_as_agreeing():
    # Both zero: the old report's sign(0) == sign(0) counted it as "differing the same way".
    target = regime_target(regime_differences({"shortcut": _row(0.0, 0.0, 0.0, 0.0, None),
                                               "markers": _row(0.01, 0.04, 0.1, 0.3, 0.001)}))
    assert target["differing"] == [] and target["met"] is False  # markers: under the floor in both models


def test_each_differing_feature_is_judged_by_direction_and_p():
    rows = {"body_mass": _row(0.62, 1.59, 0.10, 0.20, 0.07),     # right way, P too large
            "projection": _row(0.25, 0.58, 0.185, 0.085, 0.04),  # the other way
            "pacemaker": _row(0.35, 0.18, 0.30, 0.10, 0.001),    # right way, P < 0.01
            "markers": _row(0.30, 0.36, 0.10, 0.50, 0.0001)}     # reliance alike (1.2-fold): not judged
    target = regime_target(regime_differences(rows))
    assert target == {"differing": ["body_mass", "projection", "pacemaker"], "met_on": ["pacemaker"],
                      "same_way_only": ["body_mass"], "opposite": ["projection"], "met": False}


def test_met_when_every_differing_feature_differs_the_same_way_with_p_below_001():
    rows = {"body_mass": _row(0.6, 1.6, 0.1, 0.3, 0.004), "projection": _row(0.0, 0.3, 0.0, 0.2, 0.009),
            "markers": _row(0.3, 0.3, 0.2, 0.1, 0.5)}
    target = regime_target(regime_differences(rows))
    assert target["met"] and target["met_on"] == ["body_mass", "projection"]
    tied = dict(rows, projection=_row(0.0, 0.3, 0.2, 0.2, None))  # GVRs that do not differ at all
    assert regime_target(regime_differences(tied))["opposite"] == ["projection"]
