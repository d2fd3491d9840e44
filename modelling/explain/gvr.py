"""Generative Visual Rationales: move a radiograph's latent code until the predictor changes its mind.

A GVR (the paper's Figure 1) encodes a radiograph predicted above the threshold, then takes gradient
steps on the latent code to "minimize the prediction of disease while constrained by a similarity
measure in image space": the loss is the predicted log BNP's excess over the target plus
``similarity_weight`` times the mean squared difference between the decoded moved code and the
decoded original code. The original code decodes to the "diseased" reconstruction, the final code to
the "healthy" one, and their signed difference is overlaid on the original radiograph: orange where
the model removes density (diseased brighter than healthy), purple where it adds density.

The paper's steps follow the loss's gradient. ``gvr.move: pattern`` steps along the gradient times
the covariance of the codes instead (Haufe et al. 2014's activation pattern): the gradient says
which direction changes the prediction fastest, the pattern which direction the data vary in when
the prediction does, and only the second moves the features that carry the disease together.
``gvr.move: metric`` steps along the steepest descent in image distance instead: the gradient
through the decoder's pullback metric (Arvanitidis et al., ICLR 2018, "Latent space oddity"), so each
step is (for a small ridge) the smallest change to the decoded picture that lowers what the model says
of it, the model's own sensitivity in image space kept to what the decoder can draw. A similarity
penalty cannot do that: its gradient vanishes where the move starts.

``gvr.sparse_steps`` then shortens the change (not in the paper): from where the move crossed the
target, Adam steps lower the mean absolute difference between the decoded code and the diseased
reconstruction while a penalty keeps the prediction past the target, and the code with the smallest
such difference that is still past it is kept. This is the L1 proximity of counterfactual explanations
(Wachter et al., Harvard JOLT 2018): of the changes that cross the target it prefers the smallest in
pixels, so a model that leans on something small, such as a marker, is shown removing it rather than
the larger disease a move along the codes' own directions takes with it. :func:`shorten` is that phase on
its own, for codes a move has already taken past their targets (the audit shortens its copy of a bundle's
GVRs with it).

An inverse GVR (Figures 5-6) moves a code predicted below the threshold up to target BNP values.
Both run batched; each code stops moving once it has reached its target.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from modelling.explain.colours import ORANGE, PURPLE
from modelling.explain.frozen import frozen
from modelling.progress import progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Path:
    """The result of moving a batch of latent codes.

    Attributes
    ----------
    start, end : ndarray (n, latent_dim)
        Codes before and after the move.
    start_log_bnp, end_log_bnp : ndarray (n,)
        Predicted natural-log BNP before and after.
    steps : ndarray of int (n,)
        Gradient steps each code took (0 when it started at its target).
    reached : ndarray of bool (n,)
        Whether each code reached its target within the step budget.
    frames : ndarray (n_frames, n, latent_dim)
        Codes along the path (first = start, last = end), for movies.
    """

    start: np.ndarray
    end: np.ndarray
    start_log_bnp: np.ndarray
    end_log_bnp: np.ndarray
    steps: np.ndarray
    reached: np.ndarray
    frames: np.ndarray


class Reencoded(nn.Module):
    """The model as it reads a picture: a code is decoded, encoded again and predicted,
    ``predictor(encoder(decoder(z)))`` (``gvr.reencode``). A move through it lowers what the model
    says of the decoded image, not of the code alone."""

    def __init__(self, predictor: nn.Module, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.predictor, self.encoder, self.decoder = predictor, encoder, decoder

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.reads(self.decoder(z))

    def reads(self, picture: torch.Tensor) -> torch.Tensor:
        """What the model says of a picture the decoder drew (one decoding serves the move's change too)."""
        return self.predictor(self.encoder(picture).float())


def scorer(predictor: nn.Module, *, reencode: bool, encoder: nn.Module | None = None,
           decoder: nn.Module | None = None) -> nn.Module:
    """What a GVR move lowers (``gvr.reencode``): the predictor itself, or :class:`Reencoded`."""
    if not reencode:
        return predictor
    if encoder is None or decoder is None:
        raise ValueError("gvr.reencode needs the encoder and the decoder")
    return Reencoded(predictor, encoder, decoder).eval()


def aim(target_log_bnp: np.ndarray | float, direction: str, margin: float) -> np.ndarray:
    """Where a move aims: `margin` log BNP past each target, below it for "down", above for "up"."""
    return np.asarray(target_log_bnp, dtype=np.float64) + (-margin if direction == "down" else margin)


def move(
    start: np.ndarray,
    decoder: nn.Module,
    predictor: nn.Module,
    *,
    target_log_bnp: float | np.ndarray,
    direction: str,
    step_size: float = 0.05,
    max_steps: int = 200,
    similarity_weight: float = 1.0,
    frames: int = 12,
    covariance: np.ndarray | None = None,
    metric_ridge: float | None = None,
    sparse_steps: int = 0,
    desc: str | None = None,
) -> Path:
    """Move latent codes until the predictor's log BNP passes `target_log_bnp`.

    Parameters
    ----------
    start : ndarray (n, latent_dim)
        Latent codes (the encoder's output for the radiographs).
    decoder, predictor : torch.nn.Module
        Latent -> image in [-1, 1]; latent -> log BNP.
    target_log_bnp : float or ndarray (n,)
        Natural log of the target BNP in ng/L.
    direction : {"down", "up"}
        "down": until the prediction is below the target (a GVR); "up": until it is at or above
        it (an inverse GVR).
    step_size : float
        The gradient move's Adam learning rate on the latent code; for pattern and metric moves the step's
        length (see `covariance` and `metric_ridge`).
    max_steps : int
        Step budget; codes that do not reach the target stop there and are marked not reached.
    similarity_weight : float
        Weight of the image-space similarity to the original reconstruction.
    frames : int
        Codes recorded along each code's path, evenly spaced over its own steps (at least 2: start and
        end; a code that did not move repeats its start).
    covariance : ndarray (latent_dim, latent_dim), optional
        None: Adam steps on the loss's gradient (the paper's move; for a linear predictor the move
        follows its weights, the "filter"). Given the covariance S of the codes the predictor
        learned from: steps along S times the gradient, the activation pattern of Haufe et al.
        (NeuroImage 2014; for a nonlinear predictor, of its local linearisation). Such a step is
        a plain gradient step in whitened coordinates u (z = z0 + L u, S = L L^T), taken with a
        length of ``step_size * sqrt(latent_dim)`` in u.
    metric_ridge : float, optional
        Given (``gvr.move: metric``): steps along ``-(J^T J + ridge I)^-1 g``, J the decoder's Jacobian at
        each code's start and ridge `metric_ridge` times the mean of J^T J's diagonal: steepest descent in
        the decoded picture's L2 distance (:class:`_MetricSteps`), each step changing the picture by at
        most about ``step_size`` per pixel (root mean square, on the decoder's [-1, 1] scale). Small ridges
        follow the picture's distance alone; large ones approach the gradient. For a predictor that reads
        the decoded picture (``gvr.reencode``), whose gradient the decoder can draw; not with `covariance`.
    sparse_steps : int
        After a code reaches its target, this many Adam steps (learning rate `step_size`) that shrink
        the mean absolute change of the decoded image while the prediction stays past the target
        (:func:`_sparsen`); 0, the paper's move, keeps the first code past the target. The frames run
        to where the move crossed, and the last is the code kept: a movie's change grows, then shrinks
        to the shortened one.
    desc : str, optional
        Report progress under this name, counting codes as they reach the target (a long move, such as
        one through a user's image model, otherwise runs silent).
    """
    if direction not in ("down", "up"):
        raise ValueError(f"direction must be 'down' or 'up'; got {direction!r}")
    if not np.all(np.isfinite(start)):
        raise ValueError("latent codes contain NaN or infinite values")
    if metric_ridge is not None:
        if covariance is not None:
            raise ValueError("give covariance (pattern moves) or metric_ridge (metric moves), not both")
        if not (np.isfinite(metric_ridge) and metric_ridge > 0):
            raise ValueError(f"metric_ridge must be positive; got {metric_ridge}")
    with frozen(decoder, predictor):
        return _move(start, decoder, predictor, target_log_bnp=target_log_bnp, direction=direction,
                     step_size=step_size, max_steps=max_steps, similarity_weight=similarity_weight, frames=frames,
                     covariance=covariance, metric_ridge=metric_ridge, sparse_steps=sparse_steps, desc=desc)


def _move(start, decoder, predictor, *, target_log_bnp, direction, step_size, max_steps, similarity_weight, frames,
          covariance, metric_ridge, sparse_steps, desc) -> Path:
    device = next(iter(decoder.parameters()), torch.empty(0)).device  # moves run where the decoder lives
    z0 = torch.as_tensor(start, dtype=torch.float32, device=device)
    n = z0.shape[0]
    target = torch.as_tensor(np.broadcast_to(np.asarray(target_log_bnp, dtype=np.float32), (n,)).copy(), device=device)
    sign = 1.0 if direction == "down" else -1.0
    with torch.no_grad():
        reference = decoder(z0)
        first = predictor(z0)
    z = z0.clone().requires_grad_(True)

    def done(pred):
        return _done(pred, target, direction)

    active = ~done(first)
    if metric_ridge is not None:
        opt = _MetricSteps(z, decoder, metric_ridge, step_size, moving=active, pixels=reference[0].numel() if n else 1)
    elif covariance is None:
        opt = torch.optim.Adam([z], lr=step_size)
    else:
        opt = _PatternSteps(z, covariance, step_size)
    steps = torch.zeros(n, dtype=torch.long, device=device)
    history = [z0.cpu().numpy().copy()]
    moving = int(active.sum())
    bar = None if desc is None or not moving else progress(total=moving, desc=desc, unit="code")
    before = None
    read = first.detach().clone().float()  # each code's last reading: the inside end of the segment it crosses
    needs_picture = similarity_weight != 0 or _reads_picture(predictor, decoder)
    # Each pass reads the codes still moving, once: that reading judges whether the last step crossed the
    # target and, for the codes still short of it, is the graph of the next step. Codes that have stopped
    # are not read again (the decoder is the move's cost).
    for taken in range(max_steps + 1):
        if not active.any():
            break
        rows = torch.nonzero(active).squeeze(1)
        codes = z[rows]
        with torch.set_grad_enabled(taken < max_steps):  # the last pass only judges the last step
            picture = decoder(codes) if needs_picture else None
            pred = _reads(predictor, decoder, codes, picture)
        crossed = torch.zeros_like(active)
        still = torch.ones_like(rows, dtype=torch.bool)
        if before is not None:
            with torch.no_grad():
                still = ~_done(pred, target[rows], direction)
                crossed[rows[~still]] = True
                if crossed.any():  # land just past the target instead of a whole step beyond it
                    landed = _land(before[crossed], z[crossed], read[crossed], pred[~still].float(), predictor,
                                   target[crossed], direction)
                read[rows] = pred.detach().float()
            active = active & ~crossed
            history.append(z.detach().cpu().numpy().copy())  # replaced below where a code landed
            if bar is not None:
                bar.update(int(crossed.sum()))
        stepping = bool(still.any()) and taken < max_steps
        if stepping:
            gap = torch.relu(sign * (pred - target[rows]))  # how far each code still is from its target
            similarity = 0.0 if picture is None else ((picture - reference[rows]) ** 2).flatten(1).mean(dim=1)
            loss = ((gap + similarity_weight * similarity) * still).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
        del codes, picture, pred
        with torch.no_grad():
            if crossed.any():
                z[crossed] = landed
                history[-1][crossed.cpu().numpy()] = landed.cpu().numpy()
            if not stepping:
                break
            before = z.detach().clone()
            opt.step()
            z[~active] = before[~active]  # Adam's momentum would carry finished codes on
            steps += active.long()
    with torch.no_grad():
        end_pred = predictor(z)
    if bar is not None:  # the codes the step budget stopped count as finished, not reached
        bar.set_postfix(reached=f"{int((done(end_pred) & (steps > 0)).sum())}/{moving}")
        bar.update(int(active.sum()))
        bar.close()
    shortened = torch.zeros_like(active)
    if sparse_steps:
        z, end_pred, shortened = _shorten(z.detach(), done(end_pred) & (steps > 0), end_pred, reference, decoder,
                                          predictor, target, direction, steps=sparse_steps, step_size=step_size,
                                          desc=None if desc is None else f"{desc}, shrinking the change")
    return Path(
        start=start.astype(np.float32),
        end=z.detach().cpu().numpy().copy(),
        start_log_bnp=first.cpu().numpy().astype(np.float64),
        end_log_bnp=end_pred.cpu().numpy().astype(np.float64),
        steps=steps.cpu().numpy(),
        reached=done(end_pred).cpu().numpy(),
        frames=_frames(history, steps.cpu().numpy(), z.detach().cpu().numpy(), max(2, frames),
                       shortened=shortened.cpu().numpy()),
    )


def _frames(history: list[np.ndarray], steps: np.ndarray, end: np.ndarray, count: int, *,
            shortened: np.ndarray) -> np.ndarray:
    """(count, n, d): each code's frames evenly spaced over its own steps, so that its movie does not
    depend on the codes moved beside it (a batch, or a torchrun process's share). A shortened code's
    frames run to where it crossed, and its last frame is the code kept."""
    walked = np.stack(history)  # a code that has stopped stays where it stopped in every later entry
    spaced = np.where(shortened, count - 2, count - 1)  # the last spaced frame's index
    at = np.rint(np.minimum(np.arange(count)[:, None] / np.maximum(spaced, 1)[None, :], 1.0) * steps[None, :])
    out = walked[at.astype(int), np.arange(len(steps))[None, :]]
    out[-1] = end  # the step where it stopped, or the shortened code kept
    return out


def shorten(start: np.ndarray, end: np.ndarray, decoder: nn.Module, predictor: nn.Module, *,
            target_log_bnp: np.ndarray | float, direction: str, steps: int, step_size: float,
            desc: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The sparse phase of :func:`move` on its own: shrink the change from `start` to `end`, codes a move has
    already taken past their targets, by `steps` (``sparse_steps``), judged by `predictor`.

    ``move(..., sparse_steps=k)`` is ``move(..., sparse_steps=0)`` followed by this, to the arithmetic: the
    audit shortens a bundle's GVRs after the fact with it. A code `predictor` does not read past its target
    at `end`, or that has not moved, is returned as it is.

    Returns
    -------
    codes : ndarray (n, latent_dim)
    shortened : ndarray of bool (n,)
        Whether each code was shortened (it was past its target, and stayed past it in the whole batch).
    """
    if direction not in ("down", "up"):
        raise ValueError(f"direction must be 'down' or 'up'; got {direction!r}")
    if not (np.all(np.isfinite(start)) and np.all(np.isfinite(end))):
        raise ValueError("latent codes contain NaN or infinite values")
    device = next(iter(decoder.parameters()), torch.empty(0)).device
    z0 = torch.as_tensor(start, dtype=torch.float32, device=device)
    z = torch.as_tensor(end, dtype=torch.float32, device=device).clone()
    n = z0.shape[0]
    target = torch.as_tensor(np.broadcast_to(np.asarray(target_log_bnp, dtype=np.float32), (n,)).copy(), device=device)
    with frozen(decoder, predictor):
        with torch.no_grad():
            reference = decoder(z0)
            pred = predictor(z)
        moved = (z != z0).any(dim=1)
        z, _, shortened = _shorten(z, _done(pred, target, direction) & moved, pred, reference, decoder, predictor,
                                   target, direction, steps=steps, step_size=step_size, desc=desc)
    return z.detach().cpu().numpy().copy(), shortened.cpu().numpy()


def _shorten(z, chosen, end_pred, reference, decoder, predictor, target, direction, *, steps, step_size, desc):
    """(codes, their predictions, shortened): `chosen` codes of `z` shrunk by :func:`_sparsen`."""
    sign = 1.0 if direction == "down" else -1.0
    shortened = chosen.clone()
    if not chosen.any():
        return z, end_pred, shortened
    crossed_at = z.clone()
    z = crossed_at.clone()
    z[chosen] = _sparsen(z[chosen], reference[chosen], decoder, predictor, target[chosen], sign,
                         steps=steps, step_size=step_size, desc=desc)
    with torch.no_grad():
        end_pred = predictor(z)
        # judged again in the whole batch: a code kept on the target's edge that the batch's
        # arithmetic puts back across it keeps the point where it first crossed
        back = chosen & ~_done(end_pred, target, direction)
        shortened = chosen & ~back
        if back.any():
            z[back] = crossed_at[back]
            end_pred = predictor(z)
    return z, end_pred, shortened


#: The sparse phase's penalty on the prediction's excess over the target, in log BNP, against a change
#: that is a mean absolute difference on the [-1, 1] scale (about 0.05 for the default study's GVRs before
#: shortening): a step that crosses back is pushed out again at once.
SPARSE_PENALTY = 1.0
#: The penalty starts this far (log BNP) before the target, so that the steps run along its far side
#: rather than on it, and more of them are past it to be kept.
SPARSE_SLACK = 0.02


def _sparsen(z: torch.Tensor, reference: torch.Tensor, decoder, predictor, target: torch.Tensor, sign: float, *,
             steps: int, step_size: float, desc: str | None) -> torch.Tensor:
    """The codes, among those visited from `z` (past the target) by Adam on ``|decoder(z) - reference|``
    (mean) plus ``SPARSE_PENALTY`` times the prediction's excess over ``target - sign * SPARSE_SLACK``,
    with the smallest change that is past the target."""
    direction = "down" if sign > 0 else "up"
    z = z.detach().clone().requires_grad_(True)
    kept = z.detach().clone()
    smallest = torch.full((z.shape[0],), float("inf"), device=z.device)
    opt = torch.optim.Adam([z], lr=step_size)
    bar = None if desc is None else progress(total=steps, desc=desc, unit="step")
    for step in range(steps + 1):  # the last pass only judges where the last step went
        picture = decoder(z)
        change = (picture - reference).abs().flatten(1).mean(dim=1)
        pred = _reads(predictor, decoder, z, picture)
        with torch.no_grad():
            better = _done(pred, target, direction) & (change < smallest)
            kept[better] = z.detach()[better]
            smallest[better] = change[better]
        if step == steps:
            break
        loss = (change + SPARSE_PENALTY * torch.relu(sign * (pred - target) + SPARSE_SLACK)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return kept


class _WhitenedSteps:
    """An optimiser-shaped stepper: each code moves `length` along its gradient in whitened coordinates,
    ``z -= length * colour(whiten(g) / ||whiten(g)||)``; subclasses say how to whiten, and how to take the
    step from the unit whitened direction (:meth:`_colour`, `length` included)."""

    z: torch.Tensor
    length: float

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.z.grad = None

    @torch.no_grad()
    def step(self) -> None:
        whitened = self._whiten(self.z.grad)
        norm = whitened.norm(dim=1, keepdim=True).clamp_min(1e-12)
        self.z -= self._colour(whitened / norm)


class _PatternSteps(_WhitenedSteps):
    """Each code moves by ``-length * S g / ||L^T g||``, S = L L^T (see :func:`move`)."""

    def __init__(self, z: torch.Tensor, covariance: np.ndarray, step_size: float):
        cov = np.asarray(covariance, dtype=np.float64)
        d = z.shape[1]
        if cov.shape != (d, d) or not np.all(np.isfinite(cov)):
            raise ValueError(f"covariance must be a finite {d} x {d} matrix; got shape {cov.shape}")
        # a tiny ridge: a singular covariance (fewer codes than dimensions) still factorises
        ridge = 1e-6 * max(float(np.trace(cov)) / d, 1e-12)
        chol = np.linalg.cholesky((cov + cov.T) / 2 + ridge * np.eye(d))
        self.z = z
        self.chol = torch.as_tensor(chol, dtype=z.dtype, device=z.device)
        self.length = step_size * d ** 0.5

    def _whiten(self, g: torch.Tensor) -> torch.Tensor:
        return g @ self.chol  # L^T g, one row per code

    def _colour(self, u: torch.Tensor) -> torch.Tensor:
        return self.length * u @ self.chol.T


class _MetricSteps(_WhitenedSteps):
    """Metric moves (see :func:`move`): each code moves by
    ``-length * R R g / ||R g||`` with ``R = (J^T J + ridge I)^(-1/2)``, J the decoder's Jacobian at the code
    where the move starts, so that the decoded picture changes by at most about `length` (L2) per step (to
    first order; less where the ridge holds it back) in the direction that lowers the loss fastest per unit
    of that change. The metric is taken once, at the start, and only for the codes that will move: a GVR is
    a short path."""

    def __init__(self, z: torch.Tensor, decoder: nn.Module, ridge: float, step_size: float, *,
                 moving: torch.Tensor, pixels: int):
        n, d = z.shape
        eye = torch.eye(d, dtype=torch.float64, device=z.device)
        root = eye.repeat(n, 1, 1)  # codes that do not move have no gradient: any root serves
        if moving.any():
            with torch.no_grad():
                values, vectors = torch.linalg.eigh(ridged_pullback_metric(decoder, z.detach()[moving], ridge))
            root[moving] = (vectors * values.clamp_min(1e-30).rsqrt()[:, None, :]) @ vectors.transpose(1, 2)
        self.root = root.to(z.dtype)
        self.z = z
        self.length = step_size * pixels ** 0.5

    def _whiten(self, g: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nde,ne->nd", self.root, g)  # R g, R symmetric

    def _colour(self, u: torch.Tensor) -> torch.Tensor:
        return self.length * torch.einsum("nde,ne->nd", self.root, u)


#: Forward-mode tangents carried through the decoder at once, times the picture's pixels: each tangent
#: carries every layer's activations (about 150 bytes a pixel through the default decoder), so about
#: 2**22 / 4096 = 1,024 tangents, some 600 MB, at 64 px, and 64 at 256 px.
TANGENT_PIXELS = 1 << 22


def ridged_pullback_metric(decoder: nn.Module, z: torch.Tensor, ridge: float) -> torch.Tensor:
    """(n, d, d) float64: ``J^T J + ridge * mean(diag(J^T J)) I`` at each code (:func:`pullback_metric`), the
    metric a metric move steps in (``gvr.metric_ridge``)."""
    metric = pullback_metric(decoder, z)
    scale = torch.diagonal(metric, dim1=1, dim2=2).mean(dim=1).clamp_min(1e-12)
    eye = torch.eye(metric.shape[1], dtype=metric.dtype, device=metric.device)
    return metric + ridge * scale[:, None, None] * eye


def pullback_metric(decoder: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """(n, d, d) float64: ``J^T J`` at each code, J the Jacobian of the decoded picture (flattened) with
    respect to the code: one forward-mode pass per latent direction, as many codes and directions at once as
    :data:`TANGENT_PIXELS` allows. A decoder with a layer that has no forward-mode rule is differentiated
    by double backward instead (slower; said once in the log). The decoder should be in eval mode, as
    :func:`move` puts it."""
    n, d = z.shape
    if n == 0:
        return torch.zeros(0, d, d, dtype=torch.float64, device=z.device)
    pixels = decoder(z[:1])[0].numel()
    tangents = max(1, TANGENT_PIXELS // pixels)
    per_call = max(1, min(n, tangents // d))  # codes decoded together
    directions = max(1, min(d, tangents // per_call))  # latent directions carried at once

    def pictures(codes):
        return decoder(codes).flatten(1).float()

    parts = []
    for codes in torch.split(z, per_call):
        eye = torch.eye(d, dtype=codes.dtype, device=codes.device)
        basis = eye[:, None, :].expand(d, len(codes), d)  # direction j for every code of the call
        try:
            columns = torch.func.vmap(lambda v: torch.func.jvp(pictures, (codes,), (v,))[1],
                                      chunk_size=directions)(basis)
        except torch.OutOfMemoryError:
            raise
        except (RuntimeError, NotImplementedError) as exc:  # a layer without forward-mode rules
            if not getattr(pullback_metric, "_warned", False):
                log.warning("metric moves: the decoder cannot be differentiated forward (%s); its Jacobian is "
                            "taken by double backward, one latent direction at a time", exc)
                pullback_metric._warned = True
            with torch.enable_grad():
                columns = torch.stack([torch.autograd.functional.jvp(pictures, codes, basis[j])[1] for j in range(d)])
        jac = columns.permute(1, 2, 0).double()  # (codes, pixels, d)
        parts.append(jac.transpose(1, 2) @ jac)
    return torch.cat(parts)


def _reads(predictor, decoder, z: torch.Tensor, picture: torch.Tensor) -> torch.Tensor:
    """The predictor's output at `z`, reusing ``picture = decoder(z)`` where the predictor reads the
    decoder's picture (:class:`Reencoded`, an image model seen from the codes: ``predictor.reads``)."""
    if _reads_picture(predictor, decoder):
        return predictor.reads(picture)
    return predictor(z)


def _reads_picture(predictor, decoder) -> bool:
    return getattr(predictor, "decoder", None) is decoder and callable(getattr(predictor, "reads", None))


def _done(pred: torch.Tensor, target: torch.Tensor, direction: str) -> torch.Tensor:
    return pred < target if direction == "down" else pred >= target


#: How far past its target (log BNP) a move lands at most, where the predictor allows: 1 % of a 10 % change
#: in BNP, and a fiftieth of the default margin (``gvr.margin``).
LANDING_TOLERANCE = 1e-3


def _land(inside: torch.Tensor, outside: torch.Tensor, read_in: torch.Tensor, read_out: torch.Tensor, predictor,
          target: torch.Tensor, direction: str, *, tolerance: float = LANDING_TOLERANCE, iterations: int = 12):
    """The point of each segment inside -> outside that reaches the target, at most `tolerance` past it.

    The readings at both ends are known, so each reading goes where the prediction, taken as linear along
    the segment, would meet the target (regula falsi, with the Illinois halving that keeps one end from
    sticking; Dowell and Jarratt, BIT 1971). The prediction along a step is close to linear, so two or
    three readings usually land it, where bisection to 2**-12 of the step took twelve. A code whose
    segment ends within `tolerance` of the target, or still unlanded after `iterations` readings, keeps
    the nearest point found past it. Each reading aims half the tolerance past the target."""
    sign = 1.0 if direction == "down" else -1.0
    n = inside.shape[0]
    lo = torch.zeros(n, device=inside.device)
    hi = torch.ones(n, device=inside.device)
    g_lo = sign * (read_in - target)  # > 0: not yet at the target
    g_hi = sign * (read_out - target)  # past it
    side = torch.zeros(n, dtype=torch.long, device=inside.device)  # which end moved last: -1 low, +1 high
    open_ = g_hi.abs() > tolerance
    for _ in range(iterations):
        if not open_.any():
            break
        idx = torch.nonzero(open_).squeeze(1)
        denom = (g_lo[idx] - g_hi[idx]).clamp_min(1e-12)
        # aimed half the tolerance past the target, so that the batch's arithmetic does not put it back
        t = lo[idx] + (hi[idx] - lo[idx]) * ((g_lo[idx] + tolerance / 2) / denom).clamp(0.0, 1.0)
        t = torch.minimum(torch.maximum(t, lo[idx] + 1e-6 * (hi[idx] - lo[idx])), hi[idx])
        x = inside[idx] + t[:, None] * (outside[idx] - inside[idx])
        value = predictor(x).float()
        g = sign * (value - target[idx])
        ok = _done(value, target[idx], direction)
        up, down = idx[ok], idx[~ok]
        hi[up], g_hi[up] = t[ok], g[ok]
        g_lo[up[side[up] == 1]] /= 2  # the high end moved twice running: halve the low end's weight
        side[up] = 1
        lo[down], g_lo[down] = t[~ok], g[~ok]
        g_hi[down[side[down] == -1]] /= 2
        side[down] = -1
        open_[up] = g[ok].abs() > tolerance
    return inside + hi[:, None] * (outside - inside)


def overlay(original: np.ndarray, diseased: np.ndarray, healthy: np.ndarray, *, threshold: float = 0.02,
            legend: bool = True, scale: float | None = None) -> np.ndarray:
    """The GVR image: the signed difference diseased - healthy in colour over the original.

    Parameters
    ----------
    original, diseased, healthy : ndarray (H, W) uint8
        Bright = dense.
    threshold : float
        Differences smaller than this (as a share of the intensity range, 0-1) are transparent.
    legend : bool
        Draw "removed" (orange) and "added" (purple) swatches in the top-left corner.
    scale : float, optional
        The change (0-1) drawn fully opaque; default the largest change in this image. A movie gives
        every frame its path's largest, so that the change is seen to grow.

    Returns
    -------
    ndarray (H, W, 3) uint8
        Orange where density is removed on the way to "healthy" (diseased brighter), purple where
        density is added; opacity grows with the size of the change.
    """
    diff = (diseased.astype(np.float32) - healthy.astype(np.float32)) / 255.0
    base = np.repeat(original[..., None], 3, axis=-1).astype(np.float32)
    scale = max(float(np.abs(diff).max()) if scale is None else float(scale), threshold, 1e-6)
    alpha = np.clip(np.abs(diff) / scale, 0, 1) * (np.abs(diff) >= threshold)
    colour = np.where(diff[..., None] > 0, np.array(ORANGE, np.float32), np.array(PURPLE, np.float32))
    out = base * (1 - alpha[..., None] * 0.85) + colour * (alpha[..., None] * 0.85)
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if legend:
        out = _legend(out)
    return out


def _legend(image: np.ndarray) -> np.ndarray:
    h, w, _ = image.shape
    s = max(2, h // 32)
    image = image.copy()
    image[s:2 * s, s:2 * s] = ORANGE
    image[3 * s:4 * s, s:2 * s] = PURPLE
    if h >= 96:  # words only where they fit; the swatches alone otherwise
        from PIL import Image, ImageDraw

        pil = Image.fromarray(image)
        draw = ImageDraw.Draw(pil)
        draw.text((2.5 * s, 0.7 * s), "removed", fill=ORANGE)
        draw.text((2.5 * s, 2.7 * s), "added", fill=PURPLE)
        image = np.asarray(pil)
    return image
