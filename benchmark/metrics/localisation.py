"""Localisation against expert lesion masks: maps (N,H,W), masks (N,H,W) bool, has_mask (N,) bool;
and `lung_mass` against the lung masks (a shortcut check, scored on normal images too: its
docstring has its NaN rules, the rules below are the lesion metrics').

Sign: every function here reads the maps as it receives them. `registry.score` hands them over
through the run's one sign rule (sign.py, metrics.sign): by default their positive part, so a signed
map's negative relevance (evidence against the target) moves no localisation score; "absolute" and
"raw" are the other readings. What follows is about the maps as received.

NaN (counted by the runner, never scored) only where the ground truth cannot define a score:
- has_mask False (no annotation; None is not "empty"): NaN for every metric here.
- Empty mask (a normal X-ray):
  * pointing_game, relevance_mass, relevance_rank, top_k_intersection: NaN, as there is no lesion
    to point at, no mass to hold and no top-K to fill: no hit or miss is defined. (Quantus
    means NaN too, but PointingGame writes NaN into a boolean array, which stores True: an
    empty mask scores a hit there. See tests/benchmark/test_metrics_localisation.py.)
  * pixel_auroc, pixel_auprc: NaN, as there are no positive pixels (sklearn refuses such a
    ranking); a mask covering the whole image (no negative pixel) is NaN for pixel_auroc.
  * iou, dice: with `true_pos_only=True` (default) NaN; with `true_pos_only=False` the image is
    scored: 0 when the segmented map is non-empty (any predicted lesion on a normal image is all
    false positive), NaN only when the segmentation is empty too (empty union).

A degenerate map is scored for what it achieves on an image with a lesion, never dropped (a
dropped image would average that explainer alone over fewer, easier images than the others):
- pointing_game: a constant map (every pixel a maximum) scores the share of the image inside the
  dilated mask; in general tied maxima score the share of them inside (see below).
- relevance_mass: a map with no positive relevance (all zero or all negative) holds no positive
  mass inside the lesion: 0.
- relevance_rank, top_k_intersection: a constant map scores the lesion's share of the image
  (its share of any K pixels drawn at random): chance level.
- pixel_auroc 0.5 and pixel_auprc the lesion's share of the image on a constant map.
- iou, dice: a map that segments to nothing (a constant map: min-max normalisation makes it all
  zero) scores 0, whatever `true_pos_only`. cheXlocalize's calculate_iou leaves an empty
  prediction out with true_pos_only=True because there an empty segmentation means the classifier
  called the image negative; here every explained image has a map, and only a degenerate one
  segments to nothing.

Ties: tied map values are scored by their expected value under random tie breaking (pointing
game: the share of the tied maxima inside the dilated mask; relevance rank and top-k: pixels above
the K-th value count fully and the tied group at the boundary fills the places left with its
inside share) or by average ranks (AUROC, AUPRC as sklearn), never by memory (raster) order.
On maps without ties every metric equals its Quantus 0.6 counterpart exactly (relevance_mass on a
signed map: under sign "raw", as Quantus sums signed relevance), except relevance_mass on a map with
no positive total (Quantus divides by it: NaN for an all-zero map).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .registry import register_metric
from .segmentation import overlap_scores, segment


def _undefined(masks: torch.Tensor, has_mask: torch.Tensor) -> torch.Tensor:
    return ~has_mask.bool() | ~masks.flatten(1).any(1)


def _dilate(masks: torch.Tensor, radius: int) -> torch.Tensor:
    if radius <= 0:
        return masks.bool()
    return F.max_pool2d(masks[:, None].float(), 2 * radius + 1, stride=1, padding=radius)[:, 0] > 0


def tie_groups(sorted_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First and last position (N,P) of each element's run of equal values in rows sorted along dim 1."""
    n, p = sorted_values.shape
    pos = torch.arange(p, device=sorted_values.device).expand(n, p)
    starts = torch.ones_like(sorted_values, dtype=torch.bool)
    starts[:, 1:] = sorted_values[:, 1:] != sorted_values[:, :-1]
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    first = torch.where(starts, pos, torch.zeros_like(pos)).cummax(1).values
    last = torch.where(ends, pos, torch.full_like(pos, p)).flip(1).cummin(1).values.flip(1)
    return first, last


def average_ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 1..P per row of (N,P), ties sharing their mean rank (scipy.stats.rankdata 'average'), float64."""
    s, order = x.sort(1)
    first, last = tie_groups(s)
    ranks = (first + last).double() / 2 + 1
    return torch.empty_like(ranks).scatter_(1, order, ranks)


def _topk_share(maps: torch.Tensor, masks: torch.Tensor, k: int | torch.Tensor) -> torch.Tensor:
    """Expected share of mask pixels among the k highest map values (k an int or (N,)), ties broken at random.

    Pixels above the k-th value count fully; of the pixels tied with it, the places left are
    filled by their inside share. On distinct values this is Quantus' argsort top-k.
    """
    flat = maps.flatten(1)
    inside = masks.flatten(1).bool()
    if isinstance(k, int):
        kk = torch.full((flat.shape[0], 1), k, device=flat.device)
        kth = flat.topk(k, 1).values[:, -1:]  # a partial selection, cheaper than sorting every pixel
    else:
        kk = k.long().clamp(1, flat.shape[1]).view(-1, 1)
        kth = flat.sort(1, descending=True).values.gather(1, kk - 1)
    above, tied = flat > kth, flat == kth
    n_above = above.sum(1, keepdim=True).double()
    in_above = (above & inside).sum(1, keepdim=True).double()
    in_tied = (tied & inside).sum(1, keepdim=True).double()
    n_tied = tied.sum(1, keepdim=True).double()
    return ((in_above + (kk - n_above) * in_tied / n_tied) / kk)[:, 0]


@register_metric("pointing_game", "localisation", higher_is_better=True, needs_mask=True, tolerance=0)
def pointing_game(maps, masks, has_mask, tolerance: int = 0, **_) -> torch.Tensor:
    """Hit rate with tolerance: 1 if the map's maximum lies in the lesion mask dilated by `tolerance` pixels.

    cheXlocalize's hit rate with a tolerance band (Zhang et al. 2018 use 15 px at 224). Tied
    maxima score the fraction of them inside the dilated mask: the expected hit when one of them
    is picked at random, so a constant map scores the dilated mask's share of the image (an argmax
    would pick the first pixel in raster order: a miss, or a hit for a lesion at the top left).
    With a unique maximum this is Quantus' PointingGame; Quantus instead counts a hit when any
    tied maximum is inside, which scores a constant map as a perfect hit.
    """
    if isinstance(tolerance, bool) or int(tolerance) != tolerance or tolerance < 0:
        raise ValueError(f"pointing_game: tolerance must be a whole number of pixels >= 0, got {tolerance!r}")
    flat = maps.flatten(1)
    is_max = flat == flat.max(1, keepdim=True).values
    inside = _dilate(masks, int(tolerance)).flatten(1)
    hit = (is_max & inside).sum(1).float() / is_max.sum(1).float()
    return hit.masked_fill(_undefined(masks, has_mask), float("nan"))


@register_metric("relevance_mass", "localisation", higher_is_better=True, needs_mask=True)
def relevance_mass(maps, masks, has_mask, **_) -> torch.Tensor:
    """Share of relevance inside the mask (Arras et al. 2022, relevance mass accuracy): sum inside / sum.

    Reads the map through the sign rule: by default its positive part (negative relevance dropped),
    the share of positive relevance inside; under "raw" the signed sums, as Quantus'
    RelevanceMassAccuracy. A map with no positive total (e.g. an all-zero Grad-CAM, or a map with no
    positive relevance under the default rule) puts no mass inside the lesion and scores 0 (Quantus
    divides 0 by 0).
    """
    pos = maps.flatten(1)
    total = pos.sum(1)
    within = (pos * masks.flatten(1)).sum(1)
    out = torch.where(total > 0, within / torch.where(total > 0, total, torch.ones_like(total)),
                      torch.zeros_like(total))
    return out.masked_fill(_undefined(masks, has_mask), float("nan"))


@register_metric("lung_mass", "localisation", higher_is_better=True, needs_lung=True)
def lung_mass(maps, lung_masks, **_) -> torch.Tensor:
    """Share of relevance inside the lung fields: sum(map * lung) / sum(map), the map read through the
    sign rule (by default its positive part: sum(relu(map) * lung) / sum(relu(map))).

    A shortcut check (DeGrave et al. 2021): relevance on markers, text, borders or outside the
    chest scores low. Unlike the lesion metrics it needs no lesion and is defined on every image
    with a lung mask (normal and unannotated pneumonia images included); NaN only where the image
    has no lung mask (an all-False row). A map with no positive total (all zero, or all negative
    under the default rule) puts no mass inside the lungs: 0, as relevance_mass scores it.
    """
    pos = maps.flatten(1)
    lungs = lung_masks.flatten(1)
    total = pos.sum(1)
    within = (pos * lungs).sum(1)
    out = torch.where(total > 0, within / torch.where(total > 0, total, torch.ones_like(total)),
                      torch.zeros_like(total))
    return out.float().masked_fill(~lungs.any(1), float("nan"))


@register_metric("relevance_rank", "localisation", higher_is_better=True, needs_mask=True)
def relevance_rank(maps, masks, has_mask, **_) -> torch.Tensor:
    """Share of the K highest-relevance pixels inside the mask, K = mask size (Arras et al. 2022, rank accuracy).

    Equals Quantus' RelevanceRankAccuracy on maps without ties. Quantus takes the top K in
    np.argsort order, which breaks ties by memory layout; we score the expected share under
    random tie breaking, so a constant map scores K / pixels (the chance level).
    """
    k = masks.flatten(1).sum(1)
    return _topk_share(maps, masks, k).float().masked_fill(_undefined(masks, has_mask), float("nan"))


def _resolve_k(k: int | float, pixels: int) -> int:
    if isinstance(k, bool):
        raise ValueError(f"top_k_intersection: k must be a pixel count or a fraction, got {k!r}")
    if isinstance(k, int):
        if not 1 <= k <= pixels:
            raise ValueError(f"top_k_intersection: k={k} pixels is outside 1..{pixels} (the image size)")
        return k
    if not 0 < float(k) <= 1:
        raise ValueError(f"top_k_intersection: a float k is a fraction of the image in (0, 1], got {k!r}")
    return max(1, round(float(k) * pixels))


@register_metric("top_k_intersection", "localisation", higher_is_better=True, needs_mask=True, k=0.02)
def top_k_intersection(maps, masks, has_mask, k: int | float = 0.02, **_) -> torch.Tensor:
    """Share of the k highest-relevance pixels inside the mask (Theiner et al. 2022; Quantus TopKIntersection).

    `k` is a pixel count (int) or a fraction of the image (float in (0, 1]); the default 0.02 is
    1004 px at 224 px, about Quantus' default of 1000. Ties as in relevance_rank.
    """
    share = _topk_share(maps, masks, _resolve_k(k, maps[0].numel()))
    return share.float().masked_fill(_undefined(masks, has_mask), float("nan"))


def _pixel_ranking(maps: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    flat = maps.flatten(1)
    y = masks.flatten(1).double()
    n_pos = y.sum(1)
    return flat, y, n_pos


@register_metric("pixel_auroc", "localisation", higher_is_better=True, needs_mask=True)
def pixel_auroc(maps, masks, has_mask, **_) -> torch.Tensor:
    """ROC AUC of the map as a score of the lesion pixels (Arun et al. 2021), ties as sklearn's roc_auc_score.

    Mann-Whitney form with average ranks, which equals the trapezoidal ROC area sklearn and
    Quantus' AUC compute. NaN where the mask is empty or covers the whole image.
    """
    flat, y, n_pos = _pixel_ranking(maps, masks)
    n_neg = y.shape[1] - n_pos
    r = average_ranks(flat)
    auc = ((r * y).sum(1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg).clamp(min=1)
    return auc.float().masked_fill(_undefined(masks, has_mask) | (n_neg == 0), float("nan"))


@register_metric("pixel_auprc", "localisation", higher_is_better=True, needs_mask=True)
def pixel_auprc(maps, masks, has_mask, **_) -> torch.Tensor:
    """Average precision of the map as a score of the lesion pixels (Arun et al. 2021).

    Equal to sklearn's average_precision_score per image: AP = sum over distinct map values t
    (descending) of recall gained at t times precision at t, so every lesion pixel contributes
    the precision at the end of its run of tied values.
    NaN where the mask is empty. Chance level is the lesion's share of the image.
    """
    flat, y, n_pos = _pixel_ranking(maps, masks)
    s, order = flat.sort(1, descending=True)
    ys = y.gather(1, order)
    _, last = tie_groups(s)
    tp = ys.cumsum(1).gather(1, last)
    precision = tp / (last + 1).double()
    ap = (ys * precision).sum(1) / n_pos.clamp(min=1)
    return ap.float().masked_fill(_undefined(masks, has_mask), float("nan"))


def _overlap(maps, masks, has_mask, threshold, true_pos_only):
    if not isinstance(true_pos_only, bool):
        raise ValueError(f"true_pos_only must be true or false, got {true_pos_only!r}")
    return overlap_scores(segment(maps, threshold), masks, has_mask, true_pos_only)


@register_metric("iou", "localisation", higher_is_better=True, needs_mask=True, threshold="otsu", true_pos_only=True)
def iou(maps, masks, has_mask, threshold: str | float = "otsu", true_pos_only: bool = True, **_) -> torch.Tensor:
    """IoU of the segmented map with the mask (cheXlocalize): min-max normalise, then Otsu or a fixed threshold.

    The map is segmented as the sign rule gives it (by default its positive part: min-max
    normalising a signed range would let negative relevance elsewhere raise the threshold).

    `threshold` "otsu" (Otsu as skimage on the float map, no contour filling), "otsu_uint8"
    (cheXlocalize's route: Otsu as its cv2 call on the map quantised to uint8, then its external
    contours filled) or a number in [0, 1] (tune it on validation maps with
    segmentation.tune_threshold). An empty segmentation on a lesion image scores 0; empty masks:
    see the module docstring.
    """
    return _overlap(maps, masks, has_mask, threshold, true_pos_only)[0]


@register_metric("dice", "localisation", higher_is_better=True, needs_mask=True, threshold="otsu", true_pos_only=True)
def dice(maps, masks, has_mask, threshold: str | float = "otsu", true_pos_only: bool = True, **_) -> torch.Tensor:
    """Dice (F1) of the segmented map with the mask, segmented and undefined as iou."""
    return _overlap(maps, masks, has_mask, threshold, true_pos_only)[1]
