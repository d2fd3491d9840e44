"""Faithfulness scores on hand-made maps and masks with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelling.explain.faithfulness import driving_masks, scores


def masks():
    m = {k: np.zeros((10, 10), bool) for k in ("heart", "effusion", "opacity", "soft_tissue", "device", "markers", "shortcut")}
    m["heart"][4:8, 4:8] = True  # 16 pixels
    m["soft_tissue"][:, 0] = True  # 10 pixels
    return m


def test_shares_add_up_and_locate_the_weight():
    explanation = np.zeros((10, 10))
    explanation[5, 5] = 3.0  # in the heart
    explanation[0, 0] = -1.0  # soft tissue (sign ignored)
    explanation[0, 9] = 1.0  # outside every mask
    s = scores(explanation, masks(), ["heart"])
    assert s["share_heart"] == pytest.approx(0.6) and s["share_soft_tissue"] == pytest.approx(0.2)
    assert s["share_outside"] == pytest.approx(0.2)
    assert s["share_heart"] + s["share_soft_tissue"] + s["share_outside"] == pytest.approx(1.0)
    assert s["pointing_hit"] is True


def test_iou_of_a_perfect_and_of_a_wrong_map():
    m = masks()
    perfect = m["heart"].astype(float)
    assert scores(perfect, m, ["heart"])["iou_top"] == pytest.approx(1.0)
    wrong = np.zeros((10, 10))
    wrong[0:4, 6:10] = 1.0  # 16 pixels, none in the heart
    s = scores(wrong, m, ["heart"])
    assert s["iou_top"] == 0.0 and s["pointing_hit"] is False


def test_without_drivers_there_is_no_localisation_score():
    s = scores(np.ones((10, 10)), masks(), [])
    assert s["pointing_hit"] is None and np.isnan(s["iou_top"])


def test_driving_masks_follow_the_bnp_terms():
    row = pd.Series({"term_cardiomegaly": 0.8, "term_effusion": 0.0, "term_opacity": 0.3,
                     "term_pacemaker": 0.0, "term_body_mass": -0.2})
    assert driving_masks(row) == ["heart", "opacity"]


def test_pointing_game_hits_when_any_tied_maximum_lies_in_the_mask():
    # Quantus's PointingGame: a hit when any pixel of the largest weight is in the mask. LIME's and
    # occlusion's maps are flat over a superpixel or window, so maxima tie; the first one in raster order
    # (top left) had decided alone.
    explanation = np.zeros((10, 10))
    explanation[0, 9] = explanation[5, 5] = 2.0  # outside first in raster order, then in the heart
    assert scores(explanation, masks(), ["heart"])["pointing_hit"] is True
    explanation[5, 5] = 1.0
    assert scores(explanation, masks(), ["heart"])["pointing_hit"] is False


def test_a_map_with_a_non_finite_pixel_is_undefined_not_a_hit():
    explanation = np.zeros((10, 10))
    explanation[5, 5] = np.nan
    s = scores(explanation, masks(), ["heart"])
    assert s["pointing_hit"] is None and np.isnan(s["relevance_rank"]) and np.isnan(s["share_heart"])
