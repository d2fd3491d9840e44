"""An end-to-end image model of log BNP: the pixel-space model a user would bring, trained here.

Issue 17 explains a model that works on pixels, not on the latent codes. The study trains one so
that there is such a model to explain on the phantom: MONAI's network definitions, single channel,
no downloaded weights (``monai.networks.nets.DenseNet121``, the CheXNet and torchxrayvision
architecture, or ``resnet18``), narrowed by `width` for a CPU budget (DenseNet's initial features
64 x width and growth rate 32 x width; ResNet's widen factor). The network regresses log BNP, standardised
inside the module (:class:`LogBnp`), so that its output is in log ng/L. It exports as a program
(:func:`export`, ``torch.export``), a format ``gvr explain --image-model`` loads.
"""

from __future__ import annotations

import copy
import io
import math

import numpy as np
import torch
from torch import nn

from modelling.nets.seeding import seeded
from modelling.nets.training import deterministic_cudnn
from modelling.progress import progress

ARCHITECTURES = ("densenet121", "resnet18")


class LogBnp(nn.Module):
    """A network's output scaled back to log BNP: ``net(x) * sd + mean`` (mean and sd of training)."""

    def __init__(self, net: nn.Module, mean: float, sd: float):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("sd", torch.tensor(float(sd)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * self.sd + self.mean


def build(architecture: str, *, width: float = 1.0, seed: int = 0) -> nn.Module:
    """The network, single channel in, one output, initialised from `seed`."""
    from monai.networks.nets import DenseNet121, resnet18

    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}; got {architecture!r}")
    if not 0 < width <= 4:
        raise ValueError(f"width must be in (0, 4]; got {width}")
    with seeded(seed):
        if architecture == "densenet121":
            return DenseNet121(spatial_dims=2, in_channels=1, out_channels=1,
                               init_features=max(4, round(64 * width)), growth_rate=max(4, round(32 * width)))
        return resnet18(spatial_dims=2, n_input_channels=1, num_classes=1, widen_factor=width)


def _batches(n: int, size: int, rng: np.random.Generator):
    order = rng.permutation(n)
    return [order[i:i + size] for i in range(0, n, size)]


def _unit(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).float()[:, None] / 255.0


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, *, batch: int = 256) -> np.ndarray:
    """log BNP of uint8 radiographs (n, h, w) (the model takes pixels in 0-1)."""
    model.eval()
    device = next(iter(model.parameters()), torch.empty(0)).device  # where the model lives
    out = [model(_unit(images[i:i + batch]).to(device)).reshape(-1).float().cpu().numpy()
           for i in range(0, len(images), batch)]
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def fit(images: np.ndarray, log_bnp: np.ndarray, train: np.ndarray, validation: np.ndarray, *,
        architecture: str, width: float, epochs: int, batch_size: int, learning_rate: float, patience: int,
        seed: int, device: torch.device | str = "cpu") -> tuple[LogBnp, dict]:
    """Train on `train` (indices into `images`) on `device`, stop early on `validation`'s mean squared error
    (the best epoch's weights are kept); return the model, on the CPU, and its history."""
    y = np.asarray(log_bnp, np.float64)
    if len(train) < 2 or len(validation) < 1:
        raise ValueError(f"need at least 2 training and 1 validation radiographs; got {len(train)} and {len(validation)}")
    mean, sd = float(y[train].mean()), float(y[train].std()) or 1.0
    model = LogBnp(build(architecture, width=width, seed=seed), mean, sd).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    rng = np.random.default_rng(seed)
    target = torch.from_numpy(((y - mean) / sd).astype(np.float32)).to(device)
    best, best_loss, waited, history = copy.deepcopy(model.state_dict()), math.inf, 0, []
    with deterministic_cudnn():  # the same seed, the same weights on a GPU too
        bar = progress(total=epochs, desc=f"image model ({architecture})", unit="epoch")
        for epoch in range(epochs):
            model.train()
            losses = []
            for idx in _batches(len(train), batch_size, rng):
                rows = train[idx]
                if len(rows) < 2:  # batch norm needs two
                    continue
                pred = model.net(_unit(images[rows]).to(device)).reshape(-1)
                loss = torch.mean((pred - target[torch.from_numpy(rows).to(device)]) ** 2)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                losses.append(float(loss.detach()))
            val = float(np.mean((predict(model, images[validation]) - y[validation]) ** 2))
            history.append({"epoch": epoch + 1, "train_mse_standardised": float(np.mean(losses)) if losses else None,
                            "validation_mse": val})
            bar.set_postfix(validation_mse=f"{val:.3f}")
            bar.update(1)
            if val < best_loss - 1e-6:
                best, best_loss, waited = copy.deepcopy(model.state_dict()), val, 0
            else:
                waited += 1
                if waited >= patience:
                    break
        bar.close()
    model.load_state_dict(best)
    return model.cpu().eval(), {"epochs": len(history), "best_validation_mse": best_loss, "history": history,
                          "parameters": int(sum(p.numel() for p in model.parameters()))}


def export(model: nn.Module, size: int) -> bytes:
    """An exported program's bytes (``torch.export.save``) of a trained model taking (n, 1, size, size)
    images, any n >= 1, as ``gvr explain --image-model`` loads; the same weights give the same bytes."""
    example = (torch.zeros(2, 1, size, size),)
    program = torch.export.export(copy.deepcopy(model).eval(), example,
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()
