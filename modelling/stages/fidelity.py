"""The fidelity stage (phantom only): every GVR against its ground truth, and each model's reliance.

For every GVR (kind "gvr") of a phantom bundle this renders the radiograph again with the same noise
(:mod:`modelling.cohort.counterfactual`):

- without its disease, the true counterfactual: ``gvr/<gvr_id>/counterfactual.png`` and the true
  change ``(original - counterfactual) / 255`` in ``arrays/true_change.npy``;
- with the visible terms of the BNP model moved just far enough that the noiseless model crosses the
  GVR's target, the target counterfactual: ``gvr/<gvr_id>/target_counterfactual.png`` and its change
  in ``arrays/target_change.npy`` (the same rows);
- with one feature intervened on at a time (:data:`~modelling.cohort.counterfactual.INTERVENTIONS`):
  each rendering is encoded and predicted again (the model's reliance on that feature), and its
  change map is one regressor of the GVR's decomposition (:mod:`modelling.explain.fidelity`).

It writes ``tables/gvr_truth.parquet`` (per GVR), ``tables/model_reliance.parquet`` (per model and
feature) and ``fidelity/summary.json`` (per model: the GVRs' median pixel correlation with the true
change, how often the measured cardiothoracic ratio falls, the rank agreement of what GVRs show with
what the model relies on, and how the two models' GVRs differ on the features that are not disease;
the same measures for GVRs of the same radiographs moved both ways, gradient and pattern, so that
every bundle shows the two side by side; and a model-parameter randomisation test). Each GVR is
also correlated with the change its model's own reliance implies (each feature's true change map
weighted by that feature's drop on the radiograph): a faithful GVR shows what the model uses, which
need not be only the disease. :func:`analysis.fidelity_targets.fidelity_checks` judges the summary against issue 15's targets.
A real-data bundle has no ground truth: the stage records that and writes nothing else.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch

from data_schema import Bundle, Stage
from data_schema.tables import INTERVENTION_FEATURES
from modelling.cohort import ctr, effusion, phantom
from modelling.cohort.counterfactual import (
    DISEASE_INTERVENTIONS,
    HEALTHY_CARDIOTHORACIC_RATIO,
    INTERVENTIONS,
    positioned_neutrally,
    target_fraction,
    toward_healthy,
    true_change,
)
from modelling.cohort.effusion import effused_side_height
from modelling.config import StudyConfig, gvr_key, move_options
from modelling.explain.faithfulness import driving_masks, pixel_correlation, scores
from modelling.explain.fidelity import (
    Intervened,
    decompose,
    explained,
    intervene,
    lower_share,
    map_similarity,
    randomised,
    rank_agreement,
    rank_agreement_interval,
    squared_code_lengths,
)
from modelling.nets.training import decode, encode
from modelling.progress import progress
from modelling.stages.artifacts import (
    load_decoder,
    load_encoder,
    load_masks,
    load_predictor,
    load_render_params,
    training_codes,
)

STAGE = "fidelity"
#: Bump when the stage measures something new, so that bundles measured before are measured again.
MEASURES_VERSION = 8  # 2: positioning; 3: R^2 against the uncentred total; 4: the metric move compared;
#                       5: the rank agreement's bootstrap interval; 6: the representation of each feature;
#                       7: each compared move's relevance mass; 8: the regime test as R's wilcox.test
#: Features that are not heart-failure signs: where two models' reliance differs, their GVRs should too.
NON_DISEASE = tuple(f for f in INTERVENTION_FEATURES if f not in DISEASE_INTERVENTIONS)


def _predict(predictor, codes: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return predictor(torch.from_numpy(np.ascontiguousarray(codes, dtype=np.float32))).float().numpy()


def intervention_falls(predictor, code: np.ndarray, seen: Intervened) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The model's reliance on each radiograph: its prediction from `code` (log BNP, n) and, per feature of
    :data:`INTERVENTION_FEATURES`, the fall to its prediction from the intervened rendering's code. An
    intervention that left the radiograph as it was (the feature is absent) falls by 0: no effect, not encoder
    jitter."""
    before = _predict(predictor, code)
    return before, {f: np.where(seen.same[:, k], 0.0, before - _predict(predictor, seen.codes[:, k]))
                    for k, f in enumerate(INTERVENTION_FEATURES)}


def model_change(feature_maps: np.ndarray, drops: dict) -> np.ndarray:
    """Per radiograph, the change its model's own reliance implies: each feature's true change map
    weighted by how far removing that feature lowers this radiograph's prediction."""
    weights = np.stack([np.asarray(drops[f], float) for f in INTERVENTION_FEATURES], axis=1)
    return np.einsum("nk,nkhw->nhw", weights, feature_maps).astype(np.float32)


def _valid(predictor, encoder, diseased: np.ndarray, healthy: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per GVR: the stored (8-bit) diseased reconstruction, encoded again, is predicted at or above the target
    and the healthy one below it."""
    return (_predict(predictor, encode(encoder, diseased)) >= target) & (_predict(predictor, encode(encoder, healthy)) < target)


def stage_key(config: StudyConfig) -> dict:
    """The settings the stage's results depend on. The metric move is compared whatever the bundle's own
    move, so its ridge is one of them even where :func:`gvr_key` leaves it out."""
    return {"interventions": INTERVENTIONS, "gvr": gvr_key(config.gvr) | {"metric_ridge": config.gvr.metric_ridge},
            "measures_version": MEASURES_VERSION}


def compared_moves(config: StudyConfig) -> list[tuple[str, str, bool, int]]:
    """The moves the fidelity stage compares on the same radiographs, as (label, move, reencode,
    sparse_steps): the bundle's own; with ``gvr.sparse_steps``, the same move without them; the paper's
    (gradient steps on the code); the gradient and the pattern on the code; the bundle's own move scored
    the other way (``gvr.reencode``); and the metric move (re-encoded, which it needs). Each once, the
    bundle's first. Only the bundle's own re-encoded move is shortened: shrinking a move scored on the code
    finds codes the predictor reads low whose pictures barely change (the config refuses that pairing)."""
    g = config.gvr
    wanted = [(g.move, g.reencode, g.sparse_steps), (g.move, g.reencode, 0), ("gradient", False, 0),
              ("pattern", False, 0), *([(g.move, not g.reencode, 0)] if g.move != "metric" else []),
              ("metric", True, 0)]
    unique = list(dict.fromkeys(wanted))
    return [(move_label(how, reencode, sparse), how, reencode, sparse) for how, reencode, sparse in unique]


def move_label(how: str, reencode: bool, sparse_steps: int) -> str:
    """A move's name in the summary: its direction, whether re-encoded, whether its change was shrunk."""
    return how + (", re-encoded" if reencode else "") + (", sparse" if sparse_steps else "")


def _moves_compared(bundle: Bundle, config: StudyConfig, model_id: str, predictor, gvrs: pd.DataFrame,
                    truth, feature_maps: np.ndarray, drops: dict, facts: pd.DataFrame,
                    own_change: np.ndarray, encoder, decoder) -> tuple[dict, dict]:
    """The GVR moves of :func:`compared_moves` of the same radiographs, judged as the bundle's own, and with the
    relevance mass the baselines stage gives the bundle's own GVRs (the mean over radiographs where it is defined)."""
    from modelling.explain.gvr import aim, move, scorer

    index = bundle.read_table("latents_index").set_index("image_id")
    latents = bundle.read_array(index["latents_path"].iloc[0])
    z0 = latents[index.loc[gvrs["image_id"], "row"].to_numpy()]
    g = config.gvr
    target = np.log(gvrs["target_bnp_ng_l"].to_numpy(float))
    relied = np.array([drops[f].mean() for f in INTERVENTION_FEATURES])
    codes = training_codes(bundle, model_id)
    covariance = np.cov(codes.astype(np.float64), rowvar=False)  # for pattern moves, computed once
    n, k = feature_maps.shape[:2]
    present = (np.abs(feature_maps).reshape(n, k, -1).sum(axis=2) > 0).any(axis=0)  # a feature some radiograph has
    cardiomegaly = facts["cardiothoracic_ratio"].to_numpy() > 0.5
    effused = (facts["effusion_right"] + facts["effusion_left"]).to_numpy() > 0
    masks = load_masks(bundle, facts.reset_index(), gvrs["image_id"])
    drivers = [driving_masks(row) for _, row in facts.iterrows()]
    out = {}
    for label, how, reencode, sparse in compared_moves(config):
        cov = covariance if how == "pattern" else None
        path = move(z0, decoder, scorer(predictor, reencode=reencode, encoder=encoder, decoder=decoder),
                    target_log_bnp=aim(target, "down", g.margin), direction="down",
                    **move_options(g) | {"sparse_steps": sparse,
                                         "metric_ridge": g.metric_ridge if how == "metric" else None},
                    frames=2, covariance=cov)
        diseased, healthy = decode(decoder, path.start), decode(decoder, path.end)
        change = (diseased.astype(np.float32) - healthy.astype(np.float32)) / 255.0
        r = pixel_correlation(change, truth.change)
        r_model = pixel_correlation(change, model_change(feature_maps, drops))
        lower, measured = lower_share(ctr.measure(diseased)["ctr"].to_numpy(), ctr.measure(healthy)["ctr"].to_numpy(),
                                      cardiomegaly)
        heights = [effused_side_height(effusion.measure(images), facts["effusion_right"], facts["effusion_left"])
                   for images in (diseased, healthy)]
        cleared, cleared_n = lower_share(-heights[0], -heights[1], effused)  # more aerated lung when healthy
        coef = decompose(change, feature_maps)
        out[label] = {"median_pixel_r": _median(r), "median_model_change_r": _median(r_model),
                    "reached": float(path.reached.mean()),
                    "valid": float(_valid(predictor, encoder, diseased, healthy, target).mean()), "ctr_lower": lower,
                    "ctr_measured_with_cardiomegaly": measured, "effusion_cleared": cleared,
                    "effusion_measured": cleared_n,
                    "rank_agreement": rank_agreement(coef.mean(axis=0)[present], relied[present]),
                    "relevance_mass": _mean([scores(change[j], masks[i], drivers[j])["relevance_mass"]
                                             for j, i in enumerate(gvrs["image_id"])])}
    # model-parameter randomisation: the bundle's own move through a predictor that learned nothing
    fake = scorer(randomised(predictor, codes, seed=config.seed), reencode=g.reencode, encoder=encoder, decoder=decoder)
    cov = covariance if g.move == "pattern" else None
    path = move(z0, decoder, fake, target_log_bnp=aim(target, "down", g.margin), direction="down",
                **move_options(g), frames=2, covariance=cov)
    moved = path.steps > 0
    change = (decode(decoder, path.start).astype(np.float32) - decode(decoder, path.end).astype(np.float32)) / 255.0
    mprt = {"radiographs": int(len(z0)), "moved": int(moved.sum()),
            "reached": float(path.reached[moved].mean()) if moved.any() else None,
            "median_spearman": _median(map_similarity(change[moved], own_change[moved])) if moved.any() else None,
            "median_pixel_r_random": _median(pixel_correlation(change[moved], truth.change[moved]))
            if moved.any() else None}
    return out, mprt


def _mean(values) -> float | None:
    """The mean of the defined values; None when there are none."""
    values = np.asarray(values, float)
    return float(values[np.isfinite(values)].mean()) if np.isfinite(values).any() else None


def _median(values: np.ndarray) -> float | None:
    """The median of the defined values; None when there are none."""
    values = np.asarray(values, float)
    return float(np.median(values[np.isfinite(values)])) if np.isfinite(values).any() else None


@dataclasses.dataclass
class _ModelFidelity:
    """What the stage finds for one model: per-GVR rows, their true and target change maps (in row order),
    and the model's entries of the summary's per-model sections."""

    rows: list[dict]
    true_changes: np.ndarray
    target_changes: np.ndarray
    moves_compared: dict
    randomisation: dict
    measured_on_truth: dict
    positioning: dict
    representation: dict


def _model_fidelity(bundle: Bundle, stage: Stage, size: int, encoder, decoder, model_id: str, gvrs: pd.DataFrame,
                    truth_table: pd.DataFrame, first_row: int, config: StudyConfig) -> _ModelFidelity:
    params = load_render_params(bundle, gvrs["image_id"].tolist())
    truth = true_change(params, size)
    predictor = load_predictor(bundle, model_id)
    code = encode(encoder, truth.original)
    seen = intervene(params, size, truth.original, code, encoder, decoder)
    before, drops = intervention_falls(predictor, code, seen)
    alone = {f: seen.images[:, INTERVENTION_FEATURES.index(f)] for f in ("heart", "effusion")}
    feature_maps = seen.maps
    diseased = np.stack([bundle.read_image(p) for p in gvrs["diseased_path"]]).astype(np.float32)
    healthy = np.stack([bundle.read_image(p) for p in gvrs["healthy_path"]]).astype(np.float32)
    change = (diseased - healthy) / 255.0
    coef = decompose(change, feature_maps)
    r = pixel_correlation(change, truth.change)
    r_model = pixel_correlation(change, model_change(feature_maps, drops))
    ctr_d = ctr.measure(diseased.astype(np.uint8))["ctr"].to_numpy()
    ctr_h = ctr.measure(healthy.astype(np.uint8))["ctr"].to_numpy()
    facts = truth_table.loc[gvrs["image_id"]]
    # (b): the visible BNP terms moved just far enough for the noiseless BNP model to cross the GVR's target
    fraction, fraction_ok = target_fraction(params, facts["term_age"].to_numpy(),
                                            np.log(gvrs["target_bnp_ng_l"].to_numpy(float)))
    target_images, _ = phantom.render(toward_healthy(params, fraction), size)
    target_change = (truth.original.astype(np.float32) - target_images.astype(np.float32)) / 255.0
    r_target = pixel_correlation(change, target_change)
    valid = _valid(predictor, encoder, diseased.astype(np.uint8), healthy.astype(np.uint8),
                   np.log(gvrs["target_bnp_ng_l"].to_numpy(float)))
    large_effusions = effusion.large(facts["effusion_right"], facts["effusion_left"])
    eff_d, eff_h = (effused_side_height(effusion.measure(images.astype(np.uint8)), facts["effusion_right"],
                                        facts["effusion_left"]) for images in (diseased, healthy))
    ceiling = measured_on_truth(truth, alone, facts)
    positioning = positioning_evidence(predictor, encoder, params, truth.original, before, feature_maps, change, size)
    compared, randomisation = _moves_compared(bundle, config, model_id, predictor, gvrs, truth, feature_maps, drops,
                                              facts, change, encoder, decoder)
    covariance = np.cov(training_codes(bundle, model_id).astype(np.float64), rowvar=False)
    shown_by_model = representation_evidence(feature_maps, seen.shown, seen.moved, covariance, drops, change)
    rows = []
    for k, g in enumerate(gvrs.itertuples()):
        path = f"gvr/{g.gvr_id}/counterfactual.png"
        stage.write_image(path, truth.counterfactual[k])
        stage.write_image(f"gvr/{g.gvr_id}/target_counterfactual.png", target_images[k])
        rows.append({
            "gvr_id": g.gvr_id, "image_id": g.image_id, "model_id": model_id, "regime": g.regime,
            "counterfactual_path": path, "change_row": first_row + k,
            "pixel_r": None if not np.isfinite(r[k]) else float(r[k]),
            "model_change_r": None if not np.isfinite(r_model[k]) else float(r_model[k]),
            "target_fraction": float(fraction[k]), "target_reached": bool(fraction_ok[k]),
            "target_counterfactual_path": f"gvr/{g.gvr_id}/target_counterfactual.png", "valid": bool(valid[k]),
            "pixel_r_target": None if not np.isfinite(r_target[k]) else float(r_target[k]),
            "cardiomegaly": bool(facts["cardiothoracic_ratio"].iloc[k] > 0.5),
            "effusion": bool(facts["effusion_left"].iloc[k] + facts["effusion_right"].iloc[k] > 0),
            "large_effusion": bool(large_effusions[k]),
            "ctr_diseased": None if not np.isfinite(ctr_d[k]) else float(ctr_d[k]),
            "ctr_healthy": None if not np.isfinite(ctr_h[k]) else float(ctr_h[k]),
            "effusion_height_diseased": None if not np.isfinite(eff_d[k]) else float(eff_d[k]),
            "effusion_height_healthy": None if not np.isfinite(eff_h[k]) else float(eff_h[k]),
            **{f"coef_{f}": float(coef[k, j]) for j, f in enumerate(INTERVENTION_FEATURES)},
            **{f"drop_{f}": float(drops[f][k]) for f in INTERVENTION_FEATURES},
        })
    return _ModelFidelity(
        rows=rows, true_changes=truth.change, target_changes=target_change, moves_compared=compared,
        randomisation=randomisation, measured_on_truth=ceiling, positioning=positioning,
        representation=shown_by_model)


def representation_evidence(true_maps: np.ndarray, shown_maps: np.ndarray, moved: np.ndarray, covariance: np.ndarray,
                            drops: dict, change: np.ndarray) -> dict:
    """What the encoder and decoder show of each intervention, and what it costs a pattern move, on one model's GVR
    radiographs (see ``method["representation"]`` in :func:`write_fidelity`).

    `true_maps`, `shown_maps`: (n, k, h, w) true and decoded changes per intervention; `moved`: (n, k, d) code
    changes; `drops`: the model's fall per feature and radiograph; `change`: the GVRs' changes (n, h, w)."""
    n, k = true_maps.shape[:2]
    has = np.abs(true_maps).reshape(n, k, -1).sum(axis=2) > 0
    present = has.any(axis=0)
    cost = squared_code_lengths(moved, covariance)
    relied = np.array([drops[f].mean() for f in INTERVENTION_FEATURES])
    features = {}
    for j, f in enumerate(INTERVENTION_FEATURES):
        if not present[j]:
            continue
        rows = has[:, j]
        leak = decompose(shown_maps[rows, j], true_maps[rows]).mean(axis=0)
        features[f] = {"radiographs": int(rows.sum()),
                       "shown_r": _median(pixel_correlation(shown_maps[rows, j], true_maps[rows, j])),
                       "shown": {g: float(leak[i]) for i, g in enumerate(INTERVENTION_FEATURES) if present[i]},
                       "squared_code_length": float(cost[rows, j].mean()),
                       "reliance": float(relied[j])}
    per_cost = np.array([features[f]["reliance"] / features[f]["squared_code_length"]
                         if f in features and features[f]["squared_code_length"] > 0 else np.nan
                         for f in INTERVENTION_FEATURES])
    on_true = decompose(change, true_maps).mean(axis=0)
    on_shown = decompose(change, shown_maps).mean(axis=0)
    ok = present & np.isfinite(per_cost)
    for j, f in enumerate(INTERVENTION_FEATURES):
        if f in features:
            features[f] |= {"gvr_coefficient": float(on_true[j]), "gvr_coefficient_on_shown": float(on_shown[j])}
    return {"features": features,
            "rank_agreement_per_cost": rank_agreement(on_true[ok], per_cost[ok]),
            "rank_agreement_on_shown": rank_agreement(on_shown[present], relied[present])}


def positioning_fall(predictor, encoder, params, original: np.ndarray, before: np.ndarray,
                     size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per radiograph (`original`, rendered from `params`, predicted `before`): the fall in predicted log BNP
    when it is drawn again with neutral positioning (same noise), and that change's map (original - neutral)."""
    moved, _ = phantom.render(positioned_neutrally(params), size)
    fall = before - _predict(predictor, encode(encoder, moved))
    return fall, (original.astype(np.float32) - moved.astype(np.float32)) / 255.0


def positioning_evidence(predictor, encoder, params, original: np.ndarray, before: np.ndarray,
                         feature_maps: np.ndarray, change: np.ndarray, size: int) -> dict:
    """How the model responds to its GVR radiographs drawn again with neutral positioning (same noise), and
    whether the GVRs show it: their coefficient on that change map fitted beside the interventions' maps,
    and the share of their change the interventions' maps explain without and with it."""
    fall, positioning = positioning_fall(predictor, encoder, params, original, before, size)
    with_positioning = np.concatenate([feature_maps, positioning[:, None]], axis=1)
    return {"radiographs": int(len(fall)), "mean_fall": float(fall.mean()),
            "mean_absolute_fall": float(np.abs(fall).mean()),
            "gvr_median_coefficient": float(np.median(decompose(change, with_positioning)[:, -1])),
            "median_r2_interventions": _median(explained(change, feature_maps)),
            "median_r2_with_positioning": _median(explained(change, with_positioning))}


def measured_on_truth(truth, alone: dict, facts: pd.DataFrame) -> dict:
    """The GVR measures taken on the phantom's own counterfactuals of the same radiographs: what the measures
    show when the disease truly leaves (their ceiling for a GVR), and the ratio with one feature removed
    (`alone`: the renders with only the heart made normal, and with only the effusion removed)."""
    cardiomegaly = facts["cardiothoracic_ratio"].to_numpy() > 0.5
    effused = (facts["effusion_right"] + facts["effusion_left"]).to_numpy() > 0
    before = ctr.measure(truth.original)["ctr"].to_numpy()
    after = ctr.measure(truth.counterfactual)["ctr"].to_numpy()
    lower, measured = lower_share(before, after, cardiomegaly)
    heart, heart_n = lower_share(before, ctr.measure(alone["heart"])["ctr"].to_numpy(), cardiomegaly)
    dry, dry_n = lower_share(before, ctr.measure(alone["effusion"])["ctr"].to_numpy(), cardiomegaly & effused)
    small = cardiomegaly & ~effusion.large(facts["effusion_right"], facts["effusion_left"])
    small_lower, small_n = lower_share(before, after, small)
    heights = [effused_side_height(effusion.measure(images), facts["effusion_right"], facts["effusion_left"])
               for images in (truth.original, truth.counterfactual)]
    cleared, cleared_n = lower_share(-heights[0], -heights[1], effused)
    return {"ctr_lower": lower, "ctr_measured_with_cardiomegaly": measured, "ctr_lower_heart_only": heart,
            "ctr_heart_only_measured": heart_n, "ctr_lower_effusion_only": dry, "ctr_effusion_only_measured": dry_n,
            "effusion_cleared": cleared, "effusion_measured": cleared_n,
            "ctr_lower_small_effusion": small_lower, "ctr_small_effusion_measured": small_n}


def reliance_table(per_gvr: pd.DataFrame) -> pd.DataFrame:
    """Per model and feature: the intervention's mean fall in prediction beside the GVRs' mean coefficient."""
    rows = []
    for model_id, g in per_gvr.groupby("model_id", sort=True):
        for f in INTERVENTION_FEATURES:
            drop = g[f"drop_{f}"].to_numpy(float)
            rows.append({"model_id": model_id, "regime": g["regime"].iloc[0], "feature": f,
                         "intervention": INTERVENTIONS[f], "radiographs": len(g),
                         "changed": int((g[f"coef_{f}"].notna() & (drop != 0)).sum()),
                         "mean_drop": float(drop.mean()),
                         "sd_drop": float(drop.std(ddof=1)) if len(drop) > 1 else None,
                         "gvr_mean_coefficient": float(g[f"coef_{f}"].mean())})
    return pd.DataFrame(rows)


def _listed(pair: tuple | None) -> list | None:
    return None if pair is None else list(pair)  # as JSON reads it back


def summarise(per_gvr: pd.DataFrame, reliance: pd.DataFrame, *, seed: int = 0) -> dict:
    """Per model, the fidelity targets' measures; between the two regimes, the non-disease differences (a
    two-sided Mann-Whitney test as R's ``wilcox.test``: exact below 50 GVRs a model without ties)."""
    import warnings

    from analysis.rank_tests import mann_whitney

    out: dict = {"models": {}, "method": {
        "pixel_r": "Pearson r of diseased - healthy with original - disease-free counterfactual (same noise)",
        "model_change_r": "Pearson r of diseased - healthy with the sum over interventions of each feature's true "
                          "change map times the fall in this radiograph's prediction when it is removed",
        "ctr_lower": "share of GVRs of radiographs with cardiothoracic ratio > 0.5 whose ratio measured on the "
                     "healthy reconstruction is lower than on the diseased one, among those measured on both",
        "pixel_r_target": "Pearson r of diseased - healthy with original - the target counterfactual: the visible "
                          "terms of the phantom's BNP model (heart, effusion, opacity, pacemaker, body mass) moved "
                          "just far enough that the model without patient and visit effects crosses the GVR's "
                          "target (undefined where it already did)",
        "ctr_lower_small_effusion": "'ctr_lower' among the radiographs whose true effusion fills less than a "
                                    "tenth of the hemithorax on both sides (modelling.cohort.effusion.LARGE), where "
                                    "the heart border the ratio is read at is not hidden by fluid",
        "effusion_cleared": "share of GVRs of radiographs with an effusion whose aerated lung height on the "
                            "effused side (modelling.cohort.effusion) is greater on the healthy reconstruction "
                            "than on the diseased one, among those measured on both",
        "valid": "share of GVRs whose diseased reconstruction as stored (8-bit), encoded again, is predicted at or "
                 "above the target and whose healthy one is predicted below it",
        "rank_agreement": "Spearman rho, over the interventions that change at least one of the model's GVR "
                          "radiographs, between the GVRs' mean coefficient and the "
                          "model's mean fall in predicted log BNP",
        "rank_agreement_ci": "95 % percentile bootstrap interval of 'rank_agreement', the model's GVR radiographs "
                             "drawn with replacement 2,000 times (how much of it is the draw of radiographs)",
        "non_disease_difference": "Mann-Whitney U (two-sided) of the two regimes' per-GVR coefficients on each "
                                  "feature that is not disease, beside the difference in mean reliance",
    }}
    for model_id, g in per_gvr.groupby("model_id", sort=True):
        rel = reliance[reliance["model_id"] == model_id].set_index("feature").loc[INTERVENTION_FEATURES]
        rel = rel[rel["changed"] > 0]  # a feature none of its radiographs has cannot be ranked
        r = g["pixel_r"].dropna().to_numpy(float)
        r_model = g["model_change_r"].dropna().to_numpy(float)
        r_target = g["pixel_r_target"].dropna().to_numpy(float)
        ctr_d, ctr_h = g["ctr_diseased"].to_numpy(float), g["ctr_healthy"].to_numpy(float)
        cardiomegaly = g["cardiomegaly"].to_numpy()
        lower, measured = lower_share(ctr_d, ctr_h, cardiomegaly)
        small, small_n = lower_share(ctr_d, ctr_h, cardiomegaly & ~g["large_effusion"].to_numpy())
        cleared, cleared_n = lower_share(-g["effusion_height_diseased"].to_numpy(float),
                                         -g["effusion_height_healthy"].to_numpy(float), g["effusion"].to_numpy())
        out["models"][model_id] = {
            "gvrs": int(len(g)), "median_pixel_r": float(np.median(r)) if len(r) else None,
            "q1_pixel_r": float(np.percentile(r, 25)) if len(r) else None,
            "q3_pixel_r": float(np.percentile(r, 75)) if len(r) else None,
            "median_model_change_r": float(np.median(r_model)) if len(r_model) else None,
            "median_pixel_r_target": float(np.median(r_target)) if len(r_target) else None,
            "target_reached": float(g["target_reached"].mean()), "valid": float(g["valid"].mean()),
            "ctr_lower": lower, "ctr_measured_with_cardiomegaly": measured,
            "ctr_lower_small_effusion": small, "ctr_small_effusion_measured": small_n,
            "effusion_cleared": cleared, "effusion_measured": cleared_n,
            "rank_agreement": rank_agreement(rel["gvr_mean_coefficient"].to_numpy(float),
                                             rel["mean_drop"].to_numpy(float)),
            "rank_agreement_ci": _listed(rank_agreement_interval(
                g[[f"coef_{f}" for f in rel.index]].to_numpy(float), g[[f"drop_{f}" for f in rel.index]].to_numpy(float),
                seed=seed)),
        }
    regimes = {reg: g for reg, g in per_gvr.groupby("regime")}
    if set(regimes) == {"correct", "overfitted"}:
        diff = {}
        for f in NON_DISEASE:
            a, b = (regimes[reg][f"coef_{f}"].to_numpy(float) for reg in ("correct", "overfitted"))
            if np.ptp(np.r_[a, b]) > 0:
                with warnings.catch_warnings():  # ties: the normal approximation, as R, which says so each time
                    warnings.filterwarnings("ignore", "cannot compute exact p-value with ties")
                    test = mann_whitney(a, b, alternative="two-sided")
            else:
                test = None
            ra, rb = (reliance.loc[(reliance["regime"] == reg) & (reliance["feature"] == f), "mean_drop"].mean()
                      for reg in ("correct", "overfitted"))
            diff[f] = {"reliance_correct": float(ra), "reliance_overfitted": float(rb),
                       "gvr_coefficient_correct": float(a.mean()), "gvr_coefficient_overfitted": float(b.mean()),
                       "p": None if test is None else float(test.p_value)}
        out["non_disease_difference"] = diff
    return out


def write_fidelity(stage: Stage, config: StudyConfig) -> dict:
    bundle = stage.bundle
    if "tables/phantom_render.parquet" not in bundle.files:
        stage.write_json("fidelity/summary.json", {"models": {}, "reason": "real data: no ground truth"})
        return {"gvrs": 0}
    index = bundle.read_table("gvr_index")
    gvrs = index[index["kind"] == "gvr"].sort_values("gvr_id", kind="stable")
    truth_table = bundle.read_table("phantom_truth").set_index("image_id")
    encoder, decoder = load_encoder(bundle), load_decoder(bundle)
    size = int(bundle.read_table("radiographs").pipe(lambda r: np.load(bundle.verify_file(r["image_path"].iloc[0]),
                                                                       mmap_mode="r").shape[-1]))
    found: dict[str, _ModelFidelity] = {}
    rows: list[dict] = []
    groups = list(gvrs.groupby("model_id", sort=True))
    bar = progress(total=len(groups), desc="fidelity: interventions per model", unit="model")
    for model_id, g in groups:
        found[model_id] = _model_fidelity(bundle, stage, size, encoder, decoder, model_id, g, truth_table, len(rows),
                                          config)
        rows += found[model_id].rows
        bar.update(1)
    bar.close()
    for name, field in (("true_change", "true_changes"), ("target_change", "target_changes")):
        maps = [getattr(f, field) for f in found.values()]
        stage.write_array(f"arrays/{name}.npy",
                          np.concatenate(maps).astype(np.float32) if maps else np.zeros((0, size, size), np.float32))
    per_gvr = pd.DataFrame(rows)
    if len(per_gvr):  # a column of undefined values only is still a float column
        per_gvr = per_gvr.astype({c: float for c in ("pixel_r", "model_change_r", "pixel_r_target",
                                                     "ctr_diseased", "ctr_healthy",
                                                     "effusion_height_diseased", "effusion_height_healthy")})
    reliance = reliance_table(per_gvr) if len(per_gvr) else pd.DataFrame(
        columns=["model_id", "regime", "feature", "intervention", "radiographs", "changed", "mean_drop", "sd_drop",
                 "gvr_mean_coefficient"])
    if len(per_gvr):
        stage.write_table("gvr_truth", per_gvr)
        stage.write_table("model_reliance", reliance)
    summary = summarise(per_gvr, reliance, seed=config.seed) if len(per_gvr) else {"models": {}}
    for section in ("moves_compared", "randomisation", "measured_on_truth", "positioning", "representation"):
        summary[section] = {model_id: getattr(f, section) for model_id, f in found.items()}
    summary.setdefault("method", {}).update({
        "randomisation": (
            "model-parameter randomisation test (Adebayo et al. 2018): the bundle's GVR move through a copy of "
            "each predictor with fresh random weights (rescaled to the real predictions' mean and SD); "
            "median Spearman rank correlation of its |change| with the real GVR's |change|, over radiographs "
            "whose random prediction started above the target (low: the GVR depends on what the model learned)"),
        "measured_on_truth": (
            "the same measures on the phantom's own counterfactuals of the same radiographs, the most a GVR could "
            "show by them: 'ctr_lower' and 'effusion_cleared' from each original to its disease-free "
            "counterfactual, 'ctr_lower_heart_only' to the same radiograph with only the heart made normal "
            "(effusion kept), 'ctr_lower_effusion_only' with only the effusion removed (heart kept; radiographs "
            "with both), 'ctr_lower_small_effusion' from original to disease-free counterfactual among the "
            "radiographs with cardiomegaly and no large effusion"),
        "positioning": (
            "not one of the interventions: the fall in predicted log BNP when the GVR radiographs are drawn again "
            "with neutral positioning (no rotation or shift, scale 1; same noise), as a mean and as a mean of "
            "absolute values, since moving a patient to neutral can raise or lower it; the GVRs' median "
            "coefficient on that change map, fitted beside the interventions' maps; and the median share of a "
            "GVR's change the interventions' maps explain (R^2 of a fit through the origin, against the change's "
            "uncentred sum of squares), without and with the positioning map"),
        "representation": (
            "per intervention, on the model's GVR radiographs that it changes: the change as the encoder and "
            "decoder show it (decoder(encoder(x)) - decoder(encoder(x intervened))): its median pixel r with the "
            "true change ('shown_r') and its mean least-squares coefficients on every feature's true change map "
            "('shown': 1 on the feature itself where the generative model shows it as the truth does, and off it "
            "what else it shows); the mean squared Mahalanobis length of the code change under the covariance of "
            "the codes the model trained on ('squared_code_length': what removing it costs a pattern move, the "
            "steepest descent in that metric); the model's mean fall ('reliance'); the GVRs' mean coefficient on the "
            "true maps ('gvr_coefficient', as 'rank_agreement' ranks it) and on the shown changes instead "
            "('gvr_coefficient_on_shown'). 'rank_agreement_per_cost': Spearman rho of the GVRs' mean coefficients "
            "with reliance over cost (steepest descent with a quadratic cost removes each feature in proportion "
            "to it); 'rank_agreement_on_shown': of the coefficients on the shown changes with reliance"),
    })
    summary["move"] = move_label(config.gvr.move, config.gvr.reencode, config.gvr.sparse_steps)
    # the truths' own definitions, for whoever reads the summary (the manuscript states them from here)
    summary["definitions"] = {"healthy_cardiothoracic_ratio": HEALTHY_CARDIOTHORACIC_RATIO,
                              "large_effusion_fraction": effusion.LARGE}
    stage.write_json("fidelity/summary.json", summary)
    return summary


def build_fidelity(config: StudyConfig, out, *, force: bool = False) -> tuple[Bundle, dict | None]:
    """Run the fidelity stage (after `gvr explain`); skipped when its inputs are unchanged."""
    bundle = Bundle(out, create=False)
    if "explain" not in bundle.stages:
        raise ValueError(f"{bundle.root}: no GVRs yet; run `gvr explain {bundle.root}` first")
    inputs = ["tables/gvr_index.parquet", "checkpoints/encoder.pt", "checkpoints/decoder.pt",
              "tables/predictions.parquet", "arrays/latents.npy",
              *(["tables/phantom_render.parquet"] if "tables/phantom_render.parquet" in bundle.files else [])]
    index = bundle.read_table("gvr_index")
    inputs += sorted({f"checkpoints/{m}.pt" for m in index["model_id"].unique()})
    result: dict = {}
    bundle.run_stage(STAGE, lambda st: result.update(write_fidelity(st, config)),
                     config=stage_key(config), seed=config.seed,
                     inputs=inputs, force=force)
    return bundle, result or None
