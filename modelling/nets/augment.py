"""Positional copies of radiographs, for predictors that should not read how a patient stood.

How a patient stands (rotation, shift, distance to the film) differs between patients and barely within
one; on the phantom both the correct and the overfitted predictor change their prediction by about as
much when a radiograph is drawn again with neutral positioning as when its heart is made normal
(``benchmarks/RESULTS.md``, "a reliance the interventions leave out"). Random small affine copies of the
training radiographs, encoded like the originals, show a predictor the same patient in other positions
with the same BNP: the usual augmentation of radiograph classifiers, done in image space so that it
applies to a user's radiographs as well as to the phantom.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional


def affine_parameters(n: int, *, rotation_deg: float, shift: float, scale: float,
                      rng: np.random.Generator) -> np.ndarray:
    """Per copy: rotation (degrees), horizontal and vertical shift (fractions of the width), scale;
    each drawn uniformly within +- its limit (scale within 1 +- `scale`). Shape (n, 4)."""
    return np.column_stack([rng.uniform(-rotation_deg, rotation_deg, n), rng.uniform(-shift, shift, n),
                            rng.uniform(-shift, shift, n), rng.uniform(1 - scale, 1 + scale, n)])


def transform(images: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Each uint8 image (n, s, s) rotated, shifted and scaled about its centre by its row of `params`
    (:func:`affine_parameters`); bilinear, the edge pixels carried outward. Returns uint8 (n, s, s).

    >>> img = np.zeros((1, 8, 8), np.uint8); img[0, 2:6, 2:6] = 200
    >>> bool((transform(img, np.array([[0.0, 0.0, 0.0, 1.0]])) == img).all())
    True
    """
    if len(images) == 0:
        return images.copy()
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None]
    theta = np.radians(params[:, 0])
    cos, sin, s = np.cos(theta), np.sin(theta), params[:, 3]
    # affine_grid maps output to input coordinates in [-1, 1]: the inverse of the wanted move, so a
    # picture scaled by s and shifted by t samples at (R^-1 (p - 2t)) / s
    inv = np.zeros((len(images), 2, 3))
    inv[:, 0, 0], inv[:, 0, 1], inv[:, 1, 0], inv[:, 1, 1] = cos / s, sin / s, -sin / s, cos / s
    t = 2 * params[:, 1:3]
    inv[:, :, 2] = -np.einsum("nij,nj->ni", inv[:, :, :2], t)
    grid = functional.affine_grid(torch.from_numpy(inv).float(), list(x.shape), align_corners=False)
    out = functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return np.clip(np.rint(out[:, 0].numpy()), 0, 255).astype(np.uint8)


def positional_copies(images: np.ndarray, copies: int, *, rotation_deg: float, shift: float, scale: float,
                      seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`copies` random affine copies of every image, and for each copy the row of the image it came from.

    Returns
    -------
    copied : uint8 ndarray (n * copies, s, s)
    owner : int ndarray (n * copies,)
        Index into `images`; copies of one image are consecutive.
    """
    owner = np.repeat(np.arange(len(images)), copies)
    rng = np.random.default_rng([seed, 53])
    params = affine_parameters(len(owner), rotation_deg=rotation_deg, shift=shift, scale=scale, rng=rng)
    out = np.empty((len(owner), *images.shape[1:]), np.uint8)
    batch = 512
    for i in range(0, len(owner), batch):
        out[i:i + batch] = transform(images[owner[i:i + batch]], params[i:i + batch])
    return out, owner

