"""The cohort stage: the phantom cohort written into a study bundle.

Tables (patients, radiographs, BNP results, pairing, splits, phantom ground truth) go through the
schemas; radiographs are rendered in shards of :data:`SHARD_SIZE` images, in parallel worker
processes, streamed to ``images/radiographs-NNNNN.npy`` (uint8) with their feature masks in
``masks/masks-NNNNN.npz`` (bits). A killed run resumes at the first shard not yet recorded.
The stage also writes ``cohort/summary.json`` (counts, BNP quartiles, ages, sexes and the oracle
AUC) and ``cohort/contact_sheet.png``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from data_schema import Bundle, BundleError, Stage
from modelling import phantom
from modelling.cohort import BnpModel, Cohort, synthesize
from modelling.config import StudyConfig
from modelling.pairing import pair, split_by_patient
from modelling.progress import progress

log = logging.getLogger(__name__)

SHARD_SIZE = 1024
RENDER_CHUNK = 64  # images rendered together: bounds each worker's memory to ~150 MB at 128 px
PHANTOM_VERSION = 1  # bump when the renderer changes, so cached cohorts are rebuilt
STAGE = "cohort"


def stage_config(config: StudyConfig, bnp: BnpModel = BnpModel()) -> dict:
    """What the cohort stage depends on (its cache key)."""
    return {
        "cohort": dataclasses.asdict(config.cohort),
        "image_size": config.image_size,
        "bnp": dataclasses.asdict(bnp),
        "phantom_version": PHANTOM_VERSION,
        "shard_size": SHARD_SIZE,
    }


def image_path(shard: int) -> str:
    return f"images/radiographs-{shard:05d}.npy"


def mask_path(shard: int) -> str:
    return f"masks/masks-{shard:05d}.npz"


def _render_shard(args):
    params, size = args
    images, bits = [], []
    for start in range(0, len(params["noise_seed"]), RENDER_CHUNK):
        chunk = {k: v[start:start + RENDER_CHUNK] for k, v in params.items()}
        im, b = phantom.render(chunk, size)
        images.append(im)
        bits.append(b)
    return np.concatenate(images), np.concatenate(bits)


def tables(cohort: Cohort, config: StudyConfig) -> dict[str, pd.DataFrame]:
    """The bundle tables of a synthesized cohort, with pairing and the patient-level split."""
    pairing = pair(cohort.radiographs, cohort.bnp_results, window_hours=config.cohort.pairing_window_hours)
    splits = split_by_patient(
        cohort.radiographs, pairing, test_fraction=config.cohort.test_fraction,
        rng=np.random.default_rng([config.seed, 6]),
    )
    index = np.arange(len(cohort.radiographs))
    shards = index // SHARD_SIZE
    radiographs = cohort.radiographs.assign(
        image_path=[image_path(s) for s in shards],
        image_index=index % SHARD_SIZE,
        height_px=config.image_size,
        width_px=config.image_size,
        pixel_spacing_mm=np.nan,
    )
    truth = cohort.truth.assign(mask_path=[mask_path(s) for s in shards], mask_index=index % SHARD_SIZE)
    return {
        "patients": cohort.patients,
        "radiographs": radiographs,
        "bnp_results": cohort.bnp_results,
        "pairing": pairing,
        "splits": splits,
        "phantom_truth": truth,
    }


def summary(t: dict[str, pd.DataFrame], *, threshold: float) -> dict:
    """Counts per set, BNP quartiles, ages and sexes as the paper's Table 1, and the oracle AUC."""
    from sklearn.metrics import roc_auc_score

    splits, pairing = t["splits"], t["pairing"]
    out = {"sets": {}}
    patients = t["patients"].set_index("patient_id")
    for name in ("test", "train", "unlabelled"):
        images = splits[splits["set"] == name]
        # a patient counts in every set holding one of their radiographs (real data: a patient's
        # unpaired radiographs are unlabelled while the paired ones are in train or test)
        pts = patients.loc[images["patient_id"].unique()]
        if pts.empty:
            out["sets"][name] = {"radiographs": int(len(images)), "patients": 0}
            continue
        entry = {
            "radiographs": int(len(images)),
            "patients": int(len(pts)),
            "age_mean": float(pts["age_years"].mean()),
            "age_sd": float(pts["age_years"].std(ddof=1)),
            "age_min": float(pts["age_years"].min()),
            "age_max": float(pts["age_years"].max()),
            "female": int((pts["sex"] == "F").sum()),
        }
        if name != "unlabelled":
            bnp = pairing.set_index("image_id").loc[images["image_id"], "bnp_ng_l"]
            q1, med, q3 = np.percentile(bnp, [25, 50, 75])
            entry |= {"bnp_median": float(med), "bnp_q1": float(q1), "bnp_q3": float(q3),
                      "below_threshold": int((bnp < threshold).sum())}
        out["sets"][name] = entry
    out["oracle_auc"] = None
    if "phantom_truth" in t:
        test = splits[splits["set"] == "test"].merge(pairing, on="image_id").merge(t["phantom_truth"], on="image_id")
        positive = test["bnp_ng_l"] >= threshold  # Table 1 counts "BNP < 100" as negative
        if 0 < positive.sum() < len(positive):
            out["oracle_auc"] = float(roc_auc_score(positive, test["log_bnp_noiseless"]))
    out["threshold_ng_l"] = threshold
    return out


def contact_sheet(images: np.ndarray, bits: np.ndarray | None, *, columns: int = 8, cell: int = 128) -> np.ndarray:
    """RGB grid of radiographs with each feature mask outlined (heart red, effusion blue,
    opacity green, soft tissue yellow, device magenta); plain radiographs when `bits` is None."""
    from scipy import ndimage

    colours = {"heart": (255, 60, 60), "effusion": (60, 120, 255), "opacity": (60, 220, 60),
               "soft_tissue": (240, 220, 40), "device": (255, 0, 255)}
    n = len(images)
    rows = -(-n // columns)
    scale = max(1, cell // images.shape[1])
    size = images.shape[1] * scale
    sheet = np.zeros((rows * size, columns * size, 3), np.uint8)
    masks = phantom.unpack_masks(bits) if bits is not None else {}
    for i in range(n):
        tile = np.repeat(np.repeat(images[i], scale, 0), scale, 1)
        rgb = np.stack([tile] * 3, axis=-1)
        for name in masks:
            m = np.repeat(np.repeat(masks[name][i], scale, 0), scale, 1)
            outline = m & ~ndimage.binary_erosion(m, iterations=max(1, scale // 2))
            rgb[outline] = colours[name]
        r, c = divmod(i, columns)
        sheet[r * size:(r + 1) * size, c * size:(c + 1) * size] = rgb
    return sheet


def write_cohort(stage: Stage, config: StudyConfig, *, workers: int | None = None, bnp: BnpModel = BnpModel(),
                 reuse: bool = True) -> dict:
    """Synthesize, render and write the phantom cohort through `stage`; return the summary.

    With `reuse`, image and mask shards that an interrupted run of the same config and seed wrote
    (and whose content still matches the manifest) are kept instead of rendered again.
    """
    cohort = synthesize(config.cohort, seed=config.seed, bnp=bnp)
    t = tables(cohort, config)
    for name, df in t.items():
        stage.write_table(name, df)

    n = len(cohort.radiographs)
    n_shards = -(-n // SHARD_SIZE)
    params = {k: cohort.render[k].to_numpy() for k in phantom.PARAMETERS}
    done = {rel for rel, rec in stage.bundle.files.items()
            if reuse and rec.stage == stage.name and rec.config_hash == stage.config_hash and rec.seed == stage.seed
            and _intact(stage.bundle, rel)}
    todo = [s for s in range(n_shards) if not {image_path(s), mask_path(s)} <= done]
    for s in set(range(n_shards)) - set(todo):  # already rendered by a run that was stopped
        stage.adopt(image_path(s))
        stage.adopt(mask_path(s))
    jobs = ((({k: v[s * SHARD_SIZE:(s + 1) * SHARD_SIZE] for k, v in params.items()}, config.image_size)) for s in todo)
    workers = workers or min(len(todo), max(1, (os.cpu_count() or 1))) or 1
    bar = progress(total=n, desc="rendering radiographs", unit="img", initial=n - sum(
        min(SHARD_SIZE, n - s * SHARD_SIZE) for s in todo))
    sample_images, sample_bits = None, None
    with bar:
        if workers > 1 and len(todo) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results = pool.map(_render_shard, jobs)
                sample_images, sample_bits = _store(stage, todo, results, bar)
        else:
            sample_images, sample_bits = _store(stage, todo, map(_render_shard, jobs), bar)

    info = summary(t, threshold=config.cohort.bnp_threshold_ng_l)
    stage.write_json("cohort/summary.json", info)
    if sample_images is None:  # every shard was cached: read the first back for the sheet
        sample_images = np.load(stage.bundle.path(image_path(0)))[:64]
        with np.load(stage.bundle.path(mask_path(0))) as z:
            sample_bits = z["bits"][:64]
    labelled = t["splits"]["set"].to_numpy()[: len(sample_images)] != "unlabelled"
    pick = np.r_[np.flatnonzero(labelled), np.flatnonzero(~labelled)][:16]
    stage.write_image("cohort/contact_sheet.png", contact_sheet(sample_images[pick], sample_bits[pick]))
    return info


def _intact(bundle: Bundle, rel: str) -> bool:
    try:
        bundle.verify_file(rel)
    except BundleError:
        return False
    return True


def _store(stage: Stage, todo, results, bar):
    first = None
    for s, (images, bits) in zip(todo, results):
        stage.write_array(image_path(s), images)
        stage.write_array(mask_path(s), {"bits": bits})
        stage.flush()  # a killed run keeps the shards written so far
        if first is None and s == 0:
            first = (images[:64], bits[:64])
        bar.update(len(images))
    return first if first is not None else (None, None)


def build_cohort(config: StudyConfig, out: str | Path, *, workers: int | None = None, force: bool = False) -> Bundle:
    """Run the cohort stage into the bundle at `out` (skipped when already current)."""
    bundle = Bundle(out)
    bundle.claim_origin("phantom", by="the phantom cohort (gvr cohort synth)")  # refused on real data
    bundle.run_stage(STAGE, lambda st: write_cohort(st, config, workers=workers, reuse=not force),
                     config=stage_config(config), seed=config.seed, force=force)
    return bundle
