"""GVRs of a user's own image model (issue 17): loading and refusals, the direct and surrogate methods,
validity checked with the real model (toy models with known answers, STYLE.md 8)."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import torch
from torch import nn

from modelling.explain.image_model import (
    ImageModelError,
    ImageModelSpec,
    check,
    load_factory,
    load_model_file,
    scores,
)
from modelling.explain.rationale import GenerativeRationale, fit_surrogate
from tests.modelling.explain.toy_models import SIZE, HeartModel, ToyDecoder, ToyEncoder, heart_region

THRESHOLD = np.log(100.0)


def images(z: np.ndarray, decoder=None) -> torch.Tensor:
    with torch.no_grad():
        return (((decoder or ToyDecoder())(torch.as_tensor(z, dtype=torch.float32)) + 1) / 2).clamp(0, 1)


@pytest.mark.parametrize("metric_ridge", [None, 0.3], ids=["gradient", "metric"])
def test_the_direct_change_lies_in_the_heart_when_the_model_reads_only_the_heart(metric_ridge):
    decoder, model = ToyDecoder(), HeartModel()
    x = images(np.array([[1.5, 0.8, 0, 0], [1.2, -0.5, 0, 0]]))
    x48 = torch.nn.functional.interpolate(x, size=(48, 48), mode="bilinear", align_corners=False)
    assert (model(x48)[:, 0] > THRESHOLD).all()  # both start positive, on the model's own 48 px input
    explainer = GenerativeRationale(model, decoder, ToyEncoder(), output="log_bnp")
    attributions, path = explainer.attribute(x48, threshold=THRESHOLD, step_size=0.05, max_steps=400, margin=0.02,
                                             metric_ridge=metric_ridge, return_path=True)
    assert attributions.shape == x48.shape  # captum's contract: the inputs' shape
    assert path.valid.all() and (path.model_score_healthy < THRESHOLD).all()
    assert (path.end[:, 0] < path.start[:, 0]).all()  # the heart shrinks
    np.testing.assert_allclose(path.end[:, 1], path.start[:, 1], atol=0.05)  # the marker the model ignores stays
    change = attributions.abs()[:, 0].numpy()
    heart = heart_region(48).numpy().astype(bool)
    assert (change[:, heart].sum(axis=1) / change.sum(axis=(1, 2)) > 0.95).all()
    if metric_ridge is not None:  # the ridge reaches the move: it ends elsewhere than the gradient's
        _, gradient = explainer.attribute(x48, threshold=THRESHOLD, step_size=0.05, max_steps=400, margin=0.02,
                                          return_path=True)
        assert not np.allclose(path.end, gradient.end, atol=1e-3)


def scored_codes(model, n=200, seed=0):
    z = np.random.default_rng(seed).normal(0, 1, (n, 4)).astype(np.float32)
    z[:, 2:] = 0
    with torch.no_grad():
        s = model(images(z))[:, 0].numpy() if isinstance(model, nn.Module) else model(images(z))
    return z, np.asarray(s, np.float64)


class NoiseModel(nn.Module):
    """An output that no smooth function of the code predicts: a hash of the pixels."""

    def forward(self, x):
        return torch.sin(5000.0 * (x * torch.linspace(0, 1, x[0].numel()).reshape(x.shape[1:])).sum(dim=(1, 2, 3)))[:, None]


def test_surrogate_fidelity_is_high_for_a_model_of_the_code_and_falls_for_noise():
    z, s = scored_codes(HeartModel())
    good = fit_surrogate(z, s, threshold=float(np.median(s)), seed=1)
    assert good.fidelity["r2"] > 0.8 and good.fidelity["auc"] > 0.9 and good.fidelity["n_held_out"] == 50
    z, s = scored_codes(NoiseModel())
    noise = fit_surrogate(z, s, threshold=float(np.median(s)), seed=1)
    assert noise.fidelity["r2"] < 0.2 and noise.fidelity["auc"] < 0.75
    assert noise.fidelity["agreement"] < good.fidelity["agreement"]


def test_a_surrogate_the_model_does_not_follow_gives_invalid_rationales():
    """The surrogate reads the marker (z[1]); the model reads the heart. Moving along the surrogate
    reaches its target, but the real model's decision does not change: not valid."""
    decoder, model = ToyDecoder(), HeartModel()
    wrong = nn.Sequential(nn.Linear(4, 1), nn.Flatten(0))
    with torch.no_grad():
        wrong[0].weight.copy_(torch.tensor([[0.0, 2.0, 0.0, 0.0]]))
        wrong[0].bias.fill_(THRESHOLD + 1.0)
    from modelling.explain.rationale import Surrogate

    surrogate = Surrogate(predictor=wrong, fidelity={})
    x = images(np.array([[1.5, 0.8, 0, 0], [1.4, 0.6, 0, 0]]))
    _, path = GenerativeRationale(model, decoder, ToyEncoder()).attribute(
        x, threshold=THRESHOLD, method="surrogate", surrogate=surrogate, step_size=0.05, max_steps=400,
        return_path=True)
    assert path.reached.all()  # the surrogate crossed
    assert not path.valid.any() and (path.model_score_healthy >= THRESHOLD).all()  # the model did not


def test_surrogate_method_with_a_faithful_surrogate_is_valid():
    decoder, model = ToyDecoder(), HeartModel()
    z, s = scored_codes(model)
    surrogate = fit_surrogate(z, s, threshold=THRESHOLD, seed=2)
    x = images(np.array([[1.5, 0.8, 0, 0], [1.2, -0.5, 0, 0]]))
    _, path = GenerativeRationale(model, decoder, ToyEncoder()).attribute(
        x, threshold=THRESHOLD, method="surrogate", surrogate=surrogate, step_size=0.05, max_steps=400,
        margin=0.1, return_path=True)
    assert path.valid.all()
    # shrinking a move along the surrogate, which scores the code, is refused: it would find codes the
    # surrogate reads low whose pictures barely change
    with pytest.raises(ValueError, match="sparse_steps needs method 'direct'"):
        GenerativeRationale(model, decoder, ToyEncoder()).attribute(
            x, threshold=THRESHOLD, method="surrogate", surrogate=surrogate, sparse_steps=10)
    with pytest.raises(ValueError, match="metric moves need method 'direct'"):  # the same for metric moves
        GenerativeRationale(model, decoder, ToyEncoder()).attribute(
            x, threshold=THRESHOLD, method="surrogate", surrogate=surrogate, metric_ridge=0.3)


# ---- loading and refusals ------------------------------------------------------------------------------

SPEC = ImageModelSpec(input_size=SIZE, output="log_bnp", threshold=THRESHOLD)


def _exported(model, path, *, dynamic=True):
    shapes = ({0: torch.export.Dim("batch", min=1)},) if dynamic else None
    example = torch.rand(2 if dynamic else 1, 1, SIZE, SIZE)  # without a dynamic batch: one radiograph only
    torch.export.save(torch.export.export(model.eval(), (example,), dynamic_shapes=shapes), str(path))
    return path


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit's own, when the test writes the file
@pytest.mark.parametrize("kind", ["exported", "torchscript"])
def test_a_model_file_loads_and_matches_the_model(tmp_path, kind):
    model = HeartModel()
    if kind == "exported":
        path = _exported(model, tmp_path / "m.pt2")
    else:
        path = tmp_path / "m.pt"
        torch.jit.save(torch.jit.trace(model, torch.rand(2, 1, SIZE, SIZE)), str(path))
    loaded = load_model_file(path)
    check(loaded, SPEC, needs_gradients=True)
    x = images(np.array([[1.0, 0.0, 0, 0]])) * 2 - 1
    torch.testing.assert_close(scores(loaded, x, SPEC), scores(model, x, SPEC))
    assert loaded.train().eval() is loaded  # an exported program's module refuses both when bare


def test_a_program_exported_for_one_batch_size_is_told_how_to_export_again(tmp_path):
    loaded = load_model_file(_exported(HeartModel(), tmp_path / "fixed.pt2", dynamic=False))
    with pytest.raises(ImageModelError, match=r"export it with a dynamic batch, torch.export.save\(torch.export"):
        check(loaded, ImageModelSpec(input_size=SIZE, output="log_bnp", threshold=THRESHOLD), needs_gradients=True)
    with torch.no_grad():  # the batch it was exported for still runs: the check is what refuses it
        loaded(torch.zeros(1, 1, SIZE, SIZE))


def test_a_program_exported_at_another_size_is_told_the_size_not_the_batch(tmp_path):
    loaded = load_model_file(_exported(HeartModel(), tmp_path / "small.pt2"))
    with pytest.raises(ImageModelError, match="input_size and one channel must be those of its example input"):
        check(loaded, ImageModelSpec(input_size=SIZE * 2, output="log_bnp", threshold=THRESHOLD), needs_gradients=True)


def test_a_torch_save_file_or_a_plain_pickle_is_refused_with_what_to_do(tmp_path):
    saved = tmp_path / "state.pt"
    torch.save(HeartModel().state_dict(), saved)
    with pytest.raises(ImageModelError, match="a torch.save file, not an exported program; for a state dict give "
                                              "--image-model-factory"):
        load_model_file(saved)
    plain = tmp_path / "model.pkl"
    plain.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(ImageModelError, match="not an exported program .* a plain pickle is never loaded"):
        load_model_file(plain)
    with pytest.raises(ImageModelError, match="image model not found"):
        load_model_file(tmp_path / "absent.pt")


def test_factory_loads_a_state_dict_with_weights_only_and_refuses_a_pickled_module(tmp_path):
    model = HeartModel()
    with torch.no_grad():
        model.scale.fill_(7.0)
    weights = tmp_path / "w.pt"
    torch.save(model.state_dict(), weights)
    loaded = load_factory("tests.modelling.explain.toy_models:heart_model", weights)
    assert float(loaded.scale.detach()) == 7.0
    whole = tmp_path / "whole.pt"
    torch.save(model, whole)  # a pickled module: code, not weights
    with pytest.raises(ImageModelError, match="not a state dict that loads with weights_only=True"):
        load_factory("tests.modelling.explain.toy_models:heart_model", whole)
    with pytest.raises(ImageModelError, match="must be module:function"):
        load_factory("toy_models.heart_model", weights)
    with pytest.raises(ImageModelError, match="cannot import it"):
        load_factory("tests.modelling.explain.toy_models:absent", weights)
    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(3)}, other)
    with pytest.raises(ImageModelError, match="does not fit .*:heart_model's model: .*Unexpected key\\(s\\) in "
                                              "state_dict: \"weight\""):  # the keys, not only torch's heading
        load_factory("tests.modelling.explain.toy_models:heart_model", other)
    with pytest.raises(ImageModelError, match=r"calling needs_an_argument\(\) failed \(it is called without "
                                              r"arguments\): TypeError"):
        load_factory("tests.modelling.explain.test_rationale:needs_an_argument", weights)


def test_a_factory_module_in_the_current_directory_is_found(tmp_path, monkeypatch):
    """The console script runs from .venv/bin: a user's module beside them was not importable."""
    import sys

    (tmp_path / "my_heart_model_module.py").write_text(
        "from tests.modelling.explain.toy_models import HeartModel\n\ndef build():\n    return HeartModel()\n")
    weights = tmp_path / "w.pt"
    torch.save(HeartModel().state_dict(), weights)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert isinstance(load_factory("my_heart_model_module:build", weights), HeartModel)
    assert str(tmp_path) not in sys.path  # looked up for the import only


def needs_an_argument(size):
    return HeartModel()


class Noisy(HeartModel):
    """A heart model with dropout on its score, as a model exported in training mode keeps it."""

    def forward(self, x):
        return nn.functional.dropout(super().forward(x), 0.5, training=True)


def test_a_model_whose_output_is_random_is_refused(tmp_path):
    """An exported program cannot be switched to eval (its mode is frozen at export): with dropout left on,
    its scores and so its rationales would change from run to run. Two passes agreed one time in four, and
    the test failed as often (seeded here, so that it cannot pass by the draw)."""
    torch.manual_seed(0)
    with pytest.raises(ImageModelError, match="different outputs for the same images .* export it from model.eval"):
        check(Noisy(), ImageModelSpec(input_size=SIZE, output="log_bnp", threshold=THRESHOLD), needs_gradients=False)
    check(HeartModel(), ImageModelSpec(input_size=SIZE, output="log_bnp", threshold=THRESHOLD), needs_gradients=True)


class ThreeChannels(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))


class Argmax(nn.Module):
    def forward(self, x):
        return x.flatten(1).argmax(dim=1).float()[:, None]


def test_a_model_that_does_not_fit_its_spec_is_refused_naming_the_shapes():
    with pytest.raises(ImageModelError, match=r"does not accept input of shape \(2, 1, 32, 32\)"):
        check(ThreeChannels(), SPEC, needs_gradients=False)
    two_outputs = nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE, 2))
    with pytest.raises(ImageModelError, match=r"returns 2 outputs per image \(shape \(2, 2\)\); output_index 5"):
        check(two_outputs, ImageModelSpec(input_size=SIZE, output="logit", threshold=0.0, output_index=5),
              needs_gradients=False)
    check(two_outputs, ImageModelSpec(input_size=SIZE, output="logit", threshold=0.0, output_index=1),
          needs_gradients=True)
    with pytest.raises(ImageModelError, match=r"output has shape \(2, 1, 30, 30\)"):
        check(nn.Conv2d(1, 1, 3), SPEC, needs_gradients=False)


def test_a_non_differentiable_model_is_refused_for_the_direct_method_only():
    with pytest.raises(ImageModelError, match="does not depend differentiably .* use the surrogate method"):
        check(Argmax(), SPEC, needs_gradients=True)
    check(Argmax(), SPEC, needs_gradients=False)
    x = images(np.array([[1.5, 0.8, 0, 0]]))
    with pytest.raises(ImageModelError, match="use the surrogate method"):
        GenerativeRationale(Argmax(), ToyDecoder(), ToyEncoder()).attribute(x, threshold=1.0)


def test_spec_yaml_is_checked_naming_the_file(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text("input_size: 224\noutput: probability\nthreshold: 0.5\nscaling: mean_sd\nmean: 0.5\nsd: 0.25\n")
    spec = ImageModelSpec.from_yaml(path)
    assert spec.score_threshold == pytest.approx(0.0) and spec.input_size == 224
    path.write_text("input_size: 224\noutput: probability\nthreshold: 0.5\ncolour: grey\n")
    with pytest.raises(ImageModelError, match=f"{path}: unknown key\\(s\\) colour"):
        ImageModelSpec.from_yaml(path)
    path.write_text("input_size: 224\noutput: probability\n")
    with pytest.raises(ImageModelError, match="missing key\\(s\\) threshold"):
        ImageModelSpec.from_yaml(path)
    path.write_text("input_size: 224\noutput: odds\nthreshold: 1\n")
    with pytest.raises(ImageModelError, match="output must be one of log_bnp, bnp_ng_l, logit, probability"):
        ImageModelSpec.from_yaml(path)
    path.write_text("input_size: 224\noutput: probability\nthreshold: 1.5\n")
    with pytest.raises(ImageModelError, match="threshold must lie strictly between 0 and 1"):
        ImageModelSpec.from_yaml(path)


def test_a_spec_takes_numpy_numbers():
    spec = ImageModelSpec(input_size=np.int64(32), output="logit", threshold=np.float32(0.5), output_index=np.int64(0),
                          mean=np.float64(0.5))
    assert spec.input_size == 32 and type(spec.input_size) is int and type(spec.threshold) is float


def test_spec_values_are_checked_for_their_type_and_exponents_are_numbers(tmp_path):
    """YAML reads 1.0e6 as text, and the spec kept it as text: the threshold compared as a number, and the
    command's summary then failed formatting it (review, session 13)."""
    path = tmp_path / "model.yaml"
    path.write_text("input_size: 224\noutput: bnp_ng_l\nthreshold: 1.0e6\n")
    spec = ImageModelSpec.from_yaml(path)
    assert spec.threshold == 1e6 and isinstance(spec.threshold, float) and f"{spec.threshold:g}" == "1e+06"
    for line, message in (("input_size: big", "input_size must be an integer; got 'big'"),
                          ("input_size: 22.5", "input_size must be an integer; got 22.5"),
                          ("threshold: high", "threshold must be a finite number; got 'high'"),
                          ("threshold: .nan", "threshold must be a finite number; got nan"),
                          ("output: [1]", "output must be text")):
        key = line.split(":")[0]
        base = {"input_size": "224", "output": "logit", "threshold": "0"} | {key: line.split(": ", 1)[1]}
        path.write_text("".join(f"{k}: {v}\n" for k, v in base.items()))
        with pytest.raises(ImageModelError, match=re.escape(f"{path}: {message}")):
            ImageModelSpec.from_yaml(path)


def test_scores_put_every_output_kind_on_one_scale():
    x = torch.zeros(1, 1, SIZE, SIZE)

    class Const(nn.Module):
        def __init__(self, v):
            super().__init__()
            self.v = v

        def forward(self, x):
            return torch.full((x.shape[0], 1), self.v)

    assert float(scores(Const(100.0), x, ImageModelSpec(SIZE, "bnp_ng_l", 100.0))) == pytest.approx(np.log(100))
    assert float(scores(Const(0.5), x, ImageModelSpec(SIZE, "probability", 0.5))) == pytest.approx(0.0, abs=1e-6)
    assert float(scores(Const(2.0), x, ImageModelSpec(SIZE, "logit", 0.0))) == 2.0


def test_kid_matches_the_unbiased_mmd_written_out_term_by_term():
    from modelling.explain.realism import kid

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(6, 3)), rng.normal(0.5, 1.0, size=(5, 3))

    def k(a, b):
        return (a @ b / 3 + 1) ** 3

    assert kid(x, y, subsets=1, subset_size=100)["subset_size"] == 5  # capped at the smaller set
    # one subset holding every sample: the estimator itself, without subsampling noise
    full = kid(x[:5], y, subsets=1, subset_size=5)
    xx = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / (5 * 4)
    yy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / (5 * 4)
    xy = sum(k(x[i], y[j]) for i in range(5) for j in range(5)) / 25
    assert full["kid"] == pytest.approx(xx + yy - 2 * xy, rel=1e-10)
    with pytest.raises(ValueError, match="same d"):
        kid(x, rng.normal(size=(5, 4)))
    with pytest.raises(ValueError, match="at least two samples"):
        kid(x[:1], y)


def test_penultimate_features_are_the_last_linear_layers_input():
    from modelling.explain.realism import penultimate_features

    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 7), nn.ReLU(), nn.Linear(7, 1))
    images = np.random.default_rng(0).integers(0, 255, (3, 4, 4), dtype=np.uint8)
    features = penultimate_features(model, images)
    with torch.no_grad():
        expected = model[:3](torch.from_numpy(images).float()[:, None] / 255.0).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-6)


def test_the_users_model_comes_back_in_its_own_mode_and_scored_in_eval_mode():
    """GVRs and the baselines freeze a model only while they explain it: a model explained in training mode
    with dropout comes back training with its gradients, and its scores were taken without dropout (the
    same rationale twice)."""
    import numpy as np
    import torch
    from torch import nn

    from modelling.explain.baselines import attribute
    from modelling.explain.rationale import GenerativeRationale

    torch.manual_seed(0)
    decoder = nn.Sequential(nn.Linear(4, 256, bias=False), nn.Unflatten(1, (1, 16, 16)))
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(256, 4, bias=False))
    with torch.no_grad():
        decoder[0].weight.copy_(torch.randn(256, 4) / 16)
        encoder[1].weight.copy_(torch.linalg.pinv(decoder[0].weight))
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(256, 1)).train()
    x = (decoder(torch.randn(3, 4)).detach() + 1) / 2
    with torch.no_grad():
        threshold = float(model.eval()(x).min()) - 0.05
    model.train()
    explainer = GenerativeRationale(model, decoder, encoder, output="logit")
    runs = [explainer.attribute(x, threshold=threshold, step_size=0.05, margin=0.01, return_path=True)[1]
            for _ in range(2)]
    assert model.training and model[1].training and all(p.requires_grad for p in model.parameters())
    assert np.array_equal(runs[0].model_score_diseased, runs[1].model_score_diseased)
    assert attribute(model, x * 2 - 1, "integrated_gradients").shape == (3, 16, 16)
    assert model.training and all(p.requires_grad for p in model.parameters())
    from modelling.explain.image_model import ImageModelSpec
    from modelling.stages.image_explain import model_scores

    spec = ImageModelSpec(input_size=16, output="logit", threshold=0.0)
    pixels = np.rint(x[:, 0].numpy() * 255).astype(np.uint8)
    assert np.array_equal(model_scores(model, pixels, spec), model_scores(model, pixels, spec))  # no dropout
    assert model.training
