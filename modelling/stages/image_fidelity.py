"""The study's own image model against the phantom's truth: its GVRs, its baselines, and the latent MLP's.

For the radiographs whose rationales the image model got (``image_gvr/cnn/direct``), every explanation
of the same radiograph is scored with the fidelity metrics (:func:`modelling.explain.faithfulness.scores`
against the masks, and the pixel correlation with the true disease-removal change):

- ``gvr`` of ``cnn``: moved through the CNN (direct); ``gvr_surrogate`` of ``cnn``: along its surrogate;
- occlusion, integrated gradients, LIME and Grad-CAM on the CNN itself (its eager form, rebuilt from
  the config and the exported program's weights, since Grad-CAM needs hooks);
- ``gvr`` of ``mlp-correct``: the latent MLP's GVR of the same radiographs, moved now as the explain
  stage moves them.

Writes ``image_gvr/cnn/faithfulness.parquet`` (schema faithfulness) and ``image_gvr/cnn/fidelity.json``
(per model and method: medians, how many of the CNN's rationales its own model confirms; and the
realism of every set of reconstructions, latent GVRs' included: KID on the CNN's features against real
radiographs below the threshold (healthy reconstructions) or at or above it (diseased ones), and of the
training stage's decoder samples against the radiographs the decoder trained on,
:mod:`modelling.explain.realism`). A real-data bundle has no truth to score against; its
``fidelity.json`` holds the realism alone, which needs none.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch
from torch import nn

from data_schema import Bundle, Stage
from modelling.cohort.counterfactual import true_change
from modelling.cohort.pairing import generative_training_mask
from modelling.config import StudyConfig, gvr_key, move_options
from modelling.explain.audit import mask_share
from modelling.explain.baselines import METHODS, attribute
from modelling.explain.faithfulness import MEASURES_VERSION, SHARE_COLUMNS, driving_masks, pixel_correlation, table_row
from modelling.explain.gvr import aim, move, scorer
from modelling.explain.image_model import Exported
from modelling.explain.image_model import scores as model_scores
from modelling.explain.realism import kid, penultimate_features
from modelling.nets import image_models
from modelling.nets.networks import to_unit
from modelling.nets.training import decode
from modelling.progress import progress
from modelling.stages.artifacts import (
    DECODER_SAMPLES,
    IMAGE_MODEL,
    load_decoder,
    load_encoder,
    load_image_model,
    load_images,
    load_masks,
    load_predictor,
    load_render_params,
    training_covariance,
)

STAGE = "image-fidelity"
NAME = "cnn"  # the study's own image model (modelling.stages.image_explain.OWN)


class _Scores(nn.Module):
    """An image model as captum sees it: images in [-1, 1] -> one score each."""

    def __init__(self, model: nn.Module, spec):
        super().__init__()
        self.model, self.spec = model, spec

    def forward(self, x):
        return model_scores(self.model, x, self.spec)


def eager(config: StudyConfig, loaded: nn.Module) -> nn.Module:
    """The bundle's image model as an eager module (same weights), for hooks such as Grad-CAM's."""
    c = config.image_model
    model = image_models.LogBnp(image_models.build(c.architecture, width=c.width), 0.0, 1.0)
    model.load_state_dict((loaded.program if isinstance(loaded, Exported) else loaded).state_dict())
    return model.eval()


def _latent_gvr_changes(bundle: Bundle, config: StudyConfig, image_ids: list[str]) -> np.ndarray:
    index = bundle.read_table("latents_index").set_index("image_id")
    codes = bundle.read_array(index["latents_path"].iloc[0])[index.loc[image_ids, "row"].to_numpy()]
    decoder, predictor = load_decoder(bundle, config), load_predictor(bundle, "mlp-correct")
    g = config.gvr
    covariance = training_covariance(bundle, "mlp-correct") if g.move == "pattern" else None
    # the latent MLP's GVRs as the bundle makes them (gvr.reencode, gvr.margin)
    score = scorer(predictor, reencode=g.reencode, encoder=load_encoder(bundle, config) if g.reencode else None,
                   decoder=decoder)
    path = move(codes, decoder, score, target_log_bnp=aim(np.log(config.cohort.bnp_threshold_ng_l), "down", g.margin),
                direction="down", **move_options(g), frames=2, covariance=covariance)
    # as the stored PNGs: 8-bit levels, then the difference in 0-255 units
    return decode(decoder, path.start).astype(np.float32) - decode(decoder, path.end).astype(np.float32)


def write_image_fidelity(stage: Stage, config: StudyConfig) -> dict:
    bundle = stage.bundle
    tables = {m: bundle.read_table(f"image_gvr/{NAME}/{m}/rationales.parquet", schema="image_rationales")
              for m in ("direct", "surrogate")}
    direct = tables["direct"]
    image_ids = direct["image_id"].tolist()
    real = "tables/phantom_render.parquet" not in bundle.files
    summary: dict = ({"models": {}, "reason": "real data: no ground truth"} if real else
                     {"models": {}, "radiographs": len(image_ids),
                      "validity": {m: (float(t["valid"].mean()) if len(t) else None) for m, t in tables.items()}})
    if real or not image_ids:  # no truth, or nothing the CNN explained: realism, which needs neither, alone
        summary["realism"] = _realism(bundle, config, eager(config, load_image_model(bundle)[0]), tables)
        stage.write_json(f"image_gvr/{NAME}/fidelity.json", summary)
        return summary
    radiographs = bundle.read_table("radiographs").set_index("image_id")
    pixels = load_images(bundle, radiographs.loc[image_ids].reset_index())
    size = pixels.shape[-1]
    truth = bundle.read_table("phantom_truth")
    masks = load_masks(bundle, truth, image_ids)
    truth_rows = truth.set_index("image_id").loc[image_ids]
    true = true_change(load_render_params(bundle, image_ids), size).change
    scripted, spec, _ = load_image_model(bundle)
    cnn = _Scores(eager(config, scripted), spec)
    x = to_unit(torch.from_numpy(pixels))
    maps: dict[tuple[str, str], np.ndarray] = {}
    for method, table in tables.items():
        rows = table.set_index("image_id")
        both = [i for i in image_ids if i in rows.index]
        d = np.stack([bundle.read_image(p) for p in rows.loc[both, "diseased_path"]]).astype(np.float32)
        h = np.stack([bundle.read_image(p) for p in rows.loc[both, "healthy_path"]]).astype(np.float32)
        change = np.full((len(image_ids), size, size), np.nan, np.float32)
        change[[image_ids.index(i) for i in both]] = d - h
        maps[(NAME, "gvr" if method == "direct" else "gvr_surrogate")] = change
    bar = progress(total=len(METHODS), desc="image model: baseline maps", unit="method")
    for m in METHODS:
        maps[(NAME, m)] = attribute(cnn, x, m, seed=config.seed)
        bar.update(1)
    bar.close()
    maps[("mlp-correct", "gvr")] = _latent_gvr_changes(bundle, config, image_ids)
    rows = []
    for (model_id, method), values in maps.items():
        r = pixel_correlation(np.nan_to_num(values).astype(np.float32), true)
        for k, image_id in enumerate(image_ids):
            if not np.isfinite(values[k]).all():
                continue
            drivers = driving_masks(truth_rows.loc[image_id])
            rows.append({"gvr_id": f"{model_id}-{image_id}", "model_id": model_id, "regime": "correct", "method": method,
                         **table_row(values[k], masks[image_id], drivers),
                         "true_change_r": float(r[k]) if np.isfinite(r[k]) else None})
    table = pd.DataFrame(rows).astype({"pointing_hit": float, "true_change_r": float})
    stage.write_table("faithfulness", table, f"image_gvr/{NAME}/faithfulness.parquet")
    for (model_id, method), g in table.groupby(["model_id", "method"]):
        shares = g[list(SHARE_COLUMNS)].mean().to_dict()
        summary["models"].setdefault(model_id, {})[method] = {
            "explained": int(g["share_outside"].notna().sum()),  # a map with no weight explains nothing
            # None where no map of the method correlates (all zero): a NaN median warned and is not JSON
            "median_true_change_r": (float(g["true_change_r"].dropna().median())
                                     if g["true_change_r"].notna().any() else None),
            "relevance_mass": float(g["relevance_mass"].mean()), "pointing_rate": float(g["pointing_hit"].mean()),
            "non_disease_mask_share": mask_share(shares),
        }
    summary["realism"] = _realism(bundle, config, cnn.model, tables)
    stage.write_json(f"image_gvr/{NAME}/fidelity.json", summary)
    return summary


#: Each realism reference's random stream (spawn key after the seed); the decoder's was the first to get its own.
REFERENCE_STREAMS = {"decoder training": 1, "healthy": 2, "diseased": 3}
#: Bumped when the realism's draws change, so bundles scored before are scored again.
REALISM_VERSION = 2


def _realism(bundle: Bundle, config: StudyConfig, model: nn.Module, tables: dict) -> dict:
    """KID (:func:`modelling.explain.realism.kid`) on the CNN's penultimate features: healthy
    reconstructions against real radiographs with BNP below the threshold, diseased ones against real
    radiographs at or above it, decoder samples (``train/decoder_samples.npz``, where the bundle has
    them) against the radiographs the decoder trained on; the floor of each is two disjoint halves of
    those real radiographs."""
    radiographs = bundle.read_table("radiographs").set_index("image_id")
    pairing = bundle.read_table("pairing")
    positive = pairing["bnp_ng_l"].to_numpy() >= config.cohort.bnp_threshold_ng_l
    groups = {"healthy": pairing.loc[~positive, "image_id"], "diseased": pairing.loc[positive, "image_id"]}
    described = {"healthy": f"real radiographs with BNP below {config.cohort.bnp_threshold_ng_l:g} ng/L",
                 "diseased": f"real radiographs with BNP at or above {config.cohort.bnp_threshold_ng_l:g} ng/L"}
    samples = bundle.read_array(DECODER_SAMPLES) if DECODER_SAMPLES in bundle.files else {}
    if samples:  # decoder samples are judged against the radiographs the decoder learned from
        splits = bundle.read_table("splits")
        groups["decoder training"] = splits.loc[generative_training_mask(splits), "image_id"]
        described["decoder training"] = "real radiographs the decoder and encoder trained on"
    # each reference draws from a stream of its own, so a class missing from a cohort leaves the others' draws as they were
    streams = {label: np.random.default_rng([config.seed, REFERENCE_STREAMS[label]]) for label in groups}
    references = {}
    for label, ids in groups.items():
        ids = ids.to_numpy()
        if not len(ids):  # a real cohort may lack a class; add() skips a reference of fewer than two
            references[label] = np.zeros((0, 0))
            continue
        ids = ids[np.sort(streams[label].choice(len(ids), min(len(ids), 600), replace=False))]
        references[label] = penultimate_features(model, load_images(bundle, radiographs.loc[ids].reset_index()))
    # which set holds which sampler's samples (``decoder.sampler`` names), for readers of the sets
    out = {"features": "penultimate layer of the study's image model", "references": described,
           "reference_n": {k: int(len(v)) for k, v in references.items()}, "sets": {},
           "decoder_samples": {k: "decoder samples (N(0, I) prior)" if k == "prior" else
                               f"decoder samples ({k} sampler)" for k in samples}}

    def add(name: str, kind: str, features: np.ndarray) -> None:
        ref = references[kind]
        if len(features) >= 2 and len(ref) >= 2:
            out["sets"][name] = {**kid(ref, features, seed=config.seed), "n": int(len(features)), "reference": kind}

    for kind, ref in references.items():  # the floor: real against real, two disjoint halves
        order = streams[kind].permutation(len(ref))
        half = len(ref) // 2
        if half >= 2:
            out["sets"][f"real {kind} radiographs, one half against the other (floor)"] = {
                **kid(ref[order[:half]], ref[order[half:2 * half]], seed=config.seed), "n": int(half), "reference": kind}
    for sampler, images in sorted(samples.items()):
        add(out["decoder_samples"][sampler], "decoder training", penultimate_features(model, images))
    index = bundle.read_table("gvr_index") if "tables/gvr_index.parquet" in bundle.files else None
    for model_id, g in ([] if index is None else index[index["kind"] == "gvr"].groupby("model_id", sort=True)):
        for kind in ("diseased", "healthy"):
            images = np.stack([bundle.read_image(p) for p in g[f"{kind}_path"]])
            add(f"{model_id} GVRs: {kind} reconstructions", kind, penultimate_features(model, images))
    for method, t in tables.items():
        if len(t):
            images = np.stack([bundle.read_image(p) for p in t["healthy_path"]])
            add(f"{NAME} GVRs ({method}): healthy reconstructions", "healthy", penultimate_features(model, images))
    return out


def build_image_fidelity(config: StudyConfig, out, *, force: bool = False) -> tuple[Bundle, dict | None]:
    """Score the study's own image model's explanations against the truth (after its rationales)."""
    bundle = Bundle(out, create=False)
    needed = [f"image_gvr/{NAME}/{m}/rationales.parquet" for m in ("direct", "surrogate")]
    missing = [p for p in needed if p not in bundle.files]
    if missing:
        raise ValueError(f"{bundle.root}: no rationales of the study's image model yet ({', '.join(missing)})")
    inputs = [*needed, IMAGE_MODEL, "checkpoints/decoder.pt", "checkpoints/mlp-correct.pt",
              "arrays/latents.npy", *(p for p in ("tables/gvr_index.parquet", DECODER_SAMPLES) if p in bundle.files)]
    result: dict = {}
    bundle.run_stage(STAGE, lambda st: result.update(write_image_fidelity(st, config)),
                     config={"image_model": dataclasses.asdict(config.image_model), "gvr": gvr_key(config.gvr),
                             "methods": list(METHODS), "measures_version": MEASURES_VERSION,
                             "realism_version": REALISM_VERSION},
                     seed=config.seed, inputs=inputs, force=force)
    return bundle, result or None
