"""The training stage: decoder, encoder, latent codes and BNP predictors written into the bundle.

Reads the cohort (radiographs, splits, pairing and the image shards), trains the decoder on the
unlabelled set and the encoder (a WGAN-GP decoder and then the encoder against it, or both together
as an autoencoder: ``decoder.objective``; resumable from ``work/``), encodes every
radiograph, fits the linear and MLP predictors in the correct and overfitted regimes, and writes:

- ``checkpoints/decoder.pt``, ``checkpoints/encoder.pt``, ``checkpoints/<model_id>.pt``;
- ``arrays/latents.npy`` with ``tables/latents_index.parquet``;
- ``tables/predictions.parquet``;
- ``train/samples.png`` (decoder samples), ``train/reconstructions.png`` (held-out originals above
  their reconstructions), ``train/ctr_real_vs_generated.csv`` (the cardiothoracic ratio measured on
  real radiographs and on as many decoder samples), ``train/decoder_samples.npz`` (those samples under
  the sampler's name, and as many prior draws as "prior" when ``decoder.sampler`` is not the prior) and ``train/summary.json`` (losses, throughput,
  reconstruction error, sample statistics and AUCs). :func:`development_checks` judges a summary
  against the project's targets; ``gvr train`` prints them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from data_schema import Bundle, Stage
from data_schema.io import sha256_bytes
from modelling.cohort import ctr, effusion
from modelling.cohort.counterfactual import has_disease, true_change
from modelling.cohort.effusion import effused_side_height
from modelling.cohort.pairing import generative_training_mask
from modelling.config import ConfigError, StudyConfig
from modelling.explain.faithfulness import pixel_correlation
from modelling.nets import checkpoints
from modelling.nets.augment import positional_copies
from modelling.nets.code_sampler import collapsed, fit_code_sampler, replay_ratio
from modelling.nets.predictors import fit_all, model_config, predict_ng_l
from modelling.nets.training import (
    decode,
    decoder_config,
    device_for,
    encode,
    encoder_config,
    train_networks,
)
from modelling.progress import note
from modelling.stages.artifacts import DECODER_SAMPLES, load_images, load_render_params

log = logging.getLogger(__name__)

#: Below this many radiographs to learn from, a generative model tends to replay them rather than learn
#: radiographs (the paper's had 96,099: "A total of 96 099 radiographs did not have a corresponding BNP
#: result and comprised the unlabeled data set"): a warning, not a refusal, since small runs test the pipeline.
FEW_GENERATIVE = 1000

STAGE = "train"


def stage_config(config: StudyConfig) -> dict:
    return encoder_config(config) | {"predictors": dataclasses.asdict(config.predictors),
                                     "threshold": config.cohort.bnp_threshold_ng_l,
                                     "sampler": [config.decoder.sampler, config.decoder.sampler_steps]
                                     # listed only when used, so that bundles made before it keep their key
                                     + ([config.decoder.sampler_cycles] if config.decoder.sampler_cycles else [])}


def stage_inputs(bundle: Bundle) -> list[str]:
    radiographs = bundle.read_table("radiographs")
    render = ["tables/phantom_render.parquet"] if "tables/phantom_render.parquet" in bundle.files else []
    return ["tables/radiographs.parquet", "tables/splits.parquet", "tables/pairing.parquet", *render,
            *sorted(radiographs["image_path"].unique())]


def grid(images: np.ndarray, columns: int = 8) -> np.ndarray:
    n, h, w = images.shape
    rows = -(-n // columns)
    out = np.zeros((rows * h, columns * w), np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        out[r * h:(r + 1) * h, c * w:(c + 1) * w] = images[i]
    return out


def sample_statistics(real: np.ndarray, fake: np.ndarray, ratios: pd.DataFrame | None = None) -> dict:
    """How close decoder samples are to real radiographs on simple measurable properties.

    Intensity statistics, and the cardiothoracic ratio measured by thresholding on both
    (:func:`modelling.cohort.ctr.compare`): what a reader would look at first. ``ratios``, the
    :func:`ctr_table` of the same images, spares measuring them again.
    """
    ratios = ctr_table(real, fake) if ratios is None else ratios
    from scipy.stats import wasserstein_distance

    r, f = real.astype(np.float64) / 255, fake.astype(np.float64) / 255
    return {
        "pixel_intensity_wasserstein": float(wasserstein_distance(r.ravel(), f.ravel())),
        "image_mean_wasserstein": float(wasserstein_distance(r.mean(axis=(1, 2)), f.mean(axis=(1, 2)))),
        "mean_image_correlation": float(np.corrcoef(r.mean(axis=0).ravel(), f.mean(axis=0).ravel())[0, 1]),
        "cardiothoracic_ratio": ctr.compare_measured(*(ratios[ratios["side"] == side]
                                                         for side in ("real", "generated"))),
    }


def ctr_table(real: np.ndarray, fake: np.ndarray) -> pd.DataFrame:
    """Per image, the measured cardiothoracic ratio of the real and generated radiographs compared."""
    return pd.concat([ctr.measure(images).assign(side=side)
                      for side, images in (("real", real), ("generated", fake))], ignore_index=True)[
        ["side", "ctr", "cardiac_px", "thoracic_px", "reason"]]


def _auc(y_true: np.ndarray, score: np.ndarray) -> dict:
    """AUC with its DeLong CI; on a set too small for one (tiny profiles), the reason instead."""
    from analysis.errors import UndefinedStatisticError
    from analysis.roc import auc

    try:
        result = auc(y_true.astype(int), score, ci="delong")
    except UndefinedStatisticError as exc:
        return {"auc": None, "reason": str(exc), "n_pos": int(y_true.sum()), "n_neg": int((~y_true).sum())}
    return {"auc": result.auc, "ci_low": result.ci_low, "ci_high": result.ci_high,
            "n_pos": result.n_pos, "n_neg": result.n_neg}


def _target(value, met, measurable: bool | None = None) -> dict:
    """A target judged: met only where measured; one with nothing to measure (an AUC of a split without two
    cases and two controls) is neither met nor missed."""
    measurable = value is not None if measurable is None else measurable
    return {"value": value if measurable else None, "met": bool(measurable and met), "measurable": measurable}


def training_images(bundle: Bundle) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    """Radiographs, their splits (aligned), all images and the mask of those the generative model
    trains on (unlabelled, and of no test patient), after the checks every process runs before training."""
    radiographs = bundle.read_table("radiographs")
    splits = bundle.read_table("splits").set_index("image_id")
    if not (splits["set"] == "unlabelled").any():
        raise ValueError(f"{bundle.root}: the cohort has no unlabelled radiographs to train the decoder on")
    missing = radiographs.loc[~radiographs["image_id"].isin(splits.index), "image_id"]
    if len(missing):
        raise ValueError(f"{bundle.root}: {len(missing)} radiograph(s) have no row in the splits table, "
                         f"e.g. {missing.iloc[0]!r}")
    splits = splits.loc[radiographs["image_id"]]
    generative = generative_training_mask(splits.reset_index())
    if not generative.any():
        raise ValueError(f"{bundle.root}: every unlabelled radiograph belongs to a test patient; the decoder "
                         "has nothing to train on without leaking the test set. Ingest again with radiographs "
                         "without a BNP result of patients with no test radiograph")
    images = load_images(bundle, radiographs)
    return radiographs, splits, images, generative


def data_key(bundle: Bundle) -> dict:
    """The hashes of the cohort files training reads: work checkpoints are only resumed on the same data."""
    return {rel: bundle.record(rel).sha256 for rel in stage_inputs(bundle)}


def _networks(stage: Stage, config: StudyConfig, images: np.ndarray, *, stop, data: dict):
    """Train (or resume) the decoder and encoder on `images`; write their checkpoints."""
    work = stage.bundle.root / "work"
    generator, encoder, stats = train_networks(images, config, work, stop=stop, data_key=data)
    dec_state = checkpoints.payload("decoder", models={"generator": generator}, config=decoder_config(config),
                                    seed=config.seed, step=config.decoder.iterations)
    enc_state = checkpoints.payload("encoder", models={"encoder": encoder}, config=encoder_config(config),
                                    seed=config.seed, step=config.encoder.iterations)
    stage.write_checkpoint("checkpoints/decoder.pt", dec_state)
    stage.write_checkpoint("checkpoints/encoder.pt", enc_state)
    encoder_id = "encoder-" + sha256_bytes(checkpoints.to_bytes(enc_state))[:12]
    device = device_for(config)  # encoding every radiograph and decoding samples: on the GPU when there is one
    return generator.to(device), encoder.to(device), encoder_id, stats


def _latents(stage: Stage, encoder, radiographs: pd.DataFrame, images: np.ndarray, encoder_id: str) -> np.ndarray:
    """Every radiograph's latent code, written with its index."""
    note("training: encoding %s radiographs", f"{len(images):,}")
    latents = encode(encoder, images)
    stage.write_array("arrays/latents.npy", latents)
    stage.write_table("latents_index", pd.DataFrame({
        "image_id": radiographs["image_id"], "encoder_id": encoder_id,
        "latents_path": "arrays/latents.npy", "row": np.arange(len(radiographs)),
    }))
    return latents


def _generative_quality(stage: Stage, config: StudyConfig, generator, encoder, images: np.ndarray,
                        latents: np.ndarray, held_out: np.ndarray, generative: np.ndarray) -> dict:
    """Held-out reconstructions (PSNR), decoder samples, and the cardiothoracic ratio of samples
    against real radiographs (``train/ctr_real_vs_generated.csv``)."""
    recon = decode(generator, latents[held_out])
    err = (recon.astype(np.float64) - images[held_out].astype(np.float64)) / 255
    mse = float(np.mean(err**2))
    show = held_out[:8]
    stage.write_image("train/reconstructions.png", grid(np.concatenate([images[show], recon[:8]]), columns=8))
    rng = np.random.default_rng([config.seed, 30])
    draw, sampler = _sampler(config, latents[generative], generator=generator, encoder=encoder)
    stage.write_image("train/samples.png", grid(decode(generator, draw(64, rng))))
    real = images[generative][rng.choice(generative.sum(), min(512, generative.sum()), replace=False)]
    z = draw(len(real), rng)
    more = decode(generator, z)
    note("training: cardiothoracic ratio of %d real radiographs and %d decoder samples", len(real), len(more))
    ratios = ctr_table(real, more)
    stage.write_bytes("train/ctr_real_vs_generated.csv", ratios.to_csv(index=False, lineterminator="\n").encode())
    samples = {config.decoder.sampler: more}
    if config.decoder.sampler != "prior":  # what the prior would give, beside it
        samples["prior"] = decode(generator, rng.standard_normal(z.shape).astype(np.float32))
        sampler["prior_without_two_lungs"] = float(ctr.measure(samples["prior"])["ctr"].isna().mean())
    stage.write_array(DECODER_SAMPLES, samples)  # the image-fidelity stage scores their realism (KID)
    sampler["without_two_lungs"] = float(ratios.loc[ratios["side"] == "generated", "ctr"].isna().mean())
    sampler["replay_ratio"] = replay_ratio(z, latents[generative], latents[held_out])
    return {"reconstruction": {"held_out_radiographs": int(len(held_out)), "mse": mse,
                               "psnr_db": float(10 * np.log10(1.0 / mse)) if mse > 0 else None},
            "samples": sample_statistics(real, more, ratios) | {"sampler": sampler}}


def _sampler(config: StudyConfig, codes: np.ndarray, *, generator, encoder):
    """Where decoder samples' codes come from (``decoder.sampler``, then ``decoder.sampler_cycles`` times
    decoded and encoded again): a function (n, rng) -> codes, and what to report about it."""
    drawn, about = _drawn(config, codes)
    cycles = config.decoder.sampler_cycles
    if not cycles:
        return drawn, about

    def draw(n: int, rng: np.random.Generator) -> np.ndarray:
        return reencoded(drawn(n, rng), generator, encoder, cycles)
    return draw, about | {"cycles": cycles}


def reencoded(codes: np.ndarray, generator, encoder, cycles: int) -> np.ndarray:
    """`codes` decoded and encoded again `cycles` times (``decoder.sampler_cycles``): the encoder learned only
    real radiographs (benchmarks/RESULTS.md, "Decoder samples encoded again")."""
    for _ in range(cycles):
        codes = encode(encoder, decode(generator, codes))
    return codes


def _drawn(config: StudyConfig, codes: np.ndarray):
    """The sampler's own draws (``decoder.sampler``): a function (n, rng) -> codes, and what to report."""
    dim = config.decoder.latent_dim
    if config.decoder.sampler == "prior":
        return (lambda n, rng: rng.standard_normal((n, dim)).astype(np.float32)), {"name": "prior"}
    note("training: fitting the two-stage sampler to %s codes (%d steps)", f"{len(codes):,}",
         config.decoder.sampler_steps)
    start = time.perf_counter()
    fitted = fit_code_sampler(codes, seed=config.seed, steps=config.decoder.sampler_steps)
    if collapsed(fitted):
        log.warning("the two-stage sampler learned only the mean of the %d codes (observation noise %.2f): its "
                    "samples are all alike; decoder.sampler: prior draws from N(0, I) instead", len(codes),
                    float(np.exp(fitted.model.log_gamma.item())))
    return fitted.sample, {"collapsed": collapsed(fitted), "name": config.decoder.sampler, "steps": config.decoder.sampler_steps,
                           "fitted_codes": int(len(codes)), "seconds": time.perf_counter() - start,
                           "observation_noise": float(np.exp(fitted.model.log_gamma.item()))}


DISEASE_KEPT_RADIOGRAPHS = 200


def _disease_kept(bundle: Bundle, config: StudyConfig, generator, encoder, held_out_ids) -> dict | None:
    """Does the generative model keep the disease? On the phantom, held-out radiographs with disease and
    their true disease-free counterfactuals (:mod:`modelling.cohort.counterfactual`) are both encoded
    and decoded; the decoded difference is correlated with the true one, pixel by pixel. None on real
    data, which has no counterfactuals."""
    if "tables/phantom_render.parquet" not in bundle.files:
        return None
    params = load_render_params(bundle, held_out_ids)
    chosen = np.flatnonzero(has_disease(params))[:DISEASE_KEPT_RADIOGRAPHS]
    if not len(chosen):
        return {"radiographs": 0, "median_r": None, "q1_r": None, "q3_r": None, "undefined": 0}
    note("training: does the decoder keep the disease? %d held-out radiographs and their counterfactuals",
         len(chosen))
    truth = true_change({name: values[chosen] for name, values in params.items()}, config.image_size)
    decoded = decode(generator, encode(encoder, truth.original))
    decoded_cf = decode(generator, encode(encoder, truth.counterfactual))
    kept = (decoded.astype(np.float32) - decoded_cf.astype(np.float32)) / 255.0
    r = pixel_correlation(kept, truth.change)
    ok = r[np.isfinite(r)]
    q1, median, q3 = (np.percentile(ok, [25, 50, 75]) if len(ok) else (np.nan,) * 3)
    return {"radiographs": len(chosen), "median_r": float(median) if len(ok) else None,
            "q1_r": float(q1) if len(ok) else None, "q3_r": float(q3) if len(ok) else None,
            "undefined": int((~np.isfinite(r)).sum()),
            "method": "Pearson r of decoder(encoder(x)) - decoder(encoder(x without disease)) with x - x without "
                      "disease, per held-out radiograph with disease (same noise; phantom only)",
            "cardiothoracic_ratio": _ctr_kept(truth.original, truth.counterfactual, decoded, decoded_cf,
                                              params["cardiothoracic_ratio"][chosen]),
            "effusion": _effusion_kept(truth.original, truth.counterfactual, decoded, decoded_cf,
                                       params["effusion_right"][chosen], params["effusion_left"][chosen])}


def _effusion_kept(original, counterfactual, decoded, decoded_cf, right, left) -> dict:
    """The effusion measure (:mod:`modelling.cohort.effusion`, the side with the larger true effusion)
    on radiographs and reconstructions: how often removing a true effusion is measured as more aerated
    lung, on the radiographs and on their reconstructions."""
    height = {name: effused_side_height(effusion.measure(images), right, left)
              for name, images in (("original", original), ("counterfactual", counterfactual),
                                   ("decoded", decoded), ("decoded_counterfactual", decoded_cf))}
    effused = (np.asarray(right) + np.asarray(left)) > 0

    def cleared(before, after) -> dict:
        ok = effused & np.isfinite(height[before]) & np.isfinite(height[after])
        return {"share": float(np.mean(height[after][ok] > height[before][ok])) if ok.any() else None,
                "measured": int(ok.sum())}

    both = np.isfinite(height["original"]) & np.isfinite(height["decoded"])
    return {"measured_on_both": int(both.sum()),
            "median_difference": float(np.median(height["decoded"][both] - height["original"][both]))
            if both.any() else None,
            "larger_without_effusion": {"radiographs": cleared("original", "counterfactual"),
                                        "reconstructions": cleared("decoded", "decoded_counterfactual")},
            "method": "modelling.cohort.effusion.measure (aerated lung height over thoracic width) on the side with "
                      "the larger true effusion, among held-out radiographs with an effusion"}


def _ctr_kept(original, counterfactual, decoded, decoded_cf, true_ratio) -> dict:
    """The cardiothoracic ratio measured (:mod:`modelling.cohort.ctr`) on radiographs and on their
    reconstructions: how closely the reconstruction keeps it, and whether a heart that the truth
    shrinks (ratio above 0.5 -> 0.45) is measured smaller as often on the reconstructions as on the
    radiographs themselves."""
    measured = {name: ctr.measure(images)["ctr"].to_numpy()
                for name, images in (("original", original), ("counterfactual", counterfactual),
                                     ("decoded", decoded), ("decoded_counterfactual", decoded_cf))}
    both = np.isfinite(measured["original"]) & np.isfinite(measured["decoded"])
    diff = measured["decoded"][both] - measured["original"][both]
    enlarged = np.asarray(true_ratio) > 0.5

    def lower(before, after) -> dict:
        ok = enlarged & np.isfinite(measured[before]) & np.isfinite(measured[after])
        return {"share": float(np.mean(measured[after][ok] < measured[before][ok])) if ok.any() else None,
                "measured": int(ok.sum())}

    return {"measured_on_both": int(both.sum()),
            "median_difference": float(np.median(diff)) if both.any() else None,
            "median_absolute_difference": float(np.median(np.abs(diff))) if both.any() else None,
            "correlation": float(np.corrcoef(measured["original"][both], measured["decoded"][both])[0, 1])
            if both.sum() > 2 else None,
            "lower_without_disease": {"radiographs": lower("original", "counterfactual"),
                                      "reconstructions": lower("decoded", "decoded_counterfactual")},
            "method": "modelling.cohort.ctr.measure on each held-out radiograph with disease, its reconstruction, "
                      "its disease-free counterfactual and that one's reconstruction; 'lower_without_disease' "
                      "among those whose true ratio is above 0.5"}


def _copies(config: StudyConfig, encoder, images: np.ndarray) -> np.ndarray | None:
    """Codes (n, k, d) of ``predictors.augment_copies`` positional copies of each labelled radiograph
    (None: none)."""
    p = config.predictors
    if p.augment_copies == 0:
        return None
    copied, _ = positional_copies(images, p.augment_copies, rotation_deg=p.augment_rotation_deg,
                                  shift=p.augment_shift, scale=p.augment_scale, seed=config.seed)
    note("training: encoding %s positional copies of the labelled radiographs", f"{len(copied):,}")
    return encode(encoder, copied).reshape(len(images), p.augment_copies, -1)  # copies of a row are consecutive


def _predictors(stage: Stage, config: StudyConfig, latents: np.ndarray, labelled_ids: np.ndarray, bnp: np.ndarray,
                split: np.ndarray, encoder_id: str, copies: np.ndarray | None = None) -> dict:
    """Fit the linear and MLP predictors in both regimes on the labelled codes (and the codes of their
    positional copies); write their checkpoints and the predictions table; return the AUC of every
    model on every role."""
    threshold = config.cohort.bnp_threshold_ng_l
    note("training: fitting the predictors on %s labelled radiographs", f"{len(labelled_ids):,}")
    fitted = fit_all(latents, bnp, split, config.predictors, seed=config.seed, threshold=threshold, copies=copies)
    rows, aucs = [], {}
    for f in fitted:
        model_id = f"{f.predictor}-{f.regime}"
        state = checkpoints.payload("predictor", models={"predictor": f.model},
                                    config=model_config(config.predictors, f.predictor, f.regime),
                                    seed=config.seed, step=f.epochs,
                                    extra={"encoder_id": encoder_id, "latent_dim": config.decoder.latent_dim,
                                           "hidden": list(config.predictors.mlp_hidden) if f.predictor == "mlp" else []})
        data = checkpoints.to_bytes(state)
        stage.write_bytes(f"checkpoints/{model_id}.pt", data)
        sha = sha256_bytes(data)
        pred = predict_ng_l(f.model, latents)
        for role, idx in f.roles.items():
            rows.append(pd.DataFrame({
                "image_id": labelled_ids[idx], "model_id": model_id, "predictor": f.predictor, "regime": f.regime,
                "role": role, "checkpoint_sha256": sha, "bnp_true_ng_l": bnp[idx],
                "bnp_pred_ng_l": np.maximum(pred[idx], np.finfo(float).tiny),
            }))
            aucs[f"{model_id}/{role}"] = _auc(bnp[idx] >= threshold, np.log(pred[idx])) | {"epochs": f.epochs}
    predictions = pd.concat(rows, ignore_index=True).sort_values(["model_id", "image_id"], kind="stable")
    stage.write_table("predictions", predictions)
    return aucs


def write_training(stage: Stage, config: StudyConfig, *, stop: Callable[[int], None] | None = None) -> dict:
    """Train the networks, encode every radiograph, measure the decoder, fit the predictors; write
    ``train/summary.json`` and return it."""
    bundle = stage.bundle
    radiographs, splits, images, generative = training_images(bundle)
    unlabelled = splits["set"].to_numpy() == "unlabelled"  # labelled = ~unlabelled: the predictors' data
    if generative.sum() < FEW_GENERATIVE:
        log.warning("%s: the decoder and encoder learn from %d unlabelled radiograph(s) only (of no test patient); "
                    "with fewer than %d a generative model tends to replay them, and GVRs then show little beyond "
                    "them (the paper's learned from 96,099)", bundle.root, int(generative.sum()), FEW_GENERATIVE)
    generator, encoder, encoder_id, stats = _networks(stage, config, images[generative], stop=stop,
                                                      data=data_key(bundle))
    latents = _latents(stage, encoder, radiographs, images, encoder_id)
    # held-out reconstructions: labelled radiographs were never seen by the decoder or encoder
    quality = _generative_quality(stage, config, generator, encoder, images, latents, np.flatnonzero(~unlabelled),
                                  generative)
    labelled_ids = radiographs["image_id"].to_numpy()[~unlabelled]
    quality["disease_kept"] = _disease_kept(bundle, config, generator, encoder, labelled_ids)
    bnp = bundle.read_table("pairing").set_index("image_id").loc[labelled_ids, "bnp_ng_l"].to_numpy()
    aucs = _predictors(stage, config, latents[~unlabelled], labelled_ids, bnp, splits["set"].to_numpy()[~unlabelled],
                       encoder_id, _copies(config, encoder, images[~unlabelled]))
    summary = {
        **stats, "encoder_id": encoder_id,
        "generative_training": {"radiographs": int(generative.sum()),
                                "unlabelled_of_test_patients_left_out": int((unlabelled & ~generative).sum())},
        **quality,
        "auc": aucs, "oracle_auc": json.loads(bundle.verify_file("cohort/summary.json").read_text()).get("oracle_auc"),
    }
    stage.write_json("train/summary.json", summary)
    return summary


def write_predictors(stage: Stage, config: StudyConfig, networks: Bundle) -> dict:
    """The training stage with the decoder and encoder of another bundle (`networks`) kept as they are:
    encode every radiograph of this one and fit its predictors (shortcut benchmarks: one generative
    model, predictors trained on cohorts that differ only in the shortcut)."""
    from modelling.stages.artifacts import load_encoder

    bundle = stage.bundle
    radiographs, splits, images, _ = training_images(bundle)
    for name in ("decoder", "encoder"):
        stage.write_bytes(f"checkpoints/{name}.pt", networks.verify_file(f"checkpoints/{name}.pt").read_bytes())
    encoder_id = networks.read_table("latents_index")["encoder_id"].iloc[0]
    encoder = load_encoder(networks, config).to(device_for(config))
    latents = _latents(stage, encoder, radiographs, images, encoder_id)
    unlabelled = splits["set"].to_numpy() == "unlabelled"
    labelled_ids = radiographs["image_id"].to_numpy()[~unlabelled]
    bnp = bundle.read_table("pairing").set_index("image_id").loc[labelled_ids, "bnp_ng_l"].to_numpy()
    aucs = _predictors(stage, config, latents[~unlabelled], labelled_ids, bnp, splits["set"].to_numpy()[~unlabelled],
                       encoder_id, _copies(config, encoder, images[~unlabelled]))
    summary = {"networks_from": str(networks.root), "encoder_id": encoder_id, "auc": aucs,
               "oracle_auc": json.loads(bundle.verify_file("cohort/summary.json").read_text()).get("oracle_auc")}
    stage.write_json("train/summary.json", summary)
    return summary


def build_predictors(config: StudyConfig, out, networks: Bundle, *, force: bool = False) -> Bundle:
    """Run the training stage at `out` on the decoder and encoder of `networks` (:func:`write_predictors`);
    skipped when the cohort, the networks and the predictors' config are unchanged."""
    bundle = Bundle(out, create=False)
    if "cohort" not in bundle.stages:
        raise ValueError(f"{bundle.root}: no cohort yet; run `gvr cohort synth {bundle.root}` (or ingest) first")
    inputs = stage_inputs(bundle)
    key = stage_config(config) | {"networks": {n: networks.record(f"checkpoints/{n}.pt").sha256
                                               for n in ("decoder", "encoder")}}
    bundle.run_stage(STAGE, lambda st: write_predictors(st, config, networks), config=key, seed=config.seed,
                     inputs=inputs, force=force)
    return bundle


def development_checks(summary: dict) -> dict[str, dict]:
    """The project's development targets, judged on a training summary (printed by ``gvr train``;
    not written to the bundle): the paper's AUCs (0.82 correct; 0.99 and 0.75 overfitted) as floors.

    Returns ``{name: {"value": float | None, "met": bool, "measurable": bool}}``.
    """
    aucs, oracle = summary["auc"], summary.get("oracle_auc")
    checks = {}
    correct_mlp = aucs["mlp-correct/test"]["auc"]
    for predictor in ("mlp", "linear"):
        value = aucs[f"{predictor}-correct/test"]["auc"]
        checks[f"{predictor} correct: test AUC >= 0.80"] = _target(value, value is not None and value >= 0.80)
        if oracle:
            checks[f"{predictor} correct: test AUC >= 90% of oracle {oracle:.3f}"] = _target(
                None if value is None else value / oracle, value is not None and value >= 0.9 * oracle)
    over_train = aucs["mlp-overfitted/train"]["auc"]
    over_val = aucs["mlp-overfitted/validation"]["auc"]
    checks["mlp overfitted: own training data AUC >= 0.97"] = _target(over_train, over_train is not None and over_train >= 0.97)
    checks["mlp overfitted: withheld quarter AUC < correct test AUC"] = _target(
        over_val, None not in (over_val, correct_mlp) and over_val < correct_mlp,
        measurable=None not in (over_val, correct_mlp))
    lungless = (summary.get("samples") or {}).get("sampler", {}).get("without_two_lungs")
    if lungless is not None:  # issue 15's target; real radiographs lack two lungs in about 1 %
        checks["decoder samples without two separable lungs <= 2%"] = _target(lungless, lungless <= 0.02)
    kept = (summary.get("disease_kept") or {}).get("median_r")
    if kept is not None:  # phantom only (issue 15)
        checks["decoder keeps the disease: median r of decoded vs true change >= 0.80"] = _target(kept, kept >= 0.8)
    return checks


def refuse_other_image_size(bundle: Bundle, config: StudyConfig) -> None:
    """Refuse, before anything is written, a config whose image size is not the cohort's.

    Training reads the cohort as it is: radiographs of another size would fail inside the stage. Real
    radiographs cannot be drawn again; the phantom can, by ``gvr reproduce`` with the new config.
    """
    radiographs = bundle.read_table("radiographs")
    if not len(radiographs):
        return
    first = bundle.path(radiographs["image_path"].iloc[0])
    if not first.is_file():
        return  # the stage's own reading says what is missing
    # the header alone (the stage checks the contents against the manifest): hashing a default cohort's
    # first chunk on every `gvr train` would cost more than the check
    try:
        size = np.load(first, mmap_mode="r").shape[-1]
    except (ValueError, OSError):
        return  # a damaged file: the stage's own reading names it
    if size == config.image_size:
        return
    stored = bundle.root / "config.yaml"
    built_with = f" ({stored}, the default without --config)" if stored.is_file() else ""
    if bundle.origin == "real":
        raise ConfigError(f"{bundle.root} holds real radiographs ingested at {size} px, and this config says "
                          f"{config.image_size} px: give the config they were ingested with{built_with}, or ingest "
                          f"them again at the new size")
    raise ConfigError(f"{bundle.root} holds phantom radiographs drawn at {size} px, and this config says "
                      f"{config.image_size} px: give the config the cohort was drawn with{built_with}, or run "
                      f"`gvr reproduce {bundle.root} --config ...` to draw it again at the new size")


def build_training(config: StudyConfig, out, *, force: bool = False, stop=None) -> Bundle:
    """Run the training stage in the bundle at `out` (its cohort must exist).

    Under ``torchrun`` every process trains the decoder and encoder on its slice of each batch;
    rank 0 alone decides whether the stage is current, and writes the bundle.
    """
    import torch.distributed as dist

    from modelling.nets.distributed import broadcast_decision, distributed

    bundle = Bundle(out, create=False)
    if "cohort" not in bundle.stages:
        raise ValueError(f"{bundle.root}: no cohort yet; run `gvr cohort synth {bundle.root}` (or ingest) first")
    refuse_other_image_size(bundle, config)
    rank, world = distributed()
    if force and rank == 0:  # --force retrains from scratch, not from the last work checkpoint
        for path in (bundle.root / "work").glob("*.pt"):
            path.unlink()
    if world > 1:
        dist.barrier()
    run = lambda st: write_training(st, config, stop=stop)  # noqa: E731
    if world == 1:
        bundle.run_stage(STAGE, run, config=stage_config(config), seed=config.seed,
                         inputs=stage_inputs(bundle), force=force)
        return bundle
    if not broadcast_decision(lambda: force or not bundle.is_current(
            STAGE, config=stage_config(config), seed=config.seed, inputs=stage_inputs(bundle))):
        return bundle
    if rank == 0:
        bundle.run_stage(STAGE, run, config=stage_config(config), seed=config.seed, inputs=stage_inputs(bundle),
                         force=True)
    else:  # the same collective calls as rank 0's write_training, without writing anything
        _, _, images, generative = training_images(bundle)
        work, key = bundle.root / "work", data_key(bundle)
        train_networks(images[generative], config, work, stop=stop, data_key=key)
    dist.barrier()
    return bundle
