"""Attribution map -> binary segmentation, the way cheXlocalize does it (Saporta et al. 2022).

cheXlocalize (heatmap_to_segmentation.py) min-max normalises each map to [0, 1] and then either
applies Otsu's threshold (its default) or keeps the pixels strictly above a fixed threshold
(tune_heatmap_threshold.py picks that threshold from 0.2..0.8 by the best mean IoU on a
validation set). Everything here is batched over images on the maps' device.

Otsu, two routes, both keeping the pixels strictly above the threshold:
- "otsu" (default): a 256-bin histogram of the float map, exactly as
  skimage.filters.threshold_otsu(map, nbins=256) (same bins, bin-centre threshold, tie break).
- "otsu_uint8": cheXlocalize's own route, the map quantised to uint8 (np.uint8(255 * m)) and
  Otsu over its 256 integer levels, as cv2.THRESH_OTSU there (= skimage on the uint8 image).
The two differ slightly (bins of 1/256 of the range against levels of 1/255, and the
truncation): on 200 CAM-like 224 px maps at most 1.6% of an image's pixels changed side
(smallest IoU between the two segmentations 0.936). A constant map segments to nothing.
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


def _otsu_pick(counts: torch.Tensor, centres: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """skimage's Otsu on per-image histograms (N,B): the bin centre maximising the between-class variance."""
    w1 = counts.cumsum(1)
    w2 = counts.flip(1).cumsum(1).flip(1)
    m1 = (counts * centres).cumsum(1) / w1
    m2 = ((counts * centres).flip(1).cumsum(1) / w2.flip(1)).flip(1)
    var12 = w1[:, :-1] * w2[:, 1:] * (m1[:, :-1] - m2[:, 1:]) ** 2
    if valid is not None:  # bins past an image's own range, which skimage's histogram does not have
        var12 = var12.masked_fill(~valid[:, :-1], float("-inf"))
    return centres.gather(1, var12.argmax(1, keepdim=True))[:, 0]


def otsu_threshold(maps: torch.Tensor, nbins: int = 256) -> torch.Tensor:
    """Otsu's threshold per image (N,H,W) -> (N,) float64, equal to skimage.filters.threshold_otsu.

    Float maps: `nbins` bins over each image's [min, max], computed in float64 with
    numpy.histogram's binning (edges from linspace, then its off-by-one corrections), so bins
    match skimage's bit for bit. Integer maps: one bin per integer level from min to max, as
    skimage bins integer images (nbins unused). A constant image returns its value, as skimage does.
    The first pixel of every image lies in the first bin and the last in the last, so no class
    mean is 0/0 within an image's range.
    """
    if not maps.is_floating_point():
        return _otsu_levels(maps.flatten(1).long())
    x = maps.flatten(1).double()
    n = x.shape[0]
    lo, hi = x.min(1, keepdim=True).values, x.max(1, keepdim=True).values
    span = hi - lo
    safe_span = torch.where(span > 0, span, torch.ones_like(span))
    steps = torch.arange(nbins + 1, device=x.device, dtype=torch.float64)
    edges = steps * (safe_span / nbins) + lo  # np.linspace: arange * step + start, last edge = stop
    edges[:, -1] = hi[:, 0]
    idx = ((x - lo) / safe_span * nbins).long().clamp(max=nbins - 1)
    idx = idx - (x < edges.gather(1, idx)).long()
    idx = idx + ((x >= edges.gather(1, idx + 1)) & (idx != nbins - 1)).long()
    counts = torch.zeros(n, nbins, device=x.device, dtype=torch.float64)
    counts.scatter_add_(1, idx, torch.ones_like(x))
    thr = _otsu_pick(counts, (edges[:, :-1] + edges[:, 1:]) / 2)
    return torch.where(span[:, 0] == 0, lo[:, 0], thr)


def _otsu_levels(q: torch.Tensor) -> torch.Tensor:
    lo, hi = q.min(1, keepdim=True).values, q.max(1, keepdim=True).values
    width = int((hi - lo).max()) + 1  # one host sync: the histogram's size
    if width == 1:
        return lo[:, 0].double()
    counts = torch.zeros(q.shape[0], width, device=q.device, dtype=torch.float64)
    counts.scatter_add_(1, q - lo, torch.ones_like(q, dtype=torch.float64))
    levels = torch.arange(width, device=q.device)
    centres = (lo + levels).double()
    thr = _otsu_pick(counts, centres, valid=levels[None] < (hi - lo))
    return torch.where(hi[:, 0] == lo[:, 0], lo[:, 0].double(), thr)


def quantise_uint8(norm: torch.Tensor) -> torch.Tensor:
    """np.uint8(255 * m) of maps in [0, 1], as cheXlocalize feeds cv2: truncation, int64 levels 0..255."""
    return (255 * norm).long()


THRESHOLDS = ("otsu", "otsu_uint8")


def segment(maps: torch.Tensor, threshold: str | float = "otsu") -> torch.Tensor:
    """Binary segmentation (N,H,W) bool of min-max normalised maps.

    `threshold`: "otsu" (256-bin Otsu on the float map, = skimage), "otsu_uint8" (cheXlocalize's
    exact route: Otsu on the map quantised to uint8, = cv2.THRESH_OTSU there), or a number in [0, 1].
    """
    norm = minmax_normalise(maps)
    if isinstance(threshold, str):
        if threshold not in THRESHOLDS:
            raise ValueError(f"threshold {threshold!r}: use one of {THRESHOLDS} or a number in [0, 1]")
        if threshold == "otsu_uint8":
            q = quantise_uint8(norm)
            return q > otsu_threshold(q).long().view(-1, *([1] * (q.dim() - 1)))
        t = otsu_threshold(norm).to(norm.dtype)
        return norm > t.view(-1, *([1] * (norm.dim() - 1)))
    if isinstance(threshold, bool) or not 0 <= float(threshold) <= 1:
        raise ValueError(f"threshold {threshold!r}: use one of {THRESHOLDS} or a number in [0, 1]")
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
