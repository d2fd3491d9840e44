"""Predictors of log BNP on latent codes, in the paper's two regimes.

- correct: fitted on the train split; the MLP stops early on the held-out test split ("The correctly
  trained model implements early stopping based on the results of the held-out testing set") and
  is evaluated on it;
- overfitted: "the training and testing data sets were deliberately combined during training, with
  one-fourth of the training data set withheld as a further validation set"; trained to
  convergence without early stopping; evaluated on its own training data and on the withheld quarter.

The linear regression is ordinary least squares (closed form); the MLP is trained with Adam on the
mean squared error of log BNP. Inputs are standardised with the training rows' mean and SD, which
are stored in the model so that it takes raw latent codes. The MLP's output bias starts at the training
rows' mean log BNP (``predictors.mlp_bias_at_mean``), as the intercept-only fit would: started near 0 (1 ng/L)
it spent its first epochs climbing to the mean, a short fit on few radiographs predicted about 10 ng/L for all
of them, and the default study's correct MLP stopped later and scored a lower test AUC.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from modelling.config import PredictorConfig
from modelling.nets.networks import MLP, Linear
from modelling.nets.seeding import seeded


class OneClassError(ValueError):
    """A labelled set whose BNP values all lie on one side of the threshold."""


class Standardised(nn.Module):
    """(z - mean) / sd, then the wrapped predictor; mean and sd are buffers saved with the weights."""

    def __init__(self, inner: nn.Module, mean: np.ndarray, sd: np.ndarray):
        super().__init__()
        self.inner = inner
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("sd", torch.as_tensor(sd, dtype=torch.float32))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.inner((z - self.mean) / self.sd)


@dataclass(frozen=True)
class Fitted:
    """A fitted predictor and what it was fitted on.

    Attributes
    ----------
    model : torch.nn.Module
        Raw latent code -> log BNP.
    predictor : str
        ``"linear"`` or ``"mlp"``.
    regime : str
        ``"correct"`` or ``"overfitted"``.
    roles : dict of str to ndarray
        Row indices (into the labelled arrays) per role: train, test or validation.
    epochs : int
        Epochs run (0 for the closed-form linear fit).
    """

    model: nn.Module
    predictor: str
    regime: str
    roles: dict
    epochs: int


def _standardiser(z: np.ndarray):
    mean = z.mean(axis=0)
    sd = z.std(axis=0)
    return mean, np.where(sd > 1e-8, sd, 1.0)


def fit_linear(z: np.ndarray, y: np.ndarray) -> nn.Module:
    """Ordinary least squares of y on z (with intercept), as a module."""
    mean, sd = _standardiser(z)
    x = np.column_stack([np.ones(len(z)), (z - mean) / sd])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    inner = Linear(z.shape[1])
    with torch.no_grad():
        inner.net.bias.copy_(torch.tensor([coef[0]], dtype=torch.float32))
        inner.net.weight.copy_(torch.as_tensor(coef[1:][None, :], dtype=torch.float32))
    return Standardised(inner, mean, sd).eval()


def fit_mlp(z: np.ndarray, y: np.ndarray, cfg: PredictorConfig, *, seed: int, epochs: int,
            z_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
            copies: np.ndarray | None = None) -> tuple[nn.Module, int]:
    """Train an MLP; with validation data, stop early (patience) and keep the best epoch's weights.

    With `copies` (n, k, d), each epoch shows every row once, as itself or one of its k copies drawn at
    random (augmentation on the fly: an epoch costs what it costs without copies)."""
    versions = z[:, None] if copies is None else np.concatenate([z[:, None], copies], axis=1)
    mean, sd = _standardiser(versions.reshape(-1, z.shape[1]))
    with seeded(seed):
        model = Standardised(MLP(z.shape[1], cfg.mlp_hidden), mean, sd)
    if cfg.mlp_bias_at_mean:  # the weights as seeded; only the output starts at the mean
        with torch.no_grad():
            model.inner.net[-1].bias.fill_(float(np.mean(y)))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    vt, yt = torch.from_numpy(versions.astype(np.float32)), torch.from_numpy(y.astype(np.float32))
    if z_val is not None:
        zv, yv = torch.from_numpy(z_val.astype(np.float32)), torch.from_numpy(y_val.astype(np.float32))
    rng = np.random.default_rng(seed)
    best, best_loss, waited, ran = None, np.inf, 0, 0
    for epoch in range(epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(len(z)))
        shown = torch.from_numpy(rng.integers(0, versions.shape[1], len(z))) if versions.shape[1] > 1 else None
        zt = vt[:, 0] if shown is None else vt[torch.arange(len(z)), shown]
        for i in range(0, len(z), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            loss = nn.functional.mse_loss(model(zt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        ran = epoch + 1
        if z_val is None:
            continue
        model.eval()
        with torch.no_grad():
            val = nn.functional.mse_loss(model(zv), yv).item()
        if val < best_loss - 1e-6:
            best, best_loss, waited = copy.deepcopy(model.state_dict()), val, 0
        else:
            waited += 1
            if waited >= cfg.patience:
                break
    if best is not None:
        model.load_state_dict(best)
    return model.eval(), ran


def fit_all(latents: np.ndarray, bnp_ng_l: np.ndarray, split: np.ndarray, cfg: PredictorConfig, *,
            seed: int, threshold: float, copies: np.ndarray | None = None) -> list[Fitted]:
    """Fit linear and MLP predictors in both regimes on the labelled rows.

    Parameters
    ----------
    latents : ndarray (n, d)
        Latent codes of the labelled radiographs.
    bnp_ng_l : ndarray (n,)
        Their paired BNP.
    split : ndarray of str (n,)
        ``"train"`` or ``"test"`` per row (split by patient).
    copies : ndarray (n, k, d), optional
        Codes of k augmented copies of each row. A model fits the copies of its own training rows with
        their BNP (the linear fit all of them, the MLP one version per row and epoch); it is never
        stopped early or evaluated on a copy.

    Raises
    ------
    OneClassError
        When the labelled BNP values do not fall on both sides of `threshold`.
    ValueError
        When the train or the test split is empty.
    """
    positive = bnp_ng_l >= threshold  # the paper's Table 1 counts "BNP < 100 ng/L" as negative
    if positive.all() or not positive.any():
        side = "at or above" if positive.all() else "below"
        raise OneClassError(f"every labelled BNP is {side} {threshold:g} ng/L: an AUC at that threshold is undefined")
    train, test = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    if len(train) == 0 or len(test) == 0:
        raise ValueError(f"the labelled set needs train and test rows; got {len(train)} and {len(test)}")
    if copies is not None and (copies.ndim != 3 or len(copies) != len(latents) or copies.shape[2] != latents.shape[1]):
        raise ValueError(f"copies must be (n, k, d) = ({len(latents)}, k, {latents.shape[1]}); got {copies.shape}")
    y = np.log(bnp_ng_l)

    def linear_on(rows: np.ndarray) -> nn.Module:
        if copies is None:
            return fit_linear(latents[rows], y[rows])
        k = copies.shape[1]
        return fit_linear(np.concatenate([latents[rows], copies[rows].reshape(-1, latents.shape[1])]),
                          np.concatenate([y[rows], np.repeat(y[rows], k)]))

    def mine(rows: np.ndarray) -> np.ndarray | None:
        return None if copies is None else copies[rows]

    rng = np.random.default_rng([seed, 40])
    combined = rng.permutation(np.r_[train, test])
    n_val = int(round(cfg.validation_fraction * len(combined)))
    validation, fit_rows = np.sort(combined[:n_val]), np.sort(combined[n_val:])

    out = [
        Fitted(linear_on(train), "linear", "correct", {"train": train, "test": test}, 0),
        Fitted(linear_on(fit_rows), "linear", "overfitted", {"train": fit_rows, "validation": validation}, 0),
    ]
    mlp, ran = fit_mlp(latents[train], y[train], cfg, seed=seed + 1, epochs=cfg.max_epochs,
                       z_val=latents[test], y_val=y[test], copies=mine(train))
    out.append(Fitted(mlp, "mlp", "correct", {"train": train, "test": test}, ran))
    mlp, ran = fit_mlp(latents[fit_rows], y[fit_rows], cfg, seed=seed + 2, epochs=cfg.overfit_epochs,
                       copies=mine(fit_rows))
    out.append(Fitted(mlp, "mlp", "overfitted", {"train": fit_rows, "validation": validation}, ran))
    return out


@torch.no_grad()
def predict_ng_l(model: nn.Module, latents: np.ndarray) -> np.ndarray:
    """Predicted BNP in ng/L (the exponential of the predicted log BNP)."""
    return np.exp(model(torch.from_numpy(latents.astype(np.float32))).numpy().astype(np.float64))


def model_config(cfg: PredictorConfig, predictor: str, regime: str) -> dict:
    return {"predictor": predictor, "regime": regime, "predictors": dataclasses.asdict(cfg)}
