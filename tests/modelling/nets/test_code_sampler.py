"""The two-stage sampler: draws codes where the fitted codes lie, not where the prior would."""

from __future__ import annotations

import numpy as np
import pytest

from modelling.nets.code_sampler import collapsed, fit_code_sampler, replay_ratio


_ROTATION = np.linalg.qr(np.random.default_rng(11).standard_normal((20, 20)))[0]


def _ring(n: int, rng: np.random.Generator) -> np.ndarray:
    """Codes on a circle of radius 3 in a plane of 20 dimensions (small noise in the other 18), turned
    by a fixed rotation: a distribution with a hole where a Gaussian fitted to it puts much of its mass."""
    angle = rng.uniform(0, 2 * np.pi, n)
    flat = np.column_stack([3 * np.cos(angle), 3 * np.sin(angle), 0.3 * rng.standard_normal((n, 18))])
    return flat @ _ROTATION.T


def _off_ring(codes: np.ndarray) -> np.ndarray:
    flat = codes @ _ROTATION
    return np.abs(np.hypot(flat[:, 0], flat[:, 1]) - 3)


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    codes = _ring(3000, rng)
    return codes, _ring(300, rng), fit_code_sampler(codes, seed=1, steps=1500)


def test_samples_lie_on_the_codes_not_in_the_hole(fitted):
    codes, _, sampler = fitted
    samples = sampler.sample(1000, np.random.default_rng(2))
    assert samples.shape == (1000, 20) and samples.dtype == np.float32
    assert not collapsed(sampler)
    # a Gaussian with the codes' mean and covariance fills the hole; the second stage must not
    gaussian = np.random.default_rng(3).multivariate_normal(codes.mean(axis=0), np.cov(codes, rowvar=False), 1000)
    assert np.median(_off_ring(samples)) < 0.5 * np.median(_off_ring(gaussian))
    assert np.mean(_off_ring(samples) > 1.5) < 0.1  # few near the centre, 3 from the ring
    # the whole ring, not one arc of it
    flat = samples @ _ROTATION
    angle = np.arctan2(flat[:, 1], flat[:, 0])
    assert np.histogram(angle, bins=8, range=(-np.pi, np.pi))[0].min() > 1000 / 8 / 3


def test_samples_are_new_codes_not_replays(fitted):
    codes, held_out, sampler = fitted
    ratio = replay_ratio(sampler.sample(300, np.random.default_rng(4)), codes, held_out)
    assert ratio > 0.5
    assert replay_ratio(codes[:300] + 1e-6, codes, held_out) < 0.01


def test_replay_has_no_yardstick_without_distinct_held_out_codes(fitted):
    codes, _, sampler = fitted
    samples = sampler.sample(50, np.random.default_rng(6))
    assert replay_ratio(samples, codes, codes[:40]) is None  # held-out codes that are fitted ones
    assert replay_ratio(samples, codes, codes[:0]) is None


def test_the_same_seed_gives_the_same_sampler():
    import torch

    codes = _ring(400, np.random.default_rng(5))
    before = torch.get_rng_state()
    fit_code_sampler(codes, seed=7, steps=5)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's random stream is left alone
    a, b = (fit_code_sampler(codes, seed=7, steps=50).sample(20, np.random.default_rng(8)) for _ in range(2))
    np.testing.assert_array_equal(a, b)
    c = fit_code_sampler(codes, seed=9, steps=50).sample(20, np.random.default_rng(8))
    assert not np.allclose(a, c)


def test_a_second_stage_that_learned_only_the_mean_is_reported_as_collapsed():
    # a lone circle in 2 dimensions: the ELBO's local optimum at the mean, noise gamma 1 (see fit_code_sampler)
    angle = np.random.default_rng(12).uniform(0, 2 * np.pi, 2000)
    sampler = fit_code_sampler(np.column_stack([np.cos(angle), np.sin(angle)]), seed=1, steps=300)
    assert collapsed(sampler)
    samples = sampler.sample(200, np.random.default_rng(13))
    assert np.abs(samples).max() < 0.5  # every draw near the centre, none on the circle


def test_too_few_codes_are_refused():
    with pytest.raises(ValueError, match="at least 2 codes"):
        fit_code_sampler(np.zeros((1, 4)), seed=0)
    with pytest.raises(ValueError, match="shape"):
        fit_code_sampler(np.zeros(10), seed=0)
