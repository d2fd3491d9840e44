"""`gvr explain --image-model`: a user's TorchScript or factory model explained in a tiny bundle."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from data_schema import Bundle, validate_bundle
from modelling.cli.app import app
from modelling.explain.image_model import ImageModelSpec
from modelling.stages.artifacts import load_images
from modelling.stages.image_explain import model_scores
from tests.conftest import copy_bundle
from tests.modelling.explain.toy_models import HeartModel

runner = CliRunner()


@pytest.fixture(scope="module")
def user_model(tiny_trained, tmp_path_factory):
    """A copy of the tiny bundle, and an exported heart model whose threshold is the median score of
    the bundle's test radiographs (so that half of them start positive)."""
    root = copy_bundle(tiny_trained, tmp_path_factory.mktemp("image") / "b")
    bundle = Bundle(root, create=False)
    radiographs = bundle.read_table("radiographs")
    size = load_images(bundle, radiographs.iloc[:1]).shape[-1]
    model = HeartModel()
    spec = ImageModelSpec(input_size=48, output="log_bnp", threshold=0.0)
    s = model_scores(model, load_images(bundle, radiographs), spec)
    threshold = float(np.median(s))
    folder = tmp_path_factory.mktemp("user")
    path = folder / "heart.pt2"
    program = torch.export.export(model.eval(), (torch.rand(2, 1, 48, 48),),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
    torch.export.save(program, str(path))
    (folder / "heart.yaml").write_text(f"input_size: 48\noutput: log_bnp\nthreshold: {threshold}\n")
    torch.save(model.state_dict(), folder / "heart_state.pt")
    return root, path, threshold, size


def test_direct_rationales_are_written_and_checked_by_the_model(user_model):
    root, path, threshold, _ = user_model
    result = runner.invoke(app, ["explain", "--bundle", str(root), "--config", "tiny", "--image-model", str(path)])
    assert result.exit_code == 0, result.output
    assert "explained" in result.output and "(valid)" in result.output
    bundle = Bundle(root, create=False)
    assert validate_bundle(root) == []
    table = bundle.read_table("image_gvr/heart/direct/rationales.parquet", schema="image_rationales")
    assert len(table) >= 1 and (table["method"] == "direct").all()
    assert (table["model_score_original"] >= threshold).all()
    # a log-BNP model's threshold is on the score scale already; the scores compare with score_threshold
    assert (table["threshold"] == threshold).all() and np.allclose(table["score_threshold"], threshold)
    expected = ((table["model_score_diseased"] >= table["score_threshold"])
                & (table["model_score_healthy"] < table["score_threshold"]))
    assert (table["valid"] == expected).all()  # validity is the model's verdict on the stored images, nothing else
    for p in table["overlay_path"]:
        assert bundle.read_image(p).ndim == 3
    summary = json.loads(bundle.verify_file("image_gvr/heart/direct/summary.json").read_text())
    assert summary["explained"] == len(table) and summary["valid"] == pytest.approx(table["valid"].mean())
    # reached counts the moves made: a reconstruction already read past the threshold is not one
    moved = table[table["steps"] > 0]
    assert summary["already_past"] == len(table) - len(moved) and len(moved)
    assert summary["reached"] == pytest.approx(moved["reached"].mean())
    again = runner.invoke(app, ["explain", "--bundle", str(root), "--config", "tiny", "--image-model", str(path)])
    assert again.exit_code == 0 and "up to date, skipped" in again.output and "explained" in again.output


def test_surrogate_via_a_factory_reports_its_fidelity(user_model):
    root, path, threshold, _ = user_model
    result = runner.invoke(app, [
        "explain", "--bundle", str(root), "--config", "tiny", "--image-model-factory",
        "tests.modelling.explain.toy_models:heart_model", "--weights", str(path.parent / "heart_state.pt"),
        "--image-model-spec", str(path.with_suffix(".yaml")), "--method", "surrogate", "--name", "heart-s"])
    assert result.exit_code == 0, result.output
    assert "surrogate fidelity on" in result.output
    summary = json.loads(Bundle(root, create=False).verify_file("image_gvr/heart-s/surrogate/summary.json").read_text())
    assert set(summary["surrogate_fidelity"]) >= {"r2", "auc", "agreement", "n_held_out"}


def test_no_radiograph_at_or_above_the_threshold_writes_an_empty_checked_table(user_model, tmp_path):
    """A user's model that calls no test radiograph positive: said, and an empty table that passes its schema
    (the table's float columns had been left as objects, and the stage failed on its own output)."""
    root, path, _, _ = user_model
    high = tmp_path / "high.pt2"
    high.write_bytes(path.read_bytes())
    high.with_suffix(".yaml").write_text("input_size: 48\noutput: log_bnp\nthreshold: 1.0e6\n")
    result = runner.invoke(app, ["explain", "--bundle", str(root), "--config", "tiny", "--image-model", str(high),
                                 "--name", "none-high"])
    assert result.exit_code == 0, result.output
    assert "0 of the test split at or above 1e+06; explained 0" in result.output
    assert f"nothing to explain: no test radiograph scored at or above the threshold; check the spec's output " \
           f"(log_bnp) and threshold (1e+06) in {high.with_suffix('.yaml')}" in result.output
    table = Bundle(root, create=False).read_table("image_gvr/none-high/direct/rationales.parquet",
                                                  schema="image_rationales")
    assert len(table) == 0 and table["end_score"].dtype == np.float64
    assert validate_bundle(root) == []


def test_a_program_exported_for_one_batch_size_is_refused_with_how_to_export_it(user_model, tmp_path):
    """The README's export example without its dynamic batch takes a batch of two only; the check ran a
    batch of two and passed it, and scoring then failed with a bare guard assertion."""
    root, path, _, _ = user_model
    fixed = tmp_path / "fixed.pt2"
    torch.export.save(torch.export.export(HeartModel().eval(), (torch.rand(2, 1, 48, 48),)), str(fixed))
    fixed.with_suffix(".yaml").write_text(path.with_suffix(".yaml").read_text())
    result = runner.invoke(app, ["explain", "--bundle", str(root), "--config", "tiny", "--image-model", str(fixed),
                                 "--name", "fixed"])
    assert result.exit_code == 2, result.output
    assert "does not accept input of shape (3, 1, 48, 48)" in result.output and "dynamic_shapes" in result.output


@pytest.mark.parametrize("extra, message", [
    (["--image-model", "{pt}", "--image-model-factory", "m:f"], "give either --image-model FILE"),
    (["--image-model-factory", "tests.modelling.explain.toy_models:heart_model"], "needs --weights FILE"),
    (["--image-model", "{state}"], "a torch.save file, not an exported program"),
    (["--image-model", "{pt}", "--image-model-spec", "{missing}"], "image model spec not found"),
    (["--image-model", "{pt}", "--method", "magic"], "--method must be one of direct, surrogate"),
    (["--image-model", "{pt}", "--name", "bad name"], "--name must be letters"),
])
def test_refusals_name_what_is_wrong(user_model, extra, message):
    root, path, _, _ = user_model
    values = {"pt": str(path), "state": str(path.parent / "heart_state.pt"), "missing": str(path.parent / "no.yaml")}
    args = ["explain", "--bundle", str(root), "--config", "tiny", *[a.format(**values) for a in extra]]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and message in result.output, result.output


def test_a_refused_model_leaves_an_earlier_run_under_its_name_as_it_was(user_model, tmp_path):
    """A refusal (exit 2) happens before the stage opens: the model checked inside it had marked the earlier,
    good run of the same name as not completed."""
    root, path, _, _ = user_model
    good = runner.invoke(app, ["explain", "--bundle", str(root), "--config", "tiny", "--image-model", str(path),
                               "--name", "kept"])
    assert good.exit_code == 0, good.output
    fixed = tmp_path / "fixed.pt2"
    torch.export.save(torch.export.export(HeartModel().eval(), (torch.rand(2, 1, 48, 48),)), str(fixed))
    fixed.with_suffix(".yaml").write_text(path.with_suffix(".yaml").read_text())
    refused = runner.invoke(app, ["explain", "--bundle", str(root), "--config", "tiny", "--image-model", str(fixed),
                                  "--name", "kept", "--force"])
    assert refused.exit_code == 2, refused.output
    assert validate_bundle(root) == []
    assert "image-kept-direct" in Bundle(root, create=False).stages


def test_metric_moves_explain_a_users_model_directly_and_its_surrogate_by_the_gradient(user_model, tmp_path):
    """Under gvr.move: metric the direct method moves by the decoder's pullback metric; a surrogate scores
    the code, whose gradient the decoder does not draw, so its moves are the gradient's, and its summary
    says so."""
    import yaml

    from modelling.config import CONFIG_DIR

    root, path, _, _ = user_model
    data = yaml.safe_load((CONFIG_DIR / "tiny.yaml").read_text())
    data["gvr"] |= {"move": "metric", "reencode": True}
    config = tmp_path / "metric.yaml"
    config.write_text(yaml.safe_dump(data))
    bundle = Bundle(root, create=False)
    for method, name, move in (("direct", "heart-m", "metric"), ("surrogate", "heart-ms", "gradient")):
        result = runner.invoke(app, ["explain", "--bundle", str(root), "--config", str(config), "--image-model",
                                     str(path), "--image-model-spec", str(path.with_suffix(".yaml")),
                                     "--method", method, "--name", name])
        assert result.exit_code == 0, result.output
        summary = json.loads(bundle.verify_file(f"image_gvr/{name}/{method}/summary.json").read_text())
        assert summary["move"] == move and summary["explained"] >= 1
    result = runner.invoke(app, ["explain", "--bundle", str(root), "--config", "tiny", "--image-model", str(path),
                                 "--name", "heart-p"])  # the tiny profile's own move (pattern)
    assert result.exit_code == 0, result.output
    direct = bundle.read_table("image_gvr/heart-m/direct/rationales.parquet", schema="image_rationales")
    pattern = bundle.read_table("image_gvr/heart-p/direct/rationales.parquet", schema="image_rationales")
    # a 4-iteration decoder barely draws a change, so no move reaches the threshold in 30 steps; each lowers it
    assert (direct["end_score"] < direct["start_score"]).all()
    both = direct.merge(pattern, on="image_id", suffixes=("", "_pattern"))  # the same radiographs
    moved = both[(both["steps"] > 0) & (both["steps_pattern"] > 0)]
    assert len(moved) and not np.allclose(moved["latent_distance"], moved["latent_distance_pattern"], rtol=1e-3)


def test_a_factory_whose_code_changed_is_explained_again_and_named_after_its_module(user_model, tmp_path,
                                                                                     monkeypatch):
    """The stage's key held the factory's name and weights only: an edited forward() was 'up to date, skipped'
    with the old model's rationales. And the name defaulted to the function's ('build' for every factory)."""
    import shutil
    import sys

    root, path, _, _ = user_model
    module = tmp_path / "mynet.py"
    module.write_text("from tests.modelling.explain.toy_models import HeartModel\n\ndef build():\n    return HeartModel()\n")
    monkeypatch.chdir(tmp_path)
    args = ["explain", "--bundle", str(root), "--config", "tiny", "--image-model-factory", "mynet:build",
            "--weights", str(path.parent / "heart_state.pt"), "--image-model-spec", str(path.with_suffix(".yaml"))]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "mynet: scored" in first.output and (root / "image_gvr/mynet/direct/summary.json").is_file()
    module.write_text(module.read_text() + "\n# retrained: another model\n")
    sys.modules.pop("mynet", None)
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "up to date, skipped" not in second.output
    shutil.rmtree(tmp_path / "__pycache__", ignore_errors=True)


def test_a_users_model_under_the_studys_own_name_or_with_the_studys_options_is_refused(user_model):
    root, path, _, _ = user_model
    own = runner.invoke(app, ["explain", "--bundle", str(root), "--config", "tiny", "--image-model", str(path),
                              "--name", "cnn"])
    assert own.exit_code == 2 and "--name cnn is the study's own image model's" in own.output
    ignored = runner.invoke(app, ["explain", "--bundle", str(root), "--config", "tiny", "--image-model", str(path),
                                  "--images", "img0000001"])
    assert ignored.exit_code == 2 and "--images applies to the study's own MLPs only" in ignored.output


def test_another_model_under_a_name_is_said_to_replace_it(user_model, tmp_path, caplog):
    root, path, _, _ = user_model
    other = tmp_path / "heart.pt2"
    changed = HeartModel()
    with torch.no_grad():
        changed.scale.fill_(13.0)
    program = torch.export.export(changed.eval(), (torch.rand(2, 1, 48, 48),),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
    torch.export.save(program, str(other))
    other.with_suffix(".yaml").write_text(path.with_suffix(".yaml").read_text())
    first = runner.invoke(app, ["explain", "--bundle", str(root), "--config", "tiny", "--image-model", str(path),
                                "--name", "shared"])
    assert first.exit_code == 0, first.output
    with caplog.at_level("WARNING"):
        second = runner.invoke(app, ["explain", "--bundle", str(root), "--config", "tiny", "--image-model", str(other),
                                     "--name", "shared"])
    assert second.exit_code == 0, second.output
    said = " ".join(r.getMessage() for r in caplog.records) + second.output
    assert "image_gvr/shared/direct held the rationales of another model" in said


def test_logits_read_as_probabilities_are_said_to_be_clamped(user_model, tmp_path, caplog):
    root, path, _, _ = user_model
    wrong = tmp_path / "wrong.pt2"
    wrong.write_bytes(path.read_bytes())
    wrong.with_suffix(".yaml").write_text("input_size: 48\noutput: probability\nthreshold: 0.5\n")
    with caplog.at_level("WARNING"):
        result = runner.invoke(app, ["explain", "--bundle", str(root), "--config", "tiny", "--image-model", str(wrong)])
    assert result.exit_code == 0, result.output
    said = " ".join(r.getMessage() for r in caplog.records) + result.output
    assert "outputs lie at or beyond the end of the spec's output scale (probability: 0 or 1) and were clamped" in said
