"""Map similarities for the sanity metrics (sanity.py), batched on the device: SSIM as Quantus and
skimage compute it, Spearman rank correlation, the preprocessing Adebayo et al. apply, and the null
(the same explainer's maps of two different images) with the degenerate-map checks the sanity
verdict needs. See sanity.py's docstring for the conventions."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .localisation import average_ranks

SIMILARITIES = ("ssim", "spearman")


def ssim(a: torch.Tensor, b: torch.Tensor, win_size: int = 7) -> torch.Tensor:
    """Mean SSIM per image of (N,H,W) maps, float64, as skimage with data_range = joint max - min per pair."""
    if a.shape != b.shape or a.dim() != 3:
        raise ValueError(f"ssim: maps must be two (N,H,W) tensors of one shape, "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")
    if min(a.shape[1:]) < win_size:
        raise ValueError(f"ssim: maps {tuple(a.shape[1:])} are smaller than the {win_size}x{win_size} window")
    x, y = a.double()[:, None], b.double()[:, None]
    both = torch.cat([x.flatten(1), y.flatten(1)], 1)
    data_range = (both.max(1).values - both.min(1).values).view(-1, 1, 1, 1)
    # a 'valid' box filter is skimage's uniform filter with the window-radius border cropped
    mean = lambda t: F.avg_pool2d(t, win_size, stride=1)  # noqa: E731
    ux, uy = mean(x), mean(y)
    cov_norm = win_size ** 2 / (win_size ** 2 - 1)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation per image of (N,...) maps, float64, ties by average rank; NaN for a constant map."""
    if a.shape != b.shape:
        raise ValueError(f"spearman: maps of different shapes {tuple(a.shape)} and {tuple(b.shape)}")
    ra, rb = average_ranks(a.flatten(1)), average_ranks(b.flatten(1))
    ra = ra - ra.mean(1, keepdim=True)
    rb = rb - rb.mean(1, keepdim=True)
    return (ra * rb).sum(1) / ((ra * ra).sum(1) * (rb * rb).sum(1)).sqrt()


def _constant(x: torch.Tensor) -> torch.Tensor:
    flat = x.flatten(1)
    return flat.amax(1) == flat.amin(1)


def map_similarity(a: torch.Tensor, b: torch.Tensor, kind: str) -> torch.Tensor:
    """Similarity per image of two batches of maps (N,H,W): `kind` "ssim" or "spearman" -> (N,) float64.

    ssim / spearman, except on constant maps (see the module docstring): a constant map against a
    non-constant one scores 0; two constant maps score 1 for Spearman, and for SSIM 1 when they
    are equal (otherwise SSIM's value). Never NaN. Also the measure of seed repeatability: maps
    of two models trained with different seeds.
    """
    if kind not in SIMILARITIES:
        raise KeyError(f"unknown similarity {kind!r}; use one of {SIMILARITIES}")
    ca, cb = _constant(a), _constant(b)
    if kind == "ssim":
        s = ssim(a, b)
        both = ca & cb & (a.flatten(1)[:, 0] == b.flatten(1)[:, 0])  # equal constants
    else:
        s = spearman(a, b)
        both = ca & cb
    s = torch.where(ca != cb, torch.zeros_like(s), s)
    return torch.where(both, torch.ones_like(s), s)


def degenerate(maps: torch.Tensor, abs: bool = True, normalise: bool = True) -> torch.Tensor:
    """(N,) bool: maps (N,H,W) that hold a non-finite value or are constant after `preprocess`, where a
    rank correlation is undefined (map_similarity scores them by convention, not by evidence)."""
    p = preprocess(maps, abs, normalise)
    return ~torch.isfinite(p).flatten(1).all(1) | _constant(p)


def null_partners(bad: torch.Tensor) -> torch.Tensor:
    """(N,) long: for image i, the next image (cyclically, i+1, i+2, ...) whose map is not `bad`;
    -1 where image i's map is bad itself or no other image has a usable map."""
    bad = bad.detach().cpu().bool()
    n, out = len(bad), torch.full((len(bad),), -1, dtype=torch.long)
    for i in range(n):
        if bad[i]:
            continue
        for step in range(1, n):
            j = (i + step) % n
            if not bad[j]:
                out[i] = j
                break
    return out


def null_similarities(maps: torch.Tensor, similarity: str, abs: bool = True, normalise: bool = True) -> torch.Tensor:
    """(N,) float32: the similarity of image i's map to its null partner's map (null_partners of the
    degenerate maps), after `preprocess`: the same explainer's maps of two different images; NaN where
    image i has no partner. The sanity verdict's reference for "unrelated"."""
    partner = null_partners(degenerate(maps, abs, normalise))
    ok = partner >= 0
    out = torch.full((len(maps),), float("nan"), dtype=torch.float32)
    if ok.any():
        p = preprocess(maps.detach(), abs, normalise)
        idx = ok.nonzero().flatten().to(p.device)
        sim = map_similarity(p[idx], p[partner[ok].to(p.device)], similarity)
        out[ok] = sim.float().cpu()
    return out


def preprocess(maps: torch.Tensor, abs: bool = True, normalise: bool = True) -> torch.Tensor:
    """Absolute value and scaling by the map's max |value| (an all-zero map stays zero), per image."""
    out = maps.abs() if abs else maps
    if normalise:
        peak = out.flatten(1).abs().max(1).values.view(-1, *([1] * (out.dim() - 1)))
        out = out / torch.where(peak > 0, peak, torch.ones_like(peak))
    return out
