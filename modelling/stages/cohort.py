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

from data_schema import Bundle, BundleError, Stage
from data_schema.bundle import refuse_foreign_folder
from data_schema.layout import SHARD_SIZE, image_path, mask_path
from modelling.cohort import phantom
from modelling.cohort.summary import contact_sheet, summary, tables
from modelling.cohort.synthetic import BnpModel, synthesize
from modelling.config import StudyConfig
from modelling.progress import progress

log = logging.getLogger(__name__)

RENDER_CHUNK = 64  # images rendered together: bounds each worker's memory to ~150 MB at 128 px
PHANTOM_VERSION = 4  # bump when the renderer or the cohort's tables change, so cached cohorts are rebuilt
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


def _render_shard(args):
    params, size = args
    images, bits = [], []
    for start in range(0, len(params["noise_seed"]), RENDER_CHUNK):
        chunk = {k: v[start:start + RENDER_CHUNK] for k, v in params.items()}
        im, b = phantom.render(chunk, size)
        images.append(im)
        bits.append(b)
    return np.concatenate(images), np.concatenate(bits)


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
    refuse_foreign_folder(out)
    bundle = Bundle(out)
    bundle.claim_origin("phantom", by="the phantom cohort (gvr cohort synth)")  # refused on real data
    bundle.run_stage(STAGE, lambda st: write_cohort(st, config, workers=workers, reuse=not force),
                     config=stage_config(config), seed=config.seed, force=force)
    return bundle
