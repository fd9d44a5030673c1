"""Seconds per image of every explainer, side by side on the same model and inputs.

    python -m benchmark.speed.explainer_speed --size 224 --images 8 --device cuda [--names lime lime_package]
"""
from __future__ import annotations

import argparse
import time

import torch

from cxr_xai_bench.datasets import collate
from cxr_xai_bench.datasets.phantom import PhantomDataset
from cxr_xai_bench.explainers import EXPLAINERS
from cxr_xai_bench.models import build_model, place_model

from ..explainer_factory import explainer_with


def time_explainers(arch: str, size: int, n_images: int, device: torch.device, names: list[str],
                    params: dict[str, dict]) -> dict[str, float]:
    batch = collate([PhantomDataset("test", size=size)[i] for i in range(1, 2 * n_images, 2)])
    torch.manual_seed(0)
    model = place_model(build_model(arch), device).eval()  # the run's layout
    x, t = batch.images.to(device), batch.labels.to(device)
    out = {}
    for name in names:
        exp = explainer_with(name, params.get(name, {}))
        exp.explain(model, x[:1], t[:1])  # warm-up: kernels, caches
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        exp.explain(model, x, t)
        if device.type == "cuda":
            torch.cuda.synchronize()
        out[name] = (time.perf_counter() - start) / n_images
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models", nargs="+", default=["vgg16", "resnet50"])
    p.add_argument("--names", nargs="+", default=sorted(EXPLAINERS))
    p.add_argument("--lime-samples", type=int, default=1000)
    a = p.parse_args()
    lime = {"num_samples": a.lime_samples, "batch_size": a.lime_samples, "segmentation": "slic",
            "segmentation_params": {"n_segments": 60, "compactness": 10, "start_label": 0}}
    params = {"lime": lime, "lime_package": {**lime, "batch_size": 256}}
    for arch in a.models:
        res = time_explainers(arch, a.size, a.images, torch.device(a.device), a.names, params)
        for name, sec in res.items():
            print(f"{arch:<9} {a.size}px {name:<13} {sec:8.4f} s/img")


if __name__ == "__main__":
    main()
