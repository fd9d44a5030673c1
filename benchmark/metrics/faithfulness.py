"""Faithfulness: deletion and insertion curves (Petsiuk et al. 2018, RISE).

Pixels are ranked by attribution, most relevant first (a stable sort, so ties keep pixel order).
Deletion replaces a growing share of them by the fill; insertion starts from the fill and puts
them back. The curve is the softmax probability of the target class at K+1 equally spaced shares
from 0 to 1; its area is the trapezoid rule over [0, 1]. All perturbed images of one step are
built at once with a comparison against the rank map and classified in one batch.
"""
from __future__ import annotations

import math

import torch
import torchvision.transforms.functional as TF

from .registry import register_metric

FILLS = ("zero", "mean", "blur")


def fill_image(images: torch.Tensor, fill: str) -> torch.Tensor:
    if fill == "zero":
        return torch.zeros_like(images)
    if fill == "mean":
        return images.mean((1, 2, 3), keepdim=True).expand_as(images)
    if fill == "blur":
        # RISE blurs 224 px images with sigma 5; keep that in proportion to the image size
        sigma = 5.0 * images.shape[-1] / 224
        k = 2 * math.ceil(3 * sigma) + 1
        return TF.gaussian_blur(images, [k, k], [sigma, sigma])
    raise ValueError(f"unknown fill {fill!r}; allowed: {FILLS}")


def pixel_ranks(maps: torch.Tensor) -> torch.Tensor:
    """Rank of every pixel, 0 = most relevant, as (N,H,W) long."""
    flat = maps.flatten(1)
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=maps.device).expand_as(order))
    return ranks.view_as(maps)


@torch.no_grad()
def perturbation_curve(model, images, targets, maps, steps: int, fill: str, insert: bool,
                       batch_size: int = 256) -> torch.Tensor:
    """(N, steps+1) target probabilities as the top-ranked pixels are deleted (or inserted)."""
    ranks = pixel_ranks(maps)[:, None]
    base = fill_image(images, fill)
    n_pix = ranks[0].numel()
    counts = [round(k * n_pix / steps) for k in range(steps + 1)]
    curves = []
    for c in counts:
        top = ranks < c
        x = torch.where(top, images, base) if insert else torch.where(top, base, images)
        probs = torch.cat([model(x[i:i + batch_size]).float().softmax(1) for i in range(0, len(x), batch_size)])
        curves.append(probs.gather(1, targets[:, None])[:, 0])
    return torch.stack(curves, 1)


def curve_auc(curve: torch.Tensor) -> torch.Tensor:
    return torch.trapezoid(curve, dx=1.0 / (curve.shape[1] - 1), dim=1)


@register_metric("deletion_auc", "faithfulness", higher_is_better=False, needs_model=True, steps=16, fill="zero")
def deletion_auc(model, images, targets, maps, steps: int = 16, fill: str = "zero", **_) -> torch.Tensor:
    """Area under the deletion curve: a faithful map makes the probability fall fast (lower is better)."""
    return curve_auc(perturbation_curve(model, images, targets, maps, steps, fill, insert=False))


@register_metric("insertion_auc", "faithfulness", higher_is_better=True, needs_model=True, steps=16, fill="blur")
def insertion_auc(model, images, targets, maps, steps: int = 16, fill: str = "blur", **_) -> torch.Tensor:
    """Area under the insertion curve from a blurred image: a faithful map makes it rise fast."""
    return curve_auc(perturbation_curve(model, images, targets, maps, steps, fill, insert=True))
