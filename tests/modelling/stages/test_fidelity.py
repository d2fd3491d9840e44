"""The fidelity stage on the tiny profile: true counterfactuals, reliance by intervention, summary."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest

from data_schema import validate_bundle
from data_schema.tables import INTERVENTION_FEATURES
from modelling.cohort import phantom
from modelling.cohort.counterfactual import disease_removed
from modelling.config import load_config
from modelling.explain.faithfulness import driving_masks, scores
from modelling.stages.artifacts import load_masks, load_render_params
from modelling.stages.fidelity import build_fidelity, compared_moves, move_label, reliance_table, stage_key, summarise
from tests.conftest import copy_bundle


@pytest.fixture(scope="module")
def measured(tiny_explained, tmp_path_factory):
    root = copy_bundle(tiny_explained, tmp_path_factory.mktemp("fidelity") / "b")
    bundle, info = build_fidelity(load_config("tiny"), root)
    return bundle, info


def test_every_gvr_gets_its_counterfactual_and_the_bundle_is_valid(measured):
    bundle, info = measured
    assert validate_bundle(bundle.root) == []
    index = bundle.read_table("gvr_index")
    gvrs = index[index["kind"] == "gvr"]
    truth = bundle.read_table("gvr_truth")
    assert sorted(truth["gvr_id"]) == sorted(gvrs["gvr_id"])
    changes = bundle.read_array("arrays/true_change.npy")
    assert changes.shape[0] == len(truth) and sorted(truth["change_row"]) == list(range(len(truth)))
    for row in truth.itertuples():
        params = load_render_params(bundle, [row.image_id])
        expected, _ = phantom.render(disease_removed(params), changes.shape[-1])
        np.testing.assert_array_equal(bundle.read_image(row.counterfactual_path), expected[0])
        original = bundle.read_image(f"gvr/{row.gvr_id}/original.png").astype(np.float32)
        np.testing.assert_allclose(changes[row.change_row], (original - expected[0]) / 255.0, atol=1e-6)
    # the target counterfactual: the noiseless BNP model, visible terms moved, lies at the GVR's target
    from modelling.cohort.counterfactual import toward_healthy, visible_log_bnp

    phantom_truth = bundle.read_table("phantom_truth").set_index("image_id")
    index = bundle.read_table("gvr_index").set_index("gvr_id")
    targets = bundle.read_array("arrays/target_change.npy")
    assert targets.shape == changes.shape
    for row in truth.itertuples():
        params = load_render_params(bundle, [row.image_id])
        age = phantom_truth.loc[[row.image_id], "term_age"].to_numpy()
        moved = visible_log_bnp(toward_healthy(params, row.target_fraction), age)[0]
        target = np.log(index.loc[row.gvr_id, "target_bnp_ng_l"])
        if row.target_fraction == 0:
            assert visible_log_bnp(params, age)[0] < target  # already below: nothing to move
        elif row.target_reached:
            assert moved < target < moved + 0.05
        rendered, _ = phantom.render(toward_healthy(params, row.target_fraction), targets.shape[-1])
        np.testing.assert_array_equal(bundle.read_image(row.target_counterfactual_path), rendered[0])


def test_reliance_is_the_fall_in_prediction_and_zero_where_nothing_changes(measured):
    bundle, _ = measured
    truth = bundle.read_table("gvr_truth")
    reliance = bundle.read_table("model_reliance")
    assert set(reliance["feature"]) == set(INTERVENTION_FEATURES)
    assert len(reliance) == len(INTERVENTION_FEATURES) * truth["model_id"].nunique()
    params = load_render_params(bundle, truth["image_id"].tolist())
    no_pacemaker = params["pacemaker"] < 0.5
    assert (truth.loc[no_pacemaker, "drop_pacemaker"] == 0).all()
    assert (truth.loc[no_pacemaker, "coef_pacemaker"] == 0).all()
    for row in reliance.itertuples():
        drops = truth.loc[truth["model_id"] == row.model_id, f"drop_{row.feature}"]
        assert row.mean_drop == pytest.approx(drops.mean(), rel=1e-12, abs=1e-12)


def test_the_summary_states_each_model_and_the_regime_difference(measured):
    bundle, info = measured
    summary = json.loads(bundle.verify_file("fidelity/summary.json").read_text())
    assert summary == info
    assert set(summary["models"]) == set(bundle.read_table("gvr_truth")["model_id"])
    assert set(summary["non_disease_difference"]) == {"pacemaker", "body_mass", "projection", "markers", "shortcut"}
    for model_id, check in summary["randomisation"].items():
        assert check["radiographs"] == summary["models"][model_id]["gvrs"] and 0 <= check["moved"] <= check["radiographs"]
    config = load_config("tiny")
    g = config.gvr
    labels = [label for label, *_ in compared_moves(config)]
    assert labels[0] == summary["move"] == move_label(g.move, g.reencode, g.sparse_steps)
    assert {(how, reencode) for _, how, reencode, _ in compared_moves(config)} == {
        (g.move, g.reencode), ("gradient", False), ("pattern", False), (g.move, not g.reencode), ("metric", True)}
    assert len(labels) == len(set(labels))
    index = bundle.read_table("gvr_index")
    truth = bundle.read_table("phantom_truth").set_index("image_id")
    for model_id, by_move in summary["moves_compared"].items():
        assert set(by_move) == set(labels)  # the JSON keeps its keys sorted
        # the bundle's own move, recomputed, is judged as its GVRs are
        own = by_move[summary["move"]]
        assert own["valid"] == pytest.approx(summary["models"][model_id]["valid"], abs=1e-9)
        assert own["median_pixel_r"] == pytest.approx(summary["models"][model_id]["median_pixel_r"], abs=1e-6)
        assert own["median_model_change_r"] == pytest.approx(summary["models"][model_id]["median_model_change_r"],
                                                             abs=1e-6)
        # and its relevance mass is the one the baselines stage gives the stored GVRs (Arras et al.'s, as Quantus
        # names it): every move's is a share, where the radiographs have a driving mask
        gvrs = index[(index["kind"] == "gvr") & (index["model_id"] == model_id)]
        masks = load_masks(bundle, truth.reset_index(), gvrs["image_id"])
        stored = [scores(bundle.read_image(g.diseased_path).astype(np.float32)
                         - bundle.read_image(g.healthy_path).astype(np.float32),
                         masks[g.image_id], driving_masks(truth.loc[g.image_id]))["relevance_mass"]
                  for g in gvrs.itertuples()]
        assert np.isfinite(stored).any()
        assert own["relevance_mass"] == pytest.approx(np.nanmean(stored), abs=1e-9)
        assert all(0 <= v["relevance_mass"] <= 1 for v in by_move.values())


def test_the_model_change_weights_each_feature_map_by_its_drop():
    from modelling.stages.fidelity import model_change

    maps = np.zeros((1, len(INTERVENTION_FEATURES), 2, 2), np.float32)
    maps[0, 0, 0, 0], maps[0, 6, 1, 1] = 1.0, 1.0  # heart at (0, 0), markers at (1, 1)
    drops = {f: np.zeros(1) for f in INTERVENTION_FEATURES} | {"heart": np.array([0.8]), "markers": np.array([-0.2])}
    np.testing.assert_allclose(model_change(maps, drops)[0], [[0.8, 0.0], [0.0, -0.2]])


def _constructed(coefs_correct, coefs_overfitted, drops_correct, drops_overfitted):
    rows = []
    for regime, coefs, drops in (("correct", coefs_correct, drops_correct),
                                 ("overfitted", coefs_overfitted, drops_overfitted)):
        for k in range(len(coefs)):
            rows.append({"gvr_id": f"g{regime}{k}", "image_id": f"i{k}", "model_id": f"mlp-{regime}",
                         "regime": regime, "pixel_r": 0.5, "model_change_r": 0.5, "pixel_r_target": 0.5,
                         "target_fraction": 0.5, "target_reached": True, "valid": True, "cardiomegaly": True, "effusion": False,
                         "large_effusion": k % 4 == 0, "ctr_diseased": 0.6, "ctr_healthy": 0.5 if k % 2 == 0 else 0.7,
                         "effusion_height_diseased": 0.8, "effusion_height_healthy": 0.9,
                         **{f"coef_{f}": coefs[k][j] for j, f in enumerate(INTERVENTION_FEATURES)},
                         **{f"drop_{f}": drops[k][j] for j, f in enumerate(INTERVENTION_FEATURES)}})
    return pd.DataFrame(rows)


def test_rank_agreement_and_the_regime_test_on_constructed_gvrs():
    rng = np.random.default_rng(0)
    relied = np.array([0.7, 0.6, 0.2, 0.3, 0.1, 0.15, 0.05, 0.02])
    # correct GVRs show what the model relies on; the overfitted ones show markers it does not rely on
    correct = relied + rng.normal(0, 0.01, (20, 8))
    overfitted = np.tile([0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.9, 0.1], (20, 1)) + rng.normal(0, 0.01, (20, 8))
    per_gvr = _constructed(correct, overfitted, np.tile(relied, (20, 1)), np.tile(relied, (20, 1)))
    summary = summarise(per_gvr, reliance_table(per_gvr))
    assert summary["models"]["mlp-correct"]["rank_agreement"] == pytest.approx(1.0)
    assert summary["models"]["mlp-overfitted"]["rank_agreement"] < 0.5
    # GVRs that show what the model relies on whichever radiographs are drawn: the interval is the point
    assert summary["models"]["mlp-correct"]["rank_agreement_ci"] == pytest.approx((1.0, 1.0))
    low, high = summary["models"]["mlp-overfitted"]["rank_agreement_ci"]
    assert low <= summary["models"]["mlp-overfitted"]["rank_agreement"] <= high < 0.7
    assert summary["models"]["mlp-correct"]["ctr_lower"] == 0.5
    # without a large effusion (k not a multiple of 4): lower where k is even, 5 of those 15
    assert (summary["models"]["mlp-correct"]["ctr_lower_small_effusion"],
            summary["models"]["mlp-correct"]["ctr_small_effusion_measured"]) == (pytest.approx(1 / 3), 15)
    # every overfitted GVR above every correct one, 20 a model without ties: R's wilcox.test is exact there,
    # P = 2 / choose(40, 20) (scipy's default took the normal approximation, about 7e-8)
    assert summary["non_disease_difference"]["markers"]["p"] == pytest.approx(2 / math.comb(40, 20), rel=1e-9)
    assert summary["non_disease_difference"]["markers"]["gvr_coefficient_overfitted"] > 0.8


def test_a_real_data_bundle_has_no_ground_truth_and_says_so(tiny_explained, tmp_path):
    root = copy_bundle(tiny_explained, tmp_path / "b")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"] = {k: v for k, v in manifest["files"].items() if k != "tables/phantom_render.parquet"}
    (root / "manifest.json").write_text(json.dumps(manifest))
    bundle, info = build_fidelity(load_config("tiny"), root)
    assert info == {"gvrs": 0}
    assert json.loads(bundle.verify_file("fidelity/summary.json").read_text())["reason"] == "real data: no ground truth"
    assert "tables/gvr_truth.parquet" not in bundle.files


def test_the_targets_are_judged_from_the_summary():
    from analysis.fidelity_targets import fidelity_checks

    summary = {"models": {
        "mlp-correct": {"rank_agreement": 0.86, "median_pixel_r": 0.29, "ctr_lower": 0.95, "effusion_cleared": 0.5,
                        "ctr_lower_small_effusion": 0.64, "ctr_small_effusion_measured": 11},
        "mlp-overfitted": {"rank_agreement": None, "median_pixel_r": -0.02, "ctr_lower": 0.38}}}
    checks = fidelity_checks(summary)
    assert checks["mlp-correct: GVRs rank features as reliance does, Spearman >= 0.7"] == {"value": 0.86, "met": True}
    assert checks["mlp-correct: median pixel r with the true change >= 0.5"]["met"] is False
    assert checks["mlp-correct: measured CTR lower in >= 90% with cardiomegaly"]["met"] is True
    assert checks["mlp-overfitted: GVRs rank features as reliance does, Spearman >= 0.7"]["met"] is False
    assert checks["mlp-correct: measured effusion smaller in >= 90% with an effusion"] == {"value": 0.5, "met": False}
    assert checks["mlp-correct: measured CTR lower in >= 90% with cardiomegaly and no large effusion (of 11)"] == {
        "value": 0.64, "met": False}
    assert len(checks) == 6  # the pixel r, CTR and effusion targets are the correct model's only
    # nothing to measure on (no GVR radiograph in the group) is neither met nor missed; a rank agreement that
    # cannot be computed where there are GVRs (they change nothing) is missed
    summary["models"]["mlp-correct"].update(ctr_lower_small_effusion=None, ctr_small_effusion_measured=0,
                                            effusion_cleared=None, effusion_measured=0)
    summary["models"]["mlp-overfitted"]["gvrs"] = 50
    checks = fidelity_checks(summary)
    assert checks["mlp-correct: measured CTR lower in >= 90% with cardiomegaly and no large effusion (of 0)"] == {
        "value": None, "met": False, "measurable": False}
    assert checks["mlp-correct: measured effusion smaller in >= 90% with an effusion"]["measurable"] is False
    assert checks["mlp-overfitted: GVRs rank features as reliance does, Spearman >= 0.7"] == {"value": None, "met": False}
    summary["models"]["mlp-overfitted"]["gvrs"] = 0
    assert fidelity_checks(summary)["mlp-overfitted: GVRs rank features as reliance does, Spearman >= 0.7"] == {
        "value": None, "met": False, "measurable": False}
    assert fidelity_checks({"models": {}, "reason": "real data: no ground truth"}) == {}
    summary["non_disease_difference"] = {
        "body_mass": {"reliance_correct": 0.62, "reliance_overfitted": 1.59, "gvr_coefficient_correct": 0.1,
                      "gvr_coefficient_overfitted": 0.2, "p": 0.001},
        "projection": {"reliance_correct": 0.25, "reliance_overfitted": 0.58, "gvr_coefficient_correct": 0.185,
                       "gvr_coefficient_overfitted": 0.085, "p": 0.04},
        "shortcut": {"reliance_correct": 0.0, "reliance_overfitted": 0.0, "gvr_coefficient_correct": 0.0,
                     "gvr_coefficient_overfitted": 0.0, "p": None}}
    regimes = fidelity_checks(summary)["the two models' GVRs differ as their reliance does, P < 0.01, on each "
                                       "feature whose reliance differs (body_mass, projection); share of them"]
    assert regimes == {"value": 0.5, "met": False}
    del summary["non_disease_difference"]["body_mass"], summary["non_disease_difference"]["projection"]
    nothing = fidelity_checks(summary)["the two models' GVRs differ as their reliance does, P < 0.01, on each "
                                       "feature whose reliance differs (none); share of them"]
    assert nothing == {"value": None, "met": False, "measurable": False}  # no reliance differs: nothing to compare


def test_the_relevance_mass_target_compares_the_gvrs_with_the_best_baseline():
    from analysis.fidelity_targets import baseline_checks

    audit = {"mlp-correct": {"by_method": {"gvr": {"relevance_mass": 0.511}, "occlusion": {"relevance_mass": 0.321},
                                           "integrated_gradients": {"relevance_mass": 0.484}}},
             "mlp-overfitted": {"by_method": {"gvr": {"relevance_mass": 0.362},
                                              "integrated_gradients": {"relevance_mass": 0.399},
                                              "lime": {"relevance_mass": None}}},
             "unsegmented": {"by_method": {"gvr": {"relevance_mass": None}}},  # no masks: no baseline scored
             "no-gvrs": {"gvrs": 0}}
    checks = baseline_checks(audit)
    correct = checks["mlp-correct: GVR relevance mass accuracy minus the best baseline's (integrated_gradients, "
                     "0.484) >= 0"]
    overfitted = checks["mlp-overfitted: GVR relevance mass accuracy minus the best baseline's "
                        "(integrated_gradients, 0.399) >= 0"]
    assert correct["met"] and correct["value"] == pytest.approx(0.511 - 0.484)
    assert not overfitted["met"] and overfitted["value"] == pytest.approx(0.362 - 0.399)
    assert len(checks) == 2
    audit["mlp-correct"]["by_method"]["gvr"]["relevance_mass"] = None  # GVRs that score nothing miss the target
    assert baseline_checks(audit)[next(iter(checks))] == {"value": None, "met": False}


def test_a_gvr_is_valid_when_the_model_reads_its_stored_reconstructions_on_either_side_of_the_target(measured):
    """valid is the model's own decision on the PNGs a reader sees: each encoded again and predicted."""
    import torch

    from modelling.nets.training import encode
    from modelling.stages.artifacts import load_encoder, load_predictor

    bundle, _ = measured
    truth = bundle.read_table("gvr_truth").set_index("gvr_id")
    index = bundle.read_table("gvr_index").set_index("gvr_id").loc[truth.index]
    encoder = load_encoder(bundle)
    for model_id, rows in index.groupby("model_id"):
        predictor = load_predictor(bundle, model_id)
        with torch.no_grad():
            before, after = (predictor(torch.from_numpy(encode(encoder, np.stack([bundle.read_image(p) for p in rows[c]]))))
                             .numpy() for c in ("diseased_path", "healthy_path"))
        target = np.log(rows["target_bnp_ng_l"].to_numpy(float))
        expected = (before >= target) & (after < target)
        assert truth.loc[rows.index, "valid"].tolist() == expected.tolist()


def test_the_stage_is_redone_when_the_compared_metric_moves_ridge_changes():
    """Every bundle's fidelity stage moves its GVRs by the metric too, so a new ridge is a new result even
    where the bundle's own move is the pattern and the explain stage's key leaves the ridge out."""
    default = load_config("default")
    ridged = dataclasses.replace(default, gvr=dataclasses.replace(default.gvr, metric_ridge=0.9))
    assert stage_key(ridged) != stage_key(default)
    assert stage_key(dataclasses.replace(default, gvr=dataclasses.replace(default.gvr, movie_frames=3))) != \
        stage_key(default)


def test_the_compared_moves_are_the_bundles_own_first_then_the_papers_and_each_once():
    assert [label for label, *_ in compared_moves(load_config("default"))] == [
        "pattern, re-encoded", "gradient", "pattern", "metric, re-encoded"]
    assert [label for label, *_ in compared_moves(load_config("paper"))] == [
        "gradient", "pattern", "gradient, re-encoded", "metric, re-encoded"]
    # shrinking the change is for the bundle's own re-encoded move only (a move scored on the code would
    # find changes the decoder does not draw), shown beside the same move unshrunk
    default = load_config("default")
    sparse = dataclasses.replace(default, gvr=dataclasses.replace(default.gvr, sparse_steps=5))
    assert [(label, steps) for label, _, _, steps in compared_moves(sparse)] == [
        ("pattern, re-encoded, sparse", 5), ("pattern, re-encoded", 0), ("gradient", 0), ("pattern", 0),
        ("metric, re-encoded", 0)]
    # a bundle whose own move is the metric's is not scored on the code as well: the config refuses that pairing
    metric = dataclasses.replace(default, gvr=dataclasses.replace(default.gvr, move="metric"))
    assert [label for label, *_ in compared_moves(metric)] == ["metric, re-encoded", "gradient", "pattern"]


def test_the_measures_ceiling_is_taken_on_the_phantoms_own_counterfactuals(measured):
    from modelling.cohort import ctr, effusion
    from modelling.cohort.counterfactual import render_intervened
    from modelling.explain.fidelity import lower_share

    bundle, info = measured
    truth = bundle.read_table("gvr_truth")
    facts = bundle.read_table("phantom_truth").set_index("image_id")
    assert set(info["measured_on_truth"]) == set(truth["model_id"])
    for model_id, g in truth.groupby("model_id"):
        ceiling = info["measured_on_truth"][model_id]
        original = np.stack([bundle.read_image(f"gvr/{i}/original.png") for i in g["gvr_id"]])
        healthy = np.stack([bundle.read_image(p) for p in g["counterfactual_path"]])
        params = load_render_params(bundle, g["image_id"].tolist())
        heart = render_intervened(params, "heart", original.shape[-1])
        dry = render_intervened(params, "effusion", original.shape[-1])
        cardiomegaly = facts.loc[g["image_id"], "cardiothoracic_ratio"].to_numpy() > 0.5
        effused = (facts.loc[g["image_id"], ["effusion_right", "effusion_left"]].sum(axis=1) > 0).to_numpy()
        before = ctr.measure(original)["ctr"].to_numpy()
        assert (ceiling["ctr_lower"], ceiling["ctr_measured_with_cardiomegaly"]) == lower_share(
            before, ctr.measure(healthy)["ctr"].to_numpy(), cardiomegaly)
        assert (ceiling["ctr_lower_heart_only"], ceiling["ctr_heart_only_measured"]) == lower_share(
            before, ctr.measure(heart)["ctr"].to_numpy(), cardiomegaly)
        assert (ceiling["ctr_lower_effusion_only"], ceiling["ctr_effusion_only_measured"]) == lower_share(
            before, ctr.measure(dry)["ctr"].to_numpy(), cardiomegaly & effused)
        assert ceiling["effusion_measured"] <= int(effused.sum())
        # where no large effusion can hide the heart border, the same comparison on its own
        large = effusion.large(*(facts.loc[g["image_id"], side].to_numpy() for side in ("effusion_right", "effusion_left")))
        assert g["large_effusion"].tolist() == large.tolist()
        assert (ceiling["ctr_lower_small_effusion"], ceiling["ctr_small_effusion_measured"]) == lower_share(
            before, ctr.measure(healthy)["ctr"].to_numpy(), cardiomegaly & ~large)
        own = info["models"][model_id]
        assert (own["ctr_lower_small_effusion"], own["ctr_small_effusion_measured"]) == lower_share(
            g["ctr_diseased"].to_numpy(float), g["ctr_healthy"].to_numpy(float),
            g["cardiomegaly"].to_numpy() & ~large)


def test_positioning_is_measured_beside_the_interventions(measured):
    import torch

    from modelling.cohort.counterfactual import positioned_neutrally
    from modelling.nets.training import encode
    from modelling.stages.artifacts import load_encoder, load_predictor

    bundle, info = measured
    truth = bundle.read_table("gvr_truth")
    encoder = load_encoder(bundle)
    assert set(info["positioning"]) == set(truth["model_id"])
    for model_id, p in info["positioning"].items():
        ids = truth.loc[truth["model_id"] == model_id].sort_values("gvr_id")["image_id"].tolist()
        params = load_render_params(bundle, ids)
        size = bundle.read_image(truth["counterfactual_path"].iloc[0]).shape[-1]
        predictor = load_predictor(bundle, model_id)
        with torch.no_grad():
            def predict(images):
                return predictor(torch.from_numpy(encode(encoder, images))).numpy()
            fall = predict(phantom.render(params, size)[0]) - predict(phantom.render(positioned_neutrally(params), size)[0])
        assert p["radiographs"] == len(ids)
        assert p["mean_fall"] == pytest.approx(fall.mean(), abs=1e-5)
        assert p["mean_absolute_fall"] == pytest.approx(np.abs(fall).mean(), abs=1e-5)
        assert p["median_r2_with_positioning"] >= p["median_r2_interventions"] - 1e-9  # one more map never fits worse
        assert np.isfinite(p["gvr_median_coefficient"])


def test_the_command_prints_each_model_with_its_positioning(measured):
    from typer.testing import CliRunner

    from modelling.cli.app import app

    bundle, info = measured
    result = CliRunner().invoke(app, ["fidelity", "--bundle", str(bundle.root), "--config", "tiny"])
    assert result.exit_code == 0, result.output
    for model_id, p in info["positioning"].items():
        line = next(x for x in result.output.splitlines() if x.startswith(f"{model_id}: positioned neutrally"))
        assert f"moves {p['mean_absolute_fall']:z.2f} log BNP on average (mean fall {p['mean_fall']:+z.2f})" in line
    assert "CTR lower in >= 90% with cardiomegaly" in result.output
    for model_id, m in info["models"].items():  # an interval in words, and nothing measured said so, not "- of 0"
        line = next(x for x in result.output.splitlines() if x.startswith(f"{model_id}: "))
        assert f"(IQR {m['q1_pixel_r']:z.2f} to {m['q3_pixel_r']:z.2f})" in line
        assert " of 0 " not in line and "lower in - of" not in line
        if not m["ctr_measured_with_cardiomegaly"]:
            assert "lower in - (none with cardiomegaly measured)" in line
        else:
            assert f"of the {m['ctr_measured_with_cardiomegaly']} with cardiomegaly" in line
    from analysis.fidelity_targets import fidelity_checks

    for name, target in fidelity_checks(info).items():  # nothing to measure on is neither met nor missed
        assert (f"[not measurable] {name}" in result.output) == (not target.get("measurable", True)), name
        if target.get("measurable", True) and target["value"] is None:  # something to measure, nothing shown
            assert f"[NOT met] {name}: undefined" in result.output


def test_a_bundle_measured_by_an_older_stage_is_measured_again(measured, tmp_path, monkeypatch):
    import modelling.stages.fidelity as stage

    bundle, _ = measured
    root = copy_bundle(bundle.root, tmp_path / "b")
    _, current = build_fidelity(load_config("tiny"), root)
    assert current is None  # up to date: skipped
    monkeypatch.setattr(stage, "MEASURES_VERSION", stage.MEASURES_VERSION + 1)
    _, redone = build_fidelity(load_config("tiny"), root)
    assert redone is not None and set(redone["positioning"]) == set(redone["models"])


def test_each_features_representation_and_cost_are_measured_on_the_gvr_radiographs(measured):
    from data_schema.tables import INTERVENTION_FEATURES
    from modelling.cohort.counterfactual import render_intervened
    from modelling.explain.faithfulness import pixel_correlation
    from modelling.explain.fidelity import rank_agreement
    from modelling.nets.training import decode, encode
    from modelling.stages.artifacts import load_decoder, load_encoder

    bundle, info = measured
    reliance = bundle.read_table("model_reliance").set_index(["model_id", "feature"])
    truth = bundle.read_table("gvr_truth")
    assert set(info["representation"]) == set(truth["model_id"])
    for model_id, rep in info["representation"].items():
        features = rep["features"]
        assert features and set(features) <= set(INTERVENTION_FEATURES) and "shortcut" not in features
        for f, row in features.items():
            assert row["gvr_coefficient"] == pytest.approx(reliance.loc[(model_id, f), "gvr_mean_coefficient"])
            assert row["reliance"] == pytest.approx(reliance.loc[(model_id, f), "mean_drop"])
            assert row["squared_code_length"] > 0 and set(row["shown"]) == set(features)
        ok = [f for f in features if features[f]["squared_code_length"] > 0]
        assert rep["rank_agreement_per_cost"] == rank_agreement(
            np.array([features[f]["gvr_coefficient"] for f in ok]),
            np.array([features[f]["reliance"] / features[f]["squared_code_length"] for f in ok]))
        # the heart as the encoder and decoder show it, measured again here
        ids = truth.loc[truth["model_id"] == model_id].sort_values("gvr_id")["image_id"].tolist()
        params = load_render_params(bundle, ids)
        size = bundle.read_image(truth["counterfactual_path"].iloc[0]).shape[-1]
        original, changed = phantom.render(params, size)[0], render_intervened(params, "heart", size)
        has = (original != changed).any(axis=(1, 2))
        encoder, decoder = load_encoder(bundle), load_decoder(bundle)
        shown = (decode(decoder, encode(encoder, original[has])).astype(np.float32)
                 - decode(decoder, encode(encoder, changed[has])).astype(np.float32)) / 255.0
        true = (original[has].astype(np.float32) - changed[has].astype(np.float32)) / 255.0
        r = pixel_correlation(shown, true)
        assert features["heart"]["radiographs"] == has.sum()
        assert features["heart"]["shown_r"] == pytest.approx(np.median(r[np.isfinite(r)]), abs=1e-6)


def test_a_lossless_representation_shows_each_feature_as_itself_and_costs_rank_the_removals():
    from data_schema.tables import INTERVENTION_FEATURES
    from modelling.stages.fidelity import representation_evidence

    rng = np.random.default_rng(0)
    n, k, d = 6, len(INTERVENTION_FEATURES), 4
    true = rng.normal(size=(n, k, 8, 8))
    true[:, INTERVENTION_FEATURES.index("shortcut")] = 0.0  # no radiograph has it
    moved = np.zeros((n, k, d))
    cost = {f: 1.0 + j for j, f in enumerate(INTERVENTION_FEATURES)}
    for j, f in enumerate(INTERVENTION_FEATURES):
        moved[:, j, 0] = np.sqrt(cost[f])  # identity covariance: squared length = cost
    drops = {f: np.full(n, 1.0) for f in INTERVENTION_FEATURES}
    # a GVR that removes each feature in proportion to its fall over its cost, as steepest descent would
    coef = np.array([1.0 / cost[f] for f in INTERVENTION_FEATURES])
    drops["heart"] = np.full(n, 3.0)
    coef[0] = 3.0 / cost["heart"]
    change = np.einsum("k,nkhw->nhw", coef, true)
    rep = representation_evidence(true, true.copy(), moved, np.eye(d), drops, change)
    features = rep["features"]
    assert "shortcut" not in features
    for f, row in features.items():
        assert row["shown_r"] == pytest.approx(1.0)
        assert all(v == pytest.approx(1.0 if g == f else 0.0, abs=1e-9) for g, v in row["shown"].items())
        assert row["squared_code_length"] == pytest.approx(cost[f], rel=1e-4)
        assert row["gvr_coefficient"] == pytest.approx(row["gvr_coefficient_on_shown"])
    assert rep["rank_agreement_per_cost"] == pytest.approx(1.0)
    assert rep["rank_agreement_on_shown"] < 1.0  # against the fall alone (equal but for the heart) the ranks differ
