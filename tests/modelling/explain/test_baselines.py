"""Baseline maps and the baselines stage on the tiny profile."""

from __future__ import annotations

import dataclasses
import json
import logging
import re

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
    # a side 8 does not divide: 9 x 9 blocks (the last narrower), each with its own number
    odd = superpixels(100)[0, 0]
    assert len(torch.unique(odd)) == 81 and odd[0, 96] != odd[12, 0]


def test_gradcam_takes_the_last_spatial_feature_map_not_the_last_convolution():
    # Grad-CAM's feature maps are a block's output (after its activation, a ResNet's residual sum),
    # not the last convolution inside it (Selvaraju et al. 2017).
    from modelling.explain.baselines import gradcam_layer
    from modelling.nets import image_models

    encoder = Encoder(100, 8, 32)
    model = EndToEnd(encoder, Identity())
    assert gradcam_layer(model, torch.zeros(2, 1, 32, 32)) is encoder.features
    resnet = image_models.LogBnp(image_models.build("resnet18", width=0.25), 0.0, 1.0).eval()
    assert gradcam_layer(resnet, torch.zeros(2, 1, 32, 32)) is resnet.net.layer4
    with pytest.raises(ValueError, match="spatial feature map"):
        gradcam_layer(Identity(), torch.zeros(2, 1, 8, 8))


@pytest.mark.parametrize("method", ["occlusion", "lime"])
def test_a_radiographs_map_does_not_depend_on_the_others_in_the_call(method):
    # Occlusion and LIME had filled with the whole batch's mean, and LIME seeded once per batch.
    torch.manual_seed(3)
    model = EndToEnd(LeftHalf(), Identity())
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    x[0] += 0.5  # a brighter neighbour moves a batch mean
    together = attribute(model, x, method)
    alone = attribute(model, x[2:3], method)
    np.testing.assert_allclose(together[2], alone[0], atol=1e-5)


@pytest.fixture(scope="module")
def explained(tiny_explained, tmp_path_factory):
    return load_config("tiny"), copy_bundle(tiny_explained, tmp_path_factory.mktemp("baselines") / "b")


def test_stage_writes_panels_faithfulness_and_audit(explained, caplog):
    cfg, root = explained
    with caplog.at_level(logging.WARNING):
        bundle, info = build_baselines(cfg, root)
    # the audit moves each GVR again before shortening it: on the same machine it ends where the bundle's did
    assert not [r for r in caplog.records if "moved again" in r.getMessage()]
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
    for model_id, model in audit.items():  # a phantom has masks: the decision rests on them, by the documented rule
        assert model["basis"] == "masks"
        region = model["region_effects"]  # the model's response by region, on the shortened GVRs: O decides
        assert set(region) == {"whole", "non_disease", "disease", "outside", "by_mask", "share", "outside_share",
                               "no_disease_masks"}
        assert region["no_disease_masks"] == 0  # every phantom radiograph has a heart
        assert region["share"] == model["region_share"] and region["outside_share"] == model["outside_share"]
        decided = model["outside_share"] if model["outside_share"] is not None else model["non_disease_share"]
        assert model["decided_by"] == ("outside_share" if model["outside_share"] is not None else "non_disease_share")
        assert model["flagged"] == (decided > 0.5)
        assert model["measured_changes"]["ctr_measured"] >= 0
        if region["share"] is not None:
            nd, d = abs(region["non_disease"]), abs(region["disease"])
            assert region["share"] == pytest.approx(nd / (nd + d))
        assert model["region_gvrs"].startswith(f"the GVRs shortened by {cfg.audit.sparse_steps} steps")
        assert "reliance" not in model  # no fidelity stage in this bundle: no ground truth to agree with
        for gvr_id in gvrs.loc[gvrs["model_id"] == model_id, "gvr_id"]:  # what the audit read, to be seen
            shown = bundle.read_image(f"baselines/audit/{gvr_id}.png")
            assert shown.shape[1] == 2 * shown.shape[0]


def test_the_audit_reads_the_bundles_gvrs_when_told_not_to_shorten_them(explained, tmp_path):
    """With ``audit.sparse_steps: 0`` the region response is read from the stored GVRs, as explained."""
    cfg, root = explained
    copy = copy_bundle(root, tmp_path / "b")
    cfg0 = dataclasses.replace(cfg, audit=dataclasses.replace(cfg.audit, sparse_steps=0))
    bundle, _ = build_baselines(cfg0, copy, force=True)
    audit = json.loads(bundle.verify_file("baselines/audit.json").read_text())
    for model_id, model in audit.items():
        assert model["region_gvrs"] == "the bundle's GVRs as they are"
        assert model["region_effects_as_explained"] is None
        group = bundle.read_table("gvr_index").query("kind == 'gvr' and model_id == @model_id")
        for row in group.itertuples():  # the audit's overlay is the explain stage's
            shown = bundle.read_image(f"baselines/audit/{row.gvr_id}.png")
            np.testing.assert_array_equal(shown[:, shown.shape[0]:], bundle.read_image(row.overlay_path))


def test_stage_needs_gvrs(tmp_path):
    from data_schema import Bundle, BundleNotFoundError

    with pytest.raises(BundleNotFoundError, match=f"no study bundle at {tmp_path}"):
        build_baselines(load_config("tiny"), tmp_path)
    with Bundle(tmp_path).stage("config", config={}):
        pass
    with pytest.raises(ValueError, match=re.escape(f"no GVRs yet; run `gvr explain {tmp_path}` first")):
        build_baselines(load_config("tiny"), tmp_path)


def _as_real_data_with_masks(root, image_ids, segmented=None):
    """The bundle as real data would have it: no phantom truth (nor the fidelity stage's), and the phantom's own
    masks of `image_ids` given as a user's segmentations (``gvr cohort ingest --masks``)."""
    from data_schema import Bundle
    from data_schema.tables import MASK_FEATURES

    bundle = Bundle(root)
    truth = bundle.read_table("phantom_truth")
    given = truth[truth["image_id"].isin(image_ids)][["image_id", "mask_path", "mask_index"]]
    with bundle.stage("segmentations", config={}) as st:
        st.write_table("radiograph_masks", given.assign(segmented=",".join(segmented or MASK_FEATURES)))
    manifest = json.loads((root / "manifest.json").read_text())
    for rel in [r for r in manifest["files"] if r.startswith(("tables/phantom_", "tables/gvr_truth", "tables/model_reliance",
                                                                "arrays/true_change"))]:
        del manifest["files"][rel]
        (root / rel).unlink()
    (root / "manifest.json").write_text(json.dumps(manifest))
    return Bundle(root)


def test_a_users_segmentations_are_read_as_the_phantoms_masks(tiny_explained, tmp_path):
    """Real data with masks: the audit decides by region as on the phantom, from the same numbers where the masks
    are the same; radiographs without masks are left out of the regions and the faithfulness table."""
    cfg = load_config("tiny")
    phantom, _ = build_baselines(cfg, copy_bundle(tiny_explained, tmp_path / "phantom"))
    expected = json.loads(phantom.verify_file("baselines/audit.json").read_text())
    gvrs = phantom.read_table("gvr_index").query("kind == 'gvr'")

    every = _as_real_data_with_masks(copy_bundle(tiny_explained, tmp_path / "all"), gvrs["image_id"].unique())
    bundle, _ = build_baselines(cfg, every.root)  # (not a valid bundle: its cohort's files were taken away)
    audit = json.loads(bundle.verify_file("baselines/audit.json").read_text())
    for model_id, model in audit.items():
        assert model["basis"] == "masks" and model["decided_by"] == expected[model_id]["decided_by"]
        assert model["region_effects"] == expected[model_id]["region_effects"]
        assert model["decision"] == expected[model_id]["decision"]
    table = bundle.read_table("faithfulness")
    assert len(table) == len(phantom.read_table("faithfulness"))
    assert table["true_change_r"].isna().all()  # no true counterfactual on real data

    first = set(gvrs.groupby("model_id")["image_id"].first())  # one radiograph of each model's left unsegmented
    some = sorted(set(gvrs["image_id"]) - first)
    part = _as_real_data_with_masks(copy_bundle(tiny_explained, tmp_path / "part"), some)
    bundle, _ = build_baselines(cfg, part.root)
    audit = json.loads(bundle.verify_file("baselines/audit.json").read_text())
    table = bundle.read_table("faithfulness")
    assert set(table["gvr_id"]) == set(gvrs.loc[gvrs["image_id"].isin(some), "gvr_id"])
    for model_id, model in audit.items():
        n = int(gvrs.query("model_id == @model_id")["image_id"].isin(some).sum())
        assert 0 < n < 3 and model["region_gvrs"].endswith(f"; the {n} with masks read")
        # drivers: the disease masks each radiograph shows
        assert set(",".join(table["drivers"].dropna()).split(",")) <= {"heart", "effusion", "opacity"}


def test_features_nobody_segmented_have_no_share_and_new_mask_pixels_redo_the_stage(tiny_explained, tmp_path):
    from data_schema import Bundle

    cfg = load_config("tiny")
    gvrs = Bundle(tiny_explained).read_table("gvr_index").query("kind == 'gvr'")
    bundle = _as_real_data_with_masks(copy_bundle(tiny_explained, tmp_path / "b"), gvrs["image_id"].unique(),
                                      segmented=["heart", "effusion", "opacity"])
    build_baselines(cfg, bundle.root)
    table = bundle.read_table("faithfulness")
    assert table["share_markers"].isna().all() and table["share_shortcut"].isna().all()
    assert table["share_disease"].notna().any()
    audit = json.loads(bundle.verify_file("baselines/audit.json").read_text())
    assert table["share_non_disease"].isna().all()  # an empty union: no share, not a share of 0
    for model in audit.values():  # shown as not measured, not as 0 %
        assert "share_markers" not in model["gvr_mean_shares"] and "share_heart" in model["gvr_mean_shares"]
        assert model["region_share"] is None and model["non_disease_share"] is None
        if model["decided_by"] == "outside_share":
            assert any("no device mask was given" in c for c in model["caveats"])
    # the table names the stacks; masks drawn again in them make the audit's reading stale
    stack = bundle.read_table("radiograph_masks")["mask_path"].iloc[0]
    bits = bundle.read_array(stack)["bits"].copy()
    bits[:, :4, :4] ^= 1
    table = bundle.read_table("radiograph_masks")
    with bundle.stage("segmentations", config={"again": True}) as st:  # the ingest again, the same table
        st.write_table("radiograph_masks", table)
        st.write_array(stack, {"bits": bits})
    assert [rel for rel, _ in bundle.changed_inputs("baselines")] == [stack]


def test_an_audit_without_masks_on_its_gvrs_says_where_the_masks_are(tiny_explained, tmp_path):
    from data_schema import Bundle

    cfg = load_config("tiny")
    index = Bundle(tiny_explained).read_table("gvr_index")
    radiographs = Bundle(tiny_explained).read_table("radiographs")
    elsewhere = sorted(set(radiographs["image_id"]) - set(index["image_id"]))[:5]
    bundle = _as_real_data_with_masks(copy_bundle(tiny_explained, tmp_path / "b"), elsewhere)
    build_baselines(cfg, bundle.root)
    assert "tables/faithfulness.parquet" not in bundle.files
    audit = json.loads(bundle.verify_file("baselines/audit.json").read_text())
    for model in audit.values():
        assert any("masks of 5 radiograph(s), none of them among this model's GVRs" in line
                   for line in model["not_checked"]), model["not_checked"]
