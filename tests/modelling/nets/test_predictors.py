"""BNP predictors on latent codes in the paper's two regimes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from modelling.config import PredictorConfig
from modelling.nets.predictors import OneClassError, fit_all, predict_ng_l


def data(n=400, d=20, seed=0, signal=1.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, d)).astype(np.float32)
    log_bnp = 5.8 + signal * z[:, 0] + 0.5 * rng.normal(size=n)
    split = np.where(rng.random(n) < 0.8, "train", "test")
    return z, np.exp(log_bnp), split


CFG = PredictorConfig(mlp_hidden=(64, 64), learning_rate=3e-3, batch_size=32, max_epochs=100, patience=5,
                      overfit_epochs=300, validation_fraction=0.25)


def test_roles_follow_the_paper():
    z, bnp, split = data()
    fitted = {(f.predictor, f.regime): f for f in fit_all(z, bnp, split, CFG, seed=1, threshold=100)}
    correct = fitted[("mlp", "correct")]
    np.testing.assert_array_equal(correct.roles["train"], np.flatnonzero(split == "train"))
    np.testing.assert_array_equal(correct.roles["test"], np.flatnonzero(split == "test"))
    over = fitted[("mlp", "overfitted")]
    assert set(over.roles) == {"train", "validation"}
    assert len(np.intersect1d(over.roles["train"], over.roles["validation"])) == 0
    assert len(over.roles["train"]) + len(over.roles["validation"]) == len(z)  # train and test combined
    assert len(over.roles["validation"]) == round(0.25 * len(z))
    assert correct.epochs < CFG.max_epochs  # stopped early on the test split
    assert over.epochs == CFG.overfit_epochs  # trained to the end


def test_correct_models_find_the_signal_and_the_overfitted_mlp_memorises_noise():
    z, bnp, split = data()
    fitted = {(f.predictor, f.regime): f for f in fit_all(z, bnp, split, CFG, seed=1, threshold=100)}
    for predictor in ("linear", "mlp"):
        f = fitted[(predictor, "correct")]
        test = f.roles["test"]
        assert roc_auc_score(bnp[test] > 100, predict_ng_l(f.model, z[test])) > 0.85
    # pure noise: the overfitted MLP memorises its training rows and generalises to nothing
    rng = np.random.default_rng(5)
    noise_bnp = np.exp(5.8 + rng.normal(size=len(z)))
    f = [f for f in fit_all(z, noise_bnp, split, CFG, seed=1, threshold=100) if f.regime == "overfitted" and f.predictor == "mlp"][0]
    train, val = f.roles["train"], f.roles["validation"]
    assert roc_auc_score(noise_bnp[train] > 100, predict_ng_l(f.model, z[train])) > 0.97
    assert roc_auc_score(noise_bnp[val] > 100, predict_ng_l(f.model, z[val])) < 0.65


def test_linear_regression_is_ordinary_least_squares():
    z, bnp, split = data(signal=2.0)
    f = [f for f in fit_all(z, bnp, split, CFG, seed=1, threshold=100) if f.predictor == "linear" and f.regime == "correct"][0]
    train = f.roles["train"]
    x = np.column_stack([np.ones(len(train)), z[train]])
    coef, *_ = np.linalg.lstsq(x, np.log(bnp[train]), rcond=None)
    np.testing.assert_allclose(np.log(predict_ng_l(f.model, z[:10])), coef[0] + z[:10] @ coef[1:], rtol=1e-4)


def test_one_class_is_refused():
    z, bnp, split = data()
    with pytest.raises(OneClassError, match="every labelled BNP is at or above 100 ng/L"):
        fit_all(z, np.full(len(z), 500.0), split, CFG, seed=1, threshold=100)
    with pytest.raises(ValueError, match="needs train and test rows"):
        fit_all(z, bnp, np.full(len(z), "train"), CFG, seed=1, threshold=100)


QUICK = dataclasses.replace(CFG, max_epochs=2, overfit_epochs=2)  # the copies' tests look at the linear fits


def _model(fitted, predictor, regime):
    return [f for f in fitted if f.predictor == predictor and f.regime == regime][0].model


def _linear(fitted, regime):
    return _model(fitted, "linear", regime)


def test_copies_are_fitted_only_with_their_own_models_training_rows():
    z, bnp, split = data(signal=2.0)
    plain = fit_all(z, bnp, split, QUICK, seed=1, threshold=100)
    test = split == "test"
    # copies of the test rows with codes that would wreck any fit they entered: the correct models never
    # see them; the copies of the train rows are the rows themselves
    copies = np.where(test[:, None, None], 50.0, z[:, None, :]).astype(np.float32)
    wrecked = fit_all(z, bnp, split, QUICK, seed=1, threshold=100, copies=copies)
    x = z[test]
    np.testing.assert_allclose(predict_ng_l(_linear(wrecked, "correct"), x),
                               predict_ng_l(_linear(plain, "correct"), x), rtol=1e-4)
    # the overfitted models train on the test rows too, so the same copies reach them
    assert not np.allclose(predict_ng_l(_linear(wrecked, "overfitted"), x),
                           predict_ng_l(_linear(plain, "overfitted"), x), rtol=1e-3)


def test_an_exact_copy_of_every_row_leaves_least_squares_unchanged():
    z, bnp, split = data(signal=2.0)
    plain = fit_all(z, bnp, split, QUICK, seed=1, threshold=100)
    doubled = fit_all(z, bnp, split, QUICK, seed=1, threshold=100, copies=np.repeat(z[:, None], 2, axis=1))
    for regime in ("correct", "overfitted"):
        np.testing.assert_allclose(predict_ng_l(_linear(doubled, regime), z),
                                   predict_ng_l(_linear(plain, regime), z), rtol=1e-4)


def test_each_epoch_shows_the_mlp_one_version_of_every_row():
    z, bnp, split = data(signal=2.0)
    # every copy of a train row carries the signal in another coordinate: an MLP shown only the
    # originals ignores coordinate 1; one shown the copies as well learns from it
    copies = z[:, None].repeat(3, axis=1)
    copies[:, :, 1] = z[:, None, 0]
    copies[:, :, 0] = 0.0
    cfg = dataclasses.replace(CFG, max_epochs=40, overfit_epochs=2)
    held = z[split == "test"].copy()  # the signal moved to coordinate 1, as in the copies
    held[:, 1], held[:, 0] = held[:, 0], 0.0

    def tracks(copies):
        fitted = fit_all(z, bnp, split, cfg, seed=1, threshold=100, copies=copies)
        mlp = _model(fitted, "mlp", "correct")
        return np.corrcoef(np.log(predict_ng_l(mlp, held)), held[:, 1])[0, 1]

    assert tracks(copies) > 0.6  # the copies were fitted (noise 0.5 per row caps it near 0.9)
    assert abs(tracks(None)) < 0.3
    with pytest.raises(ValueError, match=r"copies must be \(n, k, d\)"):
        fit_all(z, bnp, split, QUICK, seed=1, threshold=100, copies=copies[:10])


def test_the_mlp_starts_at_the_training_mean():
    """Started near log BNP 0 (1 ng/L), a short fit on ten radiographs predicted about 10 ng/L for every one of
    them, so none was above the threshold and there were no GVRs (session 21, on a CPU with AVX2 alone).
    Started at the mean, the untrained MLP is the intercept-only fit plus the hidden layers' small output."""
    from modelling.nets.predictors import fit_mlp

    z, bnp, _ = data(n=10)
    y = np.log(bnp)
    fitted = {}
    for at_mean in (True, False):
        cfg = dataclasses.replace(CFG, mlp_bias_at_mean=at_mean)
        untrained, _ = fit_mlp(z, y, cfg, seed=1, epochs=0)
        short, _ = fit_mlp(z, y, cfg, seed=1, epochs=5)
        fitted[at_mean] = (untrained, np.log(predict_ng_l(untrained, z)), np.log(predict_ng_l(short, z)))
    (at_mean, start, short), (default, start_default, short_default) = fitted[True], fitted[False]
    bias = at_mean.inner.net[-1].bias
    assert bias.item() == pytest.approx(y.mean())
    weights, weights_default = at_mean.state_dict(), default.state_dict()  # the same seeded weights otherwise
    output = f"inner.net.{len(at_mean.inner.net) - 1}.bias"
    assert all(np.array_equal(weights[k], weights_default[k]) for k in weights if k != output)
    assert np.abs(start - y.mean()).max() < 1 and np.abs(start_default).max() < 1
    assert np.abs(short - y.mean()).max() < 1 < np.abs(short_default - y.mean()).min()
