"""Baseline maps and the baselines stage on the tiny profile."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from data_schema import validate_bundle
from modelling.config import load_config
from modelling.explain.baselines import METHODS, EndToEnd, attribute, superpixels
from modelling.nets.networks import Encoder
from modelling.stages.baselines import build_baselines
from tests.conftest import copy_bundle


class LeftHalf(nn.Module):
    """A toy 'encoder' whose code is the mean of the image's left half: only that half matters."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 1, 1))
        with torch.no_grad():
            self.features[0].weight.fill_(1.0)
            self.features[0].bias.zero_()

    def last_conv(self):
        return self.features[0]

    def forward(self, x):
        y = self.features(x)
        return y[..., : x.shape[-1] // 2].mean(dim=(1, 2, 3))[:, None]


class Identity(nn.Module):
    """Scaled so that LIME's lasso (alpha 0.01) keeps the superpixels' effects."""

    def forward(self, z):
        return 100 * z[:, 0]


@pytest.mark.parametrize("method", METHODS)
def test_each_method_puts_its_weight_where_the_model_looks(method):
    model = EndToEnd(LeftHalf(), Identity())
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    maps = attribute(model, x, method, seed=1)
    assert maps.shape == (2, 16, 16)
    weight = np.abs(maps)
    left, right = weight[..., :8].sum(), weight[..., 8:].sum()
    if method == "gradcam":  # a single-channel layer: its map is the activation, on both halves
        assert np.isfinite(weight).all()
    else:
        assert left > 5 * right


def test_unknown_method_and_superpixels():
    with pytest.raises(ValueError, match="method must be one of occlusion"):
        attribute(EndToEnd(LeftHalf(), Identity()), torch.zeros(1, 1, 16, 16), "saliency")
    mask = superpixels(32)
    assert mask.shape == (1, 1, 32, 32) and len(torch.unique(mask)) == 64


def test_gradcam_uses_the_encoders_last_convolution():
    encoder = Encoder(100, 8, 32)
    convs = [m for m in encoder.features if isinstance(m, nn.Conv2d)]
    assert encoder.last_conv() is convs[-1]


@pytest.fixture(scope="module")
def explained(tiny_explained, tmp_path_factory):
    return load_config("tiny"), copy_bundle(tiny_explained, tmp_path_factory.mktemp("baselines") / "b")


def test_stage_writes_panels_faithfulness_and_audit(explained):
    cfg, root = explained
    bundle, info = build_baselines(cfg, root)
    assert validate_bundle(root) == []
    gvrs = bundle.read_table("gvr_index").query("kind == 'gvr'")
    for gvr_id in gvrs["gvr_id"]:
        panel = bundle.read_image(f"baselines/{gvr_id}.png")
        assert panel.shape[1] == 6 * panel.shape[0]  # original, GVR, four baselines
    table = bundle.read_table("faithfulness")
    assert set(table["method"]) == {"gvr", *METHODS}
    assert len(table) == len(gvrs) * 5
    share_columns = [c for c in table if c.startswith("share_")]
    weighed = table[share_columns].notna().all(axis=1)  # an unchanged GVR (all zero) has no shares
    assert weighed.sum() > len(table) / 2
    assert (table.loc[weighed, share_columns].sum(axis=1) >= 1 - 1e-9).all()  # masks may overlap
    # all-zero maps: an unchanged GVR, or a Grad-CAM whose ReLU removes everything
    assert table.loc[~weighed, "method"].isin(["gvr", "gradcam"]).all()
    audit = json.loads(bundle.verify_file("baselines/audit.json").read_text())
    assert set(audit) == set(gvrs["model_id"])
    for model in audit.values():  # a phantom has masks: the decision rests on them, by the documented rule
        assert model["basis"] == "masks"
        assert model["flagged"] == (model["non_disease_share"] > 0.5)
        assert model["measured_changes"]["ctr_measured"] >= 0
        assert "reliance" not in model  # no fidelity stage in this bundle: no ground truth to agree with


def test_stage_needs_gvrs(tmp_path):
    from data_schema import Bundle, BundleNotFoundError

    with pytest.raises(BundleNotFoundError, match=f"no study bundle at {tmp_path}"):
        build_baselines(load_config("tiny"), tmp_path)
    with Bundle(tmp_path).stage("config", config={}):
        pass
    with pytest.raises(ValueError, match="run `gvr explain` first"):
        build_baselines(load_config("tiny"), tmp_path)
