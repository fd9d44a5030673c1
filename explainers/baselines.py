"""Baselines that set the floor a real explainer must clear."""
from __future__ import annotations

import torch

from .registry import Explainer, register_explainer


@register_explainer("random")
class RandomMap(Explainer):
    """Uniform noise, seeded by the image, so pointing game sits at chance (mask area fraction)."""

    signed = False
    needs_model = False

    def _explain(self, model, images, targets):
        maps = [torch.rand(images.shape[2:], generator=torch.Generator().manual_seed(self.image_seed(im)))
                for im in images]
        return torch.stack(maps).to(images.device)


@register_explainer("sobel")
class SobelMap(Explainer):
    """Edge magnitude of the image: a map that follows anatomy, not the model."""

    signed = False
    needs_model = False

    def _explain(self, model, images, targets):
        # one batched convolution on the device; a one-pixel replicate pad is scipy's "reflect"
        # mode, so this equals scipy.ndimage.sobel on each image (tested)
        deriv = torch.tensor([-1.0, 0.0, 1.0], device=images.device)
        smooth = torch.tensor([1.0, 2.0, 1.0], device=images.device)
        kernels = torch.stack([torch.outer(deriv, smooth), torch.outer(smooth, deriv)])[:, None]
        padded = torch.nn.functional.pad(images.float(), (1, 1, 1, 1), mode="replicate")
        g = torch.nn.functional.conv2d(padded, kernels)
        return torch.hypot(g[:, 0], g[:, 1])
