"""The DCGAN layout at every supported size, and the paper's widths."""

from __future__ import annotations

import pytest
import torch

from modelling.nets.networks import MLP, ArchitectureError, Critic, Encoder, Generator, to_uint8, to_unit


@pytest.mark.parametrize("size", [32, 64, 128])
def test_shapes_at_every_size(size):
    g, c, e = Generator(100, 8, size), Critic(8, size), Encoder(100, 8, size)
    z = torch.randn(3, 100)
    x = g(z)
    assert x.shape == (3, 1, size, size) and x.min() >= -1 and x.max() <= 1
    assert c(x).shape == (3,)
    assert e(x).shape == (3, 100)


def test_feature_maps_before_the_image():
    # "a deep convolutional GAN architecture was used, with 64 feature maps in the layer prior to the
    # generated image" (Materials and Methods)
    g = Generator(100, 64, 128)
    last = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)][-1]
    assert (last.in_channels, last.out_channels) == (64, 1)


@pytest.mark.parametrize("size", [16, 48, 100, 512])
def test_unsupported_sizes_are_refused(size):
    with pytest.raises(ArchitectureError, match=r"use one of \(32, 64, 128, 256\)"):
        Generator(100, 8, size)


def test_mlp_and_conversions():
    assert MLP(100, (16, 8))(torch.randn(5, 100)).shape == (5,)
    images = torch.randint(0, 256, (2, 8, 8), dtype=torch.uint8)
    assert torch.equal(to_uint8(to_unit(images)), images)
