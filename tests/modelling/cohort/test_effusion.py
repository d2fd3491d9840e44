"""The effusion measure validated on phantoms of known effusion, as the cardiothoracic ratio was."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from modelling.cohort import effusion, phantom
from modelling.cohort.synthetic import synthesize
from modelling.config import load_config


@pytest.fixture(scope="module")
def cohort_params():
    cfg = load_config("default")
    cohort = synthesize(cfg.cohort, seed=cfg.seed)
    return {k: cohort.render[k].to_numpy()[:600] for k in phantom.PARAMETERS}


@pytest.mark.parametrize("side", ["right", "left"])
def test_the_aerated_height_falls_as_one_effusion_grows(cohort_params, side):
    sweep = {k: np.repeat(v[:1], 11) for k, v in cohort_params.items()}
    sweep["effusion_right"], sweep["effusion_left"] = np.zeros(11), np.zeros(11)
    sweep[f"effusion_{side}"] = np.linspace(0.0, 0.5, 11)
    images, _ = phantom.render(sweep, 64)
    height = effusion.measure(images)[f"height_{side}"].to_numpy()
    assert np.isfinite(height).all()
    assert (np.diff(height) <= 1e-12).all() and height[-1] < height[0] - 0.2
    other = effusion.measure(images)[f"height_{'left' if side == 'right' else 'right'}"].to_numpy()
    # the other lung moves far less: only through the thoracic width, which a large effusion narrows
    assert np.ptp(other) < np.ptp(height) / 2


@pytest.mark.parametrize("side", ["right", "left"])
def test_it_separates_effusions_from_none_across_the_cohort(cohort_params, side):
    images, _ = phantom.render(cohort_params, 64)
    height = effusion.measure(images)[f"height_{side}"].to_numpy()
    fraction = cohort_params[f"effusion_{side}"]
    keep = np.isfinite(height) & ((fraction > 0.1) | (fraction == 0))
    assert keep.mean() > 0.8 and (fraction[keep] > 0.1).sum() > 20
    assert roc_auc_score(fraction[keep] > 0.1, -height[keep]) > 0.95


def test_unmeasurable_images_say_why_and_bad_input_is_refused():
    table = effusion.measure(np.zeros((1, 32, 32), np.uint8))
    assert np.isnan(table["height_right"][0]) and table["reason"][0] == "the image is uniform"
    with pytest.raises(TypeError, match="uint8"):
        effusion.measure(np.zeros((1, 32, 32), np.float32))
