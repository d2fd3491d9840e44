"""Checkpoints load with weights_only=True and refuse another config or a foreign file."""

from __future__ import annotations

import pathlib
import pickle

import pytest
import torch

from modelling.nets import checkpoints
from modelling.nets.checkpoints import CheckpointError


def state(config):
    return checkpoints.payload("decoder", models={"g": torch.nn.Linear(2, 1)}, config=config, seed=1, step=5)


def test_round_trip(tmp_path):
    config = {"image_size": 64, "decoder": {"feature_maps": 32, "betas": [0.5, 0.9]}}
    checkpoints.save(tmp_path / "c.pt", state(config))
    loaded = checkpoints.load(tmp_path / "c.pt", kind="decoder", config=config)
    assert loaded["step"] == 5 and loaded["seed"] == 1 and loaded["git_commit"]
    assert set(loaded["models"]["g"]) == {"weight", "bias"}


def test_another_config_is_refused_naming_the_keys(tmp_path):
    checkpoints.save(tmp_path / "c.pt", state({"image_size": 64, "decoder": {"feature_maps": 32, "iterations": 9}}))
    with pytest.raises(CheckpointError, match="keys that differ: decoder.feature_maps, image_size"):
        checkpoints.load(tmp_path / "c.pt", config={"image_size": 128, "decoder": {"feature_maps": 64, "iterations": 9}})
    with pytest.raises(CheckpointError, match="a 'decoder' checkpoint, expected 'encoder'"):
        checkpoints.load(tmp_path / "c.pt", kind="encoder")


class Payload:
    """Unpickling this would touch a file: a stand-in for code hidden in a checkpoint."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_a_file_that_is_not_a_state_dict_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pt"
    torch.save({"format": checkpoints.FORMAT, "x": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="not a loadable state dict"):
        checkpoints.load(path)
    assert not marker.exists()
    (tmp_path / "plain.pt").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(CheckpointError):
        checkpoints.load(tmp_path / "plain.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a GVR-CHF checkpoint"):
        checkpoints.load(tmp_path / "foreign.pt")
