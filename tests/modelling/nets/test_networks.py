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


@pytest.mark.parametrize("size", [32, 64, 128])
def test_resize_convolutions_at_every_size(size):
    g = Generator(100, 8, size, upsample="resize")
    x = g(torch.randn(3, 100))
    assert x.shape == (3, 1, size, size) and x.min() >= -1 and x.max() <= 1
    # every doubling upsamples, then convolves with an odd kernel; only the first layer is transposed
    assert sum(isinstance(m, torch.nn.Upsample) for m in g.modules()) == len(
        [m for m in g.modules() if isinstance(m, torch.nn.Conv2d)]) == int(torch.log2(torch.tensor(size // 4)))
    assert len([m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]) == 1


def test_resize_convolutions_draw_no_checkerboard():
    # Odena et al. 2016: a stride-2 transposed convolution with a 4 x 4 kernel covers even and odd output
    # pixels with different kernel taps, so a constant input comes out patterned; upsampling first does not
    torch.manual_seed(0)
    for upsample, patterned in (("transpose", True), ("resize", False)):
        net = list(Generator(100, 8, 32, upsample=upsample).net)
        last_relu = max(i for i, m in enumerate(net) if isinstance(m, torch.nn.ReLU))
        layer = torch.nn.Sequential(*net[last_relu + 1:-1])  # the last doubling, before the tanh
        with torch.no_grad():
            out = layer(torch.ones(1, 8, 16, 16))[0, 0, 2:-2, 2:-2]  # away from the zero padding
        assert (float(out.std()) > 1e-3) == patterned, upsample


def test_unknown_upsampling_is_refused():
    with pytest.raises(ArchitectureError, match=r"upsample 'bilinear' is not one of \('transpose', 'resize'\)"):
        Generator(100, 8, 64, upsample="bilinear")
