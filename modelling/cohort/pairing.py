"""Pairing radiographs with BNP results, and the patient-level train/test split.

Used alike for the phantom and for real data: a radiograph is labelled when a BNP result of the same
patient was collected within the window (36 h in the paper: "a paired BNP result within 36 hours of
image acquisition"); the nearest result wins, ties going to the earlier result, then to the smaller
result id. Labelled patients are split into train and test by patient, never by image.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class SplitLeakError(ValueError):
    """A patient with radiographs on both sides of the train/test split."""


def pair(radiographs: pd.DataFrame, bnp_results: pd.DataFrame, *, window_hours: float = 36.0) -> pd.DataFrame:
    """The pairing table: each radiograph with its nearest BNP result within `window_hours`.

    Parameters
    ----------
    radiographs : DataFrame
        Columns ``image_id``, ``patient_id``, ``acquired_at``.
    bnp_results : DataFrame
        Columns ``result_id``, ``patient_id``, ``collected_at``, ``bnp_ng_l``.
    window_hours : float
        Largest absolute time between acquisition and collection; inclusive.

    Returns
    -------
    DataFrame
        Columns ``image_id, result_id, hours_apart, bnp_ng_l`` (schema ``pairing``), one row per
        paired radiograph, ordered by ``image_id``.
    """
    if window_hours <= 0:
        raise ValueError(f"window_hours must be positive; got {window_hours}")
    left = radiographs[["image_id", "patient_id", "acquired_at"]]
    right = bnp_results[["result_id", "patient_id", "collected_at", "bnp_ng_l"]]
    joined = left.merge(right, on="patient_id", how="inner")
    hours = (joined["collected_at"] - joined["acquired_at"]).abs().dt.total_seconds() / 3600.0
    joined = joined.assign(hours_apart=hours)[hours <= window_hours]
    joined = joined.sort_values(["image_id", "hours_apart", "collected_at", "result_id"], kind="stable")
    best = joined.drop_duplicates("image_id", keep="first")
    return best[["image_id", "result_id", "hours_apart", "bnp_ng_l"]].reset_index(drop=True)


def split_by_patient(
    radiographs: pd.DataFrame, pairing: pd.DataFrame, *, test_fraction: float, rng: np.random.Generator | int
) -> pd.DataFrame:
    """The splits table: every radiograph in ``unlabelled``, ``train`` or ``test``.

    Patients with at least one paired radiograph are shuffled with `rng`; the first
    ``floor((1 - test_fraction) * n)`` go to train (the paper: 4,185 of 5,232), the rest to test.
    Their paired radiographs take the patient's side; unpaired radiographs are unlabelled.

    Raises
    ------
    SplitLeakError
        Never for this construction; :func:`check_split` raises it for a split made elsewhere.
    """
    rng = np.random.default_rng(rng)
    paired = radiographs["image_id"].isin(pairing["image_id"])
    patients = np.sort(radiographs.loc[paired, "patient_id"].unique())
    shuffled = rng.permutation(patients)
    n_train = int(np.floor((1.0 - test_fraction) * len(shuffled)))
    test = set(shuffled[n_train:])
    side = np.where(radiographs["patient_id"].isin(test), "test", "train")
    splits = pd.DataFrame({
        "image_id": radiographs["image_id"].to_numpy(),
        "patient_id": radiographs["patient_id"].to_numpy(),
        "set": np.where(paired, side, "unlabelled"),
    })
    check_split(splits)
    return splits


def generative_training_mask(splits: pd.DataFrame) -> np.ndarray:
    """The radiographs the decoder and encoder train on: unlabelled ones of patients with no test radiograph.

    The paper trained its generative model on radiographs without a BNP within 36 hours. On real
    data a patient often has both, so a test patient's unpaired radiographs would teach the decoder
    and encoder what that patient looks like before the test. They are left out (the phantom keeps
    the sets apart, so its studies are unchanged).
    """
    test_patients = set(splits.loc[splits["set"] == "test", "patient_id"])
    return (splits["set"].to_numpy() == "unlabelled") & ~splits["patient_id"].isin(test_patients).to_numpy()


def check_split(splits: pd.DataFrame) -> None:
    """Refuse a split in which a patient appears in both train and test."""
    labelled = splits[splits["set"].isin(["train", "test"])]
    sides = labelled.groupby("patient_id")["set"].nunique()
    leaking = sorted(sides[sides > 1].index)
    if leaking:
        shown = ", ".join(leaking[:10]) + (" ..." if len(leaking) > 10 else "")
        raise SplitLeakError(f"{len(leaking)} patient(s) on both sides of the train/test split: {shown}")
