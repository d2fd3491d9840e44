"""The end-to-end image model (issue 17): MONAI networks, single channel, trained on log BNP, exported."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from modelling.explain.image_model import ImageModelSpec, check, load_model_file
from modelling.nets.image_models import build, export, fit, predict


def discs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose log BNP is the radius of a bright disc: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    radius = rng.uniform(3, 12, n)
    yy, xx = np.mgrid[:32, :32]
    d = np.sqrt((xx - 16) ** 2 + (yy - 16) ** 2)
    images = ((d[None] < radius[:, None, None]) * 200 + rng.normal(0, 10, (n, 32, 32))).clip(0, 255).astype(np.uint8)
    return images, 3.0 + 0.2 * radius


@pytest.mark.parametrize("architecture", ["densenet121", "resnet18"])
def test_a_narrow_network_learns_log_bnp_and_exports_as_a_program(tmp_path, architecture):
    images, y = discs(160, seed=1)
    train, validation = np.arange(120), np.arange(120, 160)
    # DenseNet learns the disc in fewer epochs (validation MSE 0.02-0.10 of the mean's after 8, seeds 3-5)
    model, info = fit(images, y, train, validation, architecture=architecture, width=0.125,
                      epochs=8 if architecture == "densenet121" else 12,
                      batch_size=32, learning_rate=3e-3, patience=12, seed=3)
    baseline = float(np.mean((y[validation] - y[train].mean()) ** 2))
    assert info["best_validation_mse"] < 0.5 * baseline  # it learned the disc, not the mean
    path = tmp_path / "m.pt2"
    path.write_bytes(export(model, 32))
    assert export(model, 32) == path.read_bytes()  # the same weights, the same bytes: the same bundle
    loaded = load_model_file(path)
    check(loaded, ImageModelSpec(input_size=32, output="log_bnp", threshold=np.log(100)), needs_gradients=True)
    for n in (1, 4):  # any batch
        x = torch.from_numpy(images[:n]).float()[:, None] / 255
        torch.testing.assert_close(loaded(x), model(x))
    np.testing.assert_allclose(predict(model, images[:4]), model(x).detach().reshape(-1).numpy(), rtol=1e-5)


def test_the_same_seed_builds_the_same_network_and_bad_arguments_are_refused():
    a, b = build("resnet18", width=0.125, seed=5), build("resnet18", width=0.125, seed=5)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)
    with pytest.raises(ValueError, match="architecture must be one of densenet121, resnet18"):
        build("vgg16")
    with pytest.raises(ValueError, match=r"width must be in \(0, 4\]"):
        build("resnet18", width=0)
    with pytest.raises(ValueError, match="need at least 2 training and 1 validation"):
        fit(np.zeros((3, 32, 32), np.uint8), np.zeros(3), np.arange(1), np.arange(1, 3), architecture="resnet18",
            width=0.125, epochs=1, batch_size=2, learning_rate=1e-3, patience=1, seed=0)
