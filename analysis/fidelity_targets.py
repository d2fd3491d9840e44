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


def _judged(value, met: bool, measurable: bool = True) -> dict:
    """A target's verdict. ``"measurable": False`` (present only then) says there was nothing to measure it on
    (no GVR radiograph in the target's group, no feature whose reliance differs): neither met nor missed. A
    value of None with something to measure on (GVRs that change nothing have no rank agreement) is missed."""
    return {"value": value, "met": bool(met)} | ({} if measurable else {"measurable": False})


def fidelity_checks(summary: dict) -> dict[str, dict]:
    """The targets judged on a fidelity summary, as ``{name: {"value": float | None, "met": bool}}`` (and
    ``"measurable": False`` where there was nothing to measure a target on, see :func:`_judged`); empty
    without ground truth. The names state the thresholds.

    >>> fidelity_checks({"models": {"mlp-overfitted": {"rank_agreement": 0.75}}})
    {'mlp-overfitted: GVRs rank features as reliance does, Spearman >= 0.7': {'value': 0.75, 'met': True}}
    """
    checks = {}
    share = f"{SHARE:.0%}"
    def some(count_key: str, m: dict) -> bool:  # a count of 0 is nothing to measure on; no count, assume some
        return m.get(count_key) != 0

    for model_id, m in summary.get("models", {}).items():
        rho = m["rank_agreement"]
        checks[f"{model_id}: GVRs rank features as reliance does, Spearman >= {RANK_AGREEMENT:g}"] = _judged(
            rho, rho is not None and rho >= RANK_AGREEMENT, some("gvrs", m))
        if model_id.endswith("-correct"):
            r, lower = m["median_pixel_r"], m["ctr_lower"]
            checks[f"{model_id}: median pixel r with the true change >= {PIXEL_R:g}"] = _judged(
                r, r is not None and r >= PIXEL_R, some("gvrs", m))
            checks[f"{model_id}: measured CTR lower in >= {share} with cardiomegaly"] = _judged(
                lower, lower is not None and lower >= SHARE, some("ctr_measured_with_cardiomegaly", m))
            if "ctr_lower_small_effusion" in m:  # the same target where fluid hides no heart border
                small = m["ctr_lower_small_effusion"]
                checks[f"{model_id}: measured CTR lower in >= {share} with cardiomegaly and no large effusion "
                       f"(of {m.get('ctr_small_effusion_measured', 0)})"] = _judged(
                    small, small is not None and small >= SHARE, some("ctr_small_effusion_measured", m))
            cleared = m.get("effusion_cleared")
            checks[f"{model_id}: measured effusion smaller in >= {share} with an effusion"] = _judged(
                cleared, cleared is not None and cleared >= SHARE, some("effusion_measured", m))
    if summary.get("non_disease_difference"):
        target = regime_target(regime_differences(summary["non_disease_difference"]))
        differing = target["differing"]
        checks[f"the two models' GVRs differ as their reliance does, P < {ALPHA:g}, on each feature whose reliance "
               f"differs ({', '.join(differing) or 'none'}); share of them"] = _judged(
            len(target["met_on"]) / len(differing) if differing else None, target["met"], bool(differing))
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
