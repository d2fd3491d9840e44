"""The networks: a DCGAN-layout WGAN-GP generator (the decoder) and critic, the encoder, and the
BNP predictors on latent codes.

The generator follows Radford et al. (DCGAN): a latent vector becomes a 4 x 4 map with
``feature_maps * 2**(k-1)`` channels, and each transposed convolution doubles the size and halves
the channels down to ``feature_maps`` maps "in the layer prior to the generated image" (the paper:
64) and then one output channel, for an image of ``4 * 2**k`` pixels. The critic mirrors it without
batch normalisation (the gradient penalty is per sample; Gulrajani et al. 2017 use layer norm or
none). The encoder has the critic's layout and ends in the latent dimension. Images are in [-1, 1].
"""

from __future__ import annotations

import math

import torch
from torch import nn

from modelling.config import UPSAMPLES
from modelling.nets.distributed import several_processes, summed_across_processes

SUPPORTED_SIZES = (32, 64, 128, 256)


class ArchitectureError(ValueError):
    """An image size or width the DCGAN layout cannot build."""


def _levels(image_size: int) -> int:
    if image_size not in SUPPORTED_SIZES:
        raise ArchitectureError(
            f"image_size {image_size} is not supported by the DCGAN layout; use one of {SUPPORTED_SIZES}"
        )
    return int(math.log2(image_size // 4))


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """Batch normalisation over the global batch when training under torchrun.

    Each process holds a slice of the batch; statistics are summed across processes with a
    differentiable all-reduce, so the result equals one process training on the whole batch.
    (``nn.SyncBatchNorm`` does the same on GPUs only.) Outside a process group, or in eval mode,
    it is exactly ``nn.BatchNorm2d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and several_processes()):
            return super().forward(x)
        c = x.shape[1]
        xf = x.float()
        local = torch.cat([xf.sum(dim=(0, 2, 3)), (xf * xf).sum(dim=(0, 2, 3)),
                           xf.new_tensor([x.shape[0] * x.shape[2] * x.shape[3]])])
        total = summed_across_processes(local)
        n = total[2 * c]
        mean = total[:c] / n
        var = (total[c:2 * c] / n - mean * mean).clamp_min(0)
        with torch.no_grad():
            self.num_batches_tracked += 1
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(m * mean.detach())
            self.running_var.mul_(1 - m).add_(m * var.detach() * n / (n - 1))
        y = (xf - mean[None, :, None, None]) * torch.rsqrt(var + self.eps)[None, :, None, None]
        return (y * self.weight[None, :, None, None] + self.bias[None, :, None, None]).to(x.dtype)


def _doubling(a: int, b: int, upsample: str) -> list[nn.Module]:
    """One doubling of the resolution: the DCGAN's (and the paper's) 4 x 4 transposed convolution, or
    nearest-neighbour upsampling and a 3 x 3 convolution ("resize-convolution"; Odena et al., Distill
    2016, "Deconvolution and checkerboard artifacts"), whose kernels cover every output pixel evenly."""
    if upsample == "resize":
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(a, b, 3, 1, 1, bias=False)]
    return [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False)]


class Generator(nn.Module):
    """Latent code (n, latent_dim) -> image (n, 1, size, size) in [-1, 1]; each doubling of the
    resolution as `upsample` (one of :data:`UPSAMPLES`) says."""

    def __init__(self, latent_dim: int, feature_maps: int, image_size: int, upsample: str = "transpose"):
        super().__init__()
        if upsample not in UPSAMPLES:
            raise ArchitectureError(f"upsample {upsample!r} is not one of {UPSAMPLES}")
        k = _levels(image_size)
        widths = [feature_maps * 2 ** (k - 1 - i) for i in range(k)]  # ..., 4F, 2F, F
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, widths[0], 4, 1, 0, bias=False),
            GlobalBatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [*_doubling(a, b, upsample), GlobalBatchNorm2d(b), nn.ReLU(True)]
        layers += [*_doubling(widths[-1], 1, upsample), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.latent_dim = latent_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.latent_dim, 1, 1))


class _Down(nn.Module):
    """Image (n, 1, size, size) -> (n, out_features): strided convolutions mirroring the generator."""

    def __init__(self, feature_maps: int, image_size: int, out_features: int):
        super().__init__()
        k = _levels(image_size)
        widths = [feature_maps * 2**i for i in range(k)]  # F, 2F, ..., down to 4 x 4
        layers: list[nn.Module] = [nn.Conv2d(1, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(widths[-1], out_features, 4, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).flatten(1)


class Critic(_Down):
    """Image -> Wasserstein critic score (n,)."""

    def __init__(self, feature_maps: int, image_size: int):
        super().__init__(feature_maps, image_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).squeeze(1)


class Encoder(_Down):
    """Image -> latent code (n, latent_dim)."""

    def __init__(self, latent_dim: int, feature_maps: int, image_size: int):
        super().__init__(feature_maps, image_size, latent_dim)


class MLP(nn.Module):
    """Latent code -> log BNP: a fully connected multilayer perceptron (ReLU hidden layers)."""

    def __init__(self, latent_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        width = latent_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(-1)


class Linear(nn.Module):
    """Latent code -> log BNP: linear regression (fitted in closed form by :mod:`modelling.nets.predictors`)."""

    def __init__(self, latent_dim: int):
        super().__init__()
        self.net = nn.Linear(latent_dim, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(-1)


def to_unit(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (n, H, W) -> float (n, 1, H, W) in [-1, 1]."""
    return images_uint8.float().div(127.5).sub(1.0).unsqueeze(1)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float (n, 1, H, W) in [-1, 1] -> uint8 (n, H, W)."""
    return images.squeeze(1).add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)
