"""The fidelity targets of issue 15, judged on ``fidelity/summary.json``: one definition for ``gvr fidelity``
and the manuscript.

Every model's GVRs rank the features as its reliance does (Spearman's rho of at least
:data:`RANK_AGREEMENT`); the correct model's GVRs correlate with the true change at a median of at least
:data:`PIXEL_R` and lower the measured cardiothoracic ratio in at least :data:`SHARE` of those with
cardiomegaly, and of those without a large effusion, where the measure reads the heart rather than the fluid
beside it (benchmarks/probe_ctr_rows.py), and show a smaller effusion in at least :data:`SHARE` of those with
one; where the two models' reliance on a feature that is not disease differs, their GVRs differ the same way
(:mod:`analysis.regimes`). The numbers are the issue's ("median correlation of at least 0.5", "in at least
90 % of its GVRs", "Spearman >= 0.7").

:func:`baseline_checks` judges the one target that needs the baselines stage, on ``baselines/audit.json``: each
model's GVRs place at least as much of their relevance inside the driving masks as the best of the attribution
baselines do on the same radiographs ("GVR relevance mass accuracy at least that of the best baseline").
"""

from __future__ import annotations

from analysis.regimes import ALPHA, regime_differences, regime_target

__all__ = ["PIXEL_R", "RANK_AGREEMENT", "SHARE", "baseline_checks", "fidelity_checks"]

RANK_AGREEMENT = 0.7
PIXEL_R = 0.5
SHARE = 0.9


def fidelity_checks(summary: dict) -> dict[str, dict]:
    """The targets judged on a fidelity summary, as ``{name: {"value": float | None, "met": bool}}``; empty
    without ground truth. The names state the thresholds.

    >>> fidelity_checks({"models": {"mlp-overfitted": {"rank_agreement": 0.75}}})
    {'mlp-overfitted: GVRs rank features as reliance does, Spearman >= 0.7': {'value': 0.75, 'met': True}}
    """
    checks = {}
    share = f"{SHARE:.0%}"
    for model_id, m in summary.get("models", {}).items():
        rho = m["rank_agreement"]
        checks[f"{model_id}: GVRs rank features as reliance does, Spearman >= {RANK_AGREEMENT:g}"] = {
            "value": rho, "met": rho is not None and rho >= RANK_AGREEMENT}
        if model_id.endswith("-correct"):
            r, lower = m["median_pixel_r"], m["ctr_lower"]
            checks[f"{model_id}: median pixel r with the true change >= {PIXEL_R:g}"] = {
                "value": r, "met": r is not None and r >= PIXEL_R}
            checks[f"{model_id}: measured CTR lower in >= {share} with cardiomegaly"] = {
                "value": lower, "met": lower is not None and lower >= SHARE}
            if "ctr_lower_small_effusion" in m:  # the same target where fluid hides no heart border
                small = m["ctr_lower_small_effusion"]
                checks[f"{model_id}: measured CTR lower in >= {share} with cardiomegaly and no large effusion "
                       f"(of {m.get('ctr_small_effusion_measured', 0)})"] = {
                    "value": small, "met": small is not None and small >= SHARE}
            cleared = m.get("effusion_cleared")
            checks[f"{model_id}: measured effusion smaller in >= {share} with an effusion"] = {
                "value": cleared, "met": cleared is not None and cleared >= SHARE}
    if summary.get("non_disease_difference"):
        target = regime_target(regime_differences(summary["non_disease_difference"]))
        differing = target["differing"]
        checks[f"the two models' GVRs differ as their reliance does, P < {ALPHA:g}, on each feature whose reliance "
               f"differs ({', '.join(differing) or 'none'}); share of them"] = {
            "value": len(target["met_on"]) / len(differing) if differing else None, "met": target["met"]}
    return checks


def baseline_checks(audit: dict) -> dict[str, dict]:
    """The relevance mass target per model, judged on the baselines stage's ``baselines/audit.json``: the value
    is the GVRs' mean relevance mass accuracy minus that of the best baseline (named in brackets), met at 0 or
    above. Models without scored GVRs and baselines (no masks, real data unsegmented) have no target.

    >>> baseline_checks({"m": {"by_method": {"gvr": {"relevance_mass": 0.5},
    ...                                      "lime": {"relevance_mass": 0.375}, "occlusion": {"relevance_mass": None}}}})
    {"m: GVR relevance mass accuracy minus the best baseline's (lime, 0.375) >= 0": {'value': 0.125, 'met': True}}
    """
    checks = {}
    for model_id, a in audit.items():
        by = a.get("by_method") or {}
        baselines = {m: v["relevance_mass"] for m, v in by.items()
                     if m != "gvr" and v.get("relevance_mass") is not None}
        if "gvr" not in by or not baselines:
            continue
        best = max(baselines, key=baselines.get)
        own = by["gvr"].get("relevance_mass")
        value = None if own is None else own - baselines[best]
        checks[f"{model_id}: GVR relevance mass accuracy minus the best baseline's ({best}, {baselines[best]:.3g}) "
               f">= 0"] = {"value": value, "met": value is not None and value >= 0}
    return checks
