"""Attribution map -> binary segmentation, the way cheXlocalize does it (Saporta et al. 2022).

cheXlocalize (heatmap_to_segmentation.py) min-max normalises each map to [0, 1] and then either
applies Otsu's threshold (its default) or keeps the pixels strictly above a fixed threshold
(tune_heatmap_threshold.py picks that threshold from 0.2..0.8 by the best mean IoU on a
validation set). Everything here is batched over images on the maps' device.

Otsu: cheXlocalize runs cv2's Otsu on the map quantised to uint8 (256 levels); we run Otsu on a
256-bin histogram of the float map, exactly as skimage.filters.threshold_otsu(map, nbins=256)
(same bins, same bin-centre threshold, same tie break) and keep pixels strictly above the
threshold, as both libraries do. A constant map normalises to zeros and segments to nothing.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def minmax_normalise(maps: torch.Tensor) -> torch.Tensor:
    """Per image (N,H,W): (m - min) / (max - min); a constant map becomes all zeros."""
    flat = maps.flatten(1)
    lo = flat.min(1, keepdim=True).values
    span = flat.max(1, keepdim=True).values - lo
    out = (flat - lo) / torch.where(span > 0, span, torch.ones_like(span))
    return out.view_as(maps)


def otsu_threshold(maps: torch.Tensor, nbins: int = 256) -> torch.Tensor:
    """Otsu's threshold per image (N,H,W) -> (N,) float64, equal to skimage.filters.threshold_otsu.

    Computed in float64 with numpy.histogram's binning (edges from linspace, then the same
    off-by-one corrections), so bins match skimage's bit for bit; a constant image returns its
    value, as skimage does.
    """
    x = maps.flatten(1).double()
    n = x.shape[0]
    lo, hi = x.min(1, keepdim=True).values, x.max(1, keepdim=True).values
    span = hi - lo
    flat_image = span[:, 0] == 0
    safe_span = torch.where(span > 0, span, torch.ones_like(span))
    steps = torch.arange(nbins + 1, device=x.device, dtype=torch.float64)
    edges = steps * (safe_span / nbins) + lo  # np.linspace: arange * step + start, last edge = stop
    edges[:, -1] = hi[:, 0]
    idx = ((x - lo) / safe_span * nbins).long().clamp(max=nbins - 1)
    idx = idx - (x < edges.gather(1, idx)).long()
    idx = idx + ((x >= edges.gather(1, idx + 1)) & (idx != nbins - 1)).long()
    counts = torch.zeros(n, nbins, device=x.device, dtype=torch.float64)
    counts.scatter_add_(1, idx, torch.ones_like(x))
    centres = (edges[:, :-1] + edges[:, 1:]) / 2
    w1 = counts.cumsum(1)
    w2 = counts.flip(1).cumsum(1).flip(1)
    m1 = (counts * centres).cumsum(1) / w1
    m2 = ((counts * centres).flip(1).cumsum(1) / w2.flip(1)).flip(1)
    var12 = w1[:, :-1] * w2[:, 1:] * (m1[:, :-1] - m2[:, 1:]) ** 2
    # empty leading bins give 0/0 = NaN class means; numpy's argmax takes NaN as the maximum
    var12 = torch.where(torch.isnan(var12), torch.full_like(var12, float("inf")), var12)
    best = var12.argmax(1, keepdim=True)
    thr = centres.gather(1, best)[:, 0]
    return torch.where(flat_image, lo[:, 0], thr)


def segment(maps: torch.Tensor, threshold: str | float = "otsu") -> torch.Tensor:
    """Binary segmentation (N,H,W) bool of min-max normalised maps: Otsu or a fixed threshold in [0, 1]."""
    norm = minmax_normalise(maps)
    if isinstance(threshold, str):
        if threshold != "otsu":
            raise ValueError(f"threshold {threshold!r}: use 'otsu' or a number in [0, 1]")
        t = otsu_threshold(norm).to(norm.dtype)
        return norm > t.view(-1, *([1] * (norm.dim() - 1)))
    if isinstance(threshold, bool) or not 0 <= float(threshold) <= 1:
        raise ValueError(f"threshold {threshold!r}: use 'otsu' or a number in [0, 1]")
    return norm > float(threshold)


def overlap_scores(pred: torch.Tensor, masks: torch.Tensor, has_mask: torch.Tensor,
                   true_pos_only: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image IoU and Dice of two binary segmentations (N,H,W), NaN where undefined.

    As cheXlocalize's calculate_iou: with `true_pos_only` (its default) an image is scored only
    when both the ground truth and the prediction are non-empty; without it, only an empty union
    is undefined and a prediction on a normal image (empty ground truth) scores 0.
    Unannotated images (has_mask False) are always NaN.
    """
    p, g = pred.flatten(1).bool(), masks.flatten(1).bool()
    inter = (p & g).sum(1).double()
    union = (p | g).sum(1).double()
    sizes = p.sum(1).double() + g.sum(1).double()
    undefined = ~has_mask.bool()
    if true_pos_only:
        undefined = undefined | ~p.any(1) | ~g.any(1)
    else:
        undefined = undefined | (union == 0)
    iou = (inter / union.clamp(min=1)).masked_fill(undefined, float("nan"))
    dice = (2 * inter / sizes.clamp(min=1)).masked_fill(undefined, float("nan"))
    return iou.float(), dice.float()


def tune_threshold(maps: torch.Tensor, masks: torch.Tensor, has_mask: torch.Tensor,
                   grid: Sequence[float] = tuple(np.arange(0.2, 0.81, 0.1))) -> float:
    """The fixed threshold of `grid` with the best mean IoU over a validation set (cheXlocalize's tune script).

    Images where the IoU is undefined are left out of the mean (nanmean), as there; the first
    threshold wins a tie. cheXlocalize's own grid is np.arange(0.2, .8, .1), i.e. 0.2..0.7 in
    floating point, though its docstring says 0.2..0.8; our default includes 0.8.
    """
    grid = [float(t) for t in grid]
    if not grid:
        raise ValueError("tune_threshold: empty grid")
    norm = minmax_normalise(maps)
    t = torch.tensor(grid, device=maps.device, dtype=norm.dtype)
    # all thresholds at once: (T,N,H,W) is small next to the maps for the usual 7 thresholds
    pred = norm[None] > t.view(-1, 1, 1, 1)
    g = masks.bool()[None]
    inter = (pred & g).flatten(2).sum(2).double()
    union = (pred | g).flatten(2).sum(2).double()
    valid = has_mask.bool()[None] & pred.flatten(2).any(2) & g.flatten(2).any(2)
    iou = torch.where(valid, inter / union.clamp(min=1), torch.full_like(inter, float("nan")))
    miou = iou.nanmean(1)
    if torch.isnan(miou).all():
        raise ValueError("tune_threshold: no validation image has both a lesion and a predicted segmentation")
    return grid[int(torch.nan_to_num(miou, nan=-1.0).argmax())]
