"""Pairing radiographs with BNP results within 36 h, and the patient-level split."""

from __future__ import annotations

import pandas as pd
import pytest

from modelling.cohort.pairing import SplitLeakError, check_split, pair, split_by_patient

T0 = pd.Timestamp("2012-05-01 12:00")


def radiographs(*rows):
    return pd.DataFrame(rows, columns=["image_id", "patient_id", "acquired_at"])


def results(*rows):
    return pd.DataFrame(rows, columns=["result_id", "patient_id", "collected_at", "bnp_ng_l"])


def hours(h):
    return T0 + pd.Timedelta(hours=h)


def test_35_hours_pairs_and_37_does_not():
    r = radiographs(("a", "p1", T0), ("b", "p2", T0))
    b = results(("r1", "p1", hours(35), 500.0), ("r2", "p2", hours(-37), 600.0))
    out = pair(r, b)
    assert out.to_dict("records") == [{"image_id": "a", "result_id": "r1", "hours_apart": 35.0, "bnp_ng_l": 500.0}]


def test_window_is_inclusive_and_configurable():
    r = radiographs(("a", "p1", T0))
    b = results(("r1", "p1", hours(36), 500.0))
    assert pair(r, b)["result_id"].tolist() == ["r1"]
    assert pair(r, b, window_hours=24).empty
    with pytest.raises(ValueError, match="window_hours must be positive"):
        pair(r, b, window_hours=0)


def test_the_nearest_result_wins():
    r = radiographs(("a", "p1", T0))
    b = results(("far", "p1", hours(-20), 100.0), ("near", "p1", hours(3), 900.0), ("mid", "p1", hours(10), 50.0))
    assert pair(r, b)["result_id"].tolist() == ["near"]


def test_ties_go_to_the_earlier_result_then_the_smaller_id():
    r = radiographs(("a", "p1", T0), ("b", "p2", T0))
    b = results(
        ("z-after", "p1", hours(5), 1.0), ("y-before", "p1", hours(-5), 2.0),
        ("r9", "p2", hours(4), 3.0), ("r1", "p2", hours(4), 4.0),
    )
    first = pair(r, b)
    assert first["result_id"].tolist() == ["y-before", "r1"]
    shuffled = pair(r.iloc[::-1], b.iloc[::-1])
    pd.testing.assert_frame_equal(first, shuffled)


def test_results_of_other_patients_are_never_paired():
    r = radiographs(("a", "p1", T0))
    b = results(("r1", "p2", hours(1), 500.0))
    assert pair(r, b).empty


def test_one_result_may_label_two_radiographs():
    r = radiographs(("a", "p1", T0), ("b", "p1", hours(24)))
    b = results(("r1", "p1", hours(12), 500.0))
    assert pair(r, b)["result_id"].tolist() == ["r1", "r1"]


def make_split(n_patients=50, seed=3):
    rows = [(f"i{p}-{k}", f"p{p:02d}", T0) for p in range(n_patients) for k in range(1 + p % 3)]
    r = radiographs(*rows)
    paired = pd.DataFrame({"image_id": [row[0] for row in rows if int(row[1][1:]) < 40]})
    return split_by_patient(r, paired, test_fraction=0.2, rng=seed), r


def test_split_is_by_patient_with_the_papers_rounding():
    splits, _ = make_split()
    sides = splits[splits["set"] != "unlabelled"].groupby("patient_id")["set"].agg(set)
    assert all(len(s) == 1 for s in sides)
    per_patient = sides.map(lambda s: next(iter(s))).value_counts().to_dict()
    # paper: 4,185 (80 %) train and 1,047 (20 %) test of 5,232 patients: floor(0.8 n) train
    assert per_patient == {"train": 32, "test": 8}
    assert set(splits.loc[splits["patient_id"] >= "p40", "set"]) == {"unlabelled"}


def test_split_is_seeded():
    a, _ = make_split(seed=1)
    b, _ = make_split(seed=1)
    c, _ = make_split(seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_a_leaking_split_is_refused():
    splits, _ = make_split()
    victim = splits.index[splits["set"] == "train"][0]
    other = splits.index[(splits["set"] == "test")][0]
    splits.loc[other, "patient_id"] = splits.loc[victim, "patient_id"]
    with pytest.raises(SplitLeakError, match="1 patient\\(s\\) on both sides"):
        check_split(splits)
