"""Baseline attribution maps (the paper's Figure 4b) on the end-to-end predictor, with captum.

The end-to-end model maps a radiograph to log BNP through the encoder and a predictor. Its maps:

- occlusion: the drop in predicted log BNP when a square window is set to the image's own mean
  (Zeiler & Fergus 2014);
- integrated gradients from a black image (Sundararajan et al. 2017);
- LIME with a superpixel feature mask: square superpixels of ``size // 8`` pixels (Ribeiro et al.
  2016; no segmentation library is needed, and the grid is the same for every radiograph), hidden
  superpixels set to the image's own mean;
- Grad-CAM on the last spatial feature map (the encoder's last convolutional block, after its
  activation, or an image model's last block before global pooling), upsampled to the image (Selvaraju
  et al. 2017), the pooled class-activation map the paper calls "global max pooling".

Every map is (n, H, W), higher = pushes the predicted BNP up. A radiograph's map does not depend on the
other radiographs of the call: baselines are per image, and LIME's random stream is seeded from the
image's own pixels.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch
from torch import nn

from modelling.explain.frozen import frozen
from modelling.nets.seeding import seeded

METHODS = ("occlusion", "integrated_gradients", "lime", "gradcam")


class EndToEnd(nn.Module):
    """Radiograph (n, 1, H, W) in [-1, 1] -> predicted log BNP (n,)."""

    def __init__(self, encoder: nn.Module, predictor: nn.Module):
        super().__init__()
        self.encoder, self.predictor = encoder.eval(), predictor.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.encoder(x))


def gradcam_layer(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """Grad-CAM's layer: the module whose output is the model's last spatial feature map, found by running
    `example` (n, 1, H, W) through it. Forward hooks fire as modules finish, a block after its last layer,
    so this is the last one to finish with an output of shape (n, C, h, w), h * w > 1: a ResNet's last
    stage (after the residual sum), a DenseNet's rectified final features, the encoder's last block after
    its activation (its head reduces to 1 x 1); not the last convolution inside them.

    Raises
    ------
    ValueError
        When no module gives a spatial feature map (TorchScript and exported programs have no hooks: use an
        eager module).
    """
    last: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, _i, out: last.append(m)
                                     if isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[-2:].numel() > 1
                                     else None)
             for m in model.modules() if m is not model]
    try:
        with torch.no_grad():
            model(example[:1].float())
    finally:
        for h in hooks:
            h.remove()
    if not last:
        raise ValueError("Grad-CAM needs a module giving a spatial feature map (an eager module, not TorchScript "
                         "or an exported program)")
    return last[-1]


def superpixels(size: int) -> torch.Tensor:
    """A (1, 1, size, size) feature mask of square superpixels of side ``size // 8``, numbered row by row:
    8 x 8 of them when 8 divides the size, else ``ceil(size / (size // 8))`` per side, the last row and
    column narrower when that side does not divide the size."""
    side = max(1, size // 8)
    idx = torch.arange(size) // side
    return (idx[:, None] * (-(-size // side)) + idx[None, :]).view(1, 1, size, size)


def _pixel_seed(seed: int, image: torch.Tensor) -> int:
    """A seed from `seed` and the image's own pixels, so that its LIME samples do not depend on its place
    in a batch."""
    return zlib.crc32(image.detach().cpu().numpy().tobytes(), seed & 0xFFFFFFFF)


def attribute(model: nn.Module, images: torch.Tensor, method: str, *, seed: int = 0) -> np.ndarray:
    """Attribution maps (n, H, W) of `method` for `images` (n, 1, H, W) in [-1, 1], for `model`
    mapping such images to one score each (:class:`EndToEnd`, or an image model's scores). The model is
    explained in eval mode with its parameters frozen, and handed back in the modes it came in.

    Raises
    ------
    ValueError
        For an unknown method (the message lists the known ones).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    with frozen(model):
        return _attribute(model, images, method, seed=seed)


def _attribute(model: nn.Module, images: torch.Tensor, method: str, *, seed: int) -> np.ndarray:
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Lime, Occlusion

    size = images.shape[-1]
    x = images.float().clone()
    if method == "occlusion":
        window = max(2, size // 8)
        out = Occlusion(model).attribute(x, sliding_window_shapes=(1, window, window),
                                         strides=(1, window // 2, window // 2),
                                         baselines=x.mean(dim=(1, 2, 3), keepdim=True).expand_as(x))
    elif method == "integrated_gradients":
        out = IntegratedGradients(model).attribute(x, baselines=-1.0, n_steps=32, internal_batch_size=64)
    elif method == "lime":
        maps = []
        for i in range(len(x)):
            with seeded(_pixel_seed(seed, x[i])):  # LIME samples perturbations from torch's generator
                maps.append(Lime(model).attribute(x[i:i + 1], baselines=float(x[i].mean()),
                                                  feature_mask=superpixels(size), n_samples=200,
                                                  perturbations_per_eval=50))
        out = torch.cat(maps)
    else:
        layer = gradcam_layer(model, x)
        cam = LayerGradCam(model, layer).attribute(x.requires_grad_(True), relu_attributions=True)
        out = LayerAttribution.interpolate(cam, (size, size), interpolate_mode="bilinear")
    return out.detach().squeeze(1).numpy().astype(np.float32)
