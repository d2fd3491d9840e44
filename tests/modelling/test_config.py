"""Configs: profiles load and validate; unknown, mistyped and out-of-range keys are named."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from modelling.config import (
    CONFIG_DIR,
    PROFILES,
    ConfigError,
    StudyConfig,
    config_from_dict,
    config_to_dict,
    gvr_key,
    load_config,
    move_options,
)


@pytest.mark.parametrize("profile", PROFILES)
def test_profiles_load_and_round_trip(profile):
    cfg = load_config(profile)
    assert cfg == load_config(CONFIG_DIR / f"{profile}.yaml")
    assert config_from_dict(config_to_dict(cfg)) == cfg
    assert cfg.profile == profile


@pytest.mark.parametrize("profile", PROFILES)
def test_profiles_spell_out_every_key(profile):
    # Defaults in code must not silently decide a profile: each YAML names every key.
    data = yaml.safe_load((CONFIG_DIR / f"{profile}.yaml").read_text())
    assert data == config_to_dict(load_config(profile))
    assert set(data) == {f.name for f in dataclasses.fields(StudyConfig)}


def test_paper_profile_uses_the_papers_sizes():
    cfg = load_config("paper")
    # "Radiographs were scaled to 128 3 128 pixels" and "64 feature maps in the layer prior to the
    # generated image" (Materials and Methods); 96 099 unlabelled and 7390 labelled radiographs.
    assert cfg.image_size == 128 and cfg.decoder.feature_maps == 64 and cfg.decoder.latent_dim == 100
    assert (cfg.cohort.unlabelled_radiographs, cfg.cohort.labelled_radiographs) == (96_099, 7_390)
    assert (cfg.cohort.unlabelled_patients, cfg.cohort.labelled_patients) == (41_480, 5_232)
    assert cfg.cohort.pairing_window_hours == 36 and cfg.cohort.bnp_threshold_ng_l == 100


def test_configs_are_frozen():
    cfg = load_config("tiny")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 3


def write(tmp_path, data):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def base():
    return config_to_dict(load_config("tiny"))


def test_unknown_key_names_the_key_and_the_allowed_ones(tmp_path):
    data = base()
    data["decoder"]["feature_map"] = 16
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, data))
    text = str(info.value)
    assert str(tmp_path / "c.yaml") in text
    assert "decoder.feature_map: unknown key (did you mean 'feature_maps'?)" in text
    assert "allowed keys: objective, latent_dim, feature_maps, critic_steps" in text


def test_unknown_top_level_key(tmp_path):
    data = base() | {"sead": 3}
    with pytest.raises(ConfigError, match=r"sead: unknown key \(did you mean 'seed'\?\)"):
        load_config(write(tmp_path, data))


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("decoder", "iterations", "many", "decoder.iterations: must be an integer; got 'many'"),
        ("decoder", "iterations", 2.5, "decoder.iterations: must be an integer"),
        ("runtime", "bf16", "yes", "runtime.bf16: must be true, false or auto; got 'yes'"),
        ("decoder", "betas", [0.5], "decoder.betas: must have 2 items"),
        ("predictors", "mlp_hidden", 64, "predictors.mlp_hidden: must be a list"),
        ("cohort", "test_fraction", 1.5, "cohort.test_fraction: must be strictly between 0 and 1"),
        ("runtime", "device", "tpu", "runtime.device: must be one of 'auto', 'cpu', 'cuda'; got 'tpu'"),
        ("readers", "readers", ["A", "A"], "readers.readers: must name at least one reader, each once"),
        ("shortcuts", "seeds", 0, "shortcuts.seeds: must be at least 1"),
        ("gvr", "margin", -0.1, "gvr.margin: must lie in"),
        ("gvr", "reencode", "yes", "gvr.reencode: must be true or false"),
        ("gvr", "sparse_steps", -1, "gvr.sparse_steps: must not be negative"),
        ("gvr", "metric_ridge", 0.0, "gvr.metric_ridge: must be positive"),
        ("gvr", "move", "metrics", "gvr.move: must be one of 'gradient', 'pattern', 'metric'; got 'metrics'"),
        ("image_model", "architecture", "vgg16", "image_model.architecture: must be one of 'densenet121', 'resnet18'"),
        ("image_model", "width", 0.0, "image_model.width: must be in (0, 4]"),
        ("shortcuts", "strengths", [0.0, 1.2], "shortcuts.strengths: must list shares from 0 to 1; got"),
        ("shortcuts", "negative_share", 1.0, "shortcuts.negative_share: must lie in 0-1 and below the largest"),
        # a NaN was refused as "must not be negative", and a typo'd feature failed only at the readers stage
        ("decoder", "mmd_weight", float("nan"), "decoder.mmd_weight: must be a finite number; got nan"),
        ("readers", "features", ["cardiomegally"],
         "readers.features: unknown feature 'cardiomegally' (did you mean 'cardiomegaly'"),
    ],
)
def test_mistyped_or_out_of_range_values(tmp_path, section, key, value, message):
    data = base()
    data[section][key] = value
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        load_config(write(tmp_path, data))


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path):
    """PyYAML keeps the last of two equal keys without a word; the study then ran with a value its author
    may not have seen."""
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(base()) + "image_size: 64\n")
    first = 1 + path.read_text().splitlines().index("image_size: 32")
    with pytest.raises(ConfigError, match=rf"not valid YAML: key 'image_size' given twice \(lines {first} and "):
        load_config(path)


def test_yaml_merge_keys_still_load_and_may_be_overridden():
    """The duplicate-key check first refused every `<<: *anchor` (PyYAML merges after construction)."""
    from modelling.config import _UniqueKeys

    merged = yaml.load("a: &x {b: 1, c: 2}\nd: {<<: *x, b: 3}\n", Loader=_UniqueKeys)
    assert merged == {"a": {"b": 1, "c": 2}, "d": {"b": 3, "c": 2}}
    with pytest.raises(yaml.YAMLError, match="key 'b' given twice"):
        yaml.load("d: {b: 1, b: 3}\n", Loader=_UniqueKeys)


def test_exponent_notation_without_a_dot_is_a_number(tmp_path):
    """YAML 1.1 reads 1e-3 as text; it was refused as "must be a number; got '1e-3'"."""
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(base()).replace("learning_rate: 0.001", "learning_rate: 1e-3", 1))
    assert "learning_rate: 1e-3" in path.read_text()
    cfg = load_config(path)
    assert 1e-3 in (cfg.decoder.learning_rate, cfg.encoder.learning_rate, cfg.predictors.learning_rate)
    path.write_text(yaml.safe_dump(base() | {"seed": "1e3"}))
    with pytest.raises(ConfigError, match="seed: must be an integer"):  # integers stay integers
        load_config(path)


def test_sparse_steps_need_a_reencoded_move(tmp_path):
    data = base()
    data["gvr"] |= {"sparse_steps": 10, "reencode": True}
    assert load_config(write(tmp_path, data)).gvr.sparse_steps == 10
    data["gvr"]["reencode"] = False
    with pytest.raises(ConfigError, match=r"gvr\.sparse_steps: needs gvr\.reencode: true"):
        load_config(write(tmp_path, data))


def test_metric_moves_need_a_reencoded_move(tmp_path):
    data = base()
    data["gvr"] |= {"move": "metric", "reencode": True, "metric_ridge": 0.1}
    assert load_config(write(tmp_path, data)).gvr.metric_ridge == 0.1
    data["gvr"]["reencode"] = False
    with pytest.raises(ConfigError, match=r"gvr\.move: metric needs gvr\.reencode: true"):
        load_config(write(tmp_path, data))


def test_a_stage_key_names_sparse_steps_and_the_metric_ridge_only_when_they_are_used():
    """Bundles made before gvr.sparse_steps and gvr.metric_ridge existed moved their GVRs as 0 steps and
    other moves do, and stay current."""
    g = load_config("default").gvr
    assert "sparse_steps" not in gvr_key(g) and gvr_key(g)["move"] == g.move
    assert "metric_ridge" not in gvr_key(g)
    assert gvr_key(dataclasses.replace(g, sparse_steps=3))["sparse_steps"] == 3
    assert gvr_key(dataclasses.replace(g, move="metric", metric_ridge=0.2))["metric_ridge"] == 0.2


def test_move_options_carry_every_gvr_setting_a_move_takes():
    """The stages and benchmarks pass the config to a move through move_options: a GVR setting that `move`
    or `explain_codes` accepts and move_options leaves out would reach none of them (review, session 12)."""
    import inspect

    from modelling.explain.gvr import move
    from modelling.explain.rationale import explain_codes

    g = dataclasses.replace(load_config("default").gvr, step_size=0.3, max_steps=7, similarity_weight=0.2,
                            sparse_steps=5)
    options = move_options(g)
    assert options == {"step_size": 0.3, "max_steps": 7, "similarity_weight": 0.2, "sparse_steps": 5,
                       "metric_ridge": None}  # only a metric move takes its ridge
    assert move_options(dataclasses.replace(g, move="metric", metric_ridge=0.2))["metric_ridge"] == 0.2
    for fn in (move, explain_codes):
        taken = set(inspect.signature(fn).parameters)
        assert set(options) <= taken
        # margin and movie frames are passed by each caller (aim(), 2 frames for measures); nothing else is left
        assert {f.name for f in dataclasses.fields(g)} & taken - set(options) <= {"margin"}


def test_image_size_must_suit_the_dcgan_layout(tmp_path):
    with pytest.raises(ConfigError, match="image_size: must be a power of two from 32 to 256; got 100"):
        load_config(write(tmp_path, base() | {"image_size": 100}))


def test_integers_are_accepted_where_numbers_are_expected(tmp_path):
    data = base()
    data["decoder"]["gradient_penalty"] = 10
    assert load_config(write(tmp_path, data)).decoder.gradient_penalty == 10.0


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found; profiles: tiny, default, paper"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_missing_required_key(tmp_path):
    data = base()
    del data["seed"]
    with pytest.raises(ConfigError, match="missing required key\\(s\\): seed"):
        load_config(write(tmp_path, data))


@pytest.mark.parametrize("profile, section, key, value, message", [
    ("tiny", "decoder", "objective", "vae", "decoder.objective: must be one of 'wgan-gp', 'autoencoder'; got 'vae'"),
    ("tiny", "gvr", "move", "filter", "gvr.move: must be one of 'gradient', 'pattern'"),
    ("tiny", "decoder", "upsample", "bilinear", "decoder.upsample: must be one of 'transpose', 'resize'; got 'bilinear'"),
    ("tiny", "decoder", "schedule", "linear", "decoder.schedule: must be one of 'constant', 'cosine'; got 'linear'"),
    ("paper", "decoder", "schedule", "cosine", "decoder.schedule: applies to decoder.objective autoencoder only"),
    ("tiny", "decoder", "code_noise", -0.1, "decoder.code_noise: must not be negative"),
    ("tiny", "decoder", "code_noise", float("nan"), "decoder.code_noise: must be a finite number"),
    ("tiny", "decoder", "edge_weight", -1.0, "decoder.edge_weight: must not be negative"),
    ("tiny", "decoder", "edge_weight", float("inf"), "decoder.edge_weight: must be a finite number"),
])
def test_the_decoder_objective_and_the_gvr_move_are_choices(profile, section, key, value, message):
    data = config_to_dict(load_config(profile))
    data[section][key] = value
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def test_an_untrained_encoder_is_refused_after_a_gan_but_allowed_after_an_autoencoder():
    data = config_to_dict(load_config("tiny"))
    data["decoder"]["objective"], data["encoder"]["iterations"] = "wgan-gp", 0
    with pytest.raises(ConfigError, match="encoder.iterations: must be at least 1 after a WGAN-GP decoder"):
        config_from_dict(data)
    data["decoder"]["objective"] = "autoencoder"
    assert config_from_dict(data).encoder.iterations == 0


def test_inverse_targets_must_lie_above_the_bnp_threshold(tmp_path):
    """An inverse GVR moves a healthy radiograph until heart failure is predicted; a target of 50 ng/L under a
    100 ng/L threshold was accepted."""
    data = base()
    data["gvr"]["inverse_targets_ng_l"] = [50]
    with pytest.raises(ConfigError, match=r"gvr\.inverse_targets_ng_l: each must be above cohort\.bnp_threshold_ng_l "
                                          r"\(100 ng/L\).*got \[50\.0\]"):
        load_config(write(tmp_path, data))
    data["gvr"]["inverse_targets_ng_l"] = [150]
    assert load_config(write(tmp_path, data)).gvr.inverse_targets_ng_l == (150.0,)
