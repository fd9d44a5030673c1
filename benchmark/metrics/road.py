"""ROAD: RemOve And Debias (Rong et al. 2022), as Quantus 0.6 ROAD.

At each percentage p the first int(H*W*p/100) pixels of the ranking (most relevant first for
road_morf, least relevant first for road_lerf; tied pixels in the seeded order of `tie_seed`,
shared by every image and explainer, see perturbation.py) are removed and replaced by noisy
linear imputation (every removed pixel the weighted mean of its neighbours, 1/6 direct and 1/12
diagonal, plus Gaussian noise of std `noise`), which hides the removal's shape from the model.
The output at p is, as Quantus, 1 when the model still predicts the target class (argmax) and 0
otherwise (output="probability" takes the target's softmax probability instead); the score is the
mean over the percentages. Quantus returns the per-percentage mean over images; the mean of our
per-image scores is the mean of those. road_morf: lower is better; road_lerf: higher is better.
All images x percentages are imputed (conjugate gradient on the device) and classified
batch_size at a time; the noise is drawn on the device from `seed` for each call.
"""
from __future__ import annotations

import torch

from .perturbation import (chunks, check_choice, check_positive_int, check_tie_seed, noisy_linear_imputation,
                           pixel_ranks)
from .registry import register_metric

PERCENTAGES = tuple(range(1, 100, 2))  # Quantus' default
OUTPUTS = ("accuracy", "probability")


@torch.no_grad()
def road_curve(model, images: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor, order: str = "morf",
               percentages=PERCENTAGES, noise: float = 0.01, output: str = "accuracy", seed: int = 0,
               batch_size: int = 64, tol: float = 1e-6, tie_seed: int = 0) -> torch.Tensor:
    """(N, P) model output on the imputed images, one column per percentage."""
    check_choice("output", output, OUTPUTS)
    check_positive_int("batch_size", batch_size)
    check_tie_seed(tie_seed)
    if len(percentages) == 0 or not all(0 <= p < 100 for p in percentages):
        raise ValueError(f"percentages must be a non-empty list of numbers in [0, 100), got {percentages!r}")
    ranks = pixel_ranks(maps, order, tie_seed)
    n, hw = images.shape[0], maps[0].numel()
    counts = torch.tensor([int(hw * p / 100) for p in percentages], device=images.device)
    g = torch.Generator(device=images.device).manual_seed(seed)
    out = torch.empty(len(percentages) * n, device=images.device)
    for j in chunks(out.numel(), batch_size, images.device):
        s, i = j // n, j % n
        removed = ranks[i] < counts[s][:, None, None]
        x = noisy_linear_imputation(images[i], removed, noise, generator=g, tol=tol)
        logits = model(x).float()
        t = targets[i]
        out[j] = (logits.argmax(1) == t).float() if output == "accuracy" else logits.softmax(1).gather(1, t[:, None])[:, 0]
    return out.view(len(percentages), n).T.contiguous()


def _road_passes(params: dict, explainer_passes, model) -> tuple[int, int]:
    return len(params["percentages"]), 0  # one imputed image per percentage


def _road(order, model, images, targets, maps, percentages, noise, output, seed, batch_size, tie_seed, sink):
    curve = road_curve(model, images, targets, maps, order, tuple(percentages), noise, output, seed, batch_size,
                       tie_seed=tie_seed)
    if sink is not None:
        sink["curve"] = curve
        sink["fraction"] = torch.tensor([p / 100 for p in percentages], device=curve.device)
    return curve.mean(1)


@register_metric("road_morf", "faithfulness", higher_is_better=False, needs_model=True, passes=_road_passes, bf16_ok=True,
                 curve="removal",
                 percentages=PERCENTAGES,
                 noise=0.01, output="accuracy", seed=0, batch_size=64, tie_seed=0)
def road_morf(model, images, targets, maps, percentages=PERCENTAGES, noise: float = 0.01, output: str = "accuracy",
              seed: int = 0, batch_size: int = 64, tie_seed: int = 0, sink: dict | None = None, **_) -> torch.Tensor:
    """ROAD, most relevant first: share of percentages still classified as the target after imputation (lower is better)."""
    return _road("morf", model, images, targets, maps, percentages, noise, output, seed, batch_size, tie_seed, sink)


@register_metric("road_lerf", "faithfulness", higher_is_better=True, needs_model=True, passes=_road_passes, bf16_ok=True,
                 curve="removal",
                 percentages=PERCENTAGES,
                 noise=0.01, output="accuracy", seed=0, batch_size=64, tie_seed=0)
def road_lerf(model, images, targets, maps, percentages=PERCENTAGES, noise: float = 0.01, output: str = "accuracy",
              seed: int = 0, batch_size: int = 64, tie_seed: int = 0, sink: dict | None = None, **_) -> torch.Tensor:
    """ROAD, least relevant first: share of percentages still classified as the target after imputation (higher is better)."""
    return _road("lerf", model, images, targets, maps, percentages, noise, output, seed, batch_size, tie_seed, sink)
