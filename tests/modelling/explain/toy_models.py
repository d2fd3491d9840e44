"""Toy image models for the GVR tests of user models (issue 17): importable, so a factory can name them."""

from __future__ import annotations

import torch
from torch import nn

SIZE = 32


def heart_region(size: int = SIZE) -> torch.Tensor:
    """A disc around the toy decoder's heart, wide enough to hold its largest radius."""
    g = (torch.arange(size) + 0.5) / size * 2 - 1
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    return (torch.sqrt(xx**2 + (yy - 0.2) ** 2) < 0.62).float()


class HeartModel(nn.Module):
    """log BNP from the mean density inside the heart region only (inputs 0-1, any square size)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(12.0))
        self.bias = nn.Parameter(torch.tensor(-1.0))

    def forward(self, x):
        mask = heart_region(x.shape[-1]).to(x.dtype)
        density = (x[:, 0] * mask).sum(dim=(1, 2)) / mask.sum()
        return (self.scale * density + self.bias)[:, None]


def heart_model() -> HeartModel:
    return HeartModel()


class ToyDecoder(nn.Module):
    """z[0] sets the radius of a dense disc (the 'heart'); z[1] the brightness of a corner blob."""

    def __init__(self):
        super().__init__()
        g = (torch.arange(SIZE) + 0.5) / SIZE * 2 - 1
        self.yy, self.xx = torch.meshgrid(g, g, indexing="ij")
        self.latent_dim = 4
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, z):
        radius = 0.35 + 0.08 * z[:, 0, None, None]
        disc = torch.sigmoid((radius - torch.sqrt(self.xx**2 + (self.yy - 0.2) ** 2)) * 40)
        blob = (0.5 + 0.2 * z[:, 1, None, None]) * torch.exp(-((self.xx + 0.7) ** 2 + (self.yy + 0.7) ** 2) / 0.02)
        return (disc + blob).clamp(0, 1)[:, None] * 2 - 1 + 0 * self.dummy


class ToyEncoder(nn.Module):
    """Inverts ToyDecoder well enough for a starting code: the disc's radius from its area, the blob's
    brightness from its peak."""

    def forward(self, x):
        unit = (x[:, 0] + 1) / 2
        mask = heart_region(x.shape[-1]).to(x.dtype)
        area = ((unit > 0.5).to(x.dtype) * mask).sum(dim=(1, 2)) * (2.0 / x.shape[-1]) ** 2
        radius = torch.sqrt(area / torch.pi)
        z0 = (radius - 0.35) / 0.08
        peak = unit[:, int(0.15 * x.shape[-1]), int(0.15 * x.shape[-1])]
        z1 = (peak - 0.5) / 0.2
        return torch.stack([z0, z1, torch.zeros_like(z0), torch.zeros_like(z0)], dim=1)
