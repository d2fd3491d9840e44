"""The explain stage: GVRs and inverse GVRs of a bundle's models, with images, movies and an index.

For each predictor, the radiographs it predicts above the threshold on the split it did not train on
(the test split for the correct regime, the withheld quarter for the overfitted one) are explained:
the ``readers.per_model`` predicted highest (the paper's readers saw "GVRs with predicted high BNPs";
``gvr.selection: random`` draws them with the seed instead); radiographs named explicitly are explained
whatever their prediction, and one already below the threshold is skipped and recorded. Inverse GVRs
start from radiographs predicted below the threshold and move up to each of
``gvr.inverse_targets_ng_l``. Written per GVR under ``gvr/<gvr_id>/``: ``original.png``,
``diseased.png``, ``healthy.png``, ``overlay.png``, ``movie.gif`` and ``movie.mp4``; then ``tables/gvr_index.parquet``
and ``gvr/skipped.csv``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch

from data_schema import Bundle, Stage
from modelling.config import StudyConfig, gvr_key, move_options
from modelling.explain.gvr import aim, move, overlay, scorer
from modelling.explain.movies import movie_frames, movies
from modelling.nets.training import decode, device_for
from modelling.progress import progress
from modelling.stages.artifacts import load_decoder, load_encoder, load_images, load_predictor, training_covariance

log = logging.getLogger(__name__)

STAGE = "explain"


class UnknownModelError(KeyError):
    """A model id that the bundle's predictions do not hold."""

    def __str__(self) -> str:
        return self.args[0]


class UnknownImageError(ValueError):
    """A radiograph id that the bundle does not hold."""


def _check_images(images, bundle) -> None:
    if not images:
        return
    present = set(bundle.read_table("radiographs")["image_id"])
    unknown = [i for i in images if i not in present]
    if unknown:
        raise UnknownImageError(f"radiograph(s) not in {bundle.root}/tables/radiographs.parquet: "
                                f"{', '.join(unknown[:10])}" + (" ..." if len(unknown) > 10 else ""))


def _check_models(model_ids, known, bundle) -> None:
    for m in model_ids:
        if m not in known:
            raise UnknownModelError(f"model {m!r} is not in {bundle.root}/tables/predictions.parquet; "
                                    f"models present: {', '.join(known)}")


def movie_frame_sets(path, diseased: np.ndarray, decoder, score, *, threshold: float) -> Iterator[np.ndarray]:
    """Each moved code's movie frames (:func:`modelling.explain.movies.movie_frames`), in order: its path's
    frames decoded, with what `score` says of each, drawn against its `diseased` reconstruction."""
    with torch.no_grad():
        frame_bnp = np.stack([predict_log_bnp(score, f) for f in path.frames])
    frame_images = np.stack([decode(decoder, f) for f in path.frames])
    for k in range(len(diseased)):
        yield movie_frames(frame_images[:, k], frame_bnp[:, k], diseased[k], threshold=threshold)


def predict_log_bnp(predictor: torch.nn.Module, latents: np.ndarray) -> np.ndarray:
    """The predictor's log BNP for latent codes, computed on the predictor's device, as numpy."""
    device = next(iter(predictor.parameters()), torch.empty(0)).device
    with torch.no_grad():
        return predictor(torch.from_numpy(np.ascontiguousarray(latents, dtype=np.float32)).to(device)).float().cpu().numpy()


def _select(predictions: pd.DataFrame, model_id: str, *, above: bool, threshold: float, n: int, seed: int,
            selection: str = "highest") -> list[str]:
    """Radiographs of the data `model_id` did not train on, predicted above (below) `threshold`:
    the `n` predicted highest (lowest), or a seeded draw of `n` (see ``GvrConfig.selection``)."""
    rows = predictions[predictions["model_id"] == model_id]
    role = "test" if rows["regime"].iloc[0] == "correct" else "validation"
    rows = rows[rows["role"] == role]
    rows = rows[(rows["bnp_pred_ng_l"] > threshold) if above else (rows["bnp_pred_ng_l"] < threshold)]
    if selection == "highest":
        order = rows.sort_values(["bnp_pred_ng_l", "image_id"], ascending=[not above, True], kind="stable")
        return sorted(order["image_id"].head(n).tolist())
    ids = np.sort(rows["image_id"].to_numpy())
    rng = np.random.default_rng([seed, 50, sum(map(ord, model_id))])
    return sorted(rng.choice(ids, size=min(n, len(ids)), replace=False).tolist())


def move_sharded(start: np.ndarray, *args, **kwargs):
    """:func:`modelling.explain.gvr.move` with the codes split across torchrun's processes and gathered.

    Each code's path depends only on itself (the batch's codes do not interact), and its frames are spaced
    over its own steps, so the codes, their predictions, steps, whether they reached the target and the
    movie frames equal one process moving them all (to the arithmetic of a smaller batch).
    """
    import torch.distributed as dist

    from modelling.explain.gvr import Path
    from modelling.nets.distributed import distributed

    rank, world = distributed()
    if world == 1 or len(start) == 0:
        return move(start, *args, **kwargs)
    target = kwargs.get("target_log_bnp")
    mine = np.arange(len(start))[rank::world]
    if np.ndim(target):
        kwargs["target_log_bnp"] = np.asarray(target)[mine]
    local = move(start[mine], *args, **kwargs) if len(mine) else None
    parts = [None] * world
    dist.all_gather_object(parts, (mine, local))
    n = len(start)
    out = {name: None for name in ("start", "end", "start_log_bnp", "end_log_bnp", "steps", "reached", "frames")}
    for idx, path in parts:
        if path is None:
            continue
        for name in out:
            value = np.moveaxis(getattr(path, name), 1, 0) if name == "frames" else getattr(path, name)
            if out[name] is None:
                out[name] = np.zeros((n, *value.shape[1:]), value.dtype)
            out[name][idx] = value
    out["frames"] = np.moveaxis(out["frames"], 0, 1)  # frames are (frame, code, latent)
    return Path(**out)


def write_explanations(stage: Stage | None, config: StudyConfig, *, bundle: Bundle | None = None,
                       model_ids: list[str] | None = None, images: list[str] | None = None,
                       inverse_per_model: int = 4) -> dict:
    """Explain and write through `stage`; with ``stage=None`` (another torchrun rank) only move codes."""
    bundle = stage.bundle if stage is not None else bundle
    predictions = bundle.read_table("predictions")
    known = sorted(predictions["model_id"].unique())
    model_ids = model_ids or [m for m in known if m.startswith("mlp-")]
    _check_models(model_ids, known, bundle)
    radiographs = bundle.read_table("radiographs")
    position = {image_id: i for i, image_id in enumerate(radiographs["image_id"])}
    _check_images(images, bundle)
    index = bundle.read_table("latents_index").set_index("image_id")
    latents = bundle.read_array(index["latents_path"].iloc[0])
    pixels = load_images(bundle, radiographs)
    device = device_for(config)  # the GVR moves and decoding run there (a GPU when there is one)
    decoder = load_decoder(bundle, config).to(device)
    encoder = load_encoder(bundle, config).to(device) if config.gvr.reencode else None
    g, threshold = config.gvr, config.cohort.bnp_threshold_ng_l
    rows, skipped = [], []

    def run(model_id, score, image_ids, kind, target, covariance):
        if not image_ids:
            return
        original = pixels[[position[i] for i in image_ids]]
        bad_pixels = [i for i, im in zip(image_ids, original) if not np.isfinite(im.astype(np.float64)).all()]
        if bad_pixels:
            raise ValueError(f"radiograph(s) with NaN or infinite pixels: {', '.join(bad_pixels)}")
        z0 = latents[index.loc[image_ids, "row"].to_numpy()]
        bad = [i for i, z in zip(image_ids, z0) if not np.all(np.isfinite(z))]
        if bad:
            raise ValueError(f"latent codes with NaN or infinite values for radiograph(s) {', '.join(bad)}")
        direction = "down" if kind == "gvr" else "up"
        path = move_sharded(z0, decoder, score,
                            target_log_bnp=aim(np.log(target), direction, g.margin), direction=direction,
                            **move_options(g), frames=g.movie_frames, covariance=covariance,
                            desc=f"{model_id}: moving codes" + ("" if kind == "gvr" else f" to {target:g} ng/L"))
        if stage is None:  # another rank under torchrun: it moved its share; rank 0 writes
            return
        diseased, healthy = decode(decoder, path.start), decode(decoder, path.end)
        label = f"{model_id}: GVRs" if kind == "gvr" else f"{model_id}: inverse GVRs to {target:g} ng/L"
        bar = progress(total=len(image_ids), desc=label, unit="GVR")
        encoded = movies(movie_frame_sets(path, diseased, decoder, score, threshold=g.difference_threshold))
        for k, (image_id, (gif, mp4)) in enumerate(zip(image_ids, encoded)):
            suffix = "" if kind == "gvr" else f"-to-{target:g}"
            gvr_id = f"{model_id}-{image_id}{suffix}"
            base = f"gvr/{gvr_id}"
            stage.write_image(f"{base}/original.png", original[k])
            stage.write_image(f"{base}/diseased.png", diseased[k])
            stage.write_image(f"{base}/healthy.png", healthy[k])
            stage.write_image(f"{base}/overlay.png", overlay(original[k], diseased[k], healthy[k], threshold=g.difference_threshold))
            stage.write_bytes(f"{base}/movie.gif", gif)
            stage.write_bytes(f"{base}/movie.mp4", mp4)
            rows.append({
                "gvr_id": gvr_id, "image_id": image_id, "model_id": model_id,
                "regime": model_id.split("-", 1)[1], "kind": kind, "target_bnp_ng_l": float(target),
                "start_pred_ng_l": float(np.exp(path.start_log_bnp[k])),
                "end_pred_ng_l": float(np.exp(path.end_log_bnp[k])),
                "steps": int(path.steps[k]), "reached": bool(path.reached[k]),
                "latent_distance": float(np.linalg.norm(path.end[k] - path.start[k])),
                "image_distance": float(np.sqrt(np.mean(((healthy[k].astype(np.float64) - diseased[k]) / 255) ** 2))),
                "original_path": f"{base}/original.png", "diseased_path": f"{base}/diseased.png",
                "healthy_path": f"{base}/healthy.png", "overlay_path": f"{base}/overlay.png",
                "movie_path": f"{base}/movie.gif",
            })
            bar.update(1)
        bar.close()

    for model_id in model_ids:
        predictor = load_predictor(bundle, model_id).to(device)
        covariance = training_covariance(bundle, model_id) if g.move == "pattern" else None
        if images:
            chosen = list(images)
        else:
            chosen = _select(predictions, model_id, above=True, threshold=threshold, n=config.readers.per_model,
                             seed=config.seed, selection=g.selection)
        z = latents[index.loc[chosen, "row"].to_numpy()] if chosen else np.zeros((0, latents.shape[1]), np.float32)
        # judged by what the move lowers: with gvr.reencode a radiograph the predictor puts above the threshold
        # may have a reconstruction it puts below, and its GVR would be blank
        score = scorer(predictor, reencode=g.reencode, encoder=encoder, decoder=decoder)
        with torch.no_grad():
            start = np.exp(predict_log_bnp(score, z)) if len(z) else np.zeros(0)
        below = [i for i, b in zip(chosen, start) if b < threshold]
        why = f"already predicted below {threshold:g} ng/L" + (" (its reconstruction, encoded again)" if g.reencode else "")
        for i, b in zip(chosen, start):
            if b < threshold:
                skipped.append({"model_id": model_id, "image_id": i, "predicted_bnp_ng_l": float(b), "reason": why})
        run(model_id, score, [i for i in chosen if i not in below], "gvr", threshold, covariance)
        if inverse_per_model and not images:
            low = _select(predictions, model_id, above=False, threshold=threshold, n=inverse_per_model,
                          seed=config.seed, selection=g.selection)
            for target in g.inverse_targets_ng_l:
                run(model_id, score, low, "inverse", target, covariance)
    if stage is None:
        return {}
    index_table = pd.DataFrame(rows, columns=["gvr_id", "image_id", "model_id", "regime", "kind", "target_bnp_ng_l",
                                              "start_pred_ng_l", "end_pred_ng_l", "steps", "reached",
                                              "latent_distance", "image_distance", "original_path", "diseased_path",
                                              "healthy_path", "overlay_path", "movie_path"])
    floats = ["target_bnp_ng_l", "start_pred_ng_l", "end_pred_ng_l", "latent_distance", "image_distance"]
    stage.write_table("gvr_index", index_table.astype({"steps": "int64", "reached": bool} | dict.fromkeys(floats, float)))
    stage.write_bytes("gvr/skipped.csv", pd.DataFrame(
        skipped, columns=["model_id", "image_id", "predicted_bnp_ng_l", "reason"]).to_csv(index=False, lineterminator="\n").encode())
    gvr = index_table[index_table["kind"] == "gvr"]
    return {"gvrs": int(len(gvr)), "inverse": int((index_table["kind"] == "inverse").sum()),
            "reached": float(gvr["reached"].mean()) if len(gvr) else None, "skipped": len(skipped)}


def stage_config(config: StudyConfig, model_ids, images) -> dict:
    return {"gvr": gvr_key(config.gvr), "per_model": config.readers.per_model,
            "threshold": config.cohort.bnp_threshold_ng_l, "models": model_ids, "images": images}


def build_explanations(config: StudyConfig, out, *, model_ids: list[str] | None = None,
                       images: list[str] | None = None, force: bool = False) -> tuple[Bundle, dict | None]:
    """Run the explain stage (skipped when the models, config and selection are unchanged)."""
    bundle = Bundle(out, create=False)
    if "train" not in bundle.stages:
        raise ValueError(f"{bundle.root}: no trained models yet; run `gvr train {bundle.root}` first")
    known = sorted(bundle.read_table("predictions")["model_id"].unique())
    model_ids = model_ids or [m for m in known if m.startswith("mlp-")]
    _check_models(model_ids, known, bundle)
    _check_images(images, bundle)  # before the stage opens, so a typo leaves the last run current
    inputs = ["tables/predictions.parquet", "tables/latents_index.parquet", "arrays/latents.npy",
              "checkpoints/decoder.pt", *sorted(f"checkpoints/{m}.pt" for m in model_ids)]
    result: dict = {}
    run = lambda st: result.update(write_explanations(st, config, model_ids=model_ids, images=images))  # noqa: E731
    key = stage_config(config, model_ids, images)
    from modelling.nets.distributed import distributed

    rank, world = distributed()
    if world == 1:
        bundle.run_stage(STAGE, run, config=key, seed=config.seed, inputs=inputs, force=force)
        return bundle, result or None
    import torch.distributed as dist

    from modelling.nets.distributed import broadcast_decision

    if broadcast_decision(lambda: force or not bundle.is_current(STAGE, config=key, seed=config.seed, inputs=inputs)):
        if rank == 0:
            bundle.run_stage(STAGE, run, config=key, seed=config.seed, inputs=inputs, force=True)
        else:
            write_explanations(None, config, bundle=bundle, model_ids=model_ids, images=images)
    dist.barrier()
    return bundle, result or None
