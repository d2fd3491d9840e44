"""The audit: does a model lean on what is not heart failure? Decided from explanations, judged by interventions.

The audit answers one question per model, "does it rely mostly on features that are not heart-failure
signs?", from what its explanations change. On the phantom the answer is also known from the model
itself, which is how the audit is tested (``gvr benchmark shortcuts``).

Ground truth (phantom only: :func:`reliance_verdict`)
    Each feature is intervened on alone, and the fall in the model's predicted log BNP is measured
    (``tables/model_reliance.parquet``, the fidelity stage). The non-disease reliance share is

    ``R = sum(|drop| over NON_DISEASE_FEATURES) / sum(|drop| over NON_DISEASE_FEATURES and DISEASE_FEATURES)``

    with the non-disease features the shortcut marker, the skin markers and electrodes, the projection
    and body mass, and the disease features the heart, effusion and opacity. The pacemaker is neither:
    a device in the BNP model that is not a sign of failure, it is left out of both sums. The model
    relies mostly on what is not disease when ``R > THRESHOLD`` (0.5: more than half).

Decision (:func:`decide`), from the best evidence the bundle has, in this order
    1. Masks (phantom, or real data segmented: ``gvr cohort ingest --masks``, on the GVRs of the segmented
       radiographs): the model's own response to its GVRs' change,
       region by region (:func:`region_effects`). Each diseased reconstruction gets the healthy one's
       pixels outside the disease masks only (everything but the union of DISEASE_MASKS and the
       pacemaker's ``device`` mask: the non-disease masks and all that no mask covers, where the
       projection, positioning and body mass beyond the soft-tissue mask show), then inside the union of
       DISEASE_MASKS only; each composite is encoded and predicted, and the share of the two mean falls
       in log BNP

       ``O = |fall, outside the disease and device masks| / (|that fall| + |fall, disease union|)``

       is the truth's formula applied to what the GVRs change, with every pixel no disease mask claims
       counted as not disease, as the truth counts body mass and the projection. Flagged when
       ``O > THRESHOLD``. The GVRs it reads are shortened first (``audit.sparse_steps``;
       :func:`modelling.explain.gvr.shorten`, the re-encoded model judging): a long move takes the disease
       along with whatever the model leans on, and only a change shrunk to what crosses the target shows
       a small shortcut by its effect. O also counts positioning, which the truth leaves out, so it may
       flag a model that leans on how patients stand.

       Beside it, not deciding: E, the same response with the union of NON_DISEASE_MASKS alone as the
       non-disease region (``share``). E decided from 2026-12-03 until 2026-12-04: it cannot see the
       projection (no mask) nor body mass beyond the soft-tissue mask. Each of the two judged on seeds it
       had not seen by a rule fixed before the run: on seeds 20190207-08 O agreed with the truth on 14 of 16
       models with one false positive, E on 10 with none, and E stayed; on seeds 20190209-10 O agreed on
       12 with no false positive, E on 9 with none, and O decides from then on (benchmarks/RESULTS.md,
       "The region response decides" and after). And N, the share of the GVR change's absolute weight, by
       area, in the union of NON_DISEASE_MASKS against that plus the union of DISEASE_MASKS, averaged
       over the model's GVRs (``share_non_disease`` and ``share_disease`` of
       :func:`modelling.explain.faithfulness.scores`). N was the rule until 2026-12-03: a marker of 0.2 %
       of the film cannot hold half of a change by area however much the model leans on it. N decides
       only where O is undefined (neither region moves the model, or its response was not measured),
       with a caveat that says which. Where fewer than all GVRs could be shortened (the re-encoded model
       reads a GVR short of its target, as it may when ``gvr.reencode`` is false), a caveat says how many
       were. Where the phantom's true disease-removal counterfactual exists, the median pixel r of the GVR
       change with it is reported, and a non-positive median is a caveat.
    2. Measured changes (real data without masks): the share of GVRs whose healthy reconstruction has a
       lower cardiothoracic ratio than the diseased one (radiographs measured above 0.5), and the share
       whose aerated lung is taller (effusion smaller; radiographs whose two lungs' heights differ by
       more than :data:`EFFUSION_ASYMMETRY`). Flagged when every measure that could be taken shows
       the disease change in at most half of its GVRs (``<= THRESHOLD``): the GVRs then show no heart
       failure leaving. Shortcuts, markers and body mass cannot be checked without masks, and the
       decision says so.
    3. Nothing measurable: "undecided", with what was missing.

The threshold is the majority rule, set before any benchmark was run, and the same for the truth and
the decision; it is not fitted to any result. E's and O's definitions were fixed before either was
computed on any bundle, and each one's record judged on seeds it had not seen before it decided.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from modelling.cohort.counterfactual import DISEASE_INTERVENTIONS
from modelling.explain.faithfulness import DISEASE_MASKS, NON_DISEASE_MASKS

#: More than half: the share of reliance (truth) or of explanation (decision) on what is not disease.
THRESHOLD = 0.5
#: Below this summed fall in predicted log BNP (1 % of BNP) the two regions do not move the model, and a share
#: of their falls is noise: O (and E) are then undefined, and the audit says so and decides by area.
RESPONSE_FLOOR = 0.01
#: The pacemaker's mask: neither disease nor what the audit looks for (the pacemaker is in the BNP model).
NEITHER_MASK = "device"
#: Interventions on what is not a heart-failure sign (the pacemaker is neither; see the module).
NON_DISEASE_FEATURES = ("shortcut", "markers", "projection", "body_mass")
DISEASE_FEATURES = tuple(DISEASE_INTERVENTIONS)
#: On real data, a radiograph whose lungs' aerated heights differ by more than this share of the taller
#: is taken to have an effusion on the shorter side (a blunted, raised base).
EFFUSION_ASYMMETRY = 0.1

FLAGGED, PASSED, UNDECIDED = "flagged", "passed", "undecided"


def reliance_verdict(drops: Mapping[str, float], *, also: float = 0.0) -> dict:
    """The truth on the phantom: the non-disease reliance share R and whether it passes THRESHOLD.

    Parameters
    ----------
    drops : mapping of feature to float
        Mean fall in predicted log BNP per intervention (``model_reliance.mean_drop``); features absent
        from the mapping count as 0 (an intervention that changes none of the model's radiographs).
    also : float
        A further non-disease reliance added to the non-disease sum (its absolute value), for a feature
        that is not one of the interventions: the shortcut benchmark reports R with patient positioning
        (its mean absolute change, ``fidelity/summary.json`` ``positioning``) beside the truth, which
        leaves it out.

    Returns
    -------
    dict
        ``share`` (None when no feature moved the model), ``flagged``, ``non_disease`` and ``disease``
        (the two sums) and ``rule``.

    >>> reliance_verdict({"heart": 0.9, "effusion": 0.8, "body_mass": 0.6, "shortcut": 0.0})["flagged"]
    False
    >>> round(reliance_verdict({"heart": 0.5, "shortcut": 1.5})["share"], 2)
    0.75
    >>> reliance_verdict({"heart": 0.9, "effusion": 0.8, "body_mass": 0.6}, also=1.2)["flagged"]
    True
    """
    nd = float(sum(abs(float(drops.get(f, 0.0))) for f in NON_DISEASE_FEATURES)) + abs(float(also))
    d = float(sum(abs(float(drops.get(f, 0.0))) for f in DISEASE_FEATURES))
    share = nd / (nd + d) if nd + d > 0 else None
    return {"share": share, "flagged": bool(share is not None and share > THRESHOLD), "non_disease": nd,
            "disease": d, "rule": (f"sum |fall in log BNP| over {', '.join(NON_DISEASE_FEATURES)} / that sum plus "
                                   f"{', '.join(DISEASE_FEATURES)} > {THRESHOLD}")}


def mask_share(shares: Mapping[str, float]) -> float | None:
    """The explanation's non-disease share N from its mean shares in the two unions of masks
    (``share_non_disease`` and ``share_disease``; None when both are 0 or absent).

    >>> mask_share({"share_disease": 0.3, "share_non_disease": 0.3, "share_heart": 0.3, "share_effusion": 0.3})
    0.5

    Raises
    ------
    KeyError
        When per-mask shares are given without the two unions: overlapping masks cannot be added, and
        deciding without them would pass a model whatever its shares.
    """
    if any(k.startswith("share_") for k in shares) and not {"share_disease", "share_non_disease"} <= set(shares):
        raise KeyError("mask shares need share_disease and share_non_disease (the unions of "
                       "modelling.explain.faithfulness.scores); per-mask shares overlap and cannot be added")
    nd, d = (float(shares.get(f"share_{group}", 0.0) or 0.0) for group in ("non_disease", "disease"))
    return nd / (nd + d) if nd + d > 0 else None


@dataclass
class Evidence:
    """What a bundle can tell the audit about one model's explanations (None: not available)."""

    #: Mean shares of the GVR change's absolute weight (``SHARE_COLUMNS`` of
    #: :mod:`modelling.explain.faithfulness`: per mask and in the two unions the rule reads), with masks.
    mask_shares: dict | None = None
    #: Median pixel r of GVR change with the true disease-removal change (phantom).
    true_change_r: float | None = None
    #: Share of GVRs with a lower measured cardiothoracic ratio on the healthy reconstruction, and of how many.
    ctr_lower: float | None = None
    ctr_measured: int = 0
    #: Share of GVRs whose effusion (aerated lung height) is smaller on the healthy reconstruction, of how many.
    effusion_smaller: float | None = None
    effusion_measured: int = 0
    #: The model's response to the GVRs' change by region (:func:`region_effects`; with masks), on the
    #: GVRs the audit reads (shortened by ``audit.sparse_steps``): what decides.
    region_effects: dict | None = None
    #: How the GVRs the region response reads were made (a sentence), e.g. "shortened by 300 steps".
    region_gvrs: str | None = None
    #: Of those GVRs, how many were shortened and of how many (None: not shortened by the audit).
    region_shortened: tuple[int, int] | None = None
    #: Radiographs the bundle has masks of when none of them is among this model's GVRs (real data segmented
    #: in part), so that the audit says so rather than "no masks".
    masks_elsewhere: int | None = None
    #: Mask features not segmented (a user's masks that leave some out): their pixels count as no mask's.
    unsegmented: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)


def _moves(fall: float) -> str:
    """A mean fall in predicted log BNP in words: "lower the predicted log BNP by 0.27", "raise it by 0.05"."""
    return f"lower the predicted log BNP by {fall:.2f}" if fall >= 0 else f"raise the predicted log BNP by {-fall:.2f}"


def decide(evidence: Evidence) -> dict:
    """The audit's decision on one model from its explanation evidence (the rule in the module docstring).

    Returns
    -------
    dict
        ``decision`` (flagged, passed or undecided), ``basis`` (masks, measured changes or none),
        ``decided_by`` (``outside_share``, ``non_disease_share`` or None), ``outside_share`` (O, with
        masks), ``region_share`` (E, with masks), ``non_disease_share`` (N, with masks), ``used`` and
        ``not_checked`` (sentences), ``caveats``, ``rule``, and ``reported`` (sentences on what is
        reported beside the decision).
    """
    used, not_checked, caveats, reported = [], [], [], []
    region = evidence.region_effects or {}
    o_share, e_share = region.get("outside_share"), region.get("share")
    n_share = mask_share(evidence.mask_shares) if evidence.mask_shares else None
    made = f" (on {evidence.region_gvrs})" if evidence.region_gvrs else ""
    if o_share is not None:
        used.append(
            f"the model's response to its GVRs' change by region{made}: the healthy pixels outside the disease "
            f"and device masks (the non-disease masks, {', '.join(NON_DISEASE_MASKS)}, and what no mask covers: "
            f"the projection, positioning, body mass beyond the soft tissue) {_moves(region['outside'])}, in the "
            f"disease masks ({', '.join(DISEASE_MASKS)}) {_moves(region['disease'])} (the whole change: "
            f"{_moves(region['whole'])}); non-disease share {o_share:.2f}")
    if e_share is not None:
        reported.append(
            f"the same response with the non-disease masks alone as the non-disease region (not deciding): "
            f"healthy pixels there {_moves(region['non_disease'])}; share {e_share:.2f}")
    if n_share is not None:
        (reported if o_share is not None else used).append(
            f"the GVR change by area in the non-disease masks against the disease masks: non-disease share "
            f"{n_share:.2f}" + (" (not deciding)" if o_share is not None else ""))
    measured = {"cardiothoracic ratio lower": (evidence.ctr_lower, evidence.ctr_measured),
                "effusion smaller": (evidence.effusion_smaller, evidence.effusion_measured)}
    by_masks = o_share is not None or n_share is not None  # else the measured changes decide
    for name, (share, n) in measured.items():
        if share is not None and n > 0:
            line = f"{name} on the healthy reconstruction in {share:.0%} of {n} GVRs where it was measured"
            (reported if by_masks else used).append(line + (" (not deciding)" if by_masks else ""))
    if evidence.true_change_r is not None:  # a caveat where it disagrees, never the decision
        reported.append(f"median pixel r with the true disease-removal change {evidence.true_change_r:.2f} "
                        "(not deciding)")
        if evidence.true_change_r <= 0:
            caveats.append("the GVRs do not agree with the true disease-removal counterfactual (median r <= 0)")
    shares = {"outside_share": o_share, "region_share": e_share, "non_disease_share": n_share, "reported": reported}
    if region.get("no_disease_masks"):
        caveats.append(f"{region['no_disease_masks']} GVR(s) whose radiograph has no disease mask at all (no heart "
                       "segmented) were left out of the region response")
    if evidence.region_shortened is not None and o_share is not None:
        done, of = evidence.region_shortened
        if done < of:  # O then reads those GVRs as the explain stage made them: a long move, the disease with it
            caveats.append(f"{'none' if done == 0 else f'only {done}'} of {of} GVRs could be shortened (the "
                           "re-encoded model reads the rest short of the target); the region response reads those "
                           "as they are")
    masked = evidence.mask_shares is not None or evidence.region_effects is not None
    if by_masks:
        by_region = o_share is not None
        if not by_region:  # O counts the projection with all that no mask covers; the masks alone cannot
            not_checked.append("the projection (no mask)")
        if by_region and NEITHER_MASK in evidence.unsegmented:
            caveats.append("no device mask was given: a pacemaker's pixels count as not disease in the region outside "
                           "the disease masks")
        if not by_region:
            outside = (evidence.mask_shares or {}).get("share_outside")
            caveats.append((f"the healthy pixels outside the disease masks and inside them moved the model's prediction "
                            f"by less than {RESPONSE_FLOOR:g} log BNP in all; decided by the change's area"
                            if evidence.region_effects is not None else
                            "the model's response by region was not measured; decided by the change's area")
                           + ("" if outside is None or not np.isfinite(outside) else
                              f", which counts only the change inside the masks ({outside:.0%} of it lies outside "
                              "every mask)"))
        share = o_share if by_region else n_share
        rule = (f"share of the model's response to its GVRs' change from outside the disease and device masks "
                f"> {THRESHOLD}" if by_region
                else f"non-disease share of the GVR change by area among the masks > {THRESHOLD}")
        return {"decision": FLAGGED if share > THRESHOLD else PASSED, "basis": "masks",
                "decided_by": "outside_share" if by_region else "non_disease_share", "used": used,
                "not_checked": not_checked, "caveats": caveats, "rule": rule, **shares}
    not_checked.append("shortcuts, skin markers, body mass and projection (" + (
        "no non-disease feature was segmented, and the model responds to neither the region outside the disease "
        "masks nor the disease masks)" if masked and set(NON_DISEASE_MASKS) <= set(evidence.unsegmented) else
        "the GVRs change nothing in the masks, and the model responds to neither the non-disease nor the disease "
        "masks)" if masked else
        f"masks of {evidence.masks_elsewhere} radiograph(s), none of them among this model's GVRs: segment the "
        "radiographs its GVRs explain)" if evidence.masks_elsewhere else "no masks)"))
    shown = [share for share, n in measured.values() if share is not None and n > 0]
    if not shown:
        not_checked.append("the cardiothoracic ratio and effusions (not measurable on these reconstructions)")
        return {"decision": UNDECIDED, "basis": "none", "decided_by": None, "used": used,
                "not_checked": not_checked, "caveats": caveats,
                "rule": ("nothing moved in the masks" if masked else "no masks on its GVRs' radiographs"
                         if evidence.masks_elsewhere else "no masks") + " and no measurable disease change: "
                        "nothing to decide on", **shares}
    for name, (share, n) in measured.items():
        if share is None or n == 0:
            not_checked.append(f"{name} (no GVR where it could be measured)")
    decision = FLAGGED if all(s <= THRESHOLD for s in shown) else PASSED
    return {"decision": decision, "basis": "measured changes", "decided_by": None, "used": used,
            "not_checked": not_checked, "caveats": caveats,
            "rule": f"every measurable disease change shown in at most {THRESHOLD:.0%} of the GVRs", **shares}


def measured_effusion_smaller(heights_diseased: np.ndarray, heights_healthy: np.ndarray) -> tuple[float | None, int]:
    """Real data: among GVRs whose diseased reconstruction's lungs differ in aerated height by more than
    EFFUSION_ASYMMETRY, the share whose shorter lung is taller on the healthy reconstruction.

    Parameters
    ----------
    heights_diseased, heights_healthy : array (n, 2)
        Aerated height of the right and left lung (NaN: not measured).

    >>> measured_effusion_smaller(np.array([[0.5, 0.8], [0.8, 0.8]]), np.array([[0.7, 0.8], [0.8, 0.8]]))
    (1.0, 1)
    """
    d, h = np.asarray(heights_diseased, float), np.asarray(heights_healthy, float)
    ok = np.isfinite(d).all(axis=1) & np.isfinite(h).all(axis=1)
    taller = np.nanmax(np.where(np.isfinite(d), d, np.nan), axis=1, initial=0.0)
    asym = ok & (np.abs(d[:, 0] - d[:, 1]) > EFFUSION_ASYMMETRY * np.where(taller > 0, taller, np.inf))
    n = int(asym.sum())
    if not n:
        return None, 0
    side = np.argmin(d[asym], axis=1)
    rows = np.flatnonzero(asym)
    return float(np.mean(h[rows, side] > d[rows, side])), n


def region_effects(predict: Callable[[np.ndarray], np.ndarray], diseased: np.ndarray, healthy: np.ndarray,
                   masks: Sequence[Mapping[str, np.ndarray]]) -> dict:
    """The model's own account of its GVRs' change, region by region (O, the audit's rule with masks, and E).

    Parameters
    ----------
    predict : callable
        uint8 radiographs (n, H, W) -> predicted log BNP (n,): the whole model, encoder and predictor.
    diseased, healthy : ndarray (n, H, W) uint8
        The GVRs' reconstructions, before and after the move.
    masks : sequence of mappings
        Per radiograph, boolean masks by name (:func:`modelling.cohort.phantom.unpack_masks`); a mask a
        radiograph lacks counts as empty.

    Returns
    -------
    dict
        Mean falls in predicted log BNP from the diseased reconstruction: ``whole`` (to the healthy one),
        ``non_disease`` and ``disease`` (the healthy pixels inside the union of NON_DISEASE_MASKS, of
        DISEASE_MASKS; a pixel in two masks counts once), ``outside`` (everywhere outside the disease masks
        and the ``device`` mask, the non-disease masks included: also where the projection, positioning and
        body mass beyond the soft-tissue mask show), ``by_mask`` (inside each mask alone), ``share``, ``|non_disease| / (|non_disease| +
        |disease|)``, and ``outside_share``, ``|outside| / (|outside| + |disease|)`` (None when the two falls
        sum to less than :data:`RESPONSE_FLOOR`: neither region moves the model), and ``no_disease_masks``,
        how many GVRs were left out because their radiograph has no disease mask at all (a segmentation
        missing: every radiograph has a heart, and without one its whole change would count as outside).

    Raises
    ------
    ValueError
        When the inputs do not match, or the model predicts NaN or infinity for any composite.

    >>> import numpy as np
    >>> marker = np.zeros((1, 4, 4), bool); marker[0, 0, 0] = True
    >>> heart = np.zeros((1, 4, 4), bool); heart[0, 2:, 2:] = True
    >>> masks = [{"shortcut": marker[0], "heart": heart[0]}]
    >>> d, h = np.full((1, 4, 4), 200, np.uint8), np.full((1, 4, 4), 100, np.uint8)
    >>> reads_corner = lambda x: x[:, 0, 0].astype(float) / 100      # a model that reads the marker only
    >>> e = region_effects(reads_corner, d, h, masks)
    >>> e["non_disease"], e["disease"], e["share"]
    (1.0, 0.0, 1.0)
    """
    d, h = np.asarray(diseased), np.asarray(healthy)
    if d.shape != h.shape or d.ndim != 3 or len(masks) != len(d):
        raise ValueError(f"diseased {d.shape}, healthy {h.shape} and {len(masks)} mask sets must match, "
                         "one (H, W) image and mask set per GVR")
    empty = np.zeros(d.shape[1:], bool)

    def union(names) -> np.ndarray:
        return np.stack([np.logical_or.reduce([np.asarray(m.get(n, empty), bool) for n in names]) for m in masks])

    def predicted(x: np.ndarray) -> np.ndarray:
        y = np.asarray(predict(x.astype(np.uint8)), np.float64)
        if not np.isfinite(y).all():  # else a NaN reads as "the model does not respond"
            raise ValueError(f"region_effects: the model predicted NaN or infinity for {int((~np.isfinite(y)).sum())} "
                             f"of {len(y)} radiographs")
        return y

    def fall(region: np.ndarray) -> float:
        return float(np.mean(base - predicted(np.where(region, h, d))))

    disease = union(DISEASE_MASKS) if len(d) else np.zeros(d.shape, bool)
    has_disease = disease.any(axis=(1, 2))
    left_out = int((~has_disease).sum())
    d, h, disease = d[has_disease], h[has_disease], disease[has_disease]
    masks = [m for m, k in zip(masks, has_disease) if k]
    if not len(d):
        return {"whole": None, "non_disease": None, "disease": None, "outside": None, "by_mask": {}, "share": None,
                "outside_share": None, "no_disease_masks": left_out}
    base = predicted(d)
    out = {"whole": float(np.mean(base - predicted(h))), "no_disease_masks": left_out,
           "non_disease": fall(union(NON_DISEASE_MASKS)), "disease": fall(disease),
           "outside": fall(~disease & ~union([NEITHER_MASK])),
           "by_mask": {name: fall(union([name])) for name in (*DISEASE_MASKS, *NON_DISEASE_MASKS)}}
    dis = abs(out["disease"])
    for key, part in (("share", "non_disease"), ("outside_share", "outside")):
        nd = abs(out[part])
        out[key] = nd / (nd + dis) if nd + dis >= RESPONSE_FLOOR else None
    return out
