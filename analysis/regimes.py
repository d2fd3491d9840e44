"""Where the correctly trained and the overfitted model lean differently on a feature that is not disease,
do their GVRs differ the same way? (issue 15's regime target, judged on ``fidelity/summary.json``).

The issue asks that where the two models' reliance differs ("about twofold" on the default study: body mass,
markers, projection) their GVRs differ in the same direction, with a test P < 0.01. Here a feature's
reliance *differs* when the larger of the two models' mean falls in predicted log BNP is at least
:data:`FOLD` times the smaller (in absolute value) and at least :data:`FLOOR`: 1.5-fold counts every feature
the issue called about twofold, and a fall under 0.05 log BNP (5 % of BNP) in both models is no reliance to
compare. The test is the stage's two-sided Mann-Whitney U of the two models' per-GVR coefficients on that
feature's true change map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

__all__ = ["ALPHA", "FLOOR", "FOLD", "RegimeDifference", "regime_differences", "regime_target"]

FOLD = 1.5
FLOOR = 0.05
ALPHA = 0.01


@dataclass(frozen=True)
class RegimeDifference:
    """One feature that is not disease: the two models' reliance and their GVRs' mean coefficients."""

    feature: str
    reliance_correct: float
    reliance_overfitted: float
    coefficient_correct: float
    coefficient_overfitted: float
    p: Optional[float]

    @property
    def differs(self) -> bool:
        small, large = sorted((abs(self.reliance_correct), abs(self.reliance_overfitted)))
        return large >= FLOOR and large >= FOLD * small

    @property
    def same_way(self) -> bool:
        """The GVRs' coefficients differ in the direction the reliance does (a tie is not a direction)."""
        reliance = self.reliance_overfitted - self.reliance_correct
        coefficient = self.coefficient_overfitted - self.coefficient_correct
        return reliance * coefficient > 0

    @property
    def met(self) -> bool:
        return self.same_way and self.p is not None and self.p < ALPHA


def regime_differences(non_disease_difference: Mapping[str, Mapping]) -> list[RegimeDifference]:
    """The summary's ``non_disease_difference`` (feature -> reliance, coefficients, P) as records."""
    return [RegimeDifference(feature, float(v["reliance_correct"]), float(v["reliance_overfitted"]),
                             float(v["gvr_coefficient_correct"]), float(v["gvr_coefficient_overfitted"]),
                             None if v.get("p") is None else float(v["p"]))
            for feature, v in non_disease_difference.items()]


def regime_target(differences: list[RegimeDifference]) -> dict:
    """The target judged: met when at least one feature's reliance differs and on every such feature the
    GVRs differ the same way with P < :data:`ALPHA`.

    Returns ``{"differing", "met_on", "same_way_only", "opposite", "met"}``, the first four lists of
    feature names (``same_way_only``: the right direction without P < ALPHA; ``opposite``: the GVRs differ
    the other way or not at all).

    Examples
    --------
    >>> rows = {"body_mass": dict(reliance_correct=0.6, reliance_overfitted=1.6, gvr_coefficient_correct=0.1,
    ...                           gvr_coefficient_overfitted=0.2, p=0.07),
    ...         "shortcut": dict(reliance_correct=0.0, reliance_overfitted=0.0, gvr_coefficient_correct=0.0,
    ...                          gvr_coefficient_overfitted=0.0, p=None)}
    >>> regime_target(regime_differences(rows))
    {'differing': ['body_mass'], 'met_on': [], 'same_way_only': ['body_mass'], 'opposite': [], 'met': False}
    """
    differing = [d for d in differences if d.differs]
    return {"differing": [d.feature for d in differing],
            "met_on": [d.feature for d in differing if d.met],
            "same_way_only": [d.feature for d in differing if d.same_way and not d.met],
            "opposite": [d.feature for d in differing if not d.same_way],
            "met": bool(differing) and all(d.met for d in differing)}
