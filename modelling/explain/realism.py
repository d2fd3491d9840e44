"""Realism of generated radiographs: the kernel inception distance on features of a network trained here.

KID (Bińkowski, Sutherland, Arbel & Gretton, "Demystifying MMD GANs", ICLR 2018) is the squared
maximum mean discrepancy between two sets of features under the polynomial kernel
``k(x, y) = (x . y / d + 1) ** 3``, estimated without bias and averaged over random subsets of equal
size. Unlike FID it is unbiased for small samples (a GVR set is 50 radiographs), and it is 0 in
expectation when both sets come from one distribution. The features here are not Inception's (no
weights are downloaded): they are the penultimate layer of the study's own image model
(:mod:`modelling.nets.image_models`), which learned radiographs of this cohort.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def kid(real: np.ndarray, generated: np.ndarray, *, subsets: int = 100, subset_size: int = 50,
        seed: int = 0) -> dict:
    """Kernel inception distance between feature sets (rows are samples).

    Returns ``{"kid": mean, "sd": standard deviation over subsets, "subsets", "subset_size"}``; the
    subset size is capped at the smaller set.

    Raises
    ------
    ValueError
        Fewer than two samples in a set, or feature widths that differ.

    >>> rng = np.random.default_rng(0)
    >>> same = kid(rng.normal(size=(200, 8)), rng.normal(size=(200, 8)), seed=1)
    >>> shifted = kid(rng.normal(size=(200, 8)), rng.normal(1.0, 1.0, size=(200, 8)), seed=1)
    >>> abs(same["kid"]) < 3 * same["sd"], shifted["kid"] > 10 * same["sd"]
    (True, True)
    """
    x, y = np.asarray(real, np.float64), np.asarray(generated, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"features must be (n, d) with the same d; got {x.shape} and {y.shape}")
    if min(len(x), len(y)) < 2:
        raise ValueError(f"KID needs at least two samples in each set; got {len(x)} and {len(y)}")
    size = min(subset_size, len(x), len(y))
    rng = np.random.default_rng(seed)
    values = np.array([_mmd2_unbiased(x[rng.choice(len(x), size, replace=False)],
                                      y[rng.choice(len(y), size, replace=False)]) for _ in range(subsets)])
    return {"kid": float(values.mean()), "sd": float(values.std(ddof=1)) if subsets > 1 else 0.0,
            "subsets": int(subsets), "subset_size": int(size)}


@torch.no_grad()
def penultimate_features(model: nn.Module, images: np.ndarray, *, batch: int = 256) -> np.ndarray:
    """The input of the network's last linear layer for uint8 radiographs (n, h, w) (pixels as 0-1):
    the features KID compares."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not last:
        raise ValueError("the model has no linear layer whose input could serve as features")
    captured: list[torch.Tensor] = []
    hook = last[-1].register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0].detach()))
    try:
        model.eval()
        for i in range(0, len(images), batch):
            x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch])).float()[:, None] / 255.0
            model(x)
    finally:
        hook.remove()
    return torch.cat(captured).flatten(1).numpy().astype(np.float64) if captured else np.zeros((0, 0))
