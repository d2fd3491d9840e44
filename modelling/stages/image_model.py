"""The image-model stage: an end-to-end CNN of log BNP trained on the radiographs (issue 17).

Trains :mod:`modelling.nets.image_models` on the labelled radiographs of the train split (a fifth of
its patients held out for early stopping), judges it on the test split, and writes what
``gvr explain --image-model`` reads, as a user's model would come:

- ``image_model/model.pt2``: an exported program (``torch.export.save``, dynamic batch);
- ``image_model/model.yaml``: its spec (input size, pixels 0-1, output log BNP, the study's threshold);
- ``image_model/summary.json``: architecture, parameters, epochs, the validation error per epoch,
  the test AUC for BNP at or above the threshold, seconds.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import yaml

from data_schema import Bundle, Stage
from modelling.config import StudyConfig
from modelling.nets import image_models
from modelling.nets.training import device_for
from modelling.stages.artifacts import IMAGE_MODEL as MODEL
from modelling.stages.artifacts import IMAGE_MODEL_SPEC as SPEC
from modelling.stages.artifacts import load_images

STAGE = "image_model"
#: Share of the train split's patients held out for early stopping.
VALIDATION_SHARE = 0.2


def write_image_model(stage: Stage, config: StudyConfig) -> dict:
    from sklearn.metrics import roc_auc_score

    bundle = stage.bundle
    radiographs = bundle.read_table("radiographs")
    splits = bundle.read_table("splits").set_index("image_id")
    pairing = bundle.read_table("pairing").set_index("image_id")
    labelled = radiographs[radiographs["image_id"].isin(pairing.index)].reset_index(drop=True)
    sets = splits.loc[labelled["image_id"], "set"].to_numpy()
    train_rows = np.flatnonzero(sets == "train")
    test_rows = np.flatnonzero(sets == "test")
    if len(train_rows) < 3 or len(test_rows) < 1:
        raise ValueError(f"{bundle.root}: the image model needs labelled train and test radiographs; "
                         f"got {len(train_rows)} and {len(test_rows)}")
    patients = labelled["patient_id"].to_numpy()
    rng = np.random.default_rng(config.seed)
    train_patients = np.unique(patients[train_rows])
    held = set(rng.choice(train_patients, size=max(1, round(VALIDATION_SHARE * len(train_patients))), replace=False))
    validation = np.array([r for r in train_rows if patients[r] in held])
    fitting = np.array([r for r in train_rows if patients[r] not in held])
    images = load_images(bundle, labelled)
    y = np.log(pairing.loc[labelled["image_id"], "bnp_ng_l"].to_numpy(np.float64))
    c = config.image_model
    t0 = time.monotonic()
    model, info = image_models.fit(images, y, fitting, validation, architecture=c.architecture, width=c.width,
                                   epochs=c.epochs, batch_size=c.batch_size, learning_rate=c.learning_rate,
                                   patience=c.patience, seed=config.seed, device=device_for(config))
    seconds = time.monotonic() - t0
    threshold = config.cohort.bnp_threshold_ng_l
    predicted = image_models.predict(model, images[test_rows])
    positive = y[test_rows] >= np.log(threshold)
    auc = float(roc_auc_score(positive, predicted)) if 0 < positive.sum() < len(positive) else None
    stage.write_bytes(MODEL, image_models.export(model, int(images.shape[-1])))
    spec = {"input_size": int(images.shape[-1]), "output": "log_bnp", "threshold": float(np.log(threshold)),
            "scaling": "unit"}
    stage.write_bytes(SPEC, yaml.safe_dump(spec, sort_keys=False).encode("utf-8"))
    summary = {**dataclasses.asdict(c), "fitting_radiographs": int(len(fitting)),
               "validation_radiographs": int(len(validation)), "test_radiographs": int(len(test_rows)),
               "test_auc": auc, "seconds": round(seconds, 1), **info}
    stage.write_json("image_model/summary.json", summary)
    return summary


def build_image_model(config: StudyConfig, out, *, force: bool = False) -> tuple[Bundle, dict | None]:
    """Train the image model in the bundle at `out` (after its cohort); skipped when current."""
    bundle = Bundle(out, create=False)
    if "cohort" not in bundle.stages:
        raise ValueError(f"{bundle.root}: no cohort yet; run `gvr cohort synth {bundle.root}` (or ingest) first")
    radiographs = bundle.read_table("radiographs")
    inputs = ["tables/radiographs.parquet", "tables/splits.parquet", "tables/pairing.parquet",
              *sorted(radiographs["image_path"].unique())]
    key = {"image_model": dataclasses.asdict(config.image_model), "threshold": config.cohort.bnp_threshold_ng_l,
           "validation_share": VALIDATION_SHARE, "file": MODEL}
    result: dict = {}
    bundle.run_stage(STAGE, lambda st: result.update(write_image_model(st, config)), config=key, seed=config.seed,
                     inputs=inputs, force=force)
    return bundle, result or None
