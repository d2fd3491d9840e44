"""Baseline attribution maps (the paper's Figure 4b) on the end-to-end predictor, with captum.

The end-to-end model maps a radiograph to log BNP through the encoder and a predictor. Its maps:

- occlusion: the drop in predicted log BNP when a square window is set to the image mean (Zeiler &
  Fergus 2014);
- integrated gradients from a black image (Sundararajan et al. 2017);
- LIME with a superpixel feature mask: square superpixels of ``size // 8`` pixels (Ribeiro et al.
  2016; no segmentation library is needed, and the grid is the same for every radiograph);
- Grad-CAM on the encoder's last convolution, upsampled to the image (Selvaraju et al. 2017), the
  pooled class-activation map the paper calls "global max pooling".

Every map is (n, H, W), higher = pushes the predicted BNP up.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

METHODS = ("occlusion", "integrated_gradients", "lime", "gradcam")


class EndToEnd(nn.Module):
    """Radiograph (n, 1, H, W) in [-1, 1] -> predicted log BNP (n,)."""

    def __init__(self, encoder: nn.Module, predictor: nn.Module):
        super().__init__()
        self.encoder, self.predictor = encoder.eval(), predictor.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.encoder(x))


def gradcam_layer(model: nn.Module) -> nn.Module:
    """Grad-CAM's layer: the encoder's last convolution for :class:`EndToEnd`, else the last 2-D
    convolution of any eager (not TorchScript) image model."""
    encoder = getattr(model, "encoder", None)
    if encoder is not None and hasattr(encoder, "last_conv"):
        return encoder.last_conv()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("Grad-CAM needs a 2-D convolution in the model (an eager module, not TorchScript)")
    return convs[-1]


def superpixels(size: int) -> torch.Tensor:
    """A (1, 1, size, size) feature mask of square superpixels, 8 x 8 of them."""
    side = max(1, size // 8)
    idx = torch.arange(size) // side
    return (idx[:, None] * (size // side) + idx[None, :]).view(1, 1, size, size)


def attribute(model: nn.Module, images: torch.Tensor, method: str, *, seed: int = 0) -> np.ndarray:
    """Attribution maps (n, H, W) of `method` for `images` (n, 1, H, W) in [-1, 1], for `model`
    mapping such images to one score each (:class:`EndToEnd`, or an image model's scores).

    Raises
    ------
    ValueError
        For an unknown method (the message lists the known ones).
    """
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Lime, Occlusion

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    for p in model.parameters():
        p.requires_grad_(False)
    size = images.shape[-1]
    x = images.float().clone()
    if method == "occlusion":
        window = max(2, size // 8)
        out = Occlusion(model).attribute(x, sliding_window_shapes=(1, window, window),
                                         strides=(1, window // 2, window // 2), baselines=float(x.mean()))
    elif method == "integrated_gradients":
        out = IntegratedGradients(model).attribute(x, baselines=-1.0, n_steps=32, internal_batch_size=64)
    elif method == "lime":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # LIME samples perturbations from torch's generator
            out = torch.cat([Lime(model).attribute(x[i:i + 1], baselines=float(x.mean()),
                                                   feature_mask=superpixels(size), n_samples=200,
                                                   perturbations_per_eval=50)
                             for i in range(len(x))])
    else:
        layer = gradcam_layer(model)
        cam = LayerGradCam(model, layer).attribute(x.requires_grad_(True), relu_attributions=True)
        out = LayerAttribution.interpolate(cam, (size, size), interpolate_mode="bilinear")
    return out.detach().squeeze(1).numpy().astype(np.float32)
