"""A second-stage model of where the latent codes lie, for decoder samples that look like radiographs.

An autoencoder pulled toward a N(0, I) prior (the default profile's WAE-MMD) does not fill the prior:
decoded prior draws fall in holes between the codes of real radiographs, and about one in seven has no
two separable lungs, while the codes of real radiographs decode to two lungs as often as the
radiographs themselves have them (``benchmarks/RESULTS.md``, "Decoder samples without two lungs").
Dai and Wipf (ICLR 2019, "Diagnosing and enhancing VAE models", section 4) fit a second, small VAE to
the first stage's codes and sample through it: u ~ N(0, I), z = second decoder(u). Their second stage
learns its observation noise gamma, so that the fitted density can concentrate on the codes' own
manifold instead of blurring over the holes. This module is that second stage, on standardised codes,
with a check of whether it only replays the codes it was fitted to (:func:`replay_ratio`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from modelling.nets.seeding import seeded
from modelling.progress import progress


class CodeVAE(nn.Module):
    """Gaussian VAE on d-dimensional vectors with a learned scalar observation noise (Dai and Wipf)."""

    def __init__(self, dim: int, hidden: int = 256, latent: int | None = None):
        super().__init__()
        latent = dim if latent is None else latent
        self.latent = latent
        self.enc = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 2 * latent))
        self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, dim))
        self.log_gamma = nn.Parameter(torch.zeros(()))

    def loss(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Negative ELBO per vector: Gaussian reconstruction with noise gamma, plus the KL to N(0, I)."""
        mu, log_var = self.enc(x).chunk(2, dim=1)
        u = mu + torch.randn(mu.shape, generator=generator) * torch.exp(0.5 * log_var)
        err = ((x - self.dec(u)) ** 2).sum(dim=1)
        d = x.shape[1]
        nll = err / (2 * torch.exp(2 * self.log_gamma)) + d * self.log_gamma
        kl = 0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum(dim=1)
        return (nll + kl).mean()


@dataclass
class CodeSampler:
    """A fitted second stage: draws codes like those it was fitted to."""

    model: CodeVAE
    mean: np.ndarray
    scale: np.ndarray

    @torch.no_grad()
    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """`n` codes (n, d) float32: u ~ N(0, I) through the second decoder, back to the codes' scale."""
        self.model.eval()
        u = torch.from_numpy(rng.standard_normal((n, self.model.latent)).astype(np.float32))
        return (self.model.dec(u).numpy() * self.scale + self.mean).astype(np.float32)


def fit_code_sampler(codes: np.ndarray, *, seed: int, steps: int = 2000, batch: int = 256, hidden: int = 256,
                     learning_rate: float = 1e-3, latent: int | None = None) -> CodeSampler:
    """Fit the second-stage VAE to `codes` (n, d); seeded, so the same codes and seed give the same sampler.

    The codes are standardised per dimension first; Adam with the learning rate halved at each third of
    the steps (Dai and Wipf train the second stage with a decaying rate too). On codes with only a
    few directions of variation the second stage can stay collapsed at their mean (the posterior
    collapse of VAEs): its observation noise then stays near 1 (``model.log_gamma`` near 0) and every
    sample lands near the mean; :func:`collapsed` says so. A KL warm-up avoids that on such codes but
    drew worse radiographs from the default study's codes (``benchmarks/RESULTS.md``), so it is not used.
    `latent` is the second stage's own latent size, the codes' dimension by default as in Dai and Wipf.
    """
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or len(codes) < 2:
        raise ValueError(f"fit_code_sampler: need at least 2 codes as rows of a 2-d array, got shape {codes.shape}")
    mean, scale = codes.mean(axis=0), codes.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    x = torch.from_numpy(((codes - mean) / scale).astype(np.float32))
    with seeded(seed):  # the initial weights from `seed`, the caller's stream untouched
        model = CodeVAE(x.shape[1], hidden, latent)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=learning_rate)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, steps // 3), gamma=0.5)
    model.train()
    # 10 s for 2,000 steps on an idle 2-core machine, over 30 s on a busy one: counted like the other long work
    with progress(total=steps, desc="two-stage sampler", unit="step") as bar:
        for _ in range(steps):
            idx = torch.randint(len(x), (min(batch, len(x)),), generator=gen)
            opt.zero_grad()
            model.loss(x[idx], gen).backward()
            opt.step()
            sched.step()
            bar.update(1)
    return CodeSampler(model, mean.astype(np.float32), scale.astype(np.float32))


def collapsed(sampler: CodeSampler) -> bool:
    """Whether the fitted second stage learned nothing but the codes' mean (observation noise >= 0.9)."""
    return float(torch.exp(sampler.model.log_gamma).item()) >= 0.9


def replay_ratio(samples: np.ndarray, fitted: np.ndarray, held_out: np.ndarray) -> float | None:
    """Median distance of each sample to its nearest fitted code, over the same for held-out codes.

    About 1 when the samples are as new as codes of radiographs the sampler never saw; near 0 when the
    sampler replays the codes it was fitted to (a distance-to-closest-record check of synthetic data).
    None when there is no yardstick: no held-out codes, or held-out codes that coincide with fitted ones
    (duplicate radiographs, or an encoder that maps everything to one code).

    >>> rng = np.random.default_rng(0); fitted = rng.standard_normal((200, 4))
    >>> replay_ratio(fitted[:50] + 1e-3, fitted, rng.standard_normal((50, 4))) < 0.01
    True
    """
    from scipy.spatial import cKDTree

    if len(held_out) == 0:
        return None
    tree = cKDTree(np.asarray(fitted, dtype=np.float64))
    near = lambda x: float(np.median(tree.query(np.asarray(x, dtype=np.float64))[0]))  # noqa: E731
    yardstick = near(held_out)
    return near(samples) / yardstick if yardstick > 0 else None
