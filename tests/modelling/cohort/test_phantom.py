"""The phantom renderer: each feature appears where its mask says, in the direction it should."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from modelling.cohort.phantom import PARAMETERS, render, unpack_masks

SIZE = 64


def params(n=1, **changes):
    base = {
        "cardiothoracic_ratio": 0.45, "effusion_left": 0.0, "effusion_right": 0.0, "opacity": 0.0,
        "pacemaker": 0.0, "body_mass_index": 26.0, "ap": 0.0, "rotation_deg": 0.0, "shift_x": 0.0,
        "shift_y": 0.0, "scale": 1.0, "markers_seed": 7, "electrodes": 2, "exposure": 1.0,
        "noise": 0.0, "blur": 0.7, "noise_seed": 11, "shortcut": 0.0,
    }
    base |= changes
    return {k: np.full(n, base[k], dtype=float) for k in PARAMETERS}


def one(size=SIZE, **changes):
    images, bits = render(params(**changes), size)
    return images[0].astype(float), {k: v[0] for k, v in unpack_masks(bits).items()}


def test_shapes_types_and_determinism():
    p = params(3, noise=0.02)
    a, bits = render(p, SIZE)
    b, _ = render(p, SIZE)
    assert a.shape == bits.shape == (3, SIZE, SIZE) and a.dtype == bits.dtype == np.uint8
    np.testing.assert_array_equal(a, b)


def test_missing_parameter_is_named():
    p = params()
    del p["opacity"]
    with pytest.raises(KeyError, match="opacity"):
        render(p, SIZE)


def test_heart_mask_grows_with_the_cardiothoracic_ratio_and_on_ap():
    small = one(cardiothoracic_ratio=0.42)[1]["heart"].sum()
    large = one(cardiothoracic_ratio=0.62)[1]["heart"].sum()
    ap = one(cardiothoracic_ratio=0.42, ap=1.0)[1]["heart"].sum()
    assert large > 1.5 * small
    assert ap > 1.1 * small


def test_heart_width_matches_the_ratio():
    for ctr in (0.45, 0.6):
        heart = one(size=128, cardiothoracic_ratio=ctr)[1]["heart"]
        width = heart.any(axis=0).sum() / 128 * 2  # in coordinate units
        assert width == pytest.approx(ctr * 2 * 0.62, rel=0.08)


@pytest.mark.parametrize("feature, changes", [
    ("effusion", {"effusion_left": 0.3, "effusion_right": 0.2}),
    ("opacity", {"opacity": 0.8}),
    ("device", {"pacemaker": 1.0}),
])
def test_each_feature_adds_density_inside_its_own_mask(feature, changes):
    healthy, healthy_masks = one()
    diseased, masks = one(**changes)
    assert healthy_masks[feature].sum() == 0
    assert masks[feature].sum() > 0
    diff = diseased - healthy
    changed = np.abs(diff) > 3
    near = ndimage.binary_dilation(masks[feature], iterations=2)
    assert changed.sum() > 0
    assert (changed & near).sum() / changed.sum() > 0.95  # the change lies in (or at the edge of) the mask
    assert diff[masks[feature]].mean() > 5  # bright = dense


def test_effusion_blunts_the_costophrenic_angle_on_its_own_side():
    _, masks = one(effusion_right=0.3)
    cols = np.flatnonzero(masks["effusion"].any(axis=0))
    assert cols.max() < SIZE // 2  # patient's right is the image's left


def test_body_mass_thickens_the_soft_tissue():
    thin = one(body_mass_index=18.0)
    heavy = one(body_mass_index=40.0)
    assert heavy[1]["soft_tissue"].sum() > 1.3 * thin[1]["soft_tissue"].sum()
    assert heavy[0].mean() > thin[0].mean()


def test_patient_markers_repeat_for_the_same_seed_and_differ_otherwise():
    a = one(markers_seed=1, electrodes=4)[0]
    b = one(markers_seed=1, electrodes=4, cardiothoracic_ratio=0.5)[0]
    c = one(markers_seed=2, electrodes=4)[0]
    top = slice(0, SIZE // 3)  # above the heart: only idiosyncrasies differ there
    np.testing.assert_allclose(a[top], b[top], atol=1)
    assert np.abs(a[top] - c[top]).max() > 50


def test_rotation_moves_image_and_masks_together():
    img, masks = one(size=128, rotation_deg=8.0, cardiothoracic_ratio=0.6)
    straight, straight_masks = one(size=128, cardiothoracic_ratio=0.6)
    assert not np.array_equal(masks["heart"], straight_masks["heart"])
    # the heart is denser than the lung around it in both
    for im, m in ((img, masks), (straight, straight_masks)):
        ring = ndimage.binary_dilation(m["heart"], iterations=3) & ~m["heart"]
        assert im[m["heart"]].mean() > im[ring].mean()


def test_the_markers_mask_covers_what_removing_the_idiosyncrasies_removes():
    from modelling.cohort.synthetic import synthesize
    from modelling.config import load_config

    cfg = load_config("tiny")
    cohort = synthesize(cfg.cohort, seed=cfg.seed)
    params = {k: cohort.render[k].to_numpy()[:24] for k in PARAMETERS}
    images, bits = render(params, 64)
    plain, plain_bits = render(params, 64, idiosyncrasies=False)
    markers = unpack_masks(bits)["markers"]
    assert markers.any(axis=(1, 2)).all()  # everyone has a laterality marker
    assert not unpack_masks(plain_bits)["markers"].any()
    gone = np.abs(images.astype(int) - plain)
    near = np.stack([ndimage.binary_dilation(m, iterations=2) for m in markers])
    assert gone[near].mean() > 10 and (gone[~near] == 0).mean() > 0.99  # away from the mask: the same image


def test_the_shortcut_marker_lies_in_its_mask_and_only_where_asked():
    from modelling.cohort.synthetic import synthesize
    from modelling.config import load_config

    cfg = load_config("tiny")
    cohort = synthesize(cfg.cohort, seed=cfg.seed)
    params = {k: cohort.render[k].to_numpy()[:6] for k in PARAMETERS}
    params["shortcut"] = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    images, bits = render(params, 64)
    plain, _ = render(params | {"shortcut": np.zeros(6)}, 64)
    mask = unpack_masks(bits)["shortcut"]
    assert mask[::2].any(axis=(1, 2)).all() and not mask[1::2].any()
    gone = np.abs(images.astype(int) - plain)
    near = np.stack([ndimage.binary_dilation(m, iterations=2) for m in mask])
    assert not gone[1::2].any() and gone[near].mean() > 10 and (gone[~near] == 0).mean() > 0.99
