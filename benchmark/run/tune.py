"""Stage tune: IoU/Dice thresholds per model and explainer on validation lesion images (metrics
with threshold = "tuned"), and the in-process explain helper that side stages share."""
from __future__ import annotations

import json
import logging

import numpy as np
import torch

from cxr_xai_bench.datasets import Batch

from ..explainer_factory import explainer_from_config
from ..metrics.segmentation import tune_threshold
from ..metrics.sign import apply_sign
from .context import Models, RunContext, explainer_code
from .data import data_key, explain_context
from .jobs import targets_for
from ..store.code import code_closure
from ..store.files import stage_key, write_json

log = logging.getLogger(__name__)


def explain_here(ctx: RunContext, model: torch.nn.Module, explainer: str, split: Batch, index: torch.Tensor,
                 prior: np.ndarray | None) -> torch.Tensor:
    """Maps (N,H,W) on the CPU of split images `index`, explained in this process (side stages
    that are not sharded: threshold tuning, seed repeatability)."""
    cfg = ctx.cfg
    exp = explainer_from_config(cfg, explainer)
    maps = []
    for i in range(0, len(index), cfg.explain.batch_size):
        idx = index[i:i + cfg.explain.batch_size]
        x = split.images[idx].to(ctx.device)
        context = {k: None if v is None else v.to(ctx.device) for k, v in explain_context(split, idx, prior).items()}
        t = targets_for(cfg.explain.target, split.labels[idx], model, x).to(ctx.device)
        maps.append(exp.explain(model, x, t, **context).cpu())
    return torch.cat(maps)


def tune_thresholds(ctx: RunContext, models: Models, val: Batch, prior: np.ndarray | None) -> None:
    """For metrics with threshold = "tuned" (iou, dice): per model and explainer, the threshold of
    0.2-0.8 with the best mean IoU on up to metrics.tune_images annotated lesion images of the
    validation split (cheXlocalize's tuning), stored in thresholds/ and reused. The maps are read
    through the run's sign rule (metrics.sign), as iou and dice read them."""
    cfg = ctx.cfg
    if not any(cfg.metrics.params.get(m, {}).get("threshold") == "tuned" for m in cfg.metrics.names):
        return
    lesion = (val.has_mask & val.lesion_masks.flatten(1).any(1)).nonzero().flatten()[: cfg.metrics.tune_images]
    if not len(lesion):
        raise ValueError("metrics: threshold = 'tuned' needs validation images with a lesion mask; this split has none")
    masks, has = val.lesion_masks[lesion], val.has_mask[lesion]
    for model_name, (model_key, ckpt) in models.items():
        model = ctx.state.model(ctx.cfg, model_name, ckpt, ctx.device)
        for explainer in cfg.explain.for_model(model_name):
            key = stage_key("tune", model_key, explainer, cfg.explain.params.get(explainer, {}), cfg.explain.target,
                            data_key(cfg, "val"), cfg.metrics.tune_images, f"sign={cfg.metrics.sign}",
                            code_closure(*explainer_code(explainer), "benchmark.metrics.segmentation",
                                         "benchmark.metrics.sign"))
            path = ctx.run_dir / "thresholds" / f"{model_name}-{explainer}-{key}.json"
            if path.exists() and ctx.resume:
                ctx.thresholds[(model_name, explainer)] = json.loads(path.read_text())["threshold"]
                continue
            maps = explain_here(ctx, model, explainer, val, lesion, prior)
            try:
                value: float | str = round(tune_threshold(apply_sign(maps, cfg.metrics.sign), masks, has), 6)
            except ValueError as err:  # e.g. all-zero maps: no IoU is defined at any threshold
                log.warning("%s/%s: %s; using Otsu instead", model_name, explainer, err)
                value = "otsu"
            write_json(path, {"threshold": value, "images": len(lesion)})
            ctx.thresholds[(model_name, explainer)] = value
            ctx.progress(f"tune {model_name}/{explainer} threshold {value}")
