"""Faithfulness of explanations against the phantom's ground-truth masks (beyond the paper).

For an explanation map m (a GVR's |diseased - healthy|, or a baseline's |attribution|):

- share in each mask: ``sum(|m| * mask) / sum(|m|)`` for heart, effusion, opacity, soft tissue,
  device and markers (skin markers, ECG electrodes, laterality marker: the patient, not the disease),
  and outside all of them; and the same in the union of the disease masks (heart, effusion, opacity)
  and in the union of the non-disease masks (shortcut marker, markers, soft tissue). The masks
  overlap (an effusion covers part of the heart), so the per-mask shares are not added: a pixel in
  two disease masks counts once in ``share_disease``;
- the masks that drive that radiograph's BNP: the features whose term of the BNP model raises it
  (cardiomegaly: heart; effusion; opacity; pacemaker: device; body mass below 27: soft tissue);
- pointing game: whether a pixel of the map's largest weight lies in those masks, any of them when
  several tie, as Quantus's PointingGame (Zhang et al. 2018, without their 15-pixel tolerance);
- IoU at the top k %: the intersection over union of the map's top ``k`` % pixels and those masks,
  with k = the masks' share of the image (as Latent Shift's evaluation does with pathology masks,
  Cohen et al. 2021);
- relevance mass accuracy: the share of the map's absolute weight inside those masks; relevance rank
  accuracy: the share of the map's top-K pixels inside them, K the masks' pixel count (Arras, Osman &
  Samek 2022, "CLEVR-XAI"; Quantus's RelevanceMassAccuracy and RelevanceRankAccuracy);
- sparseness: the Gini index of the map's absolute values (Chalasani et al. 2020; Quantus's
  Sparseness): 0 when every pixel carries the same weight, near 1 when one pixel carries all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from data_schema.tables import MASK_FEATURES

#: Which BNP-model term makes which mask a driver of the radiograph's BNP.
DRIVERS = {
    "term_cardiomegaly": "heart",
    "term_effusion": "effusion",
    "term_opacity": "opacity",
    "term_pacemaker": "device",
    "term_body_mass": "soft_tissue",
}
DISEASE_MASKS = ("heart", "effusion", "opacity")
#: Masks of what is not a heart-failure sign: the shortcut marker, skin markers and electrodes, and the
#: soft tissue that body mass changes (the device is neither: a pacemaker raises BNP in the phantom).
NON_DISEASE_MASKS = ("shortcut", "markers", "soft_tissue")
#: Bump when a measure here or a baseline map (:mod:`modelling.explain.baselines`) changes, so that the
#: stages that score maps (baselines, image fidelity) measure bundles made before again.
MEASURES_VERSION = 2  # 2: union shares, any tied maximum, per-image baselines, Grad-CAM on a block's output
#: The share columns :func:`scores` gives: per mask, outside every mask, and in the two unions.
SHARE_COLUMNS = (*(f"share_{m}" for m in MASK_FEATURES), "share_outside", "share_disease", "share_non_disease")


def driving_masks(truth_row: pd.Series, *, minimum: float = 0.05) -> list[str]:
    """Masks whose feature raises this radiograph's log BNP by more than `minimum`."""
    return [mask for term, mask in DRIVERS.items() if float(truth_row[term]) > minimum]


def scores(explanation: np.ndarray, masks: dict[str, np.ndarray], drivers: list[str]) -> dict:
    """Shares per mask and per union of masks, pointing game and top-k IoU of one (H, W) map; every
    measure is undefined (NaN, or None for the pointing game) for a map with no weight or a non-finite
    one."""
    weight = np.abs(explanation.astype(np.float64))
    total = weight.sum()
    defined = bool(np.isfinite(total) and total > 0)
    out: dict = {}

    def share(region: np.ndarray) -> float:
        return float((weight * region).sum() / total) if defined else np.nan

    anywhere = np.zeros(weight.shape, bool)
    for name in MASK_FEATURES:
        out[f"share_{name}"] = share(masks[name])
        anywhere |= masks[name]
    out["share_outside"] = share(~anywhere)
    for group, names in (("disease", DISEASE_MASKS), ("non_disease", NON_DISEASE_MASKS)):
        out[f"share_{group}"] = share(np.logical_or.reduce([masks[n] for n in names]))
    target = np.zeros(weight.shape, bool)
    for name in drivers:
        target |= masks[name]
    out["sparseness"] = gini(weight) if defined else np.nan
    if not drivers or not target.any() or not defined:
        out["pointing_hit"], out["iou_top"] = None, np.nan
        out["relevance_mass"], out["relevance_rank"] = np.nan, np.nan
        return out
    out["pointing_hit"] = bool(target[weight == weight.max()].any())
    k = int(target.sum())
    top = np.zeros(weight.size, bool)
    top[np.argsort(weight, axis=None, kind="stable")[::-1][:k]] = True
    top = top.reshape(weight.shape)
    out["iou_top"] = float((top & target).sum() / (top | target).sum())
    out["relevance_mass"] = float((weight * target).sum() / total)
    out["relevance_rank"] = float((top & target).sum() / k)
    return out


def table_row(explanation: np.ndarray, masks: dict[str, np.ndarray], drivers: list[str]) -> dict:
    """:func:`scores` as the columns of a faithfulness table row (``data_schema``'s faithfulness, without
    the identifying columns and ``true_change_r``): drivers comma-separated, the pointing game as 0/1."""
    s = scores(explanation, masks, drivers)
    return {**{key: s[key] for key in SHARE_COLUMNS}, "drivers": ",".join(drivers) or None,
            "pointing_hit": None if s["pointing_hit"] is None else float(s["pointing_hit"]),
            **{key: s[key] for key in ("iou_top", "relevance_mass", "relevance_rank", "sparseness")}}


def gini(weight: np.ndarray) -> float:
    """The Gini index of non-negative weights (NaN when all are 0).

    >>> gini(np.ones(10)), round(gini(np.r_[np.zeros(99), 1.0]), 2)
    (0.0, 0.99)
    """
    w = np.sort(np.asarray(weight, dtype=np.float64).ravel())
    n, total = w.size, w.sum()
    if total <= 0:
        return float("nan")
    ranks = np.arange(1, n + 1)
    return float(np.sum((2 * ranks - n - 1) * w) / (n * total))


def pixel_correlation(explained: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per image, the Pearson correlation of an explanation's signed change with the true change.

    Parameters
    ----------
    explained, truth : array, shape (n, h, w) or (h, w)
        Signed maps of the same sign convention (a GVR's ``diseased - healthy`` against the phantom's
        ``original - counterfactual``, :func:`modelling.cohort.counterfactual.true_change`).

    Returns
    -------
    numpy.ndarray, shape (n,)
        r in [-1, 1] per image; NaN where either map is constant (r is undefined there), which a
        caller reports as such.

    Raises
    ------
    ValueError
        When the shapes differ.

    Examples
    --------
    >>> t = np.arange(8.0).reshape(1, 2, 4)
    >>> pixel_correlation(2 * t + 1, t).round(6).tolist(), pixel_correlation(-t, t).round(6).tolist()
    ([1.0], [-1.0])
    """
    a, b = np.asarray(explained, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"explained has shape {a.shape}, truth {b.shape}: they must match")
    if a.ndim == 2:
        a, b = a[None], b[None]
    a = a.reshape(len(a), -1) - a.reshape(len(a), -1).mean(axis=1, keepdims=True)
    b = b.reshape(len(b), -1) - b.reshape(len(b), -1).mean(axis=1, keepdims=True)
    norm = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=1) / norm
    return np.where(norm > 0, np.clip(r, -1.0, 1.0), np.nan)
