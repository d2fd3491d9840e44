"""A cohort as the bundle's tables, its Table 1-style summary, and a contact sheet of its radiographs.

Shared by the phantom cohort and real data (:mod:`modelling.cohort.ingest`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from data_schema.layout import SHARD_SIZE, image_path, mask_path
from modelling.cohort import phantom
from modelling.cohort.pairing import pair, split_by_patient
from modelling.cohort.synthetic import Cohort
from modelling.config import StudyConfig


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
    render = cohort.render[list(phantom.PARAMETERS)].assign(image_id=cohort.radiographs["image_id"].to_numpy())
    return {
        "patients": cohort.patients,
        "radiographs": radiographs,
        "bnp_results": cohort.bnp_results,
        "pairing": pairing,
        "splits": splits,
        "phantom_truth": truth,
        "phantom_render": render[["image_id", *phantom.PARAMETERS]],
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
    opacity green, soft tissue yellow, device magenta, markers orange, shortcut cyan); plain radiographs when `bits` is None."""
    from scipy import ndimage

    colours = {"heart": (255, 60, 60), "effusion": (60, 120, 255), "opacity": (60, 220, 60),
               "soft_tissue": (240, 220, 40), "device": (255, 0, 255), "markers": (255, 150, 0), "shortcut": (0, 255, 255)}
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
