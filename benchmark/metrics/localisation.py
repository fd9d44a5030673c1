"""Localisation against expert lesion masks.

Images without an annotation (has_mask False) and images whose mask is empty (a normal X-ray)
are NaN for these metrics: there is no lesion to point at, so no hit or miss is defined.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .registry import register_metric


def _undefined(masks: torch.Tensor, has_mask: torch.Tensor) -> torch.Tensor:
    return ~has_mask.bool() | ~masks.flatten(1).any(1)


def _dilate(masks: torch.Tensor, radius: int) -> torch.Tensor:
    if radius <= 0:
        return masks.bool()
    return F.max_pool2d(masks[:, None].float(), 2 * radius + 1, stride=1, padding=radius)[:, 0] > 0


@register_metric("pointing_game", "localisation", higher_is_better=True, needs_mask=True, tolerance=0)
def pointing_game(maps, masks, has_mask, tolerance: int = 0, **_) -> torch.Tensor:
    """Hit if the map's maximum lies in the lesion mask (dilated by `tolerance` pixels).

    Tied maxima score the fraction of them inside the mask: the expected hit under random tie
    breaking. With a unique maximum this is Quantus' PointingGame; Quantus instead counts a hit
    when any tied maximum is inside, which scores a constant map as a perfect hit.
    """
    flat = maps.flatten(1)
    is_max = flat == flat.max(1, keepdim=True).values
    inside = _dilate(masks, tolerance).flatten(1)
    hit = (is_max & inside).sum(1).float() / is_max.sum(1).float()
    return hit.masked_fill(_undefined(masks, has_mask), float("nan"))


@register_metric("relevance_mass", "localisation", higher_is_better=True, needs_mask=True)
def relevance_mass(maps, masks, has_mask, **_) -> torch.Tensor:
    """Share of positive relevance inside the mask (Arras et al. 2022, relevance mass accuracy).

    NaN where the map has no positive relevance at all.
    """
    pos = maps.clamp(min=0).flatten(1)
    total = pos.sum(1)
    within = (pos * masks.flatten(1)).sum(1)
    out = within / total
    return out.masked_fill(_undefined(masks, has_mask) | (total <= 0), float("nan"))
