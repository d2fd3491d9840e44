"""The explain stage on the tiny profile: GVR images, movies and a valid index."""

from __future__ import annotations

import pytest

from data_schema import validate_bundle
from modelling.config import load_config
from modelling.stages.explain import UnknownModelError, build_explanations
from tests.conftest import copy_bundle


@pytest.fixture(scope="module")
def explained(tiny_trained, tmp_path_factory):
    cfg = load_config("tiny")
    root = copy_bundle(tiny_trained, tmp_path_factory.mktemp("explained") / "b")
    bundle, info = build_explanations(cfg, root)
    return cfg, bundle, info


def test_gvrs_are_written_and_the_bundle_is_valid(explained):
    cfg, bundle, info = explained
    assert validate_bundle(bundle.root) == []
    index = bundle.read_table("gvr_index")
    gvr = index[index["kind"] == "gvr"]
    assert info["gvrs"] == len(gvr) > 0
    assert (gvr["start_pred_ng_l"] > 100).all()
    assert gvr["reached"].mean() >= 0.5
    assert (gvr.loc[gvr["reached"], "end_pred_ng_l"] < 100).all()
    for row in gvr.itertuples():
        overlay = bundle.read_image(row.overlay_path)
        assert overlay.shape == (cfg.image_size, cfg.image_size, 3)
        assert bundle.read_image(row.original_path).shape == (cfg.image_size, cfg.image_size)
        assert bundle.verify_file(row.movie_path).read_bytes()[:6] in (b"GIF89a", b"GIF87a")
        mp4 = bundle.verify_file(row.movie_path.replace(".gif", ".mp4")).read_bytes()
        assert mp4[4:8] == b"ftyp"


def test_selection_follows_the_regime(explained):
    _, bundle, _ = explained
    index = bundle.read_table("gvr_index")
    pred = bundle.read_table("predictions").set_index(["model_id", "image_id"])
    for row in index[index["kind"] == "gvr"].itertuples():
        role = pred.loc[(row.model_id, row.image_id), "role"]
        assert role == ("test" if row.regime == "correct" else "validation")


def test_highest_selection_takes_the_highest_and_lowest_predictions():
    import pandas as pd

    from modelling.stages.explain import _select

    pred = pd.DataFrame({
        "model_id": "mlp-correct", "regime": "correct",
        "role": ["test"] * 7 + ["train"],
        "image_id": [f"i{k}" for k in range(8)],
        "bnp_pred_ng_l": [50.0, 2000.0, 150.0, 900.0, 20.0, 99.0, 900.0, 5000.0],  # i7 trained on
    })
    high = _select(pred, "mlp-correct", above=True, threshold=100, n=2, seed=1, selection="highest")
    assert high == ["i1", "i3"]  # 2000, then the first of the tied 900s by image id; not i7 (train)
    low = _select(pred, "mlp-correct", above=False, threshold=100, n=2, seed=1, selection="highest")
    assert low == ["i0", "i4"]
    drawn = _select(pred, "mlp-correct", above=True, threshold=100, n=3, seed=1, selection="random")
    assert len(drawn) == 3 and set(drawn) <= {"i1", "i2", "i3", "i6"}
    assert drawn == _select(pred, "mlp-correct", above=True, threshold=100, n=3, seed=1, selection="random")


def test_default_selection_is_the_highest_predictions(explained):
    cfg, bundle, _ = explained
    assert cfg.gvr.selection == "highest"
    index = bundle.read_table("gvr_index")
    pred = bundle.read_table("predictions")
    for model_id, rows in index[index["kind"] == "gvr"].groupby("model_id"):
        own = pred[(pred["model_id"] == model_id) & (pred["role"] == ("test" if "correct" in model_id else "validation"))]
        above = own[own["bnp_pred_ng_l"] > 100]
        assert len(rows) == min(cfg.readers.per_model, len(above))
        assert rows["start_pred_ng_l"].min() >= above["bnp_pred_ng_l"].nlargest(len(rows)).min() * (1 - 1e-5)


def test_inverse_gvrs_reach_each_target(explained):
    cfg, bundle, _ = explained
    index = bundle.read_table("gvr_index")
    inverse = index[index["kind"] == "inverse"]
    assert set(inverse["target_bnp_ng_l"]) == set(cfg.gvr.inverse_targets_ng_l)
    assert (inverse["start_pred_ng_l"] < 100).all()
    assert inverse.groupby("target_bnp_ng_l")["reached"].mean().ge(0.5).all()
    reached = inverse[inverse["reached"]]
    assert (reached["end_pred_ng_l"] >= reached["target_bnp_ng_l"]).all()


def test_a_radiograph_already_below_the_threshold_is_skipped_and_recorded(explained, tmp_path):
    cfg, bundle, _ = explained
    pred = bundle.read_table("predictions")
    rows = pred[pred["model_id"] == "mlp-correct"]
    low = rows.loc[rows["bnp_pred_ng_l"].idxmin(), "image_id"]
    high = rows.loc[rows["bnp_pred_ng_l"].idxmax(), "image_id"]
    _, info = build_explanations(cfg, bundle.root, model_ids=["mlp-correct"], images=[low, high], force=True)
    assert info["skipped"] == 1 and info["gvrs"] == 1
    skipped = bundle.verify_file("gvr/skipped.csv").read_text()
    assert low in skipped and "already predicted below 100 ng/L" in skipped


def test_a_radiograph_its_move_already_puts_below_the_threshold_is_skipped(explained, monkeypatch):
    """What a move lowers may differ from the predictor (gvr.reencode: predictor(encoder(decoder(z)))). A
    radiograph the predictor puts above the threshold and that score below it is skipped, not given a blank
    GVR of 0 steps marked as reached. Here the moved score is the predictor's less 2 log BNP."""
    import dataclasses

    import numpy as np
    import torch

    from modelling.stages import explain
    from modelling.stages.artifacts import load_predictor

    class Lower(torch.nn.Module):
        def __init__(self, predictor):
            super().__init__()
            self.predictor = predictor

        def forward(self, z):
            return self.predictor(z) - 2.0

    cfg, bundle, _ = explained
    monkeypatch.setattr(explain, "scorer", lambda predictor, **_: Lower(predictor))
    index = bundle.read_table("latents_index").set_index("image_id")
    image = index.index[0]
    plain = explain.predict_log_bnp(load_predictor(bundle, "mlp-correct"), bundle.read_array(
        index["latents_path"].iloc[0])[[int(index.loc[image, "row"])]])[0]
    threshold = float(np.exp(plain - 1.0))  # the predictor is above it, the moved score below
    above = tuple(t for t in cfg.gvr.inverse_targets_ng_l if t > threshold) or (2 * threshold,)  # as the config needs
    cfg = dataclasses.replace(cfg, cohort=dataclasses.replace(cfg.cohort, bnp_threshold_ng_l=threshold),
                              gvr=dataclasses.replace(cfg.gvr, inverse_targets_ng_l=above))
    _, info = explain.build_explanations(cfg, bundle.root, model_ids=["mlp-correct"], images=[image], force=True)
    assert info["gvrs"] == 0 and info["skipped"] == 1


def test_an_unknown_model_is_refused_listing_the_present_ones(explained):
    cfg, bundle, _ = explained
    with pytest.raises(UnknownModelError, match="models present: linear-correct, linear-overfitted, mlp-correct"):
        build_explanations(cfg, bundle.root, model_ids=["cnn-correct"], force=True)


def test_a_mistyped_radiograph_is_refused_and_the_last_run_stays_current(explained):
    from modelling.stages.explain import UnknownImageError

    cfg, bundle, _ = explained
    before = bundle.stages["explain"]
    with pytest.raises(UnknownImageError, match="img9999999"):
        build_explanations(cfg, bundle.root, images=["img9999999"], force=True)
    assert bundle.stages["explain"] == before
