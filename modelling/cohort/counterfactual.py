"""Ground-truth counterfactuals on the phantom: the same radiograph rendered again without its disease.

The phantom draws each radiograph from its parameters and a noise seed, so it can draw the same
radiograph again with only the disease changed: same patient, positioning, body mass, pacemaker,
skin markers, exposure and noise. The difference between the two is the true change that an
explanation of "why is BNP predicted high here" should show; every GVR and baseline map can be
scored against it (:func:`modelling.explain.faithfulness.pixel_correlation`), not only against masks.

Examples
--------
>>> import numpy as np
>>> from modelling.cohort import phantom
>>> p = {k: np.zeros(1) for k in phantom.PARAMETERS}
>>> p.update(cardiothoracic_ratio=np.array([0.62]), effusion_left=np.array([0.3]), scale=np.ones(1),
...          exposure=np.ones(1), body_mass_index=np.array([25.0]))
>>> healthy = disease_removed(p)
>>> float(healthy["cardiothoracic_ratio"][0]), float(healthy["effusion_left"][0]), float(healthy["scale"][0])
(0.45, 0.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from modelling.cohort import phantom

#: A normal heart: the cardiothoracic ratio a counterfactual gets when the radiograph's is larger.
HEALTHY_CARDIOTHORACIC_RATIO = 0.45
#: The parameters that carry the phantom's heart-failure signs (the rest is kept as it was).
DISEASE_PARAMETERS = ("cardiothoracic_ratio", "effusion_left", "effusion_right", "opacity")


def disease_removed(params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same radiographs' parameters without disease: a heart no larger than
    :data:`HEALTHY_CARDIOTHORACIC_RATIO`, no effusion, no opacity; everything else unchanged.

    Parameters
    ----------
    params : mapping of str to array
        :func:`modelling.cohort.phantom.render`'s parameters, one 1-D array each.

    Returns
    -------
    dict of str to numpy.ndarray
        New arrays; `params` is not modified.

    Raises
    ------
    KeyError
        When a parameter of :data:`modelling.cohort.phantom.PARAMETERS` is missing.
    """
    missing = [k for k in phantom.PARAMETERS if k not in params]
    if missing:
        raise KeyError(f"params lacks {missing}; it needs every name of phantom.PARAMETERS")
    out = {k: np.array(v, copy=True) for k, v in params.items()}
    out["cardiothoracic_ratio"] = np.minimum(out["cardiothoracic_ratio"], HEALTHY_CARDIOTHORACIC_RATIO)
    for name in ("effusion_left", "effusion_right", "opacity"):
        out[name] = np.zeros_like(out[name])
    return out


def has_disease(params: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per radiograph, whether :func:`disease_removed` changes anything: a heart above
    :data:`HEALTHY_CARDIOTHORACIC_RATIO`, an effusion or an opacity."""
    return ((np.asarray(params["cardiothoracic_ratio"]) > HEALTHY_CARDIOTHORACIC_RATIO)
            | (np.asarray(params["effusion_left"]) > 0) | (np.asarray(params["effusion_right"]) > 0)
            | (np.asarray(params["opacity"]) > 0))


#: One feature at a time, what an intervention does to a radiograph's parameters: the ground truth of
#: what a model relies on (its prediction's change) and the per-feature true change maps a GVR is
#: decomposed onto. "markers" removes the skin markers, ECG electrodes and laterality marker.
INTERVENTIONS = {
    "heart": "cardiothoracic ratio to at most 0.45",
    "effusion": "no pleural effusion",
    "opacity": "no airspace opacity",
    "pacemaker": "no pacemaker",
    "body_mass": "body mass index 5 kg/m2 higher",
    "projection": "PA instead of AP",
    "markers": "no skin markers, ECG electrodes or laterality marker",
    "shortcut": "no shortcut marker",
}
#: The interventions on heart-failure signs (the rest are not disease).
DISEASE_INTERVENTIONS = ("heart", "effusion", "opacity")


def intervened(params: Mapping[str, np.ndarray], feature: str) -> dict[str, np.ndarray]:
    """The parameters after :data:`INTERVENTIONS`'s `feature` (for "markers" they are unchanged:
    render with ``idiosyncrasies=False``; :func:`render_intervened` does)."""
    if feature not in INTERVENTIONS:
        raise KeyError(f"unknown intervention {feature!r}; known: {', '.join(INTERVENTIONS)}")
    out = {k: np.array(v, copy=True) for k, v in params.items()}
    if feature == "heart":
        out["cardiothoracic_ratio"] = np.minimum(out["cardiothoracic_ratio"], HEALTHY_CARDIOTHORACIC_RATIO)
    elif feature == "effusion":
        out["effusion_left"], out["effusion_right"] = np.zeros_like(out["effusion_left"]), np.zeros_like(out["effusion_right"])
    elif feature in ("opacity", "pacemaker"):
        out[feature] = np.zeros_like(out[feature])
    elif feature == "body_mass":
        out["body_mass_index"] = out["body_mass_index"] + 5.0
    elif feature == "projection":
        out["ap"] = np.zeros_like(out["ap"])
    elif feature == "shortcut":
        out["shortcut"] = np.zeros_like(out["shortcut"])
    return out


def render_intervened(params: Mapping[str, np.ndarray], feature: str, size: int) -> np.ndarray:
    """The radiographs (n, size, size) uint8 with one feature intervened on, same noise."""
    images, _ = phantom.render(intervened(params, feature), size, idiosyncrasies=feature != "markers")
    return images


#: The centre of the phantom's positioning draws: no rotation or shift, scale 1.
NEUTRAL_POSITIONING = {"rotation_deg": 0.0, "shift_x": 0.0, "shift_y": 0.0, "scale": 1.0}


def positioned_neutrally(params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same radiographs' parameters with :data:`NEUTRAL_POSITIONING`, nothing else changed.

    How a patient stands is a per-patient idiosyncrasy that moves every edge of the film. It is not one
    of :data:`INTERVENTIONS`: they remove something, while a patient is moved toward neutral from either
    side, so its effect on a prediction has no one sign.
    """
    out = {k: np.array(v, copy=True) for k, v in params.items()}
    for name, value in NEUTRAL_POSITIONING.items():
        out[name] = np.full_like(np.asarray(out[name], dtype=np.float64), value)
    return out


#: The cardiothoracic ratio, effusions, opacity, pacemaker and body mass are visible and in the BNP
#: model; age is in the model but not visible; the patient and visit effects are neither.
VISIBLE_TERMS = ("cardiomegaly", "effusion", "opacity", "pacemaker", "body_mass")


def toward_healthy(params: Mapping[str, np.ndarray], t) -> dict[str, np.ndarray]:
    """The parameters moved a fraction `t` (0-1, per radiograph) of the way that lowers every visible term
    of the phantom's BNP model: the heart towards a ratio of 0.45, effusions and opacity towards none,
    body mass up by 5 kg/m2 at t = 1, and the pacemaker gone from t = 0.5 (it cannot be half there)."""
    t = np.broadcast_to(np.asarray(t, dtype=np.float64), np.shape(params["cardiothoracic_ratio"]))
    out = {k: np.array(v, copy=True) for k, v in params.items()}
    ratio = np.asarray(params["cardiothoracic_ratio"], np.float64)
    out["cardiothoracic_ratio"] = ratio - t * np.maximum(ratio - HEALTHY_CARDIOTHORACIC_RATIO, 0.0)
    for name in ("effusion_left", "effusion_right", "opacity"):
        out[name] = (1.0 - t) * np.asarray(params[name], np.float64)
    out["body_mass_index"] = np.asarray(params["body_mass_index"], np.float64) + 5.0 * t
    out["pacemaker"] = np.where(t >= 0.5, 0.0, np.asarray(params["pacemaker"], np.float64))
    return out


def visible_log_bnp(params: Mapping[str, np.ndarray], term_age, model=None) -> np.ndarray:
    """The phantom's BNP model without the patient and visit effects: intercept, age term and the
    visible terms computed from render parameters."""
    from modelling.cohort.synthetic import BnpModel

    m = model or BnpModel()
    return (m.intercept + np.asarray(term_age, np.float64)
            + m.cardiomegaly * (np.asarray(params["cardiothoracic_ratio"], np.float64) - 0.5)
            + m.effusion * (np.asarray(params["effusion_left"], np.float64) + np.asarray(params["effusion_right"]))
            + m.opacity * np.asarray(params["opacity"], np.float64)
            + m.pacemaker * (np.asarray(params["pacemaker"], np.float64) > 0.5)
            + m.body_mass * (np.asarray(params["body_mass_index"], np.float64) - 27.0))


def target_fraction(params: Mapping[str, np.ndarray], term_age, target_log_bnp, model=None,
                    iterations: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Per radiograph, the smallest fraction t of :func:`toward_healthy` at which :func:`visible_log_bnp`
    falls below `target_log_bnp` (0 when it already is), and whether any t <= 1 gets there (1 when none does).

    >>> p = {"cardiothoracic_ratio": np.array([0.62]), "effusion_left": np.zeros(1), "effusion_right": np.zeros(1),
    ...      "opacity": np.zeros(1), "pacemaker": np.zeros(1), "body_mass_index": np.array([27.0])}
    >>> t, ok = target_fraction(p, np.zeros(1), visible_log_bnp(toward_healthy(p, 0.5), np.zeros(1)))
    >>> round(float(t[0]), 3), bool(ok[0])
    (0.5, True)
    """
    target = np.broadcast_to(np.asarray(target_log_bnp, np.float64), np.shape(params["cardiothoracic_ratio"]))
    below = lambda t: visible_log_bnp(toward_healthy(params, t), term_age, model) < target  # noqa: E731
    lo = np.zeros(target.shape)
    hi = np.ones(target.shape)
    reached = below(hi)
    done = below(lo)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        ok = below(mid)
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid)
    return np.where(done, 0.0, hi), reached | done


@dataclass(frozen=True)
class TrueChange:
    """Radiographs and their disease-free counterfactuals.

    Attributes
    ----------
    original, counterfactual : numpy.ndarray, shape (n, size, size), uint8
        Bright = dense, as :func:`modelling.cohort.phantom.render` draws them.
    change : numpy.ndarray, shape (n, size, size), float32
        ``(original - counterfactual) / 255``: positive where disease adds density, the sign of a
        GVR's ``diseased - healthy``.
    masks : numpy.ndarray, shape (n, size, size), uint8
        The original's feature masks, packed as bits (:func:`modelling.cohort.phantom.unpack_masks`).
    """

    original: np.ndarray
    counterfactual: np.ndarray
    change: np.ndarray
    masks: np.ndarray


def true_change(params: Mapping[str, np.ndarray], size: int) -> TrueChange:
    """Render radiographs and, with the same noise, their disease-free counterfactuals.

    Notes
    -----
    Both renders share every parameter but :data:`DISEASE_PARAMETERS`, the noise seed included, so
    the change is the disease's own contribution; outside the disease masks it is zero up to the
    rounding of the exposure normalisation (on the tiny profile 96 % of the absolute change lies
    within two pixels of the heart, effusion and opacity masks).
    """
    original, bits = phantom.render(dict(params), size)
    counterfactual, _ = phantom.render(disease_removed(params), size)
    change = (original.astype(np.float32) - counterfactual.astype(np.float32)) / 255.0
    return TrueChange(original=original, counterfactual=counterfactual, change=change, masks=bits)
