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


@register_explainer("center")
class CenterPrior(Explainer):
    """A centred Gaussian (sigma a quarter of the image): the prior that lesions sit mid-image."""

    signed = False
    needs_model = False

    def _explain(self, model, images, targets):
        h, w = images.shape[2:]
        yy = (torch.arange(h, device=images.device, dtype=torch.float32) - (h - 1) / 2) / (0.25 * h)
        xx = (torch.arange(w, device=images.device, dtype=torch.float32) - (w - 1) / 2) / (0.25 * w)
        g = torch.exp(-0.5 * (yy[:, None] ** 2 + xx[None, :] ** 2))
        return g.expand(len(images), h, w).clone()


class _DatasetMask(Explainer):
    """A baseline whose map is a per-image mask the dataset provides (the key in `needs`)."""

    signed = False
    needs_model = False

    def _explain(self, model, images, targets, **context):
        return context[self.needs[0]].float()


@register_explainer("lung_prior")
class LungPrior(_DatasetMask):
    """The image's own lung mask: an anatomical prior that knows where lungs are, not lesions."""

    needs = ("lung_masks",)


@register_explainer("mask_prior")
class MaskPrior(Explainer):
    """The mean lesion mask of the training split, the same for every image (Saporta et al. 2022
    found such a prior beats most saliency methods at localisation on RSNA pneumonia). Built from
    the training split, not the image's mask: applicable to every image."""

    signed = False
    needs_model = False
    needs = ("train_mean_mask",)

    def _explain(self, model, images, targets, train_mean_mask):
        return train_mean_mask.float().expand(len(images), *images.shape[2:]).clone()


@register_explainer("oracle")
class Oracle(_DatasetMask):
    """The true lesion mask: the ceiling of localisation (meant for the phantom, where it is exact).

    Not applicable to an image without a lesion (empty or unknown mask), where its map would be all
    zero: the benchmark scores it NaN there for every metric (`from_lesion_mask`)."""

    needs = ("lesion_masks",)
    from_lesion_mask = True
