"""What a reader's answer may say: the features' labels, the rule that "No CHF features" excludes the
others, and that an answer with every CHF feature and "No CHF features" to choose from marks one of them
(the reading page, the server and the unblinding apply the same rules)."""

from __future__ import annotations


def feature_label(feature: str) -> str:
    """``pleural_effusion`` -> ``Pleural effusion``; ``no_chf_features`` -> ``No CHF features``."""
    words = ["CHF" if w == "chf" else w for w in feature.split("_")]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


#: Features of congestive heart failure: "No CHF features" cannot be marked together with any of them.
CHF_FEATURES = ("cardiomegaly", "pleural_effusion", "airspace_opacity")
NO_CHF = "no_chf_features"


def contradictory(present: dict) -> str:
    """Why an answer contradicts itself ("No CHF features" with a CHF feature), or "" when it does not.

    The page makes the two exclusive as the reader clicks; the server and the unblinding refuse what
    slips through.
    """
    if not present.get(NO_CHF):
        return ""
    marked = [f for f in CHF_FEATURES if present.get(f)]
    if not marked:
        return ""
    return (f"contradictory answer: {feature_label(NO_CHF)} together with "
            f"{', '.join(feature_label(f).lower() for f in marked)}; mark one or the other")


def unanswered(present: dict, features) -> str:
    """Why an answer says nothing (no feature marked where "No CHF features" and every CHF feature were
    offered, so that one of them is always true), or "" when it says something.

    With fewer features offered, marking none is an answer: the GVR may show a feature not asked about.

    >>> unanswered({"cardiomegaly": False, "no_chf_features": False}, ["cardiomegaly", "no_chf_features"])
    ''
    """
    offered = set(features)
    if NO_CHF not in offered or not set(CHF_FEATURES) <= offered or any(present.get(f) for f in offered):
        return ""
    return f"no feature marked: mark what the GVR shows, or {feature_label(NO_CHF)}"
