"""The cohort stage in a bundle: validated, byte-identical for a seed, resumable after a kill."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from data_schema import Bundle, validate_bundle
from modelling.cli import app
from modelling.cohort.phantom import unpack_masks
from modelling.config import load_config
from modelling.stages import cohort as cohort_bundle
from modelling.stages.cohort import build_cohort


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg = load_config("tiny")
    root = tmp_path_factory.mktemp("bundle")
    return cfg, build_cohort(cfg, root, workers=1)


def test_bundle_is_valid_and_complete(tiny):
    cfg, bundle = tiny
    assert validate_bundle(bundle.root) == []
    radiographs = bundle.read_table("radiographs")
    n = cfg.cohort.labelled_radiographs + cfg.cohort.unlabelled_radiographs
    assert len(radiographs) == n
    stack = bundle.read_array("images/radiographs-00000.npy")
    assert stack.shape == (n, cfg.image_size, cfg.image_size) and stack.dtype == np.uint8
    truth = bundle.read_table("phantom_truth")
    bits = bundle.read_array("masks/masks-00000.npz")["bits"]
    masks = unpack_masks(bits)
    with_pacemaker = truth["pacemaker"].to_numpy()
    has_device = masks["device"].reshape(n, -1).any(axis=1)
    np.testing.assert_array_equal(has_device, with_pacemaker)
    summary = json.loads(bundle.verify_file("cohort/summary.json").read_text())
    assert set(summary["sets"]) == {"test", "train", "unlabelled"}
    sheet = bundle.read_image("cohort/contact_sheet.png")
    assert sheet.ndim == 3 and sheet.shape[2] == 3


def test_same_seed_gives_a_byte_identical_bundle(tiny, tmp_path):
    cfg, first = tiny
    again = build_cohort(cfg, tmp_path / "again", workers=2)
    assert {k: r.sha256 for k, r in first.files.items()} == {k: r.sha256 for k, r in again.files.items()}


def test_a_current_cohort_is_not_rebuilt(tiny, monkeypatch):
    cfg, bundle = tiny
    monkeypatch.setattr(cohort_bundle, "write_cohort", lambda *a, **k: pytest.fail("rebuilt"))
    build_cohort(cfg, bundle.root)


def test_a_killed_run_resumes_at_the_first_missing_shard(tmp_path, monkeypatch):
    cfg = load_config("tiny")
    monkeypatch.setattr(cohort_bundle, "SHARD_SIZE", 32)  # 135 radiographs: 5 shards
    reference = build_cohort(cfg, tmp_path / "reference", workers=1)

    rendered = []
    real = cohort_bundle._render_shard

    def dies_after_two(args):
        if len(rendered) == 2:
            raise KeyboardInterrupt("killed")
        rendered.append(args[0]["noise_seed"][0])
        return real(args)

    monkeypatch.setattr(cohort_bundle, "_render_shard", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        build_cohort(cfg, tmp_path / "resumed", workers=1)
    assert "cohort" not in Bundle(tmp_path / "resumed").stages

    rendered.clear()
    monkeypatch.setattr(cohort_bundle, "_render_shard", lambda args: (rendered.append(1), real(args))[1])
    resumed = build_cohort(cfg, tmp_path / "resumed", workers=1)
    assert len(rendered) == 3  # shards 0 and 1 were kept
    assert {k: r.sha256 for k, r in resumed.files.items()} == {k: r.sha256 for k, r in reference.files.items()}
    assert validate_bundle(resumed.root) == []


def test_cli_prints_the_table_1_summary(tmp_path):
    result = CliRunner().invoke(app, ["cohort", "synth", "--config", "tiny", "--out", str(tmp_path / "b"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "unlabelled" in result.output and "oracle AUC at 100 ng/L" in result.output
    assert "BNP median (IQR)" in result.output


def test_summary_counts_a_patient_in_every_set_they_have_radiographs_in():
    import pandas as pd

    from modelling.stages.cohort import summary

    t = {
        "patients": pd.DataFrame({"patient_id": ["p1", "p2"], "sex": ["F", "M"], "age_years": [70.0, 60.0]}),
        "splits": pd.DataFrame({"image_id": ["i1", "i2", "i3"], "patient_id": ["p1", "p1", "p2"],
                                "set": ["unlabelled", "train", "test"]}),
        "pairing": pd.DataFrame({"image_id": ["i2", "i3"], "result_id": ["r1", "r2"], "hours_apart": [1.0, 2.0],
                                 "bnp_ng_l": [300.0, 50.0]}),
    }
    sets = summary(t, threshold=100.0)["sets"]
    assert (sets["train"]["radiographs"], sets["train"]["patients"]) == (1, 1)
    assert (sets["unlabelled"]["radiographs"], sets["unlabelled"]["patients"]) == (1, 1)
    assert sets["train"]["bnp_median"] == 300.0 and sets["test"]["below_threshold"] == 1


def test_a_damaged_shard_is_rendered_again(tmp_path):
    cfg = load_config("tiny")
    build_cohort(cfg, tmp_path, workers=1)
    shard = tmp_path / "images/radiographs-00000.npy"
    good = shard.read_bytes()
    shard.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))
    # the size is unchanged, so only the hash tells; --force renders it again instead of adopting it
    build_cohort(cfg, tmp_path, workers=1, force=True)
    assert shard.read_bytes() == good
    assert validate_bundle(tmp_path) == []


def test_the_bundle_can_draw_each_radiograph_again_and_without_its_disease(tiny):
    """tables/phantom_render.parquet holds what the phantom drew each radiograph from: drawing again
    gives the stored radiograph byte for byte, and the disease-free counterfactual differs from it."""
    import numpy as np

    from modelling.cohort import phantom
    from modelling.cohort.counterfactual import true_change
    from modelling.stages.artifacts import load_images, load_render_params

    cfg, bundle = tiny
    radiographs = bundle.read_table("radiographs").iloc[:40]
    params = load_render_params(bundle, radiographs["image_id"])
    assert set(params) == set(phantom.PARAMETERS)
    stored = load_images(bundle, radiographs)
    t = true_change(params, cfg.image_size)
    np.testing.assert_array_equal(t.original, stored)
    truth = bundle.read_table("phantom_truth").set_index("image_id").loc[radiographs["image_id"]]
    diseased = (truth["cardiothoracic_ratio"] > 0.45) | (truth["effusion_left"] > 0) | (truth["opacity"] > 0)
    changed = np.abs(t.change).sum(axis=(1, 2)) > 0
    assert changed[diseased.to_numpy()].all() and diseased.any()
    with pytest.raises(KeyError, match="no render parameters"):
        load_render_params(bundle, ["not-an-image"])
