"""The cohort stage for real data: checked inputs (:mod:`modelling.cohort.ingest`) paired, split and
written into the bundle, which is marked as holding real data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from data_schema import Bundle, Stage
from data_schema.bundle import LOCK, MANIFEST, refuse_foreign_folder
from data_schema.io import sha256_file
from data_schema.layout import SHARD_SIZE, image_path, mask_path
from data_schema.validate import Problem, validate_frame
from modelling.cohort.ingest import (
    IngestError,
    IngestSources,
    Prepared,
    Pseudonymiser,
    exclusion_summary,
    prepare,
    public_reason,
)
from modelling.cohort.pairing import generative_training_mask, pair, split_by_patient
from modelling.cohort.summary import contact_sheet, summary
from modelling.config import StudyConfig
from modelling.progress import progress
from modelling.stages.study_config import record_config
from modelling.stages.cohort import STAGE

log = logging.getLogger(__name__)


def cohort_tables(config: StudyConfig, prepared: Prepared) -> dict[str, pd.DataFrame]:
    """The cohort's tables from prepared real data, paired and split, checked against the bundle's schemas.

    Raises
    ------
    IngestError
        With each value the bundle would refuse (named by table, row and column), before anything is written.
    """
    pairing = pair(prepared.radiographs, prepared.bnp_results, window_hours=config.cohort.pairing_window_hours)
    splits = split_by_patient(prepared.radiographs, pairing, test_fraction=config.cohort.test_fraction,
                              rng=np.random.default_rng([config.seed, 6]))
    tables = {"patients": prepared.patients, "radiographs": prepared.radiographs,
              "bnp_results": prepared.bnp_results, "pairing": pairing, "splits": splits}
    problems = [p for name, df in tables.items() for p in validate_frame(df, name, file=f"tables/{name}.parquet")]
    if problems:
        raise IngestError(problems)
    if not generative_training_mask(splits).any():  # `gvr train` refuses such a cohort: say so now
        unlabelled = int((splits["set"] == "unlabelled").sum())
        log.warning("no radiograph for the decoder and encoder to train on: they train on radiographs without a BNP "
                    "result within %g hours, of patients with no test radiograph, and this cohort has %s; `gvr train` "
                    "will refuse it. Add radiographs without a BNP result within that window, of patients "
                    "with no test radiograph, and ingest again", config.cohort.pairing_window_hours,
                    f"{unlabelled} unlabelled radiograph(s), all of test patients" if unlabelled else "none")
    return tables


def write_cohort_tables(stage: Stage, config: StudyConfig, prepared: Prepared,
                        tables: dict[str, pd.DataFrame]) -> dict:
    """Write prepared real data through `stage` (`tables` from :func:`cohort_tables`, image shards, summary)."""
    radiographs, bnp_out, keep, excluded = (prepared.radiographs, prepared.bnp_results, prepared.images,
                                            prepared.excluded)
    pairing, splits = tables["pairing"], tables["splits"]
    for name, df in tables.items():
        stage.write_table(name, df)

    for s in range(-(-len(keep) // SHARD_SIZE)):
        chunk = keep[s * SHARD_SIZE:(s + 1) * SHARD_SIZE]
        stack = np.stack([np.rint(np.clip(it.pixels, 0, 1) * 255).astype(np.uint8) for it in chunk])  # fitted as read
        stage.write_array(image_path(s), stack)
        stage.flush()
    if prepared.masks:
        write_masks(stage, prepared)

    # File names and folders may carry identifiers: the bundle names excluded files by content hash
    # (find one with sha256sum); the caller gets the paths, to show the user outside the bundle.
    exclusions = pd.DataFrame({
        "file_sha256": [sha256_file(f) if Path(f).is_file() else "" for f, _ in excluded],
        "reason": [public_reason(reason) for _, reason in excluded],
    }, columns=["file_sha256", "reason"])
    stage.write_bytes("cohort/exclusions.csv", exclusions.to_csv(index=False, lineterminator="\n").encode())
    tables_written = {"patients": prepared.patients, "radiographs": radiographs, "splits": splits, "pairing": pairing}
    info = summary(tables_written, threshold=config.cohort.bnp_threshold_ng_l)
    info |= {
        "origin": "real",
        "radiographs": len(keep),
        "excluded": len(excluded),
        "excluded_by_reason": exclusion_summary(excluded),
        "patients": int(len(prepared.patients)),
        "bnp_results": int(len(bnp_out)),
        "paired": int(len(pairing)),
        "censored_bnp_values": prepared.censored,
        "masks": ({"radiographs": len(prepared.masks), "segmented": list(prepared.segmented),
                   "passed_over": prepared.masks_passed_over} if prepared.masks else None),
    }
    stage.write_json("cohort/summary.json", info)
    first = stage.bundle.path(image_path(0))
    stage.write_image("cohort/contact_sheet.png", contact_sheet(np.load(first)[:16], None))
    info["excluded_files"] = [{"file": f, "reason": r} for f, r in excluded]  # not written to the bundle
    return info


def write_masks(stage: Stage, prepared: Prepared) -> None:
    """The segmented radiographs' masks as bit stacks (in the radiographs' order) and the radiograph_masks table."""
    ids = dict(zip((it.image_key for it in prepared.images), prepared.radiographs["image_id"]))
    keys = [it.image_key for it in prepared.images if it.image_key in prepared.masks]
    rows = []
    for s in range(-(-len(keys) // SHARD_SIZE)):
        chunk = keys[s * SHARD_SIZE:(s + 1) * SHARD_SIZE]
        stage.write_array(mask_path(s), {"bits": np.stack([prepared.masks[k] for k in chunk])})
        rows += [{"image_id": ids[k], "mask_path": mask_path(s), "mask_index": i,
                  "segmented": ",".join(prepared.segmented)} for i, k in enumerate(chunk)]
    stage.write_table("radiograph_masks", pd.DataFrame(rows, columns=["image_id", "mask_path", "mask_index",
                                                                      "segmented"]))


def _hashed(files: list[Path]) -> dict[str, str]:
    """Each input file's sha256, with progress (a DICOM archive is many files)."""
    out = {}
    with progress(total=len(files), desc="hashing inputs", unit="file") as bar:
        for path in files:
            try:
                out[str(path)] = sha256_file(path)
            except OSError as exc:  # the reading step excludes it with its reason; the key notes it unread
                out[str(path)] = f"unreadable ({type(exc).__name__})"
            bar.update(1)
    return out


def build_from_real_data(config: StudyConfig, out: str | Path, src: IngestSources, pseudo: Pseudonymiser,
                         *, force: bool = False) -> tuple[Bundle, dict | None]:
    """Run the ingestion as the bundle's cohort stage (skipped when inputs and config are unchanged).

    Every input is read and checked before the bundle is touched: an :class:`IngestError` leaves the
    bundle as it was (its earlier cohort included). The bundle is marked as holding real data, so
    that no later command writes the phantom into it.

    Returns the bundle and the ingestion summary (None when the stage was already current); the
    summary's ``excluded_files`` lists the original paths of excluded files, for the user only.
    """
    if src.dicom_dir is not None and Path(out).resolve().is_relative_to(Path(src.dicom_dir).resolve()):
        # its own files would be read as inputs on every later run, and excluded as not DICOM
        raise IngestError([Problem(str(out), None, None, None, f"inside the DICOM folder {src.dicom_dir}: put the "
                                   "bundle elsewhere")])
    key = {
        "cohort": dataclasses.asdict(config.cohort),
        "image_size": config.image_size,
        "sources": _hashed(src.files()),
        "salt": hashlib.sha256(pseudo.salt).hexdigest(),  # a new salt gives new identifiers
        "dayfirst": src.dayfirst,
        "secondary_capture": src.secondary_capture,
    }
    refuse_foreign_folder(out)
    created = not Path(out).exists()
    new = not (Path(out) / MANIFEST).exists()
    bundle = Bundle(out)
    result: dict = {}
    try:
        return _ingest_locked(bundle, config, key, src, pseudo, result, force=force)
    except BaseException:  # a refusal, an error or Ctrl-C: a folder holding only the lock is not a bundle
        if new:
            _remove_if_only_lock(bundle.root, folder_too=created)
        raise


def _remove_if_only_lock(root: Path, *, folder_too: bool) -> None:
    """Remove the lock file a refused first ingest left as all there is in its folder, and the folder too
    when this ingest created it."""
    try:
        if {p.name for p in root.iterdir()} <= {LOCK}:
            (root / LOCK).unlink(missing_ok=True)
            if folder_too:
                root.rmdir()
    except OSError:  # another process wrote into it meanwhile: it is theirs now
        pass


def _ingest_locked(bundle: Bundle, config: StudyConfig, key: dict, src: IngestSources, pseudo: Pseudonymiser,
                   result: dict, *, force: bool) -> tuple[Bundle, dict | None]:
    with bundle.writing("gvr cohort ingest"):
        if not force and bundle.is_current(STAGE, config=key, seed=config.seed):
            record_config(bundle, config, quiet=True)  # an ingest made before bundles recorded it
            return bundle, None
        prepared = prepare(config, src, pseudo)
        tables = cohort_tables(config, prepared)  # a value the bundle would refuse stops here, not halfway
        bundle.claim_origin("real", by="gvr cohort ingest")
        record_config(bundle, config, quiet=True)
        bundle.run_stage(STAGE, lambda st: result.update(write_cohort_tables(st, config, prepared, tables)),
                         config=key, seed=config.seed, force=True)
    return bundle, result or None
