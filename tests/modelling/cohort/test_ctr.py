"""The cardiothoracic ratio measured by thresholding (modelling.cohort.ctr), checked on phantoms whose ratio is known."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.stats import spearmanr

from modelling.cohort import ctr, phantom
from modelling.cohort.synthetic import synthesize
from modelling.config import load_config


def _neutral(n: int, **changes) -> dict[str, np.ndarray]:
    """Parameters of n upright, centred, disease-free PA phantoms without noise or blur."""
    params = {k: np.zeros(n, np.float32) for k in phantom.PARAMETERS}
    params.update(body_mass_index=np.full(n, 25.0), scale=np.ones(n), exposure=np.ones(n))
    params.update({k: np.broadcast_to(np.asarray(v, np.float32), (n,)).copy() for k, v in changes.items()})
    return params


@pytest.mark.parametrize("size", [64, 128])
def test_measured_ratio_follows_the_true_ratio(size):
    truth = np.linspace(0.35, 0.65, 13)
    images, _ = phantom.render(_neutral(truth.size, cardiothoracic_ratio=truth), size)
    table = ctr.measure(images)
    assert (table["reason"] == "").all()
    assert np.all(np.diff(table["ctr"]) >= 0)
    assert spearmanr(table["ctr"], truth).statistic > 0.98
    # not a flat response: at least half the true ratio's range (the smallest hearts sit inside the
    # mediastinal gap between the lungs, which sets a floor at these resolutions)
    assert table["ctr"].iloc[-1] - table["ctr"].iloc[0] > 0.5 * (truth[-1] - truth[0])


def test_ap_magnification_raises_the_ratio():
    images, _ = phantom.render(_neutral(2, cardiothoracic_ratio=0.5, ap=[0.0, 1.0]), 128)
    pa, ap = ctr.measure(images)["ctr"]
    assert ap > pa


def test_ratio_on_a_realistic_cohort_tracks_the_truth():
    """Rotation, effusions, opacities, devices, noise and blur included, at the default profile's 64 px."""
    cfg = load_config("default")
    cohort_cfg = dataclasses.replace(cfg.cohort, labelled_patients=300, labelled_radiographs=420,
                                     unlabelled_patients=200, unlabelled_radiographs=460)
    cohort = synthesize(cohort_cfg, seed=cfg.seed)
    params = {k: cohort.render[k].to_numpy() for k in phantom.PARAMETERS}
    images, _ = phantom.render(params, 64)
    table = ctr.measure(images)
    measured = table["ctr"].notna().to_numpy()
    assert measured.mean() >= 0.97
    projected = params["cardiothoracic_ratio"] * np.where(params["ap"] > 0.5, phantom.AP_MAGNIFICATION, 1.0)
    assert spearmanr(table["ctr"][measured], projected[measured]).statistic >= 0.7


def test_images_without_two_lungs_get_a_reason_not_a_number():
    blank = np.full((1, 64, 64), 128, np.uint8)
    one_blob = np.full((1, 64, 64), 200, np.uint8)
    one_blob[0, 20:40, 20:40] = 20
    table = ctr.measure(np.concatenate([blank, one_blob]))
    assert table["ctr"].isna().all()
    assert list(table["reason"]) == ["the image is uniform",
                                     "1 dark region(s) inside the body; two lungs are needed"]


def test_bad_input_is_refused():
    with pytest.raises(TypeError, match="uint8"):
        ctr.measure(np.zeros((2, 32, 32), np.float32))
    with pytest.raises(ValueError, match=r"shape \(n, height, width\)"):
        ctr.measure(np.zeros((32, 32), np.uint8))


def test_otsu_separates_two_classes():
    values = np.r_[np.full(100, 30), np.full(300, 200)].astype(np.uint8)
    level = ctr.otsu_threshold(values)
    assert 30 < level <= 200
    assert ((values < level) == (values == 30)).all()


def test_compare_same_images_is_zero_distance_and_different_hearts_are_detected():
    small, _ = phantom.render(_neutral(40, cardiothoracic_ratio=np.linspace(0.38, 0.45, 40)), 64)
    large, _ = phantom.render(_neutral(40, cardiothoracic_ratio=np.linspace(0.55, 0.62, 40)), 64)
    same = ctr.compare(small, small)
    assert same["wasserstein"] == 0 and same["ks_p_value"] == 1
    assert same["real"] == same["generated"] and same["real"]["measured"] == 40
    apart = ctr.compare(small, large)
    assert apart["ks_p_value"] < 1e-6
    assert apart["generated"]["median"] - apart["real"]["median"] == pytest.approx(apart["wasserstein"], abs=0.03)
