"""Benchmarks measure a copy, never the user's study (benchmarks/bench_gvr.py on a tiny bundle)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_schema import Bundle
from data_schema.tables import INTERVENTION_FEATURES

from modelling.stages.cohort import build_cohort
from modelling.config import load_config

ROOT = Path(__file__).resolve().parent.parent


def _script(name: str):
    """A script of benchmarks/ imported as a module (they are scripts, not a package)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_bench_gvr_leaves_the_study_untouched(tiny_trained, clean_env):
    study = tiny_trained  # the bench copies it; the checks below hold it to that
    manifest = (study / "manifest.json").read_bytes()
    before = _snapshot(study)
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_gvr.py"), "--bundle", str(study),
                          "--config", "tiny", "--n", "8"], capture_output=True, text=True, timeout=600,
                         cwd=ROOT, env={**clean_env, "GVR_PROGRESS": "0"})
    assert run.returncode == 0, run.stderr
    assert "latent moves" in run.stdout and "left untouched" in run.stdout
    assert "movies of 8 GVRs (GIF and MP4)" in run.stdout and "the same bytes: True" in run.stdout
    assert (study / "manifest.json").read_bytes() == manifest
    assert _snapshot(study) == before  # no file written, replaced or touched
    assert "explain" not in json.loads(manifest)["stages"]


def test_bench_report_times_both_ways_on_the_same_pages_and_writes_nothing(tiny_reproduced, tmp_path):
    study, run = tiny_reproduced
    assert run.returncode == 0, run.stderr
    bench = _script("bench_report")
    scripts = []
    for name in ("one", "two"):  # two small pages: the bench's bookkeeping, not the manuscript's time
        scripts.append(tmp_path / f"{name}.py")
        scripts[-1].write_text(f"# %%\nimport os\nprint('{name}', os.path.basename(os.environ['GVR_BUNDLE']))\n")
    before = _snapshot(study)
    result = bench.compare(study, scripts)
    assert result["scripts"] == ["one.py", "two.py"] and result["same_bytes"] is True
    assert result["side_by_side_s"] > 0 and result["one_after_another_s"] > 0
    assert result["ratio"] == pytest.approx(result["side_by_side_s"] / result["one_after_another_s"], abs=0.01)
    assert _snapshot(study) == before
    with pytest.raises(SystemExit, match=f"no study bundle at {tmp_path}"):
        bench.compare(tmp_path, scripts)


def test_bench_gvr_refuses_a_folder_without_a_bundle(tmp_path, clean_env):
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_gvr.py"), "--bundle", str(tmp_path),
                          "--config", "tiny"], capture_output=True, text=True, timeout=120, cwd=ROOT, env=clean_env)
    assert run.returncode != 0 and f"no study bundle at {tmp_path}" in run.stderr
    assert list(tmp_path.iterdir()) == []


def test_bench_fidelity_trains_each_variant_on_a_copy_and_measures_it(tmp_path, clean_env):
    cohort = tmp_path / "cohort"
    build_cohort(load_config("tiny"), cohort)
    before = _snapshot(cohort)
    out = tmp_path / "fidelity.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_fidelity.py"), "--cohort", str(cohort),
                          "--config", "tiny", "--variant", "gan:decoder.objective=wgan-gp,encoder.iterations=2",
                          "--variant", "wae:decoder.mmd_weight=1.0", "--out", str(out)],
                         capture_output=True, text=True, timeout=600, cwd=ROOT, env={**clean_env, "GVR_PROGRESS": "0"})
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(out.read_text())
    assert set(results) == {"gan", "wae"}
    assert results["gan"]["spec"].startswith("gan:decoder.objective=wgan-gp")
    for r in results.values():
        assert set(r["gvr"]) >= {"gradient", "pattern"} and r["gvr"]["gvrs"] > 0
        assert r["disease_kept_median_r"] is None or -1 <= r["disease_kept_median_r"] <= 1
    assert _snapshot(cohort) == before


def test_probe_region_effect_splits_each_gvrs_effect_by_mask(tiny_explained):
    region_effects = _script("probe_region_effect").region_effects
    rows = region_effects(tiny_explained)
    assert {r["model_id"] for r in rows} == {"mlp-correct", "mlp-overfitted"}
    for r in rows:
        assert set(r) >= {"effect_shortcut", "effect_heart", "non_disease_share_of_effect"}
        share = r["non_disease_share_of_effect"]
        assert share is None or 0 <= share <= 1


def test_probe_shortcut_moves_decomposes_both_reencoded_moves(tiny_explained):
    script = _script("probe_shortcut_moves")
    latent_costs, probe = script.latent_costs, script.probe
    before = (tiny_explained / "manifest.json").read_bytes()
    config = load_config("tiny")
    for random in (0, 5):
        rows = probe(tiny_explained, config, random)
        assert {(r["model_id"], r["move"]) for r in rows} == {
            (m, how) for m in ("mlp-correct", "mlp-overfitted") for how in ("pattern", "gradient")}
        for r in rows:
            assert r["radiographs"] == ("random" if random else "GVRs") and 0 <= r["reached"] <= 1
            assert all(np.isfinite(r[f"coef_{f}"]) for f in ("heart", "effusion", "shortcut"))
            share = r["effect_non_disease_share"]
            assert share is None or 0 <= share <= 1
    costs = latent_costs(tiny_explained, config)
    assert {r["model_id"] for r in costs} == {"mlp-correct", "mlp-overfitted"}
    assert {r["feature"] for r in costs} <= set(INTERVENTION_FEATURES) and "heart" in {r["feature"] for r in costs}
    assert all(r["latent_distance"] > 0 and r["radiographs"] > 0 for r in costs)
    assert all(-1 <= r[f"cosine_{how}"] <= 1 for r in costs for how in ("gradient", "pattern"))
    assert (tiny_explained / "manifest.json").read_bytes() == before


def test_probe_samplers_counts_images_without_two_lungs_per_sampler(tiny_reproduced, tiny_explained):
    study, run = tiny_reproduced
    assert run.returncode == 0, run.stderr
    without_two_lungs = _script("probe_samplers").without_two_lungs
    before = _snapshot(study)
    result = without_two_lungs(study, n=16)
    assert _snapshot(study) == before
    samplers = {"prior", "fitted_gaussian", "mixture_10", "two_stage_vae", "codes"}
    assert result["n"] == 16 and set(result) == samplers | {"n", "fitted_codes", "held_out_codes", "sampler_steps"}
    assert result["sampler_steps"] == load_config("tiny").decoder.sampler_steps  # the train stage's, not 2000
    # a bundle built from Python has no config.yaml: the train stage's summary still says its steps
    assert not (tiny_explained / "config.yaml").exists()
    assert _script("probe_samplers").sampler_steps(Bundle(tiny_explained, create=False)) == \
        load_config("tiny").decoder.sampler_steps
    assert result["fitted_codes"] > 0 and result["held_out_codes"] > 0
    assert all(0 <= result[k]["without_two_lungs"] <= 1 for k in samplers)
    assert result["codes"]["replay_ratio"] == 0  # the fitted codes themselves: each is its own nearest
    assert all(result[k]["replay_ratio"] > 0 for k in samplers - {"codes"})


def test_bench_image_gvr_times_direct_gvrs_without_writing(tiny_trained, tmp_path, clean_env):
    from modelling.stages.image_model import build_image_model
    from tests.conftest import copy_bundle

    root = copy_bundle(tiny_trained, tmp_path / "b")
    build_image_model(load_config("tiny"), root)
    before = (root / "manifest.json").read_bytes()
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_image_gvr.py"), "--bundle", str(root),
                          "--config", "tiny", "--n", "5"], capture_output=True, text=True, env=clean_env, timeout=600)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["gvrs"] == 5 and 0 <= result["valid"] <= result["gvrs"] and result["seconds"] > 0
    assert (root / "manifest.json").read_bytes() == before


def test_probe_ctr_rows_reads_a_smaller_heart_on_the_same_rows_and_nothing_from_the_same_image():
    script = _script("probe_ctr_rows")
    cohort_params, compare, same_rows = script.cohort_params, script.compare, script.same_rows
    from modelling.cohort import phantom

    params = {k: np.zeros(2, np.float32) for k in phantom.PARAMETERS}
    params.update(cardiothoracic_ratio=np.array([0.6, 0.45], np.float32), body_mass_index=np.full(2, 25.0),
                  scale=np.ones(2), exposure=np.ones(2))
    images, _ = phantom.render(params, 64)
    pair = same_rows(images[:1], images[1:], trim=1)[0]
    assert pair[1] < pair[0]  # the smaller heart, read over the same rows
    same = same_rows(images[:1], images[:1], trim=0)[0]
    assert same[0] == same[1]

    result = compare(cohort_params(12, "tiny"), 64, trims=(0, 2))
    for name in ("disease_free", "heart_only", "effusion_only"):
        assert set(result[name]) == {"single", "same_rows_0", "same_rows_2"}
        for how in result[name].values():
            assert how["all"]["n"] == how["no_large_effusion"]["n"] + how["large_effusion"]["n"]
            assert all(s["lower"] is None or 0 <= s["lower"] <= 1 for s in how.values())


def test_probe_positioning_splits_the_response_by_role_and_fits_no_worse_with_one_more_map(tiny_explained):
    probe = _script("probe_positioning").probe
    before = (tiny_explained / "manifest.json").read_bytes()
    result = probe(tiny_explained, load_config("tiny"), per_role=5)
    assert {r["model_id"] for r in result["reliance"]} <= {"mlp-correct", "mlp-overfitted"}
    assert all(0 < r["radiographs"] <= 5 and r["mean_absolute_fall"] >= abs(r["mean_fall"]) for r in result["reliance"])
    assert {r["model_id"] for r in result["gvr_fit"]} == {"mlp-correct", "mlp-overfitted"}
    for r in result["gvr_fit"]:  # more maps to fit with never fit worse
        assert r["median_r2_with_positioning"] >= r["median_r2_interventions"] - 1e-9
        assert r["median_r2_with_directions"] >= r["median_r2_interventions"] - 1e-9
    assert (tiny_explained / "manifest.json").read_bytes() == before


def test_probe_affine_response_is_zero_for_copies_that_do_not_move(tiny_trained):
    import dataclasses

    response = _script("probe_affine_response").affine_response
    cfg = load_config("tiny")
    still = dataclasses.replace(cfg, predictors=dataclasses.replace(
        cfg.predictors, augment_rotation_deg=0.0, augment_shift=0.0, augment_scale=0.0))
    moved = response(tiny_trained, cfg, radiographs=8)
    assert [r["model_id"] for r in moved] == ["mlp-correct", "mlp-overfitted"]
    assert all(0 < r["radiographs"] <= 8 and r["mean_absolute_change"] > 0.01 for r in moved)
    # unmoved copies are the same pictures; only float32 sums in batches of another size differ
    assert all(r["mean_absolute_change"] < 1e-5 for r in response(tiny_trained, still, radiographs=8))


def test_probe_hold_positioning_moves_codes_only_outside_their_positioning_span(tiny_trained):
    from data_schema import Bundle
    from modelling.explain.gvr import aim, scorer
    from modelling.stages import explain
    from modelling.stages.artifacts import load_decoder, load_encoder, load_predictor, training_covariance

    probe = _script("probe_hold_positioning")
    cfg = load_config("tiny")
    bundle = Bundle(tiny_trained, create=False)
    decoder, encoder = load_decoder(bundle, cfg), load_encoder(bundle, cfg)
    predictor = load_predictor(bundle, "mlp-correct")
    z0 = bundle.read_array("arrays/latents.npy")[:6]
    plain_move = explain.move
    with probe.positioning_held(encoder):
        path = explain.move(z0, decoder, scorer(predictor, reencode=True, encoder=encoder, decoder=decoder),
                            target_log_bnp=aim(np.log(30.0), "down", 0.05), direction="down", step_size=0.01,
                            max_steps=10, covariance=training_covariance(bundle, "mlp-correct"))
    assert explain.move is plain_move  # restored
    basis = probe.positioning_directions(encoder, decoder, z0)
    moved = (path.end - path.start).astype(np.float64)
    assert np.linalg.norm(moved, axis=1).min() > 0.01
    along = np.einsum("nik,ni->nk", basis, moved)
    assert np.abs(along).max() < 1e-3 * np.linalg.norm(moved, axis=1).max()
    assert np.allclose(np.einsum("nik,nil->nkl", basis, basis), np.eye(len(probe.MOVES)), atol=1e-6)


def test_probe_hold_positioning_explains_a_copy_and_leaves_the_study_alone(tiny_explained, tmp_path):
    from data_schema import Bundle

    main = _script("probe_hold_positioning").main
    before = (tiny_explained / "manifest.json").read_bytes()
    out = tmp_path / "held"
    main([str(tiny_explained), str(out), "--config", "tiny"])
    assert (tiny_explained / "manifest.json").read_bytes() == before
    held = Bundle(out, create=False).read_table("gvr_index")
    assert len(held) and held["reached"].any()
    with pytest.raises(SystemExit, match="exists"):
        main([str(tiny_explained), str(out), "--config", "tiny"])


def test_bench_training_times_the_paper_decoder_and_the_profiles_autoencoder():
    import torch

    script = _script("bench_training")
    measure, phantom_images = script.measure, script.phantom_images
    config = load_config("tiny")
    assert config.decoder.objective == "autoencoder"
    row = measure(phantom_images(config, 32), config, 2, torch.device("cpu"))
    for kind in ("decoder", "encoder", "autoencoder"):
        assert row[f"{kind}_s_per_it"] > 0
    assert row["autoencoder_img_per_s"] == pytest.approx(config.decoder.batch_size / row["autoencoder_s_per_it"])
    assert row["projected_minutes_profile"] == pytest.approx(
        (config.decoder.iterations * row["autoencoder_s_per_it"]
         + config.encoder.iterations * row["encoder_s_per_it"]) / 60)


def test_bench_training_times_both_decoder_layouts_in_the_same_run():
    import dataclasses

    import torch

    script = _script("bench_training")
    config = load_config("tiny")
    bf16 = dataclasses.replace(config, runtime=dataclasses.replace(config.runtime, bf16=True))
    timed = script.layouts(script.phantom_images(config, 16), bf16, 1, torch.device("cpu"), rounds=1)
    assert list(timed) == ["bf16", "float32"]  # forced bf16, and float32 beside it
    for row in timed.values():
        assert set(row["s_per_it"]) == {"transpose", "resize"} and min(row["s_per_it"].values()) > 0
        assert row["resize_over_transpose"] == pytest.approx(row["s_per_it"]["resize"] / row["s_per_it"]["transpose"])


def test_contribution_shares_count_a_feature_by_its_part_in_the_models_fall():
    """An overfitted model that leans twice as hard on body mass needs half as much of it removed: its GVRs'
    coefficients on body mass are lower, yet body mass owes it a larger part of its fall. The probe's shares
    say so; the coefficients point the other way."""
    probe = _script("probe_contribution_shares")
    rng = np.random.default_rng(0)
    rows = []
    for regime, body_drop, body_coef in (("correct", 0.5, 0.4), ("overfitted", 1.0, 0.3)):
        for _ in range(30):
            row = {"regime": regime}
            for f in INTERVENTION_FEATURES:
                row[f"coef_{f}"], row[f"drop_{f}"] = 0.0, 0.0
            row |= {"coef_heart": 0.8, "drop_heart": 0.7 + rng.normal(0, 0.01),
                    "coef_body_mass": body_coef + rng.normal(0, 0.01), "drop_body_mass": body_drop}
            rows.append(row)
    truth = pd.DataFrame(rows)
    shares = probe.contribution_shares(truth)
    first = truth.iloc[0]
    expected = first["coef_body_mass"] * 0.5 / (first["coef_body_mass"] * 0.5 + 0.8 * first["drop_heart"])
    assert shares.loc[0, "body_mass"] == pytest.approx(expected)
    assert np.allclose(shares.abs().sum(axis=1), 1.0)
    body = next(r for r in probe.compare_regimes(truth) if r.feature == "body_mass")
    assert body.differs and body.same_way and body.p < 1e-6
    assert body.coefficient_overfitted > body.coefficient_correct  # shares, in the coefficients' places
    assert truth.groupby("regime")["coef_body_mass"].mean().diff().iloc[-1] < 0  # the coefficients: the other way
    # a feature neither regime leans on and no GVR changes has no test
    assert next(r for r in probe.compare_regimes(truth) if r.feature == "pacemaker").p is None


def test_probe_paired_regimes_tests_within_radiographs_what_patients_spread_hides():
    """When the overfitted model's GVRs take a little more of a feature from every radiograph, but radiographs
    differ from one another far more, the paired test sees it and the unpaired one does not."""
    probe = _script("probe_paired_regimes")
    rng = np.random.default_rng(1)
    n, k = 40, len(INTERVENTION_FEATURES)
    body = INTERVENTION_FEATURES.index("body_mass")
    base = rng.normal(0.0, 1.0, (n, k))
    values = {"mlp-correct": base.copy(), "mlp-overfitted": base + rng.normal(0.0, 0.01, (n, k))}
    values["mlp-overfitted"][:, body] += 0.05
    drops = {"mlp-correct": np.full((n, k), 0.3), "mlp-overfitted": np.full((n, k), 0.3)}
    drops["mlp-overfitted"][:, body] = 0.9
    paired = {r.feature: r for r in probe.compare(values, drops, paired=True)}
    unpaired = {r.feature: r for r in probe.compare(values, drops, paired=False)}
    assert paired["body_mass"].differs and paired["body_mass"].same_way and paired["body_mass"].p < 1e-6
    assert unpaired["body_mass"].p > 0.1
    assert not paired["markers"].differs  # the same reliance in both: not judged
    assert probe.regime_target(list(paired.values()))["met_on"] == ["body_mass"]
    # skewed differences: the mean says up, the signed ranks say down; that cannot count as the same way
    a = np.zeros(40)
    b = np.r_[np.full(35, -0.01), np.full(5, 1.0)]
    assert b.mean() > a.mean() and probe.directed_p(a, b, paired=True) > 0.5
    assert probe.directed_p(a, a, paired=True) is None
    # a part of the fall: coefficient times fall, over the parts' absolute sum; NaN where nothing falls
    coef, falls = np.zeros((2, k)), np.ones((2, k))
    coef[0, :3], falls[0, :3] = [0.5, 0.0, 1.0], [1.0, 2.0, -0.5]
    got = probe.shares(coef, falls)
    assert got[0] == pytest.approx([0.5, 0.0, -0.5] + [0.0] * (k - 3)) and np.isnan(got[1]).all()


def test_probe_paired_regimes_moves_and_decomposes_as_the_fidelity_stage_does(tiny_reproduced):
    """Where a radiograph is one of a model's own GVRs, the probe's coefficients and falls for that model are the
    fidelity stage's (the same move and the same interventions, in another batch); the study is left as it was."""
    study, run = tiny_reproduced
    assert run.returncode == 0, run.stderr
    before = _snapshot(study)
    probe = _script("probe_paired_regimes")
    images, coef, drops, shares = probe.paired_gvrs(study)
    truth = pd.read_parquet(study / "tables/gvr_truth.parquet")
    assert images and set(images) <= set(truth["image_id"])
    coefficients = [f"coef_{f}" for f in INTERVENTION_FEATURES]
    falls = [f"drop_{f}" for f in INTERVENTION_FEATURES]
    for model_id in probe.MODELS:
        assert coef[model_id].shape == drops[model_id].shape == shares[model_id].shape == (len(images), len(coefficients))
        own = truth[truth["model_id"] == model_id].set_index("image_id")
        mine = [i for i, image_id in enumerate(images) if image_id in own.index]
        ids = [images[i] for i in mine]
        assert mine, model_id  # something to compare for each model
        # float32 sums in another batch: a few units in the last place, through an iterative move
        assert np.allclose(drops[model_id][mine], own.loc[ids, falls].to_numpy(), atol=1e-4)
        assert np.allclose(coef[model_id][mine], own.loc[ids, coefficients].to_numpy(), atol=1e-3)
    # the probe's point: some radiographs are explained by a model whose own GVR set does not hold them
    assert any(set(images) - set(truth.loc[truth["model_id"] == m, "image_id"]) for m in probe.MODELS)
    assert _snapshot(study) == before


def test_probe_output_pattern_finds_the_covariance_direction_and_the_crossing_length():
    """For a linear model f(z) = w.z the pattern of its output is the codes' covariance times w (Haufe et al.
    2014); a move along a direction that lowers a linear score stops where the score meets the target, and one
    that cannot lower it stops at the bracket's end, not reached."""
    import torch

    probe = _script("probe_output_pattern")
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(4, 4))
    codes = rng.normal(size=(4000, 4)) @ mixing
    w = np.array([1.0, -2.0, 0.5, 0.0])
    linear = torch.nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.as_tensor(w[None, :], dtype=torch.float32))
    expected = np.cov(codes, rowvar=False) @ w
    got = probe.output_pattern(codes, linear)
    assert np.linalg.norm(got) == pytest.approx(1.0)
    # the same sample on both sides: only the float32 predictions differ
    assert got @ expected / np.linalg.norm(expected) == pytest.approx(1.0, abs=1e-5)

    unit = np.array([0.6, 0.8, 0.0, 0.0])

    def score(z):
        return z @ torch.as_tensor(unit, dtype=torch.float32)

    z0 = np.array([[3.0, 4.0, 0.0, 0.0], [30.0, 40.0, 1.0, 0.0]], np.float32)  # scores 5 and 50
    end, length, reached = probe.line_move(z0, unit, score, np.array([2.0, -10.0]))
    assert reached.all()
    assert length == pytest.approx([3.0, 60.0], rel=1e-5)  # bisected to 2**-25 of the bracket
    assert end @ unit == pytest.approx([2.0, -10.0], abs=1e-4)
    flat = np.array([0.0, 0.0, 0.0, 1.0])  # moving along it leaves the score as it is
    _, length, reached = probe.line_move(z0, flat, score, np.array([2.0, -10.0]), doublings=3)
    assert not reached.any() and length == pytest.approx([8.0, 8.0])


def test_probe_output_pattern_judges_its_gvrs_as_the_stages_judge_the_bundles(tiny_reproduced):
    study, run = tiny_reproduced
    assert run.returncode == 0, run.stderr
    before = _snapshot(study)
    probe = _script("probe_output_pattern")
    truth = pd.read_parquet(study / "tables/gvr_truth.parquet")
    for local in (False, True):
        result = probe.probe(study, local=local, max_steps=5)
        assert sorted(result["models"]) == sorted(truth["model_id"].unique())
        for m in result["models"].values():
            assert 0 <= m["reached"] <= 1 and m["median_length"] >= 0
            assert m["rank_agreement"] is None or -1 <= m["rank_agreement"] <= 1
            assert m["relevance_mass"] is None or 0 <= m["relevance_mass"] <= 1
            assert set(m["mean_coefficients"]) == set(INTERVENTION_FEATURES)
        assert set(result["body_mass"]) == {"mlp-correct", "mlp-overfitted", "p"}
    assert _snapshot(study) == before


def test_probe_adversarial_decoder_measures_a_copy_before_and_after(tiny_explained):
    probe = _script("probe_adversarial_decoder")
    before = _snapshot(tiny_explained)
    result = probe.fine_tune(tiny_explained, config=load_config("tiny"), iterations=2, warmup=1, critic_steps=1,
                             n=16, batch=8)
    for when in ("before", "after"):
        assert 0 <= result[when]["sampler_without_two_lungs"] <= 1
        assert 0 <= result[when]["prior_without_two_lungs"] <= 1
        assert np.isfinite(result[when]["held_out_psnr_db"])
    assert result["after"] != result["before"]  # the decoder was trained
    assert _snapshot(tiny_explained) == before  # on a copy: the study is left as it was


def test_probe_adversarial_decoder_noise_on_the_codes_changes_what_the_decoder_learns(tiny_explained):
    probe = _script("probe_adversarial_decoder")
    before = _snapshot(tiny_explained)
    runs = [probe.fine_tune(tiny_explained, config=load_config("tiny"), iterations=2, weight=0.0, n=16, batch=8,
                            code_noise=noise) for noise in (0.0, 0.0, 1.0)]
    assert runs[0]["settings"]["code_noise"] == 0.0 and runs[2]["settings"]["code_noise"] == 1.0
    assert runs[0]["settings"]["critic_steps"] == 0 and runs[0]["settings"]["warmup"] == 0  # no critic at weight 0
    assert runs[0]["settings"]["sampler_steps"] == load_config("tiny").decoder.sampler_steps  # as the train stage
    assert runs[0]["after"] == runs[1]["after"]  # seeded: the same fine-tune twice
    assert runs[2]["after"]["held_out_psnr_db"] != runs[0]["after"]["held_out_psnr_db"]  # the noise reached it
    assert runs[0]["before"] == runs[2]["before"]
    assert _snapshot(tiny_explained) == before


def test_probe_seed_spread_lines_up_each_target_across_bundles(tiny_reproduced, capsys, monkeypatch):
    study, run = tiny_reproduced
    assert run.returncode == 0, run.stderr
    script = _script("probe_seed_spread")
    assert script.target_key("m: CTR lower in >= 90% without a large effusion (of 4)") == \
        "m: CTR lower in >= 90% without a large effusion"
    assert script.target_key("mlp correct: test AUC >= 90% of oracle 0.895") == "mlp correct: test AUC >= 90% of oracle"
    rows = script.spread([study, study])
    names = [r["target"] for r in rows]
    # the training stage's targets and the fidelity stage's, each once, whatever a bundle's counts
    assert "mlp overfitted: own training data AUC >= 0.97" in names
    assert any(n.startswith("mlp-correct: GVRs rank features as reliance does") for n in names)
    # and the relevance mass target of the baselines stage, without the best baseline's name and value
    assert "mlp-correct: GVR relevance mass accuracy minus the best baseline's >= 0" in names
    assert len(names) == len(set(names)) and not any("(" in n for n in names)
    for r in rows:
        assert r["met"] in (0, r["judged"]) and r["values"][0] == r["values"][1]
        assert r["judged"] in (0, 2)  # the same bundle twice: measurable in both or in neither
        if r["values"][0] is not None:
            assert r["judged"] == 2 and r["least"] == r["greatest"] == r["mean"] == pytest.approx(r["values"][0])
    script.main([str(study), str(study)])
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("| target |") and len(printed) == 2 + len(rows)
    # a target one bundle cannot measure is judged on the others only
    real = {name: t | {"value": 0.5, "met": False, "measurable": True} for name, t in script.targets(study).items()}
    blank = {name: ({"value": None, "met": False, "measurable": False} if "rank features" in name else t)
             for name, t in real.items()}
    monkeypatch.setattr(script, "targets", lambda root: blank if root == "blank" else real)
    rank = next(r for r in script.spread([study, "blank"]) if r["target"].startswith("mlp-correct: GVRs rank"))
    assert rank["judged"] == 1 and rank["values"] == [0.5, None]


def test_density_ratio_resampling_draws_in_proportion_to_the_odds():
    resample = _script("probe_discriminator_resampling").resample
    rng = np.random.default_rng(0)
    picks = resample(np.array([0.0, np.log(3.0), -50.0]), 40_000, rng, replace=True)
    counts = np.bincount(picks, minlength=3)
    assert counts[2] == 0 and counts[1] / counts[0] == pytest.approx(3.0, rel=0.05)
    assert sorted(resample(np.zeros(5), 5, rng, replace=False)) == [0, 1, 2, 3, 4]


def test_probe_discriminator_resampling_scores_each_way_of_drawing(tiny_reproduced):
    study, run = tiny_reproduced
    assert run.returncode == 0, run.stderr
    before = _snapshot(study)
    probe = _script("probe_discriminator_resampling").probe
    result = probe(study, config=load_config("tiny"), pool=64, n=16, steps=100, cycles=2)
    draws = {d["draws"]: d for d in result["draws"]}
    assert list(draws) == ["two-stage, as drawn", "resampled by the ratio, with replacement (SIR)",
                           "resampled by the ratio, without replacement",
                           "two-stage, as drawn, encoded and decoded again 1 time(s)",
                           "two-stage, as drawn, encoded and decoded again 2 time(s)"]
    assert all(0 <= d["without_two_lungs"] <= 1 and np.isfinite(d["kid_x1000"]["kid"])
               and d["median_code_distance_from_the_mean"] > 0 for d in draws.values())
    assert all(d["distinct"] == 16 for k, d in draws.items() if "SIR" not in k)
    history = result["classifier"]["history"]
    assert [h["step"] for h in history] == [0, 100]
    # kept where the held-out loss was lowest
    assert result["classifier"]["best_held_out_loss"] == min(h["held_out_loss"] for h in history)
    # without a classifier: the draws as drawn and re-encoded only
    plain = probe(study, config=load_config("tiny"), n=16, steps=0, cycles=1)
    assert [d["draws"] for d in plain["draws"]] == ["two-stage, as drawn",
                                                     "two-stage, as drawn, encoded and decoded again 1 time(s)"]
    assert "classifier" not in plain and plain["settings"]["pool"] == 16
    assert _snapshot(study) == before


def test_probe_feature_leakage_decomposes_decoded_changes_as_the_fidelity_stage_does_gvrs(tiny_reproduced):
    study, run = tiny_reproduced
    assert run.returncode == 0, run.stderr
    before = _snapshot(study)
    result = _script("probe_feature_leakage").probe(study)
    truth = pd.read_parquet(study / "tables/gvr_truth.parquet")
    assert sorted(result["models"]) == sorted(truth["model_id"].unique())
    for model_id, m in result["models"].items():
        mine = truth[truth["model_id"] == model_id]
        # the true maps are the stage's: the GVRs' coefficients on them are the stage's coefficients
        for f, row in m["features"].items():
            assert row["gvr_coefficient"] == pytest.approx(mine[f"coef_{f}"].mean(), abs=1e-6), f
            assert row["reliance"] == pytest.approx(mine[f"drop_{f}"].mean(), abs=1e-6), f
        assert "shortcut" not in m["features"]
        # the target's rank agreement, as the stage gives it
        summary = json.loads((study / "fidelity/summary.json").read_text())
        assert m["rank_agreement"] == summary["models"][model_id]["rank_agreement"]
        assert all(-1 <= row["shown_r"] <= 1 and row["radiographs"] >= 1 for row in m["features"].values()
                   if row["shown_r"] is not None)
        assert all(row["squared_code_length"] > 0 for row in m["features"].values())
    assert "| removed | shown r |" in _script("probe_feature_leakage").markdown(result)
    assert _snapshot(study) == before


def test_probe_feature_leakage_shows_no_leakage_through_a_lossless_representation(tiny_reproduced, monkeypatch):
    """With an encoder and decoder that keep every pixel, each feature's decoded change is its true change: the
    leakage rows are the identity, and the GVRs' coefficients on shown and on true maps are the same."""
    import modelling.explain.fidelity as fidelity_measures
    import modelling.stages.fidelity as fidelity_stage

    study, _ = tiny_reproduced
    probe = _script("probe_feature_leakage")
    for module in (probe, fidelity_measures):  # the probe's own codes and those of the interventions it shares
        monkeypatch.setattr(module, "encode", lambda encoder, images: images)
        monkeypatch.setattr(module, "decode", lambda decoder, codes: codes)
    # the codes are the pictures here: their lengths are not what this checks
    monkeypatch.setattr(fidelity_stage, "squared_code_lengths", lambda moved, covariance: np.ones(moved.shape[:2]))
    result = probe.probe(study)
    for m in result["models"].values():
        for f, row in m["features"].items():
            assert row["shown_r"] == pytest.approx(1.0)
            for g, value in row["shown"].items():
                assert value == pytest.approx(1.0 if g == f else 0.0, abs=1e-6), (f, g)
            assert row["gvr_coefficient_on_shown"] == pytest.approx(row["gvr_coefficient"], abs=1e-6)
        assert m["rank_agreement_on_shown"] == m["rank_agreement"]


def test_probe_feature_leakage_ranks_each_compared_move_as_the_fidelity_stage_does(tiny_reproduced):
    study, _ = tiny_reproduced
    before = _snapshot(study)
    probe = _script("probe_feature_leakage")
    moves = probe.moves_against_costs(study)
    compared = json.loads((study / "fidelity/summary.json").read_text())["moves_compared"]
    assert sorted(moves) == sorted(compared)
    for model_id, by_move in moves.items():
        assert list(by_move) == ["gradient, re-encoded", "pattern, re-encoded", "metric, re-encoded", "gradient",
                                 "pattern"]
        shared = set(by_move) & set(compared[model_id])
        assert {"pattern, re-encoded", "gradient", "pattern", "metric, re-encoded"} <= shared
        for how in shared:  # the same moves of the same radiographs, ranked against the same reliance
            assert by_move[how]["reached"] == pytest.approx(compared[model_id][how]["reached"])
            assert by_move[how]["with_reliance"] == pytest.approx(compared[model_id][how]["rank_agreement"])
        for m in by_move.values():
            for cost in ("euclidean", "mahalanobis", "pullback"):
                rho = m[f"with_reliance_over_{cost}_cost"]
                assert rho is None or -1 <= rho <= 1
    assert "| model | move | reached |" in probe.moves_markdown(moves)
    assert _snapshot(study) == before


def test_every_benchmark_and_probe_is_listed_in_the_benchmarks_readme():
    """benchmarks/README.md is where a reader finds what each script answers: a script missing from its tables is
    one nobody will find."""
    listed = (ROOT / "benchmarks/README.md").read_text()
    scripts = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py"))
    assert scripts and [s for s in scripts if f"| `{s}` |" not in listed] == []
