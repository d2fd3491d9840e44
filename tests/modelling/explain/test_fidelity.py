"""Fidelity measures on constructed inputs: decomposition, randomised models, map similarity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelling.explain.fidelity import decompose, map_similarity, randomised, rank_agreement, squared_code_lengths
from modelling.nets.networks import MLP


def test_decomposition_recovers_known_coefficients_of_overlapping_maps():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(5, 3, 8, 8))
    maps[:, 1] += 0.5 * maps[:, 0]  # correlated features, as heart and projection are
    coef = rng.uniform(-1, 1, size=(5, 3))
    change = np.einsum("nk,nkhw->nhw", coef, maps)
    np.testing.assert_allclose(decompose(change, maps), coef, atol=1e-10)


def test_a_randomised_model_keeps_the_scale_but_not_the_function():
    torch.manual_seed(0)
    real = MLP(10, (16,))
    before = {k: v.clone() for k, v in real.state_dict().items()}
    codes = np.random.default_rng(1).normal(size=(500, 10)).astype(np.float32)
    fake = randomised(real, codes, seed=3)
    with torch.no_grad():
        a, b = real(torch.from_numpy(codes)).numpy(), fake(torch.from_numpy(codes)).numpy()
    assert abs(a.mean() - b.mean()) < 1e-4 and abs(a.std() - b.std()) < 1e-3
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.5
    again = randomised(real, codes, seed=3)
    with torch.no_grad():
        np.testing.assert_array_equal(again(torch.from_numpy(codes)).numpy(), b)  # seeded
    assert all(torch.equal(before[k], v) for k, v in real.state_dict().items())  # the real model is untouched


def test_map_similarity_is_undefined_for_a_blank_map_and_rank_agreement_for_constant_values():
    blank = np.zeros((1, 4, 4))
    assert np.isnan(map_similarity(blank, np.ones((1, 4, 4)) * np.arange(4.0))[0])
    assert rank_agreement(np.ones(3), np.arange(3.0)) is None


def test_the_rank_agreement_interval_is_as_wide_as_the_draw_of_radiographs_makes_it():
    from modelling.explain.fidelity import rank_agreement, rank_agreement_interval

    rng = np.random.default_rng(3)
    relied = np.array([0.9, 0.7, 0.5, 0.3, 0.1])
    drops = np.tile(relied, (40, 1))
    # coefficients that follow the reliance only on average: each radiograph's are mostly noise
    noisy = relied + rng.normal(0, 1.0, (40, 5))
    low, high = rank_agreement_interval(noisy, drops, seed=1)
    rho = rank_agreement(noisy.mean(axis=0), relied)
    assert -1 <= low < rho < high <= 1 and high - low > 0.5
    # the same radiographs with little noise: a narrow interval at 1
    low, high = rank_agreement_interval(relied + rng.normal(0, 0.01, (40, 5)), drops, seed=1)
    assert low == high == 1.0
    # seeded: the same seed gives the same interval
    assert rank_agreement_interval(noisy, drops, seed=1) == rank_agreement_interval(noisy, drops, seed=1)
    # a feature not decomposed on some radiographs (NaN) is averaged over the others, as the point estimate is
    holes = noisy.copy()
    holes[::3, 2] = np.nan
    assert all(np.isfinite(rank_agreement_interval(holes, drops, seed=1)))
    # a model that relies on nothing cannot be ranked against
    assert rank_agreement_interval(noisy, np.zeros_like(drops), seed=1) is None


def test_a_code_change_costs_its_squared_mahalanobis_length():
    moved = np.random.default_rng(0).normal(size=(4, 3, 5))
    np.testing.assert_allclose(squared_code_lengths(moved, np.eye(5)), (moved ** 2).sum(axis=2), rtol=1e-5)
    # a direction along which the codes vary four times as much costs a quarter as much
    np.testing.assert_allclose(squared_code_lengths(moved, 4 * np.eye(5)), (moved ** 2).sum(axis=2) / 4, rtol=1e-5)
    a = np.random.default_rng(1).normal(size=(5, 5))
    cov = a @ a.T + np.eye(5)
    expected = np.einsum("nki,ij,nkj->nk", moved, np.linalg.inv(cov), moved)
    np.testing.assert_allclose(squared_code_lengths(moved, cov), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="code width"):
        squared_code_lengths(moved, np.eye(4))
