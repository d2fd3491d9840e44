"""GVRs for any image model, with a captum-shaped API: ``GenerativeRationale(...).attribute(...)``.

Two methods move the latent code of each input until the user's image model changes its decision:

- ``direct``: through the real model, ``model(prepare(decoder(z)))`` (decoder, resizing and pixel
  scaling inside the differentiable path; :class:`modelling.explain.image_model.LatentImageModel`);
- ``surrogate`` (the paper's own suggestion for models that are not latent predictors): a ridge
  regression of the model's score on the latent codes of radiographs the model scored
  (:func:`fit_surrogate`, with its fidelity to the model on held-out radiographs), and the move
  along it.

Either way the healthy reconstruction is then shown to the real model, quantised to 8 bits as it is
stored, and a rationale is valid only when the real model's decision has changed. A surrogate that
the model does not follow gives invalid rationales, and they are reported as such.

Example (a toy decoder and encoder; in a study they come from the bundle)::

    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> decoder = nn.Sequential(nn.Linear(4, 256, bias=False), nn.Unflatten(1, (1, 16, 16)))
    >>> encoder = nn.Sequential(nn.Flatten(), nn.Linear(256, 4, bias=False))
    >>> with torch.no_grad():  # an encoder that inverts the decoder exactly
    ...     _ = decoder[0].weight.copy_(torch.randn(256, 4) / 16)
    ...     _ = encoder[1].weight.copy_(torch.linalg.pinv(decoder[0].weight))
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(256, 1))  # a logit
    >>> x = (decoder(torch.randn(3, 4)).detach() + 1) / 2  # inputs as the model takes them (0-1)
    >>> threshold = float(model(x).min().detach()) - 0.05  # every input starts positive
    >>> explainer = GenerativeRationale(model, decoder, encoder, output="logit")
    >>> attributions, path = explainer.attribute(x, threshold=threshold, step_size=0.05, margin=0.01,
    ...                                              return_path=True)
    >>> attributions.shape == x.shape, bool(path.valid.all())
    (True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from modelling.explain.frozen import frozen
from modelling.explain.gvr import move
from modelling.explain.image_model import (
    ImageModelError,
    ImageModelSpec,
    LatentImageModel,
    check,
    prepare,
    scores,
)
from modelling.nets.networks import to_unit
from modelling.nets.training import decode

METHODS = ("direct", "surrogate")


@dataclass(frozen=True)
class RationalePath:
    """What :meth:`GenerativeRationale.attribute` did per input.

    Attributes
    ----------
    start, end : ndarray (n, latent_dim)
        Latent codes before and after the move.
    start_score, end_score : ndarray (n,)
        The moving predictor's score (the real model's for "direct", the surrogate's otherwise).
    reached : ndarray of bool (n,)
        Whether the moving predictor crossed the threshold within the step budget.
    model_score_diseased, model_score_healthy : ndarray (n,)
        The real model's score on the two reconstructions, quantised to 8 bits as they are stored.
    valid : ndarray of bool (n,)
        Whether the real model's decision on the healthy reconstruction is the one sought (below the
        threshold for "down") while it was not on the diseased one. Never inferred from `reached`.
    method : str
    steps : ndarray of int (n,)
        Steps each code took.
    frames : ndarray (n_frames, n, latent_dim)
        Codes along the path.
    diseased_images, healthy_images : ndarray of uint8 (n, s, s)
        The two reconstructions as stored and as the model judged them.
    """

    start: np.ndarray
    end: np.ndarray
    start_score: np.ndarray
    end_score: np.ndarray
    reached: np.ndarray
    model_score_diseased: np.ndarray
    model_score_healthy: np.ndarray
    valid: np.ndarray
    method: str
    steps: np.ndarray | None = None
    frames: np.ndarray | None = None
    diseased_images: np.ndarray | None = None
    healthy_images: np.ndarray | None = None


@dataclass(frozen=True)
class Surrogate:
    """A latent predictor of an image model's score, with its fidelity to the model.

    Attributes
    ----------
    predictor : torch.nn.Module
        latent code -> score (a linear layer: ridge regression).
    fidelity : dict
        On held-out radiographs: ``r2`` (of the surrogate's scores against the model's), ``auc`` (the
        surrogate's scores against the model's own decisions; None when the model gives one decision
        only), ``agreement`` (share of equal decisions), ``n_fit`` and ``n_held_out``, ``alpha``.
    """

    predictor: nn.Module
    fidelity: dict


def fit_surrogate(codes: np.ndarray, model_scores: np.ndarray, threshold: float, *, seed: int,
                  held_out: float = 0.25) -> Surrogate:
    """Ridge regression of `model_scores` on `codes` (penalty by cross-validation on the fitting part),
    judged on a held-out share of the radiographs.

    Raises
    ------
    ValueError
        Fewer than 8 radiographs, mismatched lengths, or non-finite values.
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score, roc_auc_score

    codes, y = np.asarray(codes, np.float64), np.asarray(model_scores, np.float64)
    if codes.ndim != 2 or len(codes) != len(y):
        raise ValueError(f"codes must be (n, d) with one score each; got {codes.shape} and {y.shape}")
    if len(y) < 8:
        raise ValueError(f"a surrogate needs at least 8 scored radiographs; got {len(y)}")
    if not (np.isfinite(codes).all() and np.isfinite(y).all()):
        raise ValueError("codes and scores must be finite")
    order = np.random.default_rng(seed).permutation(len(y))
    cut = max(1, int(round(held_out * len(y))))
    test, fit = order[:cut], order[cut:]
    ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(codes[fit], y[fit])
    predicted = ridge.predict(codes[test])
    decisions = y[test] >= threshold
    fidelity = {
        "r2": float(r2_score(y[test], predicted)) if len(test) > 1 else None,
        "auc": float(roc_auc_score(decisions, predicted)) if 0 < decisions.sum() < len(decisions) else None,
        "agreement": float(np.mean((predicted >= threshold) == decisions)),
        "n_fit": int(len(fit)), "n_held_out": int(len(test)), "alpha": float(ridge.alpha_),
    }
    layer = nn.Linear(codes.shape[1], 1)
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(ridge.coef_, dtype=torch.float32)[None])
        layer.bias.fill_(float(ridge.intercept_))
    return Surrogate(predictor=nn.Sequential(layer, nn.Flatten(0)), fidelity=fidelity)


class GenerativeRationale:
    """Generative visual rationales for an image model, shaped like captum's attribution classes.

    Parameters
    ----------
    forward_func : callable or torch.nn.Module
        The image model: inputs (n, 1, h, w) as it takes them -> outputs (n,) or (n, k).
    decoder : torch.nn.Module
        latent (n, d) -> images (n, 1, s, s) in [-1, 1].
    encoder : torch.nn.Module
        images (n, 1, s, s) in [-1, 1] -> latent (n, d).
    output : {"log_bnp", "bnp_ng_l", "logit", "probability"}
        What the selected output is (the threshold is in its units).
    scaling, mean, sd :
        How the model's inputs are scaled (see :class:`ImageModelSpec`); inputs are unscaled and
        resized to the decoder's size before encoding.
    """

    def __init__(self, forward_func, decoder: nn.Module, encoder: nn.Module, *, output: str = "log_bnp",
                 scaling: str = "unit", mean: float = 0.0, sd: float = 1.0):
        self.model = forward_func if isinstance(forward_func, nn.Module) else _Wrapped(forward_func)
        self.decoder, self.encoder = decoder.eval(), encoder.eval()
        self.output, self.scaling, self.mean, self.sd = output, scaling, mean, sd

    def spec(self, input_size: int, target: int, threshold: float) -> ImageModelSpec:
        return ImageModelSpec(input_size=input_size, output=self.output, threshold=threshold, scaling=self.scaling,
                              mean=self.mean, sd=self.sd, output_index=target)

    def _to_generator(self, inputs: torch.Tensor, size: int) -> torch.Tensor:
        x = inputs * self.sd + self.mean if self.scaling == "mean_sd" else inputs
        x = x.clamp(0, 1) * 2 - 1
        if x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        return x

    def attribute(self, inputs: torch.Tensor, target: int = 0, *, threshold: float, direction: str = "down",
                  method: str = "direct", surrogate: Surrogate | None = None, covariance: np.ndarray | None = None,
                  step_size: float = 0.01, max_steps: int = 200, similarity_weight: float = 1.0,
                  margin: float = 0.0, sparse_steps: int = 0, metric_ridge: float | None = None,
                  return_path: bool = False):
        """Move each input's latent code until the model's decision changes; the attribution is
        ``prepare(diseased) - prepare(healthy)`` with the inputs' shape (what the model's decision
        needed to lose).

        Parameters
        ----------
        inputs : tensor (n, 1, h, w)
            As the model takes them (square).
        target : int
            The model's output index (captum's meaning of `target`).
        threshold : float
            The decision threshold in the output's units.
        direction : {"down", "up"}
            "down": from positive to below the threshold (a GVR); "up": an inverse GVR.
        method : {"direct", "surrogate"}
            Move through the real model, or along `surrogate` (:func:`fit_surrogate`).
        covariance : array (d, d), optional
            Pattern moves (:func:`modelling.explain.gvr.move`); None: the paper's gradient moves.
        margin : float
            How far past the threshold to move, on the score scale (log BNP or logit): the path lands
            just past its target, and storing the images in 8 bits can carry them back across it.
        sparse_steps : int
            Steps that then shrink the change while the decision stays changed
            (:func:`modelling.explain.gvr.move`); 0 keeps the first code past the threshold. Direct
            moves only: the model reads the decoded picture, as a re-encoded latent move does.
        metric_ridge : float, optional
            Metric moves, steepest descent in the decoded picture's distance
            (:func:`modelling.explain.gvr.move`); direct moves only, as `sparse_steps`.
        return_path : bool
            Also return a :class:`RationalePath`.
        """
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
        if method == "surrogate" and surrogate is None:
            raise ValueError("method 'surrogate' needs surrogate= (fit_surrogate on scored radiographs' codes)")
        if inputs.ndim != 4 or inputs.shape[1] != 1 or inputs.shape[-1] != inputs.shape[-2]:
            raise ImageModelError(f"inputs must be square single-channel images (n, 1, h, h); got {tuple(inputs.shape)}")
        spec = self.spec(int(inputs.shape[-1]), target, threshold)
        with torch.no_grad():
            codes = self.encoder(self._to_generator(inputs.float(), self._generator_size())).float().cpu().numpy()
        attributions, path = explain_codes(codes, self.decoder, self.model, spec, direction=direction, method=method,
                                           surrogate=surrogate, covariance=covariance, step_size=step_size,
                                           max_steps=max_steps, similarity_weight=similarity_weight, margin=margin,
                                           sparse_steps=sparse_steps, metric_ridge=metric_ridge)
        return (attributions, path) if return_path else attributions

    def _generator_size(self) -> int:
        """The decoder's image side, from one decoded zero code (its latent size from `latent_dim` or its
        first layer)."""
        d = getattr(self.decoder, "latent_dim", None)
        if d is None:
            first = next((m for m in self.decoder.modules() if isinstance(m, (nn.Linear, nn.ConvTranspose2d))), None)
            if first is None:
                raise ImageModelError("cannot tell the decoder's latent size: give it a latent_dim attribute")
            d = first.in_features if isinstance(first, nn.Linear) else first.in_channels
        with torch.no_grad():
            return int(self.decoder(torch.zeros(1, int(d))).shape[-1])


def explain_codes(codes: np.ndarray, decoder: nn.Module, model: nn.Module, spec: ImageModelSpec, *,
                  direction: str = "down", method: str = "direct", surrogate: Surrogate | None = None,
                  covariance: np.ndarray | None = None, step_size: float = 0.01, max_steps: int = 200,
                  similarity_weight: float = 1.0, margin: float = 0.0, frames: int = 2, sparse_steps: int = 0,
                  metric_ridge: float | None = None, desc: str | None = None) -> tuple[torch.Tensor, RationalePath]:
    """:meth:`GenerativeRationale.attribute` from latent codes already encoded (a study bundle's).

    Returns the attributions in the model's input space (n, 1, input_size, input_size) and the path,
    with `frames` codes along the way (:func:`modelling.explain.gvr.move`, which reports progress
    under `desc` when it is given).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if method == "surrogate" and surrogate is None:
        raise ValueError("method 'surrogate' needs surrogate= (fit_surrogate on scored radiographs' codes)")
    if margin < 0:
        raise ValueError(f"margin must not be negative; got {margin}")
    if sparse_steps and method == "surrogate":
        raise ValueError("sparse_steps needs method 'direct': a surrogate scores the code, and shrinking its change "
                         "finds codes it reads low whose pictures barely change")
    if metric_ridge is not None and method == "surrogate":
        raise ValueError("metric moves need method 'direct': a surrogate scores the code, whose gradient the decoder "
                         "does not draw")
    with frozen(model, decoder):  # scored in eval mode throughout, and handed back as it came
        return _explain_codes(model, codes, decoder, spec, method=method, surrogate=surrogate, direction=direction,
                              covariance=covariance, step_size=step_size, max_steps=max_steps,
                              similarity_weight=similarity_weight, margin=margin, frames=frames,
                              sparse_steps=sparse_steps, metric_ridge=metric_ridge, desc=desc)


def _explain_codes(model, codes, decoder, spec, *, method, surrogate, direction, covariance, step_size, max_steps,
                   similarity_weight, margin, frames, sparse_steps, metric_ridge, desc) -> tuple[torch.Tensor, RationalePath]:
    check(model, spec, needs_gradients=method == "direct")
    predictor = LatentImageModel(decoder, model, spec) if method == "direct" else surrogate.predictor
    aim = spec.score_threshold - margin if direction == "down" else spec.score_threshold + margin
    path = move(np.asarray(codes, np.float32), decoder, predictor, target_log_bnp=aim, direction=direction,
                step_size=step_size, max_steps=max_steps, similarity_weight=similarity_weight, frames=frames,
                covariance=covariance, metric_ridge=metric_ridge, sparse_steps=sparse_steps, desc=desc)
    # the model judges the reconstructions as they are stored: 8-bit images
    diseased_u8, healthy_u8 = decode(decoder, path.start), decode(decoder, path.end)
    with torch.no_grad():
        diseased, healthy = to_unit(torch.from_numpy(diseased_u8)), to_unit(torch.from_numpy(healthy_u8))
        s_d = scores(model, diseased, spec).numpy().astype(np.float64)
        s_h = scores(model, healthy, spec).numpy().astype(np.float64)
        attributions = prepare(diseased, spec) - prepare(healthy, spec)
    thr = spec.score_threshold
    valid = ((s_d >= thr) & (s_h < thr)) if direction == "down" else ((s_d < thr) & (s_h >= thr))
    return attributions, RationalePath(
        start=path.start, end=path.end, start_score=path.start_log_bnp, end_score=path.end_log_bnp,
        reached=path.reached, model_score_diseased=s_d, model_score_healthy=s_h, valid=valid, method=method,
        steps=path.steps, frames=path.frames, diseased_images=diseased_u8, healthy_images=healthy_u8)


class _Wrapped(nn.Module):
    """A plain function as a module (no parameters), so that the move can treat it as a predictor."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)
