"""The baselines stage: Figure 4b's comparison maps, faithfulness against the masks, and the audit.

For every GVR of the bundle (kind "gvr"), the same radiograph's occlusion, integrated-gradients,
LIME and Grad-CAM maps on the same end-to-end predictor are computed and rendered beside the GVR in
``baselines/<gvr_id>.png``. With masks (a phantom cohort's, or a user's segmentations of real radiographs,
``tables/radiograph_masks.parquet``), every map and every GVR of a radiograph with masks is scored against
them (:mod:`modelling.explain.faithfulness`; the drivers are the phantom's, or on real data the disease
masks the radiograph shows) into ``tables/faithfulness.parquet``, and
``baselines/audit.json`` holds per model the audit's decision (:mod:`modelling.explain.audit`: does the
model rely mostly on what is not disease?) with the evidence it used and what it could not check, and
on the phantom whether it agrees with the model's reliance measured by intervention. With masks the audit
reads the model's response to its GVRs shortened by ``audit.sparse_steps``: each GVR's move is made again
as the explain stage made it and then shortened (:func:`modelling.explain.gvr.shorten`), and what it kept
is drawn in ``baselines/audit/<gvr_id>.png`` (original, the shortened GVR's overlay).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd
import torch

from data_schema import Bundle, Stage
from data_schema.tables import MASK_FEATURES
from modelling.cohort import ctr, effusion
from modelling.config import StudyConfig, gvr_key, move_options
from modelling.explain.audit import (
    FLAGGED,
    THRESHOLD,
    UNDECIDED,
    Evidence,
    decide,
    mask_share,
    measured_effusion_smaller,
    region_effects,
    reliance_verdict,
)
from modelling.explain.baselines import METHODS, EndToEnd, attribute
from modelling.explain.faithfulness import (
    DISEASE_MASKS,
    MEASURES_VERSION,
    NON_DISEASE_MASKS,
    SHARE_COLUMNS,
    driving_masks,
    pixel_correlation,
    table_row,
)
from modelling.explain.fidelity import lower_share
from modelling.explain.gvr import aim, move, overlay, scorer, shorten
from modelling.nets.networks import to_unit
from modelling.nets.training import decode, device_for, on_images
from modelling.progress import progress
from modelling.stages.artifacts import (
    load_decoder,
    load_encoder,
    load_images,
    load_masks,
    load_predictor,
    training_covariance,
)

log = logging.getLogger(__name__)

STAGE = "baselines"
#: A user's segmentations of real radiographs (``gvr cohort ingest --masks``).
MASKS = "tables/radiograph_masks.parquet"
#: The audit's region-by-region response (:func:`modelling.explain.audit.region_effects`); raising it redoes
#: the stage (2: it decides, on GVRs shortened by ``audit.sparse_steps``; 3: O, the response outside the masks;
#: 4: no share where the two regions move the model by less than ``RESPONSE_FLOOR`` in all; 5: O decides;
#: 6: GVRs of radiographs without any disease mask left out, and counted).
REGION_EFFECTS_VERSION = 6


def heatmap(values: np.ndarray) -> np.ndarray:
    """Signed map -> RGB uint8, red = raises the predicted BNP, blue = lowers it, white = 0."""
    import matplotlib

    scale = float(np.abs(values).max()) or 1.0
    rgba = matplotlib.colormaps["RdBu_r"]((values / scale + 1) / 2)
    return (rgba[..., :3] * 255).round().astype(np.uint8)


def panel(original: np.ndarray, gvr_overlay: np.ndarray, maps: dict[str, np.ndarray]) -> np.ndarray:
    """One row: original, GVR overlay, then each baseline's heat map."""
    tiles = [np.repeat(original[..., None], 3, axis=-1), gvr_overlay] + [heatmap(maps[m]) for m in METHODS]
    row = np.concatenate(tiles, axis=1)
    scale = max(1, 128 // original.shape[0])
    return np.kron(row, np.ones((scale, scale, 1), np.uint8))


def _true_changes(bundle: Bundle) -> dict[str, np.ndarray]:
    """The fidelity stage's true change per GVR id (none before it ran, or on real data)."""
    if "tables/gvr_truth.parquet" not in bundle.files:
        return {}
    rows = bundle.read_table("gvr_truth")
    changes = bundle.read_array("arrays/true_change.npy")
    return {g: changes[r] for g, r in zip(rows["gvr_id"], rows["change_row"])}


def _truth_r(value: np.ndarray, truth: np.ndarray | None) -> float | None:
    if truth is None:
        return None
    r = float(pixel_correlation(value.astype(np.float32), truth)[0])
    return r if np.isfinite(r) else None


def _measured_changes(bundle: Bundle, gvrs: pd.DataFrame) -> dict:
    """Per model, the disease changes measurable without masks: the cardiothoracic ratio lower and the
    effusion smaller on the healthy reconstruction (:mod:`modelling.explain.audit`'s real-data evidence)."""
    out = {}
    for model_id, g in gvrs.groupby("model_id", sort=True):
        diseased = np.stack([bundle.read_image(p) for p in g["diseased_path"]])
        healthy = np.stack([bundle.read_image(p) for p in g["healthy_path"]])
        ctr_d, ctr_h = (ctr.measure(x)["ctr"].to_numpy(float) for x in (diseased, healthy))
        lower, n_ctr = lower_share(ctr_d, ctr_h, ctr_d > 0.5)
        heights = [effusion.measure(x)[["height_right", "height_left"]].to_numpy(float) for x in (diseased, healthy)]
        smaller, n_eff = measured_effusion_smaller(*heights)
        out[model_id] = {"ctr_lower": lower, "ctr_measured": n_ctr, "effusion_smaller": smaller,
                         "effusion_measured": n_eff}
    return out


def _reliance(bundle: Bundle) -> dict[str, dict]:
    """The fidelity stage's intervention reliance per model (phantom only): the audit's ground truth."""
    if "tables/model_reliance.parquet" not in bundle.files:
        return {}
    table = bundle.read_table("model_reliance")
    return {m: reliance_verdict(dict(zip(g["feature"], g["mean_drop"]))) for m, g in table.groupby("model_id")}


def _reads(model: EndToEnd):
    """The whole model as :func:`modelling.explain.audit.region_effects` calls it: uint8 radiographs -> log BNP."""
    def predict(images: np.ndarray) -> np.ndarray:
        return np.concatenate(on_images(model, images))
    return predict


def shortened_gvrs(bundle: Bundle, config: StudyConfig, group: pd.DataFrame, stored: np.ndarray, *, decoder,
                   encoder, predictor, latents: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """The healthy reconstructions of one model's GVRs (`group`, rows of ``gvr_index``) as the audit reads
    them, shortened by ``audit.sparse_steps``: each move made again as the explain stage made it (the same
    codes in the same batch, so to the arithmetic the same end), then shrunk with the re-encoded model
    judging (:func:`modelling.explain.gvr.shorten`; ``gvr.sparse_steps`` needs re-encoding for the same reason).
    `stored`: the bundle's healthy reconstructions of those GVRs (n, H, W).

    Returns
    -------
    healthy : ndarray (n, H, W) uint8
    shortened : ndarray of bool (n,)
    how : str
        How the GVRs were made, for the audit's report.
    """
    g, steps = config.gvr, config.audit.sparse_steps
    if steps == 0:
        return stored, np.zeros(len(group), bool), "the bundle's GVRs as they are"
    start = latents[rows]
    target = aim(np.log(group["target_bnp_ng_l"].to_numpy(np.float64)), "down", g.margin)
    model = group["model_id"].iloc[0]
    covariance = training_covariance(bundle, model) if g.move == "pattern" else None
    # from the start, as the explain stage moved them; its own shortening (gvr.sparse_steps), if any, is not
    # the audit's, which starts where the move crossed
    path = move(start, decoder, scorer(predictor, reencode=g.reencode, encoder=encoder, decoder=decoder),
                target_log_bnp=target, direction="down", **move_options(g) | {"sparse_steps": 0},
                frames=2, covariance=covariance, desc=f"{model}: the audit's GVRs, moved again")
    # the bundle's own GVRs end where these crossed unless the explain stage shortened them (gvr.sparse_steps)
    differ = 0 if g.sparse_steps else int(
        (np.abs(decode(decoder, path.end).astype(int) - stored.astype(int)).max(axis=(1, 2)) > 1).sum())
    if differ:  # another machine's arithmetic, or a bundle edited by hand: the audit reads its own moves
        log.warning("%s: %d of %d GVRs moved again for the audit do not end where the bundle's did (more than "
                    "one grey level apart); the audit reads the moves made again", model, differ, len(group))
    codes, shortened = shorten(start, path.end, decoder,
                               scorer(predictor, reencode=True, encoder=encoder, decoder=decoder),
                               target_log_bnp=target, direction="down", steps=steps, step_size=g.step_size,
                               desc=f"{model}: shortening the audit's GVRs")
    healthy = decode(decoder, codes)
    return healthy, shortened, f"the GVRs shortened by {steps} steps, {int(shortened.sum())} of {len(group)}"


def _measurable(effects: dict, non_disease_segmented: bool) -> dict:
    """Region effects without E where no non-disease feature was segmented: its region is then empty, and its
    share of 0 would say the model leans on none of them."""
    return effects if non_disease_segmented else {**effects, "share": None}


def audit(faithfulness: pd.DataFrame | None, gvr_index: pd.DataFrame, measured: dict,
          reliance: dict | None = None, regions: dict | None = None, *, masks_in_bundle: int = 0,
          unsegmented: tuple[str, ...] = ()) -> dict:
    """Per model: the audit's decision from its GVRs' evidence (:func:`modelling.explain.audit.decide`),
    what its GVRs change, how the baselines compare and, on the phantom, whether the decision agrees
    with the model's measured reliance (:func:`modelling.explain.audit.reliance_verdict`). `regions`: per
    model (with masks), ``effects``, the :func:`modelling.explain.audit.region_effects` of the GVRs the audit
    reads (shortened), ``how`` they were made, and ``as_explained``, the same on the bundle's own GVRs."""
    out = {}
    gvr = gvr_index[gvr_index["kind"] == "gvr"]
    reliance, regions = reliance or {}, regions or {}
    for model_id, g in gvr.groupby("model_id", sort=True):
        rows = faithfulness[faithfulness["model_id"] == model_id] if faithfulness is not None else None
        own = rows[rows["method"] == "gvr"] if rows is not None else None
        # a feature nobody segmented has no share (NaN in every row): left out, not shown as 0 %
        shares = ({c: float(v) for c, v in own[list(SHARE_COLUMNS)].mean().items()
                   if not (pd.isna(v) and c.removeprefix("share_") in MASK_FEATURES)}
                  if own is not None and len(own) else None)
        r = own["true_change_r"].dropna() if own is not None else pd.Series(dtype=float)
        region = regions.get(model_id) or {}
        evidence = Evidence(mask_shares=shares, true_change_r=float(r.median()) if len(r) else None,
                            region_effects=region.get("effects"), region_gvrs=region.get("how"),
                            region_shortened=region.get("shortened"),
                            masks_elsewhere=masks_in_bundle if shares is None and masks_in_bundle else None,
                            unsegmented=unsegmented,
                            **measured.get(model_id, {}))
        entry = {
            "gvrs": int(len(g)),
            "reached_rate": float(g["reached"].mean()),
            "median_latent_distance": float(g["latent_distance"].median()),
            "median_image_distance": float(g["image_distance"].median()),
            **decide(evidence),
            "gvr_mean_shares": shares,
            "region_effects": region.get("effects"),
            "region_gvrs": region.get("how"),
            "region_effects_as_explained": region.get("as_explained"),
            "measured_changes": measured.get(model_id),
        }
        entry["flagged"] = entry["decision"] == FLAGGED
        if rows is not None and len(rows):
            by_method = (rows.groupby("method")[["pointing_hit", "iou_top", "relevance_mass", "relevance_rank",
                                                 "true_change_r", "share_outside"]].mean()
                         .rename(columns={"pointing_hit": "pointing_rate"}))
            mean_shares = rows.groupby("method")[list(SHARE_COLUMNS)].mean()
            entry["by_method"] = {
                m: {**{k: (None if pd.isna(v) else float(v)) for k, v in r.items()},
                    "non_disease_share": mask_share(mean_shares.loc[m].to_dict())}
                for m, r in by_method.iterrows()}
        if model_id in reliance:
            truth = reliance[model_id]
            entry["reliance"] = truth
            entry["agrees_with_reliance"] = (None if entry["decision"] == UNDECIDED
                                             else entry["flagged"] == truth["flagged"])
        out[model_id] = entry
    return out


def write_baselines(stage: Stage, config: StudyConfig) -> dict:
    bundle = stage.bundle
    index = bundle.read_table("gvr_index")
    gvrs = index[index["kind"] == "gvr"].reset_index(drop=True)
    radiographs = bundle.read_table("radiographs")
    position = {image_id: i for i, image_id in enumerate(radiographs["image_id"])}
    pixels = load_images(bundle, radiographs)
    encoder = load_encoder(bundle, config)
    has_truth = "tables/phantom_truth.parquet" in bundle.files
    truth = bundle.read_table("phantom_truth") if has_truth else None
    truth_by_image = truth.set_index("image_id") if has_truth else None
    mask_table = truth if has_truth else (bundle.read_table("radiograph_masks") if MASKS in bundle.files else None)
    # the phantom's masks, or a user's segmentations of some of the radiographs (of the features it names)
    masks = load_masks(bundle, mask_table, gvrs["image_id"].unique()) if mask_table is not None else {}
    has_masks = bool(masks)
    segmented = (set(MASK_FEATURES) if has_truth or mask_table is None
                 else {f for names in mask_table["segmented"] for f in names.split(",")})
    non_disease_segmented = bool(segmented & set(NON_DISEASE_MASKS))  # else their union is empty, not evidence
    if has_masks:  # the audit's GVRs are moved again where the explain stage moved them
        device = device_for(config)
        decoder, mover = load_decoder(bundle, config).to(device), load_encoder(bundle, config).to(device)
        latents_index = bundle.read_table("latents_index").set_index("image_id")
        latents = bundle.read_array(latents_index["latents_path"].iloc[0])
    true_changes = _true_changes(bundle)
    rows, regions = [], {}
    groups = list(gvrs.groupby("model_id", sort=True))
    bar = progress(total=len(groups) * len(METHODS), desc="baseline maps", unit="method")
    for model_id, group in groups:
        model = EndToEnd(encoder, load_predictor(bundle, model_id))
        images = pixels[[position[i] for i in group["image_id"]]]
        x = to_unit(torch.from_numpy(images))
        maps = {}
        for m in METHODS:
            maps[m] = attribute(model, x, m, seed=config.seed)
            bar.set_postfix(model=model_id, method=m)
            bar.update(1)
        with_masks = group["image_id"].isin(masks).to_numpy()
        if with_masks.any():
            diseased = np.stack([bundle.read_image(p) for p in group["diseased_path"]])
            stored = np.stack([bundle.read_image(p) for p in group["healthy_path"]])
            # moved again as one batch, as the explain stage moved them, then read where there are masks
            healthy, shortened, how = shortened_gvrs(
                bundle, config, group, stored, decoder=decoder, encoder=mover,
                predictor=load_predictor(bundle, model_id).to(device), latents=latents,
                rows=latents_index.loc[group["image_id"], "row"].to_numpy())
            own_masks = [masks[i] for i in group["image_id"][with_masks]]
            d, h, st = diseased[with_masks], healthy[with_masks], stored[with_masks]
            if not with_masks.all():
                how += f"; the {int(with_masks.sum())} with masks read"
            regions[model_id] = {
                "effects": _measurable(region_effects(_reads(model), d, h, own_masks), non_disease_segmented), "how": how,
                "shortened": (None if config.audit.sparse_steps == 0
                              else (int(shortened[with_masks].sum()), int(with_masks.sum()))),
                "as_explained": (None if np.array_equal(h, st) else
                                 _measurable(region_effects(_reads(model), d, st, own_masks), non_disease_segmented))}
        for k, row in enumerate(group.itertuples()):
            shown = bundle.read_image(row.overlay_path)
            stage.write_image(f"baselines/{row.gvr_id}.png", panel(images[k], shown, {m: maps[m][k] for m in METHODS}))
            if not with_masks[k]:
                continue
            stage.write_image(f"baselines/audit/{row.gvr_id}.png", np.concatenate(  # what the audit read
                [np.repeat(images[k][..., None], 3, axis=-1),
                 overlay(images[k], diseased[k], healthy[k], threshold=config.gvr.difference_threshold)], axis=1))
            # the phantom knows what drives each BNP; on real data, the disease the radiograph's masks show
            drivers = (driving_masks(truth_by_image.loc[row.image_id]) if has_truth
                       else [n for n in DISEASE_MASKS if masks[row.image_id][n].any()])
            change = diseased[k].astype(np.float32) - stored[k].astype(np.float32)  # the GVR as the bundle has it
            for method, value in [("gvr", change)] + [(m, maps[m][k]) for m in METHODS]:
                scored = table_row(value, masks[row.image_id], drivers)
                scored.update({f"share_{f}": np.nan for f in MASK_FEATURES if f not in segmented})  # not measured
                if not non_disease_segmented:  # an empty union is no evidence of a share of 0
                    scored["share_non_disease"] = np.nan
                rows.append({"gvr_id": row.gvr_id, "model_id": model_id, "regime": row.regime, "method": method,
                             **scored,
                             "true_change_r": _truth_r(value, true_changes.get(row.gvr_id))})
    bar.close()
    info = {"gvrs": int(len(gvrs)), "methods": list(METHODS), "faithfulness": bool(rows)}
    table = None
    if rows:
        table = pd.DataFrame(rows)
        table = table.astype({"pointing_hit": float, "true_change_r": float})
        stage.write_table("faithfulness", table)
    if len(gvrs):
        result = audit(table, index, _measured_changes(bundle, gvrs), _reliance(bundle), regions,
                       masks_in_bundle=0 if mask_table is None else len(mask_table),
                       unsegmented=tuple(f for f in MASK_FEATURES if has_masks and f not in segmented))
        stage.write_json("baselines/audit.json", result)
        info["audit"] = result
    return info


def build_baselines(config: StudyConfig, out, *, force: bool = False) -> tuple[Bundle, dict | None]:
    """Run the baselines stage (after `gvr explain`); skipped when its inputs are unchanged."""
    bundle = Bundle(out, create=False)
    if "explain" not in bundle.stages:
        raise ValueError(f"{bundle.root}: no GVRs yet; run `gvr explain {bundle.root}` first")
    models = sorted(bundle.read_table("gvr_index")["model_id"].unique())
    inputs = ["tables/gvr_index.parquet", "checkpoints/encoder.pt",
              *(p for p in ("tables/gvr_truth.parquet", "arrays/true_change.npy", "tables/model_reliance.parquet")
                if p in bundle.files)]
    # the audit moves the GVRs again only with masks (a phantom): only then do its settings and the moves' inputs count
    masked = [t for t in ("tables/phantom_truth.parquet", MASKS) if t in bundle.files]
    shortens = bool(masked) and config.audit.sparse_steps > 0
    inputs += masked
    if MASKS in bundle.files:  # the table names the stacks; new masks in them leave it as it was
        inputs += sorted(set(bundle.read_table("radiograph_masks")["mask_path"]))
    if shortens:
        inputs += ["checkpoints/decoder.pt", "tables/latents_index.parquet",
                   "arrays/latents.npy", "tables/predictions.parquet", *(f"checkpoints/{m}.pt" for m in models)]
    result: dict = {}
    bundle.run_stage(STAGE, lambda st: result.update(write_baselines(st, config)),
                     config={"methods": list(METHODS), "audit_threshold": THRESHOLD,
                             "measures_version": MEASURES_VERSION, "region_effects": REGION_EFFECTS_VERSION,
                             **({"audit": dataclasses.asdict(config.audit), "gvr": gvr_key(config.gvr)}
                                if shortens else {})},
                     seed=config.seed,
                     inputs=inputs, force=force)
    return bundle, result or None
