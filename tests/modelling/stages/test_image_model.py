"""The image-model stage on the tiny profile: a MONAI CNN trained, exported and explained like a user's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_schema import validate_bundle
from modelling.config import load_config
from modelling.stages.artifacts import load_image_model, load_images
from modelling.stages.image_explain import build_own_image_rationales
from modelling.stages.image_fidelity import build_image_fidelity
from modelling.stages.image_model import build_image_model
from tests.conftest import copy_bundle


# a median of no finite r warned "Mean of empty slice" into the user's output and wrote NaN into the JSON
@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_the_study_trains_exports_and_explains_its_own_image_model(tiny_explained, tmp_path):
    root = copy_bundle(tiny_explained, tmp_path / "b")
    cfg = load_config("tiny")
    bundle, summary = build_image_model(cfg, root)
    assert summary["architecture"] == cfg.image_model.architecture and 1 <= summary["epochs"] <= cfg.image_model.epochs
    assert len(summary["history"]) == summary["epochs"] and summary["fitting_radiographs"] > 0
    assert summary["test_auc"] is None or 0 <= summary["test_auc"] <= 1
    model, spec, _ = load_image_model(bundle)
    assert spec.output == "log_bnp" and spec.threshold == np.log(cfg.cohort.bnp_threshold_ng_l)
    radiographs = bundle.read_table("radiographs")
    assert spec.input_size == load_images(bundle, radiographs.iloc[:1]).shape[-1]
    results = build_own_image_rationales(cfg, root)
    assert set(results) == {"direct", "surrogate"}
    for method in results:
        info = json.loads(bundle.verify_file(f"image_gvr/cnn/{method}/summary.json").read_text())
        assert info["method"] == method and info["scored"] == len(radiographs)
    assert "r2" in json.loads(bundle.verify_file("image_gvr/cnn/surrogate/summary.json").read_text())[
        "surrogate_fidelity"]
    _, fidelity = build_image_fidelity(cfg, root)
    table = bundle.read_table("image_gvr/cnn/faithfulness.parquet", schema="faithfulness")
    explained = fidelity["radiographs"]
    if explained:  # the tiny CNN may score no test radiograph positive; then there is nothing to compare
        assert set(table["method"]) >= {"gvr", "occlusion", "integrated_gradients", "lime", "gradcam"}
        assert set(table["model_id"]) == {"cnn", "mlp-correct"}
        assert (table.groupby(["model_id", "method"]).size() <= explained).all()
        assert set(fidelity["models"]["cnn"]) >= {"occlusion", "gradcam"}
    realism = fidelity["realism"]["sets"]  # KID of every set of reconstructions, the latent GVRs' included
    assert {"mlp-correct GVRs: healthy reconstructions",
            "real healthy radiographs, one half against the other (floor)"} <= set(realism)
    assert realism["mlp-correct GVRs: diseased reconstructions"]["reference"] == "diseased"
    # the training stage's decoder samples, from its sampler and the prior, against what the decoder learned
    assert {realism[f"decoder samples ({s})"]["reference"] for s in ("two-stage sampler", "N(0, I) prior")} == {
        "decoder training"}
    assert "real decoder training radiographs, one half against the other (floor)" in realism
    _the_other_references_do_not_depend_on_the_samples(bundle, cfg, realism)
    _a_cohort_without_one_class_has_no_reference_for_it(bundle, cfg)
    assert all(v["subset_size"] >= 2 and np.isfinite(v["kid"]) for v in realism.values())
    assert validate_bundle(root) == []
    again, _ = build_image_model(cfg, root)  # current: skipped, the same model file
    assert again.record("image_model/model.pt2").sha256 == bundle.record("image_model/model.pt2").sha256


def _the_other_references_do_not_depend_on_the_samples(bundle, cfg, realism):
    """The decoder's reference draws from its own stream: a bundle without samples gets the same floors."""
    import pytest

    from modelling.stages import image_fidelity

    tables = {m: bundle.read_table(f"image_gvr/cnn/{m}/rationales.parquet", schema="image_rationales")
              for m in ("direct", "surrogate")}
    model = image_fidelity.eager(cfg, load_image_model(bundle)[0])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(image_fidelity, "DECODER_SAMPLES", "train/no_such_samples.npz")
        without = image_fidelity._realism(bundle, cfg, model, tables)["sets"]
    assert not any(name.startswith(("decoder samples", "real decoder training")) for name in without)
    for name, values in without.items():
        assert values == realism[name], name


def _a_cohort_without_one_class_has_no_reference_for_it(bundle, cfg):
    """A real cohort may have no radiograph at or above the threshold: its sets are left out, nothing fails."""
    import dataclasses

    from modelling.stages import image_fidelity

    above_all = dataclasses.replace(cfg, cohort=dataclasses.replace(cfg.cohort, bnp_threshold_ng_l=1e12),
                                    gvr=dataclasses.replace(cfg.gvr, inverse_targets_ng_l=(2e12,)))
    tables = {m: bundle.read_table(f"image_gvr/cnn/{m}/rationales.parquet", schema="image_rationales")
              for m in ("direct", "surrogate")}
    out = image_fidelity._realism(bundle, above_all, image_fidelity.eager(cfg, load_image_model(bundle)[0]), tables)
    assert out["reference_n"]["diseased"] == 0 and out["reference_n"]["healthy"] > 0
    assert {v["reference"] for v in out["sets"].values()} == {"healthy", "decoder training"}
    # each class draws its reference from its own stream: without the diseased radiographs, the healthy
    # reference and its floor are those of the full cohort
    import pytest

    full = image_fidelity._realism(bundle, cfg, image_fidelity.eager(cfg, load_image_model(bundle)[0]), tables)
    read = bundle.read_table

    def healthy_only(name, *args, **kwargs):
        df = read(name, *args, **kwargs)
        return df[df["bnp_ng_l"] < cfg.cohort.bnp_threshold_ng_l] if name == "pairing" else df

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bundle, "read_table", healthy_only)
        alone = image_fidelity._realism(bundle, cfg, image_fidelity.eager(cfg, load_image_model(bundle)[0]), tables)
    floor = "real healthy radiographs, one half against the other (floor)"
    assert alone["reference_n"]["diseased"] == 0
    assert alone["sets"][floor] == full["sets"][floor]
    assert alone["sets"]["mlp-correct GVRs: healthy reconstructions"] == full["sets"][
        "mlp-correct GVRs: healthy reconstructions"]
