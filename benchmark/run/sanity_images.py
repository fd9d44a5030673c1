"""The sanity verdict's per-image inputs, `sanity_images.csv`, from what the randomisation metrics
handed back beside their score shards (metrics/sanity.py: the cascade curve, the null similarity to
another image's map and the degenerate-map flags; stored by scoring as `<shard>.csv.aux.npz`).

No model pass: the values were computed while scoring. A (model, explainer, metric) whose stored
pieces lack them (scored by an older version of the metric) has no rows, and the report says the
verdict was not judged rather than judging it from the stage means.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..report.artifacts import sanity_image_rows, write_sanity_images
from .context import Models, RunContext
from .jobs import aux_path

log = logging.getLogger(__name__)

TABLE = "sanity_images.csv"
RANDOMISATION = ("randomisation_ssim", "randomisation_spearman")


def _pieces(ctx: RunContext, model: str, explainer: str, metric: str, mkey: str, n_test: int):
    """(image ids, curve, null, degenerate) joined over the shards, or None when a piece lacks them."""
    sdir = ctx.scores_dir(model, explainer, metric, mkey)
    ids, parts = [], []
    for k in range(len(ctx.shards(n_test))):
        path = sdir / f"shard-{k:05d}.csv"
        aux = aux_path(path)
        if not (path.exists() and aux.exists()):
            return None
        with np.load(aux, allow_pickle=False) as z:
            if not {"curve", "null", "degenerate"} <= set(z.files):
                return None
            part = {k: z[k] for k in ("curve", "null", "degenerate")}
        shard_ids = pd.read_csv(path, dtype={"image_id": str})["image_id"].tolist()
        if len(shard_ids) != len(part["curve"]):
            log.warning("sanity values of %s/%s/%s shard %d: %d values for %d images; left out",
                        model, explainer, metric, k, len(part["curve"]), len(shard_ids))
            return None
        ids += shard_ids
        parts.append(part)
    return ids, *(np.concatenate([p[k] for p in parts]) for k in ("curve", "null", "degenerate"))


def write_sanity_image_table(ctx: RunContext, models: Models, n_test: int) -> None:
    """sanity_images.csv: one row per (model, explainer, randomisation metric, image) scored."""
    cfg, frames = ctx.cfg, []
    where = (cfg.data.dataset, cfg.data.splits["test"])
    for model, (model_key, _) in models.items():
        for explainer in cfg.explain.for_model(model):
            metrics = [m for m in ctx.metrics_for(explainer) if m in RANDOMISATION]
            if not metrics:
                continue
            _, mkey = ctx.maps_dir(model, model_key, explainer)
            for metric in metrics:
                got = _pieces(ctx, model, explainer, metric, mkey, n_test)
                if got is not None:
                    frames.append(sanity_image_rows(*where, model, explainer, metric, *got))
    write_sanity_images(ctx.run_dir / TABLE, frames)
