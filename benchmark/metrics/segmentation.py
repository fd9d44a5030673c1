"""Attribution map -> binary segmentation, the way cheXlocalize does it (Saporta et al. 2022).

cheXlocalize (heatmap_to_segmentation.py, cam_to_segmentation) min-max normalises each map to
[0, 1] and then either applies Otsu's threshold (its default) and fills the external contours of
the result, or keeps the pixels strictly above a fixed threshold, unfilled
(tune_heatmap_threshold.py picks that threshold from 0.2..0.8 by the best mean IoU on a validation
set). Everything here is batched over images on the maps' device.

Otsu, two routes, both keeping the pixels strictly above the threshold:
- "otsu" (default): a 256-bin histogram of the float map, exactly as
  skimage.filters.threshold_otsu(map, nbins=256) (same bins, bin-centre threshold, tie break);
  the thresholded pixels as they are, no contour filling.
- "otsu_uint8": cheXlocalize's own route, the map quantised to uint8 (np.uint8(255 * m)), Otsu
  over its 256 integer levels as cv2.THRESH_OTSU there (= skimage on the uint8 image), then its
  contour step: cv2.findContours(RETR_EXTERNAL) and every contour of more than one point drawn
  filled (PIL ImageDraw.polygon, outline and fill). That is `fill_contours`: holes filled (the
  background that no 4-connected path joins to the image border) and single-pixel components
  (8-connectivity) dropped, as their contour has one point.
The two thresholds differ slightly (bins of 1/256 of the range against levels of 1/255, and the
truncation): on 200 CAM-like 224 px maps at most 1.6% of an image's pixels changed side
(smallest IoU between the two segmentations 0.936), before the contour filling of "otsu_uint8".
A constant map segments to nothing on every route (its min-max normalisation is all zero).

Sign: these functions segment the maps they are given. Every caller hands them the maps through the
run's one sign rule (sign.py, metrics.sign): iou and dice (through registry.score), the tuned
thresholds (run/tune.py) and the cheXlocalize export, so by default the positive part of a signed
map is segmented and its negative relevance cannot stretch the min-max range.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F


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


def _runs(free: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For every pixel of (N,H,W) `free`, the first pixel of its run of free pixels along the row and
    one past the last (for a pixel that is not free: an empty run)."""
    w = free.shape[-1]
    pos = torch.arange(w, device=free.device).expand_as(free)
    start = torch.where(free, torch.full_like(pos, -1), pos).cummax(-1).values + 1
    end = torch.where(free, torch.full_like(pos, w), pos).flip(-1).cummin(-1).values.flip(-1)
    return start, end


def _spread(reached: torch.Tensor, free: torch.Tensor, runs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Every `free` pixel whose run of free pixels along its row holds a `reached` pixel."""
    counts = F.pad(reached.to(torch.int32).cumsum(-1, dtype=torch.int32), (1, 0))  # reached pixels before k
    start, end = runs
    return free & (counts.gather(-1, end) > counts.gather(-1, start))


def fill_holes(seg: torch.Tensor) -> torch.Tensor:
    """(N,H,W) bool with its holes filled: background not 4-connected to the image border becomes
    foreground (scipy.ndimage.binary_fill_holes per image). Flood fill from the border by
    alternating whole-row and whole-column sweeps until nothing changes; each sweep crosses any
    run of background at once, so a few sweeps suffice for blob-like segmentations."""
    free = ~seg.bool()
    free_t = free.transpose(1, 2).contiguous()
    rows, cols = _runs(free), _runs(free_t)
    outside = torch.zeros_like(free)
    outside[:, 0], outside[:, -1], outside[:, :, 0], outside[:, :, -1] = (free[:, 0], free[:, -1],
                                                                          free[:, :, 0], free[:, :, -1])
    while True:
        grown = _spread(outside, free, rows)
        grown = _spread(grown.transpose(1, 2).contiguous(), free_t, cols).transpose(1, 2)
        if torch.equal(grown, outside):
            return ~outside
        outside = grown.contiguous()


def fill_contours(seg: torch.Tensor) -> torch.Tensor:
    """cheXlocalize's contour step on (N,H,W) bool: its external contours drawn filled.

    cv2.findContours(RETR_EXTERNAL) traces the outer border of every 8-connected component;
    cheXlocalize draws each contour of more than one point as a filled polygon (outline included),
    so the result is every component with its holes filled, less the isolated single pixels
    (whose contour is one point). Holes are background not 4-connected to the border, the
    complement of 8-connected foreground; a single pixel inside a hole is covered by the fill.
    """
    filled = fill_holes(seg)
    x = filled[:, None].float()
    neighbours = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=True)[:, 0] * 9 - x[:, 0]
    return filled & (neighbours > 0.5)


def segment(maps: torch.Tensor, threshold: str | float = "otsu") -> torch.Tensor:
    """Binary segmentation (N,H,W) bool of min-max normalised maps.

    `threshold`: "otsu" (256-bin Otsu on the float map, = skimage, unfilled), "otsu_uint8"
    (cheXlocalize's exact route: Otsu on the map quantised to uint8, = cv2.THRESH_OTSU there, then
    its external contours filled, see fill_contours), or a number in [0, 1] (pixels strictly
    above it, unfilled, as cheXlocalize's fixed threshold).
    """
    norm = minmax_normalise(maps)
    if isinstance(threshold, str):
        if threshold not in THRESHOLDS:
            raise ValueError(f"threshold {threshold!r}: use one of {THRESHOLDS} or a number in [0, 1]")
        if threshold == "otsu_uint8":
            q = quantise_uint8(norm)
            return fill_contours(q > otsu_threshold(q).long().view(-1, *([1] * (q.dim() - 1))))
        t = otsu_threshold(norm).to(norm.dtype)
        return norm > t.view(-1, *([1] * (norm.dim() - 1)))
    if isinstance(threshold, bool) or not 0 <= float(threshold) <= 1:
        raise ValueError(f"threshold {threshold!r}: use one of {THRESHOLDS} or a number in [0, 1]")
    return norm > float(threshold)


def overlap_scores(pred: torch.Tensor, masks: torch.Tensor, has_mask: torch.Tensor,
                   true_pos_only: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image IoU and Dice of two binary segmentations (N,H,W), NaN only where the ground truth
    leaves them undefined.

    An empty prediction on an image with a lesion scores 0 (IoU and Dice). With `true_pos_only`
    (default) an image with an empty ground truth (a normal image) is not scored; without it, a
    prediction on a normal image scores 0 (all false positive) and only an empty union is
    undefined. Unannotated images (has_mask False) are always NaN. cheXlocalize's calculate_iou
    with true_pos_only also leaves out an empty prediction, which there means the classifier
    called the image negative; here an empty prediction comes from a degenerate (constant) map,
    which has to count against its explainer.
    """
    p, g = pred.flatten(1).bool(), masks.flatten(1).bool()
    inter = (p & g).sum(1).double()
    union = (p | g).sum(1).double()
    sizes = p.sum(1).double() + g.sum(1).double()
    undefined = ~has_mask.bool()
    if true_pos_only:
        undefined = undefined | ~g.any(1)
    else:
        undefined = undefined | (union == 0)
    iou = (inter / union.clamp(min=1)).masked_fill(undefined, float("nan"))
    dice = (2 * inter / sizes.clamp(min=1)).masked_fill(undefined, float("nan"))
    return iou.float(), dice.float()


def tune_threshold(maps: torch.Tensor, masks: torch.Tensor, has_mask: torch.Tensor,
                   grid: Sequence[float] = tuple(np.arange(0.2, 0.81, 0.1))) -> float:
    """The fixed threshold of `grid` with the best mean IoU over a validation set (cheXlocalize's tune script).

    Unannotated and normal images are left out of the mean; an empty segmentation of a lesion
    image (a constant map) scores 0, as in overlap_scores, where cheXlocalize's true_pos_only
    leaves it out; the first threshold wins a tie. Fixed thresholds keep the pixels strictly
    above, unfilled, as cheXlocalize's. cheXlocalize's own grid is np.arange(0.2, .8, .1), i.e.
    0.2..0.7 in floating point, though its docstring says 0.2..0.8; our default includes 0.8.
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
    valid = has_mask.bool()[None] & g.flatten(2).any(2)
    iou = torch.where(valid, inter / union.clamp(min=1), torch.full_like(inter, float("nan")))
    miou = iou.nanmean(1)
    if torch.isnan(miou).all():
        raise ValueError("tune_threshold: no validation image has an annotated lesion")
    return grid[int(torch.nan_to_num(miou, nan=-1.0).argmax())]
