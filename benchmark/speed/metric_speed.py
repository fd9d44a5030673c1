"""Milliseconds per image of our metrics and their Quantus 0.6 counterparts, side by side on the
same model, images, maps and masks.

    python -m benchmark.speed.metric_speed --size 224 --images 8 --model resnet50 --device cuda --out perf.csv

Every pair both have is timed (localisation pairs only when the metric is registered). The
parameters of each pair are set so both compute the same thing (see PAIRS); the models have
random weights, which is all a timing needs. Maps are smooth (upsampled noise, like a CAM), so
ROAD's imputation solves realistic contiguous regions. The time is the best of --repeats runs
after one warm-up run on the first image.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..metrics import METRICS, score



@dataclass(frozen=True)
class Pair:
    ours: str
    quantus: str
    ours_params: Callable[[int], dict]  # pixels per image -> our parameters
    quantus_init: Callable[[int], dict]  # pixels per image -> Quantus constructor arguments
    quantus_call: dict
    needs_model: bool


_STEPS = 64
PAIRS = [
    # 64 steps of pixels replaced by 0, probabilities (Quantus' curve; its 'black' is the image minimum)
    Pair("deletion_auc", "PixelFlipping", lambda hw: {"steps": _STEPS, "fill": "zero"},
         lambda hw: {"features_in_step": hw // _STEPS, "perturb_baseline": 0.0, "return_auc_per_sample": True},
         {"softmax": True}, True),
    # 64 patches of a 8x8 grid, removed one at a time
    Pair("deletion_auc", "RegionPerturbation",
         lambda hw: {"steps": _STEPS, "fill": "zero", "unit": "patch", "patch_size": int(hw ** 0.5) // 8},
         lambda hw: {"patch_size": int(hw ** 0.5) // 8, "regions_evaluation": _STEPS, "perturb_baseline": 0.0},
         {"softmax": True}, True),
    Pair("faithfulness_correlation", "FaithfulnessCorrelation", lambda hw: {"nr_runs": 100, "subset_size": 1 / 224},
         lambda hw: {"nr_runs": 100, "subset_size": max(1, round(hw / 224)), "perturb_baseline": 0.0,
                     "return_aggregate": False},
         {"softmax": False}, True),
    Pair("road_morf", "ROAD", lambda hw: {}, lambda hw: {"noise": 0.01}, {"softmax": True}, True),
    Pair("pointing_game", "PointingGame", lambda hw: {}, lambda hw: {}, {}, False),
    Pair("relevance_mass", "RelevanceMassAccuracy", lambda hw: {}, lambda hw: {}, {}, False),
    Pair("relevance_rank", "RelevanceRankAccuracy", lambda hw: {}, lambda hw: {}, {}, False),
    Pair("top_k_intersection", "TopKIntersection", lambda hw: {"k": 0.02}, lambda hw: {"k": max(1, round(0.02 * hw))},
         {}, False),
    Pair("pixel_auroc", "AUC", lambda hw: {}, lambda hw: {}, {}, False),
]


class TinyNet(torch.nn.Module):
    """Two conv layers and a linear head: the metric's own cost dominates, not the model's."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.conv2(F.relu(self.conv1(x)))).mean((2, 3)))


def build(arch: str) -> torch.nn.Module:
    if arch == "tiny":
        return TinyNet()
    from cxr_xai_bench.models import build_model
    return build_model(arch)


def make_inputs(n: int, size: int, device: torch.device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, size, size, generator=g)
    coarse = torch.rand(n, 1, 7, 7, generator=g)
    maps = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    maps = maps + 1e-3 * torch.rand(n, size, size, generator=g)  # no ties
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    for i, (r, c) in enumerate(torch.randint(0, size // 2, (n, 2), generator=g).tolist()):
        masks[i, r:r + size // 3, c:c + size // 3] = True
    return images.to(device), maps.to(device), masks.to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def time_pair(pair: Pair, model, images, targets, maps, masks, device: torch.device, repeats: int) -> tuple[float, float]:
    with _np_trapz():
        return _time_pair(pair, model, images, targets, maps, masks, device, repeats)


@contextlib.contextmanager
def _np_trapz() -> Iterator[None]:
    """np.trapz while Quantus runs (quantus 0.6 calls it; numpy 2.4 removed it), restored after."""
    missing = not hasattr(np, "trapz")
    if missing:
        np.trapz = np.trapezoid
    try:
        yield
    finally:
        if missing:
            del np.trapz


def _time_pair(pair: Pair, model, images, targets, maps, masks, device: torch.device, repeats: int) -> tuple[float, float]:
    import quantus
    n, hw = images.shape[0], maps[0].numel()
    has = masks.flatten(1).any(1)
    params = pair.ours_params(hw)
    m = model if pair.needs_model else None

    def ours(sl=slice(None)):
        with torch.no_grad():
            return score(pair.ours, m, images[sl], targets[sl], maps[sl], masks[sl], has[sl], **params)

    x, y, a, s = (images.cpu().numpy(), targets.cpu().numpy(), maps[:, None].cpu().numpy(),
                  masks[:, None].cpu().numpy().astype(np.float32))

    def theirs(sl=slice(None)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            metric = getattr(quantus, pair.quantus)(abs=False, normalise=False, disable_warnings=True,
                                                     **pair.quantus_init(hw))
            return metric(model=m, x_batch=x[sl], y_batch=y[sl], a_batch=a[sl], s_batch=s[sl],
                          device=str(device), **pair.quantus_call)

    ours(slice(0, 1))
    theirs(slice(0, 1))
    return best_time(ours, repeats, device) / n, best_time(theirs, repeats, device) / n


def run(size: int, n_images: int, arch: str, device: torch.device, repeats: int,
        names: list[str] | None = None) -> list[dict]:
    if size % 8:
        raise ValueError(f"--size must be a multiple of 8 (64 equal deletion steps, an 8x8 patch grid), got {size}")
    torch.manual_seed(0)
    model = build(arch).to(device).eval()
    images, maps, masks = make_inputs(n_images, size, device)
    with torch.no_grad():
        targets = model(images).argmax(1)
    rows = []
    for pair in PAIRS:
        if pair.ours not in METRICS or (names and pair.ours not in names and pair.quantus not in names):
            continue
        ours_s, theirs_s = time_pair(pair, model, images, targets, maps, masks, device, repeats)
        rows.append({"metric": pair.ours, "quantus": pair.quantus, "params": pair.ours_params(size * size),
                     "model": arch, "size": size, "images": n_images, "device": str(device),
                     "ours_ms_per_image": 1e3 * ours_s, "quantus_ms_per_image": 1e3 * theirs_s,
                     "ratio": theirs_s / ours_s})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--model", choices=["tiny", "vgg16", "resnet50"], default="resnet50")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--metrics", nargs="+", help="only these (our or Quantus names)")
    p.add_argument("--out", help="write the table as CSV")
    a = p.parse_args(argv)
    rows = run(a.size, a.images, a.model, torch.device(a.device), a.repeats, a.metrics)
    print(f"{a.model} {a.size}px, {a.images} images, {a.device}; ratio = Quantus time / ours")
    print(f"{'metric':<26}{'quantus':<25}{'ours ms/img':>12}{'quantus ms/img':>16}{'ratio':>9}")
    for r in rows:
        label = r["metric"] + ("/patch" if r["params"].get("unit") == "patch" else "")
        print(f"{label:<26}{r['quantus']:<25}{r['ours_ms_per_image']:>12.2f}{r['quantus_ms_per_image']:>16.2f}"
              f"{r['ratio']:>9.1f}")
    if a.out:
        with open(a.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["metric"])
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
