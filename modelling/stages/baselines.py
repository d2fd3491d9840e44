"""The baselines stage: Figure 4b's comparison maps, faithfulness against the masks, and the audit.

For every GVR of the bundle (kind "gvr"), the same radiograph's occlusion, integrated-gradients,
LIME and Grad-CAM maps on the same end-to-end predictor are computed and rendered beside the GVR in
``baselines/<gvr_id>.png``. On a phantom cohort (which has masks), every map and every GVR is scored
against the ground truth (:mod:`modelling.explain.faithfulness`) into ``tables/faithfulness.parquet``, and
``baselines/audit.json`` holds per model the audit's decision (:mod:`modelling.explain.audit`: does the
model rely mostly on what is not disease?) with the evidence it used and what it could not check, and
on the phantom whether it agrees with the model's reliance measured by intervention.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from data_schema import Bundle, Stage
from modelling.cohort import ctr, effusion
from modelling.config import StudyConfig
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
from modelling.explain.faithfulness import MEASURES_VERSION, SHARE_COLUMNS, driving_masks, pixel_correlation, table_row
from modelling.explain.fidelity import lower_share
from modelling.nets.networks import to_unit
from modelling.progress import progress
from modelling.stages.artifacts import load_encoder, load_images, load_masks, load_predictor

STAGE = "baselines"
#: The audit's region-by-region response (:func:`modelling.explain.audit.region_effects`); raising it redoes the stage.
REGION_EFFECTS_VERSION = 1


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
    device = next(iter(model.parameters()), torch.empty(0)).device

    def predict(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return np.concatenate([
                model(to_unit(torch.from_numpy(np.ascontiguousarray(images[i:i + 256]))).to(device)).float().cpu().numpy()
                for i in range(0, len(images), 256)])
    return predict


def audit(faithfulness: pd.DataFrame | None, gvr_index: pd.DataFrame, measured: dict,
          reliance: dict | None = None, regions: dict | None = None) -> dict:
    """Per model: the audit's decision from its GVRs' evidence (:func:`modelling.explain.audit.decide`),
    what its GVRs change, how the baselines compare and, on the phantom, whether the decision agrees
    with the model's measured reliance (:func:`modelling.explain.audit.reliance_verdict`). `regions`: per
    model, its GVRs' :func:`modelling.explain.audit.region_effects` (with masks)."""
    out = {}
    gvr = gvr_index[gvr_index["kind"] == "gvr"]
    reliance, regions = reliance or {}, regions or {}
    for model_id, g in gvr.groupby("model_id", sort=True):
        rows = faithfulness[faithfulness["model_id"] == model_id] if faithfulness is not None else None
        own = rows[rows["method"] == "gvr"] if rows is not None else None
        shares = ({c: float(own[c].mean()) for c in SHARE_COLUMNS} if own is not None and len(own) else None)
        r = own["true_change_r"].dropna() if own is not None else pd.Series(dtype=float)
        evidence = Evidence(mask_shares=shares, true_change_r=float(r.median()) if len(r) else None,
                            region_effects=regions.get(model_id), **measured.get(model_id, {}))
        entry = {
            "gvrs": int(len(g)),
            "reached_rate": float(g["reached"].mean()),
            "median_latent_distance": float(g["latent_distance"].median()),
            "median_image_distance": float(g["image_distance"].median()),
            **decide(evidence),
            "gvr_mean_shares": shares,
            "region_effects": regions.get(model_id),
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
    masks = load_masks(bundle, truth, gvrs["image_id"].unique()) if has_truth else {}
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
        if has_truth:
            regions[model_id] = region_effects(
                _reads(model), np.stack([bundle.read_image(p) for p in group["diseased_path"]]),
                np.stack([bundle.read_image(p) for p in group["healthy_path"]]), [masks[i] for i in group["image_id"]])
        for k, row in enumerate(group.itertuples()):
            shown = bundle.read_image(row.overlay_path)
            stage.write_image(f"baselines/{row.gvr_id}.png", panel(images[k], shown, {m: maps[m][k] for m in METHODS}))
            if not has_truth:
                continue
            diseased = bundle.read_image(row.diseased_path).astype(np.float32)
            healthy = bundle.read_image(row.healthy_path).astype(np.float32)
            truth_row = truth.set_index("image_id").loc[row.image_id]
            drivers = driving_masks(truth_row)
            for method, value in [("gvr", diseased - healthy)] + [(m, maps[m][k]) for m in METHODS]:
                rows.append({"gvr_id": row.gvr_id, "model_id": model_id, "regime": row.regime, "method": method,
                             **table_row(value, masks[row.image_id], drivers),
                             "true_change_r": _truth_r(value, true_changes.get(row.gvr_id))})
    bar.close()
    info = {"gvrs": int(len(gvrs)), "methods": list(METHODS), "faithfulness": has_truth}
    table = None
    if has_truth and rows:
        table = pd.DataFrame(rows)
        table = table.astype({"pointing_hit": float, "true_change_r": float})
        stage.write_table("faithfulness", table)
    if len(gvrs):
        result = audit(table, index, _measured_changes(bundle, gvrs), _reliance(bundle), regions)
        stage.write_json("baselines/audit.json", result)
        info["audit"] = result
    return info


def build_baselines(config: StudyConfig, out, *, force: bool = False) -> tuple[Bundle, dict | None]:
    """Run the baselines stage (after `gvr explain`); skipped when its inputs are unchanged."""
    bundle = Bundle(out, create=False)
    if "explain" not in bundle.stages:
        raise ValueError(f"{bundle.root}: no GVRs yet; run `gvr explain` first")
    inputs = ["tables/gvr_index.parquet", "checkpoints/encoder.pt",
              *(p for p in ("tables/gvr_truth.parquet", "arrays/true_change.npy", "tables/model_reliance.parquet")
                if p in bundle.files)]
    result: dict = {}
    bundle.run_stage(STAGE, lambda st: result.update(write_baselines(st, config)),
                     config={"methods": list(METHODS), "audit_threshold": THRESHOLD,
                             "measures_version": MEASURES_VERSION, "region_effects": REGION_EFFECTS_VERSION},
                     seed=config.seed,
                     inputs=inputs, force=force)
    return bundle, result or None
