"""GVRs of a user's own image model in a study bundle (``gvr explain --image-model``).

The model (an exported program, TorchScript, or a factory and a state dict;
:mod:`modelling.explain.image_model`) scores
every radiograph of the bundle. The radiographs of the test split it scores highest, at or above its
threshold (``readers.per_model`` of them), are explained with the bundle's decoder, either directly
through the model or along a ridge surrogate fitted to its scores on the other radiographs' codes
(:mod:`modelling.explain.rationale`). Each rationale's validity is the real model's decision on the
stored 8-bit healthy reconstruction. Written under ``image_gvr/<name>/``:

- ``<gvr_id>/diseased.png``, ``healthy.png`` and ``overlay.png`` (as the latent GVRs');
- ``rationales.parquet`` (schema ``image_rationales``): one row per rationale;
- ``summary.json``: the spec, the method, the model file's hash, how many reached the target (of those whose
  reconstruction needed a move; ``already_past`` counts the others) and how
  many the real model confirms, and the surrogate's fidelity on held-out radiographs.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd
import torch

from data_schema import Bundle, Stage
from data_schema.io import sha256_bytes
from modelling.config import StudyConfig, gvr_key, move_options
from modelling.explain.frozen import frozen
from modelling.explain.gvr import overlay
from modelling.explain.image_model import ImageModelError, ImageModelSpec, at_scale_end, check, scores
from modelling.explain.rationale import explain_codes, fit_surrogate
from modelling.nets.networks import to_unit
from modelling.progress import note
from modelling.stages.artifacts import load_decoder, load_images

log = logging.getLogger(__name__)


#: The name of the study's own image model in the bundle.
OWN = "cnn"
#: How far past the threshold the move aims, on the score scale (log BNP or logit; 0.05 is 5 % in
#: BNP): a path that lands just past it is often carried back across by storing the reconstruction in
#: 8 bits (default study, 2026-12-02, no margin: 82 % of direct GVRs reached, 30 % valid).
MARGIN = 0.05
#: Raised when the rationales table gains a column or changes meaning (2: score_threshold), so that a bundle's
#: rationales are written again.
TABLE_VERSION = 2


def stage_name(name: str, method: str) -> str:
    return f"image-{name}-{method}"


def folder(name: str, method: str) -> str:
    """Where one model's rationales by one method live in the bundle."""
    return f"image_gvr/{name}/{method}"


def model_scores(model, images: np.ndarray, spec: ImageModelSpec, *, batch: int = 256) -> np.ndarray:
    """The model's score (log BNP or logit scale) of uint8 radiographs (n, h, w), in eval mode (the model
    is handed back in the mode it came in)."""
    out = []
    with torch.no_grad(), frozen(model):
        for i in range(0, len(images), batch):
            x = to_unit(torch.from_numpy(np.ascontiguousarray(images[i:i + batch])))
            out.append(scores(model, x, spec).float().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def write_image_rationales(stage: Stage, config: StudyConfig, model, spec: ImageModelSpec, *, name: str,
                           method: str, model_sha256: str, margin: float = MARGIN) -> dict:
    """Score, explain and write through `stage`; the model was checked (:func:`build_image_rationales`)."""
    bundle = stage.bundle
    radiographs = bundle.read_table("radiographs")
    splits = bundle.read_table("splits").set_index("image_id").loc[radiographs["image_id"], "set"].to_numpy()
    pixels = load_images(bundle, radiographs)
    index = bundle.read_table("latents_index").set_index("image_id")
    latents = bundle.read_array(index["latents_path"].iloc[0])[index.loc[radiographs["image_id"], "row"].to_numpy()]
    note("%s: scoring %s radiographs with the image model", name, f"{len(pixels):,}")
    s = model_scores(model, pixels, spec)
    if not np.isfinite(s).all():
        bad = radiographs["image_id"].iloc[int(np.flatnonzero(~np.isfinite(s))[0])]
        error = ImageModelError(f"{name}: the image model's output is not finite on radiograph {bad} "
                                f"({int((~np.isfinite(s)).sum())} of {len(s):,}); nothing was written")
        error.after_work = True  # the radiographs were scored: not a refusal before work (exit 1, not 2)
        raise error
    clamped = int(np.sum(at_scale_end(s, spec.output)))
    if clamped:  # logits read as probabilities, or log BNP as ng/L: every score there is the clamp's
        log.warning("%s: %d of %d radiographs' outputs lie at or beyond the end of the spec's output scale (%s: "
                    "%s) and were clamped; if the model returns %s, say so in its spec's output (%s)", name, clamped,
                    len(s), spec.output, "0 or 1" if spec.output == "probability" else "0 ng/L or below",
                    "logits" if spec.output == "probability" else "log BNP", spec.source or "the spec file")
    thr = spec.score_threshold
    pool = np.flatnonzero((splits == "test") & (s >= thr))
    chosen = pool[np.argsort(-s[pool], kind="stable")][: config.readers.per_model]
    info = {"name": name, "method": method, "model_sha256": model_sha256, "spec": {
        k: v for k, v in dataclasses.asdict(spec).items() if k != "source"},
        "scored": int(len(s)), "positive_in_test": int(len(pool)), "explained": int(len(chosen)), "margin": margin,
        # a surrogate scores the code, so under gvr.move: metric its moves are the gradient's (explain_codes)
        "move": "gradient" if config.gvr.move == "metric" and method != "direct" else config.gvr.move}
    surrogate = None
    if method == "surrogate":
        rest = np.setdiff1d(np.arange(len(s)), chosen)
        surrogate = fit_surrogate(latents[rest], s[rest], thr, seed=config.seed)
        info["surrogate_fidelity"] = surrogate.fidelity
        note("%s: surrogate fidelity on held-out radiographs: R2 %.3f, AUC %s", name, surrogate.fidelity["r2"],
             "-" if surrogate.fidelity["auc"] is None else f"{surrogate.fidelity['auc']:.3f}")
    rows = []
    if len(chosen):
        decoder = load_decoder(bundle, config)
        g = config.gvr
        # pattern moves: the covariance of every radiograph's code (which codes the user's model learned
        # from is not known)
        covariance = np.cov(latents, rowvar=False) if g.move == "pattern" else None
        # a surrogate scores the code: explain_codes refuses to shorten its moves or move them by the metric,
        # so its moves under gvr.move: metric are the gradient's (info["move"])
        on_code = {} if method == "direct" else {"sparse_steps": 0, "metric_ridge": None}
        _, path = explain_codes(latents[chosen], decoder, model, spec, method=method, surrogate=surrogate,
                                           covariance=covariance, margin=margin, **move_options(g) | on_code,
                                           desc=f"{name}: moving codes ({method})")
        d8, h8 = path.diseased_images, path.healthy_images
        for k, i in enumerate(chosen):
            image_id = radiographs["image_id"].iloc[i]
            gvr_id = f"{name}-{method}-{image_id}"
            base = f"{folder(name, method)}/{image_id}"
            stage.write_image(f"{base}/diseased.png", d8[k])
            stage.write_image(f"{base}/healthy.png", h8[k])
            stage.write_image(f"{base}/overlay.png", overlay(pixels[i], d8[k], h8[k], threshold=g.difference_threshold))
            rows.append({
                "gvr_id": gvr_id, "image_id": image_id, "model_name": name, "method": method,
                "threshold": float(spec.threshold), "score_threshold": float(thr), "model_score_original": float(s[i]),
                "start_score": float(path.start_score[k]), "end_score": float(path.end_score[k]),
                "model_score_diseased": float(path.model_score_diseased[k]),
                "model_score_healthy": float(path.model_score_healthy[k]),
                "reached": bool(path.reached[k]), "valid": bool(path.valid[k]), "steps": int(path.steps[k]),
                "latent_distance": float(np.linalg.norm(path.end[k] - path.start[k])),
                "image_distance": float(np.sqrt(np.mean(((d8[k].astype(np.float64) - h8[k]) / 255.0) ** 2))),
                "diseased_path": f"{base}/diseased.png", "healthy_path": f"{base}/healthy.png",
                "overlay_path": f"{base}/overlay.png",
            })
    table = pd.DataFrame(rows, columns=[
        "gvr_id", "image_id", "model_name", "method", "threshold", "score_threshold", "model_score_original",
        "start_score", "end_score", "model_score_diseased", "model_score_healthy", "reached", "valid", "steps", "latent_distance",
        "image_distance", "diseased_path", "healthy_path", "overlay_path"])
    # with no radiograph at or above the threshold the frame is empty and pandas leaves every column object
    table = table.astype({"reached": bool, "valid": bool, "steps": int, **{c: float for c in (
        "threshold", "score_threshold", "model_score_original", "start_score", "end_score", "model_score_diseased",
        "model_score_healthy", "latent_distance", "image_distance")}, **{c: str for c in (
        "gvr_id", "image_id", "model_name", "method", "diseased_path", "healthy_path", "overlay_path")}})
    stage.write_table("image_rationales", table, f"{folder(name, method)}/rationales.parquet")
    # a reconstruction the model already reads past the threshold needs no move: not counted as reaching it
    moved = table[table["steps"] > 0]
    info["already_past"] = int(len(table) - len(moved))
    info["reached"] = float(moved["reached"].mean()) if len(moved) else None
    info["valid"] = float(table["valid"].mean()) if len(table) else None
    stage.write_json(f"{folder(name, method)}/summary.json", info)
    return info


def build_own_image_rationales(config: StudyConfig, out, *, force: bool = False) -> dict:
    """The study's own image model (the image-model stage) explained by both methods, as ``cnn``."""
    from modelling.explain.rationale import METHODS
    from modelling.stages.artifacts import load_image_model

    bundle = Bundle(out, create=False)
    if "image_model" not in bundle.stages:
        raise ValueError(f"{bundle.root}: no image model yet; run the image-model stage first (`gvr reproduce {bundle.root}` with "
                         "image_model.run: true in its config)")
    model, spec, data = load_image_model(bundle)
    return {m: build_image_rationales(config, out, model, spec, name=OWN, method=m, model_bytes=data,
                                      force=force, own=True)[1] for m in METHODS}


def build_image_rationales(config: StudyConfig, out, model, spec: ImageModelSpec, *, name: str, method: str,
                           model_bytes: bytes, margin: float = MARGIN, force: bool = False, own: bool = False
                           ) -> tuple[Bundle, dict | None]:
    """Explain a user's image model in the bundle at `out` (after `gvr train`); skipped when current.

    The study's own image model is explained as :data:`OWN` (`own`); a user's model under that name is refused,
    since the image-fidelity stage and the manuscript read it. A name that holds another model's rationales is
    said to be replaced (logged), so two models given the same name do not pass for one.
    """
    bundle = Bundle(out, create=False)
    if "train" not in bundle.stages:
        raise ValueError(f"{bundle.root}: no decoder yet; run `gvr train {bundle.root}` first")
    if name == OWN and not own:
        raise ValueError(f"--name {OWN} is the study's own image model's (the image-model stage's, which the "
                         "manuscript reads); give your model another --name")
    sha = sha256_bytes(model_bytes)
    # a model refused is refused before its stage opens: an earlier run's rationales stay as they were
    check(model, spec, needs_gradients=method == "direct")
    summary = f"{folder(name, method)}/summary.json"
    before = None
    if summary in bundle.files:
        import json

        before = json.loads(bundle.path(summary).read_text()).get("model_sha256")
    if before is not None and before != sha:
        log.warning("%s: %s held the rationales of another model (sha256 %s...); they are replaced by this one's "
                    "(sha256 %s...); give each model its own --name to keep both", bundle.root, folder(name, method),
                    before[:12], sha[:12])
    key = {"model_sha256": sha, "spec": {k: v for k, v in dataclasses.asdict(spec).items() if k != "source"},
           "method": method, "gvr": gvr_key(config.gvr), "per_model": config.readers.per_model,
           "margin": margin, "table_version": TABLE_VERSION}
    inputs = ["tables/radiographs.parquet", "tables/splits.parquet", "tables/latents_index.parquet",
              "arrays/latents.npy", "checkpoints/decoder.pt"]
    result: dict = {}
    bundle.run_stage(stage_name(name, method), lambda st: result.update(write_image_rationales(
        st, config, model, spec, name=name, method=method, model_sha256=sha, margin=margin)),
        config=key, seed=config.seed, inputs=inputs, force=force)
    return bundle, result or None
