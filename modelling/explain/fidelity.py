"""How faithful GVRs are on the phantom: what a GVR changes, against what the model relies on.

Two ground truths come from rendering a radiograph again with the same noise
(:mod:`modelling.cohort.counterfactual`):

- the model's reliance on a feature: the fall in its predicted log BNP when that one feature is
  intervened on (the radiograph rendered without it, encoded and predicted again);
- the feature's true change map: the radiograph minus its intervened rendering.

A GVR's change (diseased - healthy) is decomposed by least squares onto the feature change maps of
its radiograph (:func:`decompose`): a coefficient of 1 means the GVR removes that feature as the
intervention does, 0 that it leaves it. A faithful GVR method removes most of what its model relies
on most: :func:`rank_agreement` compares the two per model (Spearman's rho over features).

References: Haufe et al. 2014 (patterns, not filters); Adebayo et al. 2018 (sanity checks); Zhang et
al. 2018 (pointing game).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from scipy import stats

from data_schema.tables import INTERVENTION_FEATURES
from modelling.cohort.counterfactual import render_intervened
from modelling.nets.seeding import seeded
from modelling.nets.training import decode, encode


@dataclasses.dataclass(frozen=True)
class Intervened:
    """Each intervention of :data:`INTERVENTION_FEATURES` on the same n radiographs, feature k in axis 1."""

    images: np.ndarray  # (n, k, h, w) uint8: the radiographs rendered again without the feature
    maps: np.ndarray  # (n, k, h, w) the feature's true change map, original - intervened, intensity 0-1
    shown: np.ndarray  # (n, k, h, w) the same change as the encoder and decoder show it
    codes: np.ndarray  # (n, k, d) the intervened radiographs' codes
    moved: np.ndarray  # (n, k, d) original code - intervened code
    same: np.ndarray  # (n, k) bool: the intervention left the radiograph as it was (the feature is absent)


def intervene(params: dict, size: int, original: np.ndarray, code: np.ndarray, encoder, decoder) -> Intervened:
    """Render `original` (uint8, n x h x w, from phantom `params`) again without each feature, encode and decode
    each rendering: what each intervention changes, and what the encoder and decoder show of it. `code` is the
    original's code. Where a feature is absent the rendering is the original; its shown change and code change are
    then 0, since the encoder's jitter is not the feature."""
    decoded = decode(decoder, code).astype(np.float32)
    images, maps, shown, codes, moved, same = [], [], [], [], [], []
    for feature in INTERVENTION_FEATURES:
        changed = render_intervened(params, feature, size)
        unchanged = (changed == original).all(axis=(1, 2))
        changed_code = encode(encoder, changed)
        images.append(changed)
        maps.append((original.astype(np.float32) - changed.astype(np.float32)) / 255.0)
        shown.append(np.where(unchanged[:, None, None], 0.0,
                              (decoded - decode(decoder, changed_code).astype(np.float32)) / 255.0))
        codes.append(changed_code)
        moved.append(np.where(unchanged.reshape(-1, *[1] * (code.ndim - 1)), 0.0, code - changed_code))
        same.append(unchanged)
    return Intervened(images=np.stack(images, axis=1), maps=np.stack(maps, axis=1),
                      shown=np.stack(shown, axis=1).astype(np.float32), codes=np.stack(codes, axis=1),
                      moved=np.stack(moved, axis=1), same=np.stack(same, axis=1))


def decompose(change: np.ndarray, feature_maps: np.ndarray) -> np.ndarray:
    """Least-squares coefficients of each feature's change map in an explanation's change.

    Parameters
    ----------
    change : array (n, h, w)
        Signed change per radiograph (a GVR's ``diseased - healthy``, intensity 0-1).
    feature_maps : array (n, k, h, w)
        Per radiograph, the true change of each of k interventions (``original - intervened``).

    Returns
    -------
    numpy.ndarray (n, k)
        Coefficients; 0 for a feature whose map is zero on that radiograph (nothing to remove).

    Examples
    --------
    >>> maps = np.zeros((1, 2, 2, 2)); maps[0, 0, 0, 0] = 1.0; maps[0, 1, 1, 1] = 1.0
    >>> decompose(0.5 * maps[:, 0] + 0.2 * maps[:, 1], maps).round(6).tolist()
    [[0.5, 0.2]]
    >>> decompose(maps[:, 0], maps[:, :1] * 0).tolist()
    [[0.0]]
    """
    change = np.asarray(change, dtype=np.float64)
    maps = np.asarray(feature_maps, dtype=np.float64)
    if maps.ndim != 4 or change.shape != (maps.shape[0], *maps.shape[2:]):
        raise ValueError(f"change {change.shape} and feature_maps {maps.shape} must be (n, h, w) and (n, k, h, w)")
    n, k = maps.shape[:2]
    out = np.zeros((n, k))
    for i in range(n):
        design = maps[i].reshape(k, -1).T
        present = np.abs(design).sum(axis=0) > 0
        if present.any():
            coef, *_ = np.linalg.lstsq(design[:, present], change[i].ravel(), rcond=None)
            out[i, present] = coef
    return out


def explained(change: np.ndarray, feature_maps: np.ndarray) -> np.ndarray:
    """Per radiograph, the share of the change's sum of squares that :func:`decompose`'s least-squares fit
    by the feature maps explains: R^2 of a fit through the origin, against the uncentred total (a change
    map is 0 where nothing changed, and the fit has no intercept; against the centred total a uniform
    brightening would make it negative). In [0, 1]; NaN where the change is 0 everywhere.

    >>> maps = np.zeros((1, 1, 2, 2)); maps[0, 0, 0, 0] = 1.0
    >>> explained(0.5 * maps[:, 0], maps).round(6).tolist()
    [1.0]
    >>> explained(np.ones((1, 2, 2)), maps).round(6).tolist(), explained(np.zeros((1, 2, 2)), maps).tolist()
    ([0.25], [nan])
    """
    change = np.asarray(change, dtype=np.float64)
    maps = np.asarray(feature_maps, dtype=np.float64)
    fit = np.einsum("nk,nkhw->nhw", decompose(change, maps), maps)
    residual = ((change - fit) ** 2).sum(axis=(1, 2))
    total = (change ** 2).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 1 - residual / total, np.nan)


def squared_code_lengths(moved: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """Each code change's squared Mahalanobis length under the codes' covariance, ``d^T S^-1 d``.

    A pattern move steps along ``S g`` (:func:`modelling.explain.gvr.move`), the steepest descent of the
    prediction in the metric ``S^-1``: this is what removing a feature costs such a move. Steepest descent with a
    quadratic cost removes each feature in proportion to its fall in prediction over its cost, so a feature the
    model relies on but that costs much is removed little. The move's tiny ridge keeps a singular covariance
    solvable.

    Parameters
    ----------
    moved : array (..., d)
        Code changes (a radiograph's code minus its intervened rendering's code).
    covariance : array (d, d)
        Covariance of the codes the model trained on (the pattern move's).

    >>> squared_code_lengths(np.array([[3.0, 4.0]]), 4 * np.eye(2)).round(4).tolist()  # 25 / 4, less the ridge
    [6.25]
    """
    moved = np.asarray(moved, dtype=np.float64)
    cov = np.asarray(covariance, dtype=np.float64)
    d = cov.shape[0]
    if cov.shape != (d, d) or moved.shape[-1] != d:
        raise ValueError(f"code changes {moved.shape} and covariance {cov.shape} must share the code width")
    ridge = 1e-6 * max(float(np.trace(cov)) / d, 1e-12)
    flat = moved.reshape(-1, d)
    solved = np.linalg.solve((cov + cov.T) / 2 + ridge * np.eye(d), flat.T).T
    return (flat * solved).sum(axis=1).reshape(moved.shape[:-1])


def rank_agreement(shown: np.ndarray, relied: np.ndarray) -> float | None:
    """Spearman's rho between what the GVRs show per feature and what the model relies on per feature
    (per-model means); None when either is constant.

    >>> rank_agreement(np.array([0.9, 0.5, 0.1]), np.array([0.7, 0.3, 0.2]))
    1.0
    """
    shown, relied = np.asarray(shown, float), np.asarray(relied, float)
    if np.ptp(shown) == 0 or np.ptp(relied) == 0:
        return None
    return float(stats.spearmanr(shown, relied).statistic)


def rank_agreement_interval(coef: np.ndarray, drops: np.ndarray, *, seed: int, resamples: int = 2000,
                            level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of :func:`rank_agreement` over the radiographs: `coef` and `drops`
    are (radiographs, features), each resample draws radiographs with replacement and ranks the features'
    mean coefficients against their mean falls. Resamples where either is constant are left out; None when
    fewer than half are left (Efron and Tibshirani 1993, ch. 13).

    It shows how much of the rank agreement is the draw of radiographs; the model's training and the
    cohort vary it further.

    >>> c = np.array([[0.9, 0.5, 0.1], [0.8, 0.4, 0.2], [1.0, 0.6, 0.0]])
    >>> rank_agreement_interval(c, c, seed=0)
    (1.0, 1.0)
    """
    coef, drops = np.asarray(coef, float), np.asarray(drops, float)
    n = len(coef)
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples) / n

    def means(x):  # each resample's per-feature means, NaN (a feature not decomposed there) left out
        seen = np.isfinite(x)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (weights @ np.where(seen, x, 0.0)) / (weights @ seen)

    shown_means, relied_means = means(coef), means(drops)
    shown, relied = stats.rankdata(shown_means, axis=1), stats.rankdata(relied_means, axis=1)
    defined = ((np.ptp(shown, axis=1) > 0) & (np.ptp(relied, axis=1) > 0)
               & np.isfinite(shown_means).all(axis=1) & np.isfinite(relied_means).all(axis=1))
    if defined.sum() < resamples / 2:
        return None
    a = shown[defined] - shown[defined].mean(axis=1, keepdims=True)
    b = relied[defined] - relied[defined].mean(axis=1, keepdims=True)
    rho = (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))  # Pearson r of the ranks
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(rho, [tail, 100 - tail])
    return float(low), float(high)


def lower_share(before: np.ndarray, after: np.ndarray, where: np.ndarray) -> tuple[float | None, int]:
    """Share of radiographs in `where` whose measure is lower after than before, among those measured
    on both (NaN is unmeasured), and how many that is.

    >>> lower_share(np.array([0.6, 0.6, np.nan]), np.array([0.5, 0.7, 0.4]), np.array([True, True, True]))
    (0.5, 2)
    """
    before, after = np.asarray(before, float), np.asarray(after, float)
    both = np.asarray(where, bool) & np.isfinite(before) & np.isfinite(after)
    n = int(both.sum())
    return (float(np.mean(after[both] < before[both])) if n else None), n


def randomised(predictor: torch.nn.Module, codes: np.ndarray, *, seed: int) -> torch.nn.Module:
    """The model-parameter randomisation test's model (Adebayo et al. 2018, "Sanity checks for saliency
    maps"): a copy of `predictor` with every weight drawn afresh (its layers' own initialisation, seeded),
    its output rescaled to the real model's mean and SD over `codes`, so that its predictions cross the
    same thresholds about as often. An explanation method that gives similar maps for this model and the
    real one does not depend on what the model learned."""
    import copy

    real = copy.deepcopy(predictor).eval()
    model = copy.deepcopy(predictor).eval()
    with seeded(seed):
        for module in model.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    z = torch.as_tensor(np.asarray(codes, dtype=np.float32))
    with torch.no_grad():
        want, got = real(z), model(z)
    scale = float(want.std() / got.std().clamp_min(1e-12))
    shift = float(want.mean() - scale * got.mean())
    return _Affine(model, scale, shift)


class _Affine(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module, scale: float, shift: float):
        super().__init__()
        self.inner, self.scale, self.shift = inner, scale, shift

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.inner(z) * self.scale + self.shift


def map_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per image, Spearman's rank correlation of the absolute values of two maps (Adebayo et al. 2018);
    NaN where either is constant.

    >>> x = np.arange(16.0).reshape(1, 4, 4)
    >>> map_similarity(x, 2 * x).round(6).tolist(), map_similarity(x, -x).round(6).tolist()
    ([1.0], [1.0])
    """
    a, b = np.abs(np.asarray(a, np.float64)), np.abs(np.asarray(b, np.float64))
    out = np.full(len(a), np.nan)
    for i in range(len(a)):
        if np.ptp(a[i]) > 0 and np.ptp(b[i]) > 0:
            out[i] = stats.spearmanr(a[i].ravel(), b[i].ravel()).statistic
    return out
