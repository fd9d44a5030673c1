"""Stage perturbed maps: the localisation metrics re-scored on maps of slightly noisy inputs, for the
report's stability check (does a metric's ranking of the methods hold under noise too small to
change the prediction? report/reliability_checks.py: Kendall's tau clean vs noisy, per-image rank changes).

Noise: each test image plus Gaussian noise of standard deviation SIGMA = 0.01 in the [0,1] image
units (2.6 grey levels of 255: invisible; a `sigma` column of the table records it), clipped to [0,1], drawn
from the image's own generator seeded by (run seed, the image's position in the test split), so a
resume, another shard size or another batch layout draws the same noise. Only images whose
predicted class (the trained model's argmax) is the same on the noisy and the clean image are kept:
the perturbation must not change what the explanation explains. They are re-explained with the
trained model (same targets as the main maps) by the explainers side_maps.reliability_explainers
names, and scored by the localisation metrics that score the explainer in the main stage (the
masks do not move). Faithfulness metrics are left out: each costs as many forward passes as the
main scoring of the explainer, and their scores move with the noisy image itself, not only with
the map. Written to `stability.csv` (the score table's columns and `sigma`; `value` is the score of the
noisy image's map; the clean score is the same row of scores.csv), stored and resumed through side_maps.
`metrics.reliability = false` turns it off (and removes the table).
"""
from __future__ import annotations

import numpy as np
import torch

from cxr_xai_bench.models import predict_proba

from ..explainer_factory import explainer_from_config
from .context import Models, RunContext
from .side_maps import (SidePlan, metrics_of, reliability_explainers, side_scores,
                        write_table)
from ..store.code import code_closure
from ..store.files import stage_key

TABLE = "stability.csv"
CATEGORIES = ("localisation",)
SIGMA = 0.01  # noise standard deviation in [0,1] image units
NOISE_STREAM = 0x5EED15  # a fixed entropy word: this noise never shares draws with another seeded stage


def perturbed_images(images: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """(N,1,H,W) images in [0,1] plus N(0, sigma^2) noise, clipped to [0,1]; image i's noise from its
    own generator seeded by (seed, i), so it does not depend on batches or on the other images."""
    out = torch.empty_like(images)
    for i in range(len(images)):
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, NOISE_STREAM, i]).generate_state(1)[0]))
        noise = torch.randn(images[i].shape, generator=g, dtype=torch.float32)
        out[i] = (images[i].cpu() + sigma * noise).clamp(0, 1).to(images.dtype)
    return out


def same_prediction(model: torch.nn.Module, clean: torch.Tensor, noisy: torch.Tensor) -> np.ndarray:
    """(N,) bool: the model predicts the same class for each noisy image as for its clean image."""
    return (predict_proba(model, clean).argmax(1) == predict_proba(model, noisy).argmax(1)).numpy()


def stability_scores(ctx: RunContext, models: Models, test, prior_path: str) -> None:
    """Re-explain the kept noisy images, score their localisation metrics, write TABLE."""
    cfg, frames = ctx.cfg, []
    explainers = reliability_explainers(cfg) if cfg.metrics.reliability else []
    sigma = SIGMA
    noisy = None
    for model_name, (model_key, ckpt) in models.items():
        todo = [(e, metrics_of(ctx, e, CATEGORIES)) for e in explainers if e in cfg.explain.for_model(model_name)]
        todo = [(e, ms) for e, ms in todo if ms]
        if not todo:
            continue
        trained = ctx.state.model(cfg, model_name, str(ckpt), ctx.device)
        if noisy is None:
            noisy = perturbed_images(test.images, sigma, cfg.run.seed)
        keep = same_prediction(trained, test.images, noisy)
        for explainer, metrics in todo:
            _, mkey = ctx.maps_dir(model_name, model_key, explainer)
            # the kept images are keyed too: a prediction that flips on another device gives another set
            key = stage_key("perturbed", mkey, sigma, np.flatnonzero(keep).tolist(),
                            code_closure("benchmark.run.perturbed_maps", "benchmark.run.side_maps"))
            exp = explainer_from_config(cfg, explainer)

            def explain(x, t, context, exp=exp):
                return exp.explain(trained, x, t, **context)
            plan = SidePlan("perturbed", model_name, explainer, key, noisy, keep, explain, metrics)
            frames.append(side_scores(ctx, plan, trained, test, prior_path).assign(sigma=sigma))
    write_table(ctx, TABLE, frames, ["sigma"])
