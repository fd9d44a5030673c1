"""Faithfulness: deletion / insertion curves (Petsiuk et al. 2018, RISE; Samek et al. 2016 region
perturbation) and faithfulness correlation (Bhatt et al. 2020).

Deletion / insertion: pixels (or patches of a non-overlapping grid, ranked by summed attribution)
are ranked most relevant first ("morf", default) or least relevant first ("lerf"); tied units go
in a seeded random order shared by every image and explainer (`tie_seed`, default 0; see
perturbation.py), not in raster order. Deletion replaces a growing share of the units by the fill;
insertion starts from the fill and puts them back. Fills: "zero", the image "mean" (the default of
both), or "blur", RISE's blur (its 11 x 11 kernel of sigma 5 at 224 px, scaled with the image
width; see perturbation.rise_kernel), RISE's start of insertion. Why the mean by default, measured on
the default run's 40 phantom test images (docs/results.md, 2026-12-05): replacing the true lesion by
the image's mean lowers P(pneumonia) to 0.29 (VGG16-BN) and 0.32 (ResNet50), near the exact
counterfactual (the lesion rendered away: 0.11, 0.15), where zero keeps 0.98 and 0.79 and RISE's
blur 0.95 and 0.94 (at 64 px its kernel is 3 x 3): zero and blur do not remove the evidence, and
insertion from RISE's blur starts within 0.1 of the full image's output in both classes (no
headroom, report/headroom.py). The curve is the softmax
probability of the target class at steps+1 equally spaced shares from 0 to 1 (share k/steps perturbs
round(k * units / steps) units); its area is the trapezoid rule over [0, 1]. The perturbed images
of all steps and images are built from one rank map and classified batch_size at a time.

Direction: the registry's direction is for the default order "morf" (deletion lower is better,
insertion higher is better); with order="lerf" a faithful map gives the opposite, so score
"lerf" under its own config name and read it the other way round.

Curves: pass `sink={}` and the curve metrics leave the per-image curve in sink["curve"] as
(N, points) float32 and the x axis in sink["fraction"] as (points,).
"""
from __future__ import annotations

import torch

from .perturbation import (FILLS, chunks, check_choice, check_positive_int, check_tie_seed, fill_image,  # noqa: F401
                           pixel_ranks, unit_ranks)
from .registry import register_metric


def _target_output(model, x: torch.Tensor, targets: torch.Tensor, softmax: bool) -> torch.Tensor:
    out = model(x).float()
    if softmax:
        out = out.softmax(1)
    return out.gather(1, targets[:, None])[:, 0]


@torch.no_grad()
def perturbation_curve(model, images: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, steps: int,
                       fill: str, insert: bool, order: str = "morf", unit: str = "pixel", patch_size: int = 8,
                       batch_size: int = 256, tie_seed: int = 0) -> torch.Tensor:
    """(N, steps+1) target probabilities as the first-ranked units are deleted (or inserted); ties in
    the seeded order of `tie_seed`."""
    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_size)
    check_tie_seed(tie_seed)
    ranks, n_units = unit_ranks(maps, unit, order, patch_size, tie_seed)
    base = fill_image(images, fill)
    n = images.shape[0]
    counts = torch.tensor([round(k * n_units / steps) for k in range(steps + 1)], device=images.device)
    out = torch.empty((steps + 1) * n, device=images.device)
    for j in chunks(out.numel(), batch_size, images.device):
        s, i = j // n, j % n
        first = (ranks[i] < counts[s][:, None, None])[:, None]
        x = torch.where(first, images[i], base[i]) if insert else torch.where(first, base[i], images[i])
        out[j] = _target_output(model, x, targets[i], softmax=True)
    return out.view(steps + 1, n).T.contiguous()


def curve_auc(curve: torch.Tensor) -> torch.Tensor:
    return torch.trapezoid(curve, dx=1.0 / (curve.shape[1] - 1), dim=1)


def normalised_auc(curve: torch.Tensor, insert: bool, min_drop: float = 0.1) -> torch.Tensor:
    """The curve's area rescaled by its own ends: (AUC - p_perturbed) / (p_unperturbed - p_perturbed),
    where p_unperturbed is the unperturbed image's output (deletion's first point, insertion's last)
    and p_perturbed the fully perturbed image's (deletion's last point, insertion's first). 0 is a
    curve at the fully perturbed output all along, 1 one at the unperturbed output all along, the same
    for deletion (lower is better) and insertion (higher is better); a non-monotone curve may leave
    [0, 1]. NaN where the perturbation lowers the output by less than `min_drop` (no headroom on that
    image: the ratio would blow noise up), as for every explainer alike, since both ends are the same
    for every map of an image."""
    full, gone = (curve[:, -1], curve[:, 0]) if insert else (curve[:, 0], curve[:, -1])
    drop = full - gone
    out = (curve_auc(curve) - gone) / torch.where(drop > 0, drop, torch.ones_like(drop))
    return torch.where(drop >= min_drop, out, torch.full_like(out, float("nan")))


def check_normalise(normalise, min_drop) -> None:
    if not isinstance(normalise, bool):
        raise ValueError(f"normalise must be true or false, got {normalise!r}")
    if isinstance(min_drop, bool) or not isinstance(min_drop, (int, float)) or not 0 < min_drop <= 1:
        raise ValueError(f"min_drop must be a number in (0, 1], got {min_drop!r}")


def _auc(model, images, targets, maps, steps, fill, insert, order, unit, patch_size, batch_size, tie_seed, sink,
         normalise=False, min_drop=0.1):
    check_normalise(normalise, min_drop)
    curve = perturbation_curve(model, images, targets, maps, steps, fill, insert, order, unit, patch_size, batch_size,
                               tie_seed)
    if sink is not None:
        sink["curve"] = curve
        sink["fraction"] = torch.linspace(0, 1, steps + 1, device=curve.device)
    return normalised_auc(curve, insert, min_drop) if normalise else curve_auc(curve)


def _curve_passes(params: dict, explainer_passes, model) -> tuple[int, int]:
    return params["steps"] + 1, 0


@register_metric("deletion_auc", "faithfulness", higher_is_better=False, needs_model=True, passes=_curve_passes, bf16_ok=True,
                 curve="deletion", steps=16, fill="mean",
                 order="morf", unit="pixel", patch_size=8, batch_size=256, tie_seed=0, normalise=False, min_drop=0.1)
def deletion_auc(model, images, targets, maps, steps: int = 16, fill: str = "mean", order: str = "morf",
                 unit: str = "pixel", patch_size: int = 8, batch_size: int = 256, tie_seed: int = 0,
                 normalise: bool = False, min_drop: float = 0.1, sink: dict | None = None, **_) -> torch.Tensor:
    """Area under the deletion curve: a faithful map makes the probability fall fast (lower is better).
    normalise=True: the area rescaled by the curve's own ends (normalised_auc), NaN on images whose
    full deletion lowers the output by less than min_drop."""
    return _auc(model, images, targets, maps, steps, fill, False, order, unit, patch_size, batch_size, tie_seed, sink,
                normalise, min_drop)


@register_metric("insertion_auc", "faithfulness", higher_is_better=True, needs_model=True, passes=_curve_passes, bf16_ok=True,
                 curve="insertion", steps=16, fill="mean",
                 order="morf", unit="pixel", patch_size=8, batch_size=256, tie_seed=0, normalise=False, min_drop=0.1)
def insertion_auc(model, images, targets, maps, steps: int = 16, fill: str = "mean", order: str = "morf",
                  unit: str = "pixel", patch_size: int = 8, batch_size: int = 256, tie_seed: int = 0,
                  normalise: bool = False, min_drop: float = 0.1, sink: dict | None = None, **_) -> torch.Tensor:
    """Area under the insertion curve from the fill (the image's mean): a faithful map makes it rise fast.
    normalise=True: the area rescaled by the curve's own ends (normalised_auc), NaN on images whose
    fully perturbed start is within min_drop of the full image's output."""
    return _auc(model, images, targets, maps, steps, fill, True, order, unit, patch_size, batch_size, tie_seed, sink,
                normalise, min_drop)


def subset_pixels(subset_size: int | float, n_pixels: int) -> int:
    """An int is a pixel count; a float in (0, 1) a share of the pixels (rounded, at least 1)."""
    if isinstance(subset_size, bool) or not isinstance(subset_size, (int, float)):
        raise ValueError(f"subset_size must be an int or a float in (0, 1), got {subset_size!r}")
    k = subset_size if isinstance(subset_size, int) else max(1, round(subset_size * n_pixels))
    if isinstance(subset_size, float) and not 0 < subset_size < 1:
        raise ValueError(f"subset_size as a share must lie in (0, 1), got {subset_size}")
    if not 1 <= k < n_pixels:
        raise ValueError(f"subset_size {subset_size!r} gives {k} pixels; need 1 <= pixels < {n_pixels}")
    return k


def pearson_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of every row pair of (N, R) in float64: 0 where only a row of `a` is
    constant, NaN where a row of `b` is constant."""
    a, b = a.double(), b.double()
    ac, bc = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    r = (ac * bc).sum(1) / (ac.norm(dim=1) * bc.norm(dim=1))
    flat_a, flat_b = a.amax(1) == a.amin(1), b.amax(1) == b.amin(1)
    r = torch.where(flat_a, torch.zeros_like(r), r.clamp(-1, 1))
    return torch.where(flat_b, torch.full_like(r, float("nan")), r)


@register_metric("faithfulness_correlation", "faithfulness", higher_is_better=True, needs_model=True,
                 passes=lambda params, explainer_passes, model: (params["nr_runs"] + 1, 0), nr_runs=100,
                 subset_size=1 / 224, fill="zero", softmax=False, seed=0, batch_size=256)
@torch.no_grad()
def faithfulness_correlation(model, images, targets, maps, nr_runs: int = 100, subset_size: int | float = 1 / 224,
                             fill: str = "zero", softmax: bool = False, seed: int = 0, batch_size: int = 256,
                             indices: torch.Tensor | None = None, sink: dict | None = None, **_) -> torch.Tensor:
    """Pearson correlation of a random pixel subset's attribution sum with the output drop when it is removed.

    Bhatt et al. 2020, as Quantus 0.6 FaithfulnessCorrelation: nr_runs random subsets per image,
    each replaced by the fill; the output is the target's logit, as Quantus' default
    softmax=False (softmax=True uses the probability). subset_size: an int counts pixels, a
    float is a share of them; the default 1/224 is Quantus' 224 pixels at 224x224 px. Subsets
    are drawn on the device from `seed`, batch_size (run, image) pairs at a time, so they depend
    on the images in the call and on batch_size; or they are given as `indices` (nr_runs, N, k)
    long. A map whose subset sums are all equal (e.g. an all-zero Grad-CAM) predicts nothing of the
    output drop and scores 0, as degenerate maps do in every metric here, so it stays in the
    comparison instead of removing the image for every explainer (Quantus returns scipy's NaN
    there); NaN only where the output drop itself is constant, alike for every explainer. Higher
    is better.
    """
    check_positive_int("batch_size", batch_size)
    n, hw = images.shape[0], maps[0].numel()
    if indices is None:
        check_positive_int("nr_runs", nr_runs)
        k = subset_pixels(subset_size, hw)
        runs = nr_runs
        g = torch.Generator(device=images.device).manual_seed(seed)
    elif indices.ndim != 3 or indices.shape[1] != n or indices.dtype != torch.long:
        raise ValueError(f"indices must be (nr_runs, {n}, k) long, got {tuple(indices.shape)} {indices.dtype}")
    elif indices.numel() and (indices.min() < 0 or indices.max() >= hw):
        raise ValueError(f"indices must lie in [0, {hw})")
    else:
        runs = indices.shape[0]
        flat_idx = indices.to(images.device).view(runs * n, -1)
    base = fill_image(images, fill)
    flat_maps = maps.flatten(1).double()
    full = torch.cat([_target_output(model, images[j], targets[j], softmax) for j in chunks(n, batch_size, images.device)])
    drop = torch.empty(runs * n, device=images.device)
    att = torch.empty(runs * n, dtype=torch.float64, device=images.device)
    for j in chunks(runs * n, batch_size, images.device):
        i = j % n  # pair j is run j // n of image i
        # top-k of uniforms is a uniform k-subset; drawn per chunk, so one kernel serves many runs
        idx = (torch.rand(len(j), hw, generator=g, device=images.device).topk(k, dim=1).indices
               if indices is None else flat_idx[j])
        att[j] = flat_maps[i].gather(1, idx).sum(1)
        removed = torch.zeros(len(j), hw, dtype=torch.bool, device=images.device).scatter_(1, idx, True)
        x = torch.where(removed.view(len(j), 1, *images.shape[2:]), base[i], images[i])
        drop[j] = full[i] - _target_output(model, x, targets[i], softmax)
    att, drop = att.view(runs, n), drop.view(runs, n)
    if sink is not None:
        sink["attribution_sum"], sink["output_drop"] = att.T.float(), drop.T
    return pearson_rows(att.T, drop.T).float()
