"""The baselines stage: Figure 4b's comparison maps, faithfulness against the masks, and the audit.

For every GVR of the bundle (kind "gvr"), the same radiograph's occlusion, integrated-gradients,
LIME and Grad-CAM maps on the same end-to-end predictor are computed and rendered beside the GVR in
``baselines/<gvr_id>.png``. On a phantom cohort (which has masks), every map and every GVR is scored
against the ground truth (:mod:`modelling.explain.faithfulness`) into ``tables/faithfulness.parquet``, and
``baselines/audit.json`` summarises per model what its GVRs change, flagging a model whose changes
sit mostly outside the disease masks (heart, effusion, opacity).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from data_schema import Bundle, Stage
from data_schema.tables import MASK_FEATURES
from modelling.cohort.phantom import unpack_masks
from modelling.config import StudyConfig
from modelling.explain.baselines import METHODS, EndToEnd, attribute
from modelling.explain.faithfulness import DISEASE_MASKS, driving_masks, pixel_correlation, scores
from modelling.nets.networks import to_unit
from modelling.progress import progress
from modelling.stages.artifacts import load_encoder, load_images, load_predictor

STAGE = "baselines"
#: Share of a model's GVR change outside heart, effusion and opacity above which the audit flags it.
FLAG_OUTSIDE_DISEASE = 0.5


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


def _masks(bundle: Bundle, truth: pd.DataFrame, image_ids) -> dict[str, dict[str, np.ndarray]]:
    rows = truth.set_index("image_id").loc[list(image_ids)]
    cache: dict[str, np.ndarray] = {}
    out = {}
    for image_id, row in rows.iterrows():
        if row["mask_path"] not in cache:
            cache[row["mask_path"]] = bundle.read_array(row["mask_path"])["bits"]
        bits = cache[row["mask_path"]][int(row["mask_index"])]
        out[image_id] = {k: v for k, v in unpack_masks(bits).items()}
    return out


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


def audit(faithfulness: pd.DataFrame, gvr_index: pd.DataFrame) -> dict:
    """Per model: what its GVRs change, how the baselines compare, and a flag with its numbers."""
    out = {}
    gvr = gvr_index[gvr_index["kind"] == "gvr"]
    for model_id, rows in faithfulness.groupby("model_id"):
        own = rows[rows["method"] == "gvr"]
        shares = {f"share_{m}": float(own[f"share_{m}"].mean()) for m in (*MASK_FEATURES, "outside")}
        outside_disease = 1.0 - sum(shares[f"share_{m}"] for m in DISEASE_MASKS)
        g = gvr[gvr["model_id"] == model_id]
        by_method = (rows.groupby("method")[["pointing_hit", "iou_top", "relevance_mass", "relevance_rank",
                                             "true_change_r", "share_outside"]].mean()
                     .rename(columns={"pointing_hit": "pointing_rate"}))
        out[model_id] = {
            "gvrs": int(len(own)),
            "reached_rate": float(g["reached"].mean()) if len(g) else None,
            "median_latent_distance": float(g["latent_distance"].median()) if len(g) else None,
            "median_image_distance": float(g["image_distance"].median()) if len(g) else None,
            "gvr_mean_shares": shares,
            "gvr_share_outside_disease_masks": outside_disease,
            "flagged": bool(outside_disease > FLAG_OUTSIDE_DISEASE),
            "flag_rule": f"mean share of GVR change outside heart, effusion and opacity > {FLAG_OUTSIDE_DISEASE}",
            "by_method": {m: {k: (None if pd.isna(v) else float(v)) for k, v in r.items()}
                          for m, r in by_method.iterrows()},
        }
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
    masks = _masks(bundle, truth, gvrs["image_id"].unique()) if has_truth else {}
    true_changes = _true_changes(bundle)
    rows = []
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
                s = scores(value, masks[row.image_id], drivers)
                rows.append({"gvr_id": row.gvr_id, "model_id": model_id, "regime": row.regime, "method": method,
                             **{key: s[key] for key in (*(f"share_{m}" for m in MASK_FEATURES), "share_outside")},
                             "drivers": ",".join(drivers) or None,
                             "pointing_hit": None if s["pointing_hit"] is None else float(s["pointing_hit"]),
                             "iou_top": s["iou_top"], "relevance_mass": s["relevance_mass"],
                             "relevance_rank": s["relevance_rank"], "sparseness": s["sparseness"],
                             "true_change_r": _truth_r(value, true_changes.get(row.gvr_id))})
    bar.close()
    info = {"gvrs": int(len(gvrs)), "methods": list(METHODS), "faithfulness": has_truth}
    if has_truth and rows:
        table = pd.DataFrame(rows)
        table = table.astype({"pointing_hit": float, "true_change_r": float})
        stage.write_table("faithfulness", table)
        result = audit(table, index)
        stage.write_json("baselines/audit.json", result)
        info["audit"] = result
    return info


def build_baselines(config: StudyConfig, out, *, force: bool = False) -> tuple[Bundle, dict | None]:
    """Run the baselines stage (after `gvr explain`); skipped when its inputs are unchanged."""
    bundle = Bundle(out, create=False)
    if "explain" not in bundle.stages:
        raise ValueError(f"{bundle.root}: no GVRs yet; run `gvr explain` first")
    inputs = ["tables/gvr_index.parquet", "checkpoints/encoder.pt",
              *(p for p in ("tables/gvr_truth.parquet", "arrays/true_change.npy") if p in bundle.files)]
    result: dict = {}
    bundle.run_stage(STAGE, lambda st: result.update(write_baselines(st, config)),
                     config={"methods": list(METHODS), "flag": FLAG_OUTSIDE_DISEASE}, seed=config.seed,
                     inputs=inputs, force=force)
    return bundle, result or None
