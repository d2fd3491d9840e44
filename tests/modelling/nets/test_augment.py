"""Positional copies of radiographs (predictor augmentation)."""

from __future__ import annotations

import numpy as np
import pytest

from modelling.config import ConfigError, PredictorConfig
from modelling.nets.augment import positional_copies, transform


def square(size=32, at=(12, 12), side=6):
    img = np.full((1, size, size), 20, np.uint8)
    img[0, at[0]:at[0] + side, at[1]:at[1] + side] = 220
    return img


def bright(img):
    rows, cols = np.nonzero(img > 120)
    return rows.mean(), cols.mean()


def test_no_move_returns_the_image():
    img = square()
    np.testing.assert_array_equal(transform(img, np.array([[0.0, 0.0, 0.0, 1.0]])), img)


def test_a_shift_moves_the_picture_by_that_share_of_the_width():
    img = square()
    r0, c0 = bright(img[0])
    r, c = bright(transform(img, np.array([[0.0, 0.125, -0.0625, 1.0]]))[0])
    assert (r - r0, c - c0) == pytest.approx((-2.0, 4.0), abs=0.01)  # 32 px: 4 px right, 2 px up


def test_rotation_and_scale_are_about_the_centre():
    img = square(at=(11, 11), side=10)  # centred on the film's centre
    centre = bright(img[0])
    for params in ([30.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.2]):
        assert bright(transform(img, np.array([params]))[0]) == pytest.approx(centre, abs=0.05)
    grown = transform(img, np.array([[0.0, 0.0, 0.0, 1.5]]))[0]
    assert (grown > 120).sum() == pytest.approx(1.5 ** 2 * (img[0] > 120).sum(), rel=0.2)


def test_copies_are_seeded_and_name_their_source():
    imgs = np.concatenate([square(at=(4, 4)), square(at=(18, 18))])
    a, owner = positional_copies(imgs, 3, rotation_deg=5, shift=0.05, scale=0.05, seed=7)
    b, _ = positional_copies(imgs, 3, rotation_deg=5, shift=0.05, scale=0.05, seed=7)
    c, _ = positional_copies(imgs, 3, rotation_deg=5, shift=0.05, scale=0.05, seed=8)
    np.testing.assert_array_equal(owner, [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    for copy, src in zip(a, owner):  # each copy stays near its own source (moves of at most 5 % and 5 degrees)
        assert np.subtract(bright(copy), bright(imgs[src])) == pytest.approx((0, 0), abs=2.5)
    assert len({copy.tobytes() for copy in a}) == len(a)


@pytest.mark.parametrize("key, value", [("augment_copies", -1), ("augment_rotation_deg", 90.0),
                                        ("augment_shift", 0.6), ("augment_scale", -0.1)])
def test_augmentation_settings_out_of_range_name_their_key(key, value):
    with pytest.raises(ConfigError, match=f"predictors.{key}"):
        PredictorConfig(**{key: value})
