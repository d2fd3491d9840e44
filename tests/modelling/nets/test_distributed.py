"""Training under torchrun: 2 gloo processes on the tiny profile give the single process's weights, for
both decoder objectives (the autoencoder's MMD is taken over the whole batch)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import dataclasses

import numpy as np
import pytest
import torch
import yaml

from modelling.config import config_to_dict, load_config
from modelling.stages.cohort import build_cohort
from modelling.stages.train import build_training

BIN = Path(sys.executable).parent


def weights(bundle: Path, name: str, key: str) -> dict:
    return torch.load(bundle / f"checkpoints/{name}.pt", weights_only=True)["models"][key]


@pytest.mark.parametrize("objective", ["autoencoder", "wgan-gp"])
def test_two_gloo_processes_match_one(objective, tmp_path, clean_env):
    cfg = load_config("tiny")
    if cfg.decoder.objective != objective:  # the tiny profile has one; the other is written beside it
        cfg = dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, objective=objective),
                                  encoder=dataclasses.replace(cfg.encoder, iterations=max(cfg.encoder.iterations, 4)))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(config_to_dict(cfg)))
    one, two = tmp_path / "one", tmp_path / "two"
    build_cohort(cfg, one, workers=1)
    shutil.copytree(one, two)
    build_training(cfg, one)
    result = subprocess.run(
        [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", str(BIN / "gvr"), "train",
         "--config", str(config), "--bundle", str(two)],
        capture_output=True, text=True, timeout=600, env=clean_env | {"OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "FutureWarning" not in result.stderr, result.stderr  # torch's deprecations are not the user's to act on
    assert "mlp-correct/test" in result.stdout  # rank 0 printed the summary, once
    assert result.stdout.count("mlp-correct/test") == 1
    # Adam divides each gradient by its running RMS, so a weight whose gradient is near 0 can move by up to the
    # learning rate on a last-digit difference (two half-batch means against one mean): the weights are held to
    # a tenth of the rate. Another draw of the codes' noise or the prior moves them by about 1e-2 in 4 steps.
    atol = cfg.decoder.learning_rate / 10
    assert objective != "autoencoder" or cfg.decoder.code_noise > 0  # the noise is drawn per process too
    for name, key in (("decoder", "generator"), ("encoder", "encoder")):
        a, b = weights(one, name, key), weights(two, name, key)
        assert a.keys() == b.keys()
        for k in a:
            if a[k].dtype.is_floating_point:
                torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=atol, msg=f"{name}.{k}")
    # the tolerance is far below what training moves: the weights changed from their initialisation
    from modelling.nets.training import build_generator

    init = build_generator(cfg).state_dict()
    moved = max((weights(two, "decoder", "generator")[k] - init[k]).abs().max().item()
                for k in init if init[k].dtype.is_floating_point)
    assert moved > 1e-3


def test_gvrs_shared_out_between_two_processes_match_one(tiny_trained, tmp_path, clean_env):
    from data_schema import Bundle
    from modelling.stages.explain import build_explanations

    cfg = load_config("tiny")
    one, two = tmp_path / "one", tmp_path / "two"
    shutil.copytree(tiny_trained, one)  # the session's tiny study through training, copied: both write
    shutil.copytree(tiny_trained, two)
    build_explanations(cfg, one)
    result = subprocess.run(
        [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", str(BIN / "gvr"), "explain",
         "--config", "tiny", "--bundle", str(two)],
        capture_output=True, text=True, timeout=600, env=clean_env | {"OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    a = Bundle(one).read_table("gvr_index").set_index("gvr_id")
    b = Bundle(two).read_table("gvr_index").set_index("gvr_id")
    assert a.index.tolist() == b.index.tolist() and len(a) > 3
    for column in ("steps", "reached"):
        assert (a[column] == b[column]).all(), column
    for column in ("start_pred_ng_l", "end_pred_ng_l", "latent_distance"):
        np.testing.assert_allclose(a[column], b[column], rtol=1e-5, err_msg=column)
    # each movie's frames are spaced over its own path, not over the longest path of a process's share
    import imageio.v3 as iio

    for gvr_id, row in a.iterrows():
        mine, theirs = (iio.imread(root / row["movie_path"], index=None).astype(float) for root in (one, two))
        assert mine.shape == theirs.shape, gvr_id
        assert np.abs(mine - theirs).mean() < 0.5, gvr_id  # 8-bit levels: equal but for rounding
