"""The training stage on the tiny profile: checkpoints, latents and predictions in a valid bundle."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from data_schema import Bundle, validate_bundle
from modelling.cohort import ctr
from modelling.config import load_config
from modelling.nets import checkpoints
from modelling.nets.networks import Generator
from modelling.nets.training import decode, encode
from modelling.stages import train as train_bundle
from modelling.stages.train import build_training
from tests.conftest import copy_bundle


@pytest.fixture(scope="module")
def trained(tiny_trained, tmp_path_factory):
    from data_schema import Bundle

    return load_config("tiny"), Bundle(copy_bundle(tiny_trained, tmp_path_factory.mktemp("trained") / "b"))


def test_bundle_is_valid_with_every_output(trained):
    cfg, bundle = trained
    assert validate_bundle(bundle.root) == []
    for path in ("checkpoints/decoder.pt", "checkpoints/encoder.pt", "arrays/latents.npy",
                 "train/samples.png", "train/reconstructions.png", "train/summary.json",
                 *(f"checkpoints/{p}-{r}.pt" for p in ("linear", "mlp") for r in ("correct", "overfitted"))):
        bundle.verify_file(path)


def test_latents_cover_every_radiograph(trained):
    cfg, bundle = trained
    radiographs = bundle.read_table("radiographs")
    index = bundle.read_table("latents_index")
    latents = bundle.read_array("arrays/latents.npy")
    assert latents.shape == (len(radiographs), cfg.decoder.latent_dim)
    assert index["image_id"].tolist() == radiographs["image_id"].tolist()
    assert index["row"].tolist() == list(range(len(radiographs)))


def test_predictions_follow_the_regimes(trained):
    _, bundle = trained
    pred = bundle.read_table("predictions")
    splits = bundle.read_table("splits").set_index("image_id")["set"]
    correct = pred[pred["regime"] == "correct"]
    # correct: train rows are the train split, test rows the test split
    assert (correct["role"].to_numpy() == splits.loc[correct["image_id"]].to_numpy()).all()
    over = pred[pred["regime"] == "overfitted"]
    assert set(over["role"]) == {"train", "validation"}
    labelled = set(splits[splits != "unlabelled"].index)
    for model_id, rows in pred.groupby("model_id"):
        assert set(rows["image_id"]) == labelled, model_id
    pairing = bundle.read_table("pairing").set_index("image_id")["bnp_ng_l"]
    np.testing.assert_allclose(pred["bnp_true_ng_l"], pairing.loc[pred["image_id"]].to_numpy())


def test_checkpoint_hashes_in_predictions_match_the_files(trained):
    from data_schema.io import sha256_file

    _, bundle = trained
    pred = bundle.read_table("predictions")
    for model_id, sha in pred.groupby("model_id")["checkpoint_sha256"].first().items():
        assert sha256_file(bundle.path(f"checkpoints/{model_id}.pt")) == sha


def test_checkpoints_load_safely_and_rebuild_the_decoder(trained):
    cfg, bundle = trained
    state = checkpoints.load(bundle.path("checkpoints/decoder.pt"), kind="decoder")
    assert state["seed"] == cfg.seed and state["step"] == cfg.decoder.iterations and state["git_commit"]
    g = Generator(cfg.decoder.latent_dim, cfg.decoder.feature_maps, cfg.image_size, cfg.decoder.upsample)
    g.load_state_dict(state["models"]["generator"])
    assert g(torch.zeros(1, cfg.decoder.latent_dim)).shape == (1, 1, cfg.image_size, cfg.image_size)
    assert state["config"]["decoder"].get("upsample", "transpose") == cfg.decoder.upsample


def test_a_decoder_stored_before_upsample_existed_loads_with_transposed_convolutions(tmp_path):
    import dataclasses

    from data_schema import Bundle
    from modelling.nets.training import decoder_config
    from modelling.stages.artifacts import load_decoder

    cfg = load_config("tiny")
    def layout(upsample):
        return dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, upsample=upsample))

    stored = decoder_config(layout("transpose"))
    # the layout that was the only one keeps the key it had, so bundles trained then stay current
    assert "upsample" not in stored["decoder"] and decoder_config(layout("resize"))["decoder"]["upsample"] == "resize"
    g = Generator(cfg.decoder.latent_dim, cfg.decoder.feature_maps, cfg.image_size)
    bundle = Bundle(tmp_path)
    with bundle.stage("train", config={}) as st:
        st.write_bytes("checkpoints/decoder.pt", checkpoints.to_bytes(
            checkpoints.payload("decoder", models={"generator": g}, config=stored, seed=cfg.seed, step=1)))
    loaded = load_decoder(bundle)
    z = torch.randn(2, cfg.decoder.latent_dim)
    g.eval()
    torch.testing.assert_close(loaded(z), g(z), rtol=0, atol=0)
    # and a resize-convolution decoder loads as one
    g = Generator(cfg.decoder.latent_dim, cfg.decoder.feature_maps, cfg.image_size, "resize")
    with bundle.stage("train", config={}) as st:
        st.write_bytes("checkpoints/decoder.pt", checkpoints.to_bytes(checkpoints.payload(
            "decoder", models={"generator": g}, config=decoder_config(layout("resize")), seed=cfg.seed, step=1)))
    assert any(isinstance(m, torch.nn.Upsample) for m in load_decoder(bundle).modules())


def test_development_checks_are_judged_on_the_summary_not_written_with_it(trained):
    from modelling.stages.train import development_checks

    _, bundle = trained
    summary = json.loads(bundle.verify_file("train/summary.json").read_text())
    assert "targets" not in summary
    checks = development_checks(summary)
    assert set(checks) >= {"mlp correct: test AUC >= 0.80", "mlp overfitted: own training data AUC >= 0.97"}
    value = summary["auc"]["mlp-correct/test"]["auc"]
    assert checks["mlp correct: test AUC >= 0.80"] == {"value": value, "met": value is not None and value >= 0.80,
                                                       "measurable": value is not None}
    assert summary["decoder"]["iterations"] == load_config("tiny").decoder.iterations
    assert summary["reconstruction"]["held_out_radiographs"] > 0
    kept = summary["disease_kept"]["median_r"]
    name = "decoder keeps the disease: median r of decoded vs true change >= 0.80"
    assert checks[name] == {"value": kept, "met": kept >= 0.8, "measurable": True}
    assert name not in development_checks({**summary, "disease_kept": None})  # real data: not judged
    # a test split without two cases and two controls has no AUC: its targets are neither met nor missed, and the
    # withheld quarter is not compared with an AUC that does not exist
    undefined = {**summary, "auc": {**summary["auc"], "mlp-correct/test": {**summary["auc"]["mlp-correct/test"],
                                                                          "auc": None}}}
    for target in ("mlp correct: test AUC >= 0.80", "mlp overfitted: withheld quarter AUC < correct test AUC"):
        assert development_checks(undefined)[target] == {"value": None, "met": False, "measurable": False}, target
    ratio = summary["disease_kept"]["cardiothoracic_ratio"]
    assert 0 <= ratio["measured_on_both"] <= summary["disease_kept"]["radiographs"]
    for side in ("radiographs", "reconstructions"):
        share = ratio["lower_without_disease"][side]["share"]
        assert share is None or 0 <= share <= 1
        fluid = summary["disease_kept"]["effusion"]["larger_without_effusion"][side]
        assert fluid["share"] is None or 0 <= fluid["share"] <= 1


def test_samples_are_compared_with_real_radiographs_on_the_cardiothoracic_ratio(trained):
    _, bundle = trained
    summary = json.loads(bundle.verify_file("train/summary.json").read_text())
    ratio = summary["samples"]["cardiothoracic_ratio"]
    table = pd.read_csv(bundle.verify_file("train/ctr_real_vs_generated.csv"), keep_default_na=False,
                        na_values={"ctr": [""]})
    for side in ("real", "generated"):
        rows = table[table["side"] == side]
        assert ratio[side]["n"] == len(rows) > 0
        assert ratio[side]["measured"] == rows["ctr"].notna().sum()
        assert (rows["reason"][rows["ctr"].isna()] != "").all()
    real = table.loc[(table["side"] == "real") & table["ctr"].notna(), "ctr"]
    assert ratio["real"]["median"] == pytest.approx(real.median())


def test_a_current_training_is_not_redone(trained, monkeypatch):
    cfg, bundle = trained
    monkeypatch.setattr(train_bundle, "write_training", lambda *a, **k: pytest.fail("retrained"))
    build_training(cfg, bundle.root)


def test_a_decoder_of_few_radiographs_is_said_aloud_and_the_bundle_left_as_it_was(trained, tmp_path, monkeypatch,
                                                                                     caplog):
    import logging

    from tests.conftest import copy_bundle

    cfg, source = trained
    bundle = Bundle(copy_bundle(source.root, tmp_path / "b"))
    before = bundle.record("train/summary.json").sha256

    def stop(*args, **kwargs):
        raise RuntimeError("stopped before training")

    monkeypatch.setattr(train_bundle, "_networks", stop)
    with caplog.at_level(logging.WARNING), pytest.raises(RuntimeError, match="stopped before training"):
        build_training(cfg, bundle.root, force=True)
    from modelling.cohort.pairing import generative_training_mask

    n = int(generative_training_mask(source.read_table("splits")).sum())
    assert (f"the decoder and encoder learn from {n} unlabelled radiograph(s) only (of no test patient); with fewer "
            f"than {train_bundle.FEW_GENERATIVE}") in caplog.text
    assert Bundle(bundle.root).record("train/summary.json").sha256 == before


def test_a_bundle_without_an_unlabelled_set_is_refused(trained, tmp_path):
    cfg, source = trained
    bundle = Bundle(tmp_path)
    with bundle.stage("cohort", config={}) as st:
        for name in ("radiographs", "pairing"):
            st.write_table(name, source.read_table(name))
        splits = source.read_table("splits")
        st.write_table("splits", splits[splits["set"] != "unlabelled"])
        radiographs = source.read_table("radiographs")
        for path in radiographs["image_path"].unique():
            st.write_array(path, source.read_array(path))
        st.write_bytes("cohort/summary.json", b"{}")
    with pytest.raises(ValueError, match="no unlabelled radiographs"):
        build_training(cfg, tmp_path)


def test_a_config_of_another_image_size_is_refused_before_the_stage_opens(trained, tmp_path):
    import dataclasses

    from modelling.config import ConfigError

    cfg, source = trained
    root = copy_bundle(source.root, tmp_path / "copy")
    manifest = (root / "manifest.json").read_bytes()
    bigger = dataclasses.replace(cfg, image_size=2 * cfg.image_size)
    with pytest.raises(ConfigError, match=rf"phantom radiographs drawn at {cfg.image_size} px, and this config says "
                                          rf"{2 * cfg.image_size} px: .*`gvr reproduce {root} --config \.\.\.`"):
        build_training(bigger, root, force=True)
    assert (root / "manifest.json").read_bytes() == manifest


def test_training_needs_a_cohort(tmp_path):
    from data_schema import Bundle, BundleNotFoundError

    with pytest.raises(BundleNotFoundError, match=f"no study bundle at {tmp_path}"):
        build_training(load_config("tiny"), tmp_path)
    with Bundle(tmp_path).stage("config", config={}):
        pass
    with pytest.raises(ValueError, match="no cohort yet"):
        build_training(load_config("tiny"), tmp_path)


def test_the_summary_says_whether_the_decoder_keeps_the_disease(trained):
    _, bundle = trained
    kept = json.loads(bundle.verify_file("train/summary.json").read_text())["disease_kept"]
    assert kept["radiographs"] > 0 and kept["undefined"] < kept["radiographs"]
    assert -1 <= kept["q1_r"] <= kept["median_r"] <= kept["q3_r"] <= 1


def test_a_perfect_autoencoder_keeps_all_of_the_disease(trained, monkeypatch):
    """With encode and decode the identity, the decoded change is the true change: r = 1 for every radiograph."""
    from modelling.stages import train as stage

    cfg, bundle = trained
    monkeypatch.setattr(stage, "encode", lambda encoder, images: images)
    monkeypatch.setattr(stage, "decode", lambda generator, latents: latents)
    ids = bundle.read_table("splits").query("set != 'unlabelled'")["image_id"]
    kept = stage._disease_kept(bundle, cfg, None, None, ids)
    assert kept["radiographs"] > 0 and kept["undefined"] == 0
    assert kept["median_r"] == pytest.approx(1.0) and kept["q1_r"] == pytest.approx(1.0)


def test_a_perfect_reconstruction_keeps_the_measured_ratio_and_its_fall():
    from modelling.cohort import phantom
    from modelling.cohort.counterfactual import true_change
    from modelling.cohort.synthetic import synthesize
    from modelling.stages.train import _ctr_kept

    cfg = load_config("tiny")
    cohort = synthesize(cfg.cohort, seed=cfg.seed)
    params = {k: cohort.render[k].to_numpy()[:40] for k in phantom.PARAMETERS}
    truth = true_change(params, 64)
    same = _ctr_kept(truth.original, truth.counterfactual, truth.original, truth.counterfactual,
                     params["cardiothoracic_ratio"])
    assert same["median_difference"] == 0 and same["correlation"] == pytest.approx(1.0)
    shares = same["lower_without_disease"]
    assert shares["radiographs"] == shares["reconstructions"] and shares["radiographs"]["measured"] > 5
    blind = _ctr_kept(truth.original, truth.counterfactual, truth.original, truth.original,
                      params["cardiothoracic_ratio"])  # a "decoder" that loses the disease
    assert blind["lower_without_disease"]["reconstructions"]["share"] == 0.0


def test_a_perfect_reconstruction_keeps_the_measured_effusion_and_its_removal():
    from modelling.cohort import phantom
    from modelling.cohort.counterfactual import true_change
    from modelling.cohort.synthetic import synthesize
    from modelling.stages.train import _effusion_kept

    cfg = load_config("default")
    cohort = synthesize(cfg.cohort, seed=cfg.seed)
    params = {k: cohort.render[k].to_numpy()[:120] for k in phantom.PARAMETERS}
    truth = true_change(params, 64)
    same = _effusion_kept(truth.original, truth.counterfactual, truth.original, truth.counterfactual,
                          params["effusion_right"], params["effusion_left"])
    shares = same["larger_without_effusion"]
    assert same["median_difference"] == 0 and shares["radiographs"] == shares["reconstructions"]
    assert shares["radiographs"]["measured"] > 10 and shares["radiographs"]["share"] > 0.8


def test_positional_copies_refit_the_predictors_on_the_same_networks(trained, tmp_path):
    import dataclasses

    cfg, source = trained
    bundle = Bundle(copy_bundle(source.root, tmp_path / "b"), create=False)
    augmented = dataclasses.replace(cfg, predictors=dataclasses.replace(cfg.predictors, augment_copies=2))
    build_training(augmented, bundle.root)
    for name in ("checkpoints/decoder.pt", "checkpoints/encoder.pt", "arrays/latents.npy"):
        assert (bundle.root / name).read_bytes() == (source.root / name).read_bytes(), name  # resumed, not retrained
    before = source.read_table("predictions").set_index(["model_id", "image_id", "role"])["bnp_pred_ng_l"]
    after = bundle.read_table("predictions").set_index(["model_id", "image_id", "role"])["bnp_pred_ng_l"]
    assert before.index.equals(after.index)
    for model_id in ("mlp-correct", "linear-correct", "mlp-overfitted"):
        assert not np.allclose(after.loc[model_id], before.loc[model_id], rtol=1e-3), model_id
    state = checkpoints.load(bundle.root / "checkpoints" / "mlp-correct.pt", kind="predictor")
    assert state["config"]["predictors"]["augment_copies"] == 2


def test_samples_come_from_the_configured_sampler_beside_the_prior(trained):
    from modelling.stages.train import development_checks

    cfg, bundle = trained
    assert cfg.decoder.sampler == "two-stage"
    summary = json.loads(bundle.verify_file("train/summary.json").read_text())
    sampler = summary["samples"]["sampler"]
    assert sampler["name"] == "two-stage" and sampler["steps"] == cfg.decoder.sampler_steps
    assert sampler["cycles"] == cfg.decoder.sampler_cycles == 1  # each draw decoded and encoded again once
    assert sampler["fitted_codes"] == summary["generative_training"]["radiographs"]
    table = pd.read_csv(bundle.verify_file("train/ctr_real_vs_generated.csv"), keep_default_na=False,
                        na_values={"ctr": [""]})
    generated = table[table["side"] == "generated"]
    assert sampler["without_two_lungs"] == pytest.approx(generated["ctr"].isna().mean())
    assert 0 <= sampler["prior_without_two_lungs"] <= 1 and sampler["replay_ratio"] > 0
    samples = bundle.read_array("train/decoder_samples.npz")  # the images measured, for the realism stage
    assert set(samples) == {"two-stage", "prior"}
    assert all(a.dtype == np.uint8 and a.shape == (len(generated), cfg.image_size, cfg.image_size)
               for a in samples.values())
    assert ctr.measure(samples["two-stage"])["ctr"].isna().mean() == pytest.approx(sampler["without_two_lungs"])
    assert ctr.measure(samples["prior"])["ctr"].isna().mean() == pytest.approx(sampler["prior_without_two_lungs"])
    check = development_checks(summary)["decoder samples without two separable lungs <= 2%"]
    assert check == {"value": sampler["without_two_lungs"], "met": sampler["without_two_lungs"] <= 0.02,
                     "measurable": True}


def test_changing_the_sampler_keeps_the_networks_and_predictors(trained, tmp_path):
    import dataclasses

    cfg, source = trained
    bundle = Bundle(copy_bundle(source.root, tmp_path / "b"), create=False)
    prior = dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, sampler="prior"))
    build_training(prior, bundle.root)
    for name in ("checkpoints/decoder.pt", "checkpoints/encoder.pt", "arrays/latents.npy",
                 "checkpoints/mlp-correct.pt"):
        assert (bundle.root / name).read_bytes() == (source.root / name).read_bytes(), name
    sampler = json.loads(bundle.verify_file("train/summary.json").read_text())["samples"]["sampler"]
    assert sampler["name"] == "prior" and "prior_without_two_lungs" not in sampler
    assert set(bundle.read_array("train/decoder_samples.npz")) == {"prior"}
    assert (bundle.root / "train/samples.png").read_bytes() != (source.root / "train/samples.png").read_bytes()


def test_an_unknown_sampler_is_refused_by_name():
    import dataclasses

    from modelling.config import ConfigError

    cfg = load_config("tiny")
    with pytest.raises(ConfigError, match="decoder.sampler"):
        dataclasses.replace(cfg.decoder, sampler="flow")
    with pytest.raises(ConfigError, match="decoder.sampler_steps"):
        dataclasses.replace(cfg.decoder, sampler_steps=0)
    with pytest.raises(ConfigError, match="decoder.sampler_cycles"):
        dataclasses.replace(cfg.decoder, sampler_cycles=-1)


def test_sampler_cycles_decode_and_encode_each_draw_again(trained):
    import dataclasses

    from modelling.stages.artifacts import load_decoder, load_encoder
    from modelling.stages.train import _sampler

    cfg, bundle = trained
    decoder, encoder = load_decoder(bundle, cfg), load_encoder(bundle, cfg)
    codes = bundle.read_array("arrays/latents.npy")

    def drawn(cycles: int) -> tuple[np.ndarray, dict]:
        c = dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, sampler_cycles=cycles))
        draw, about = _sampler(c, codes, generator=decoder, encoder=encoder)
        return draw(8, np.random.default_rng(3)), about

    (plain, about0), (once, about1), (twice, about2) = drawn(0), drawn(1), drawn(2)
    assert "cycles" not in about0 and about1["cycles"] == 1 and about2["cycles"] == 2
    assert np.array_equal(once, encode(encoder, decode(decoder, plain)))
    assert np.array_equal(twice, encode(encoder, decode(decoder, once)))
    assert not np.allclose(once, plain)
