"""After scoring: the stored score shards gathered into one long table, and the per-image curves
the metrics handed back summarised into curves.csv and sanity.csv."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..report.artifacts import (curve_ends_frame, summarise_curves, summarise_sanity, write_curve_ends, write_curves,
                                write_sanity)
from .context import Models, RunContext
from .jobs import SCORE_COLUMNS, aux_path
from .missing_context import not_applicable


def gather_scores(ctx: RunContext, models: Models, n_test: int) -> pd.DataFrame:
    frames = []
    for model, (model_key, _) in models.items():
        for explainer in ctx.cfg.explain.for_model(model):
            _, mkey = ctx.maps_dir(model, model_key, explainer)
            for metric in ctx.metrics_for(explainer):
                sdir = ctx.scores_dir(model, explainer, metric, mkey)
                for k in range(len(ctx.shards(n_test))):
                    frames.append(pd.read_csv(sdir / f"shard-{k:05d}.csv", dtype={"image_id": str}))
    return pd.concat(frames, ignore_index=True)[SCORE_COLUMNS]


def _aux_parts(ctx: RunContext, model: str, explainer: str, metric: str, mkey: str, n_test: int) -> list[dict] | None:
    sdir = ctx.scores_dir(model, explainer, metric, mkey)
    parts = [aux_path(sdir / f"shard-{k:05d}.csv") for k in range(len(ctx.shards(n_test)))]
    if not all(p.exists() for p in parts):
        return None
    loaded = []
    for p in parts:
        with np.load(p, allow_pickle=False) as z:
            loaded.append({k: z[k] for k in z.files})
    return loaded if all("curve" in z for z in loaded) else None


def _shard_ids(ctx: RunContext, model: str, explainer: str, metric: str, mkey: str, n_test: int) -> list[str]:
    """The image ids of a metric's score shards in their order (the order of the aux curves' rows)."""
    sdir = ctx.scores_dir(model, explainer, metric, mkey)
    return [i for k in range(len(ctx.shards(n_test)))
            for i in pd.read_csv(sdir / f"shard-{k:05d}.csv", dtype={"image_id": str}, usecols=["image_id"])["image_id"]]


def write_curves_and_sanity(ctx: RunContext, models: Models, n_test: int) -> None:
    """curves.csv, curve_ends.csv (each image's first and last point: the report's headroom check) and
    sanity.csv from the per-image curves the metrics handed back beside their scores."""
    cfg = ctx.cfg
    curves, sanity, ends = [], [], []
    for model, (model_key, _) in models.items():
        for explainer in cfg.explain.for_model(model):
            _, mkey = ctx.maps_dir(model, model_key, explainer)
            for metric in ctx.metrics_for(explainer):
                loaded = _aux_parts(ctx, model, explainer, metric, mkey, n_test)
                if loaded is None:
                    continue
                curve = np.concatenate([z["curve"] for z in loaded])
                ids = _shard_ids(ctx, model, explainer, metric, mkey, n_test)
                if ctx.test is not None:  # the oracle's curves on images without a lesion: not applicable, left out
                    keep = ~not_applicable(explainer, ctx.test)
                    curve, ids = curve[keep], [i for i, k in zip(ids, keep) if k]
                where = (cfg.data.dataset, cfg.data.splits["test"], model, explainer, metric)
                if "layers" in loaded[0]:
                    sanity.append(summarise_sanity(*where, curve, [str(x) for x in loaded[0]["layers"]]))
                elif "fraction" in loaded[0]:
                    curves.append(summarise_curves(*where, curve, loaded[0]["fraction"], cfg.report.bootstrap,
                                                   cfg.report.confidence, cfg.run.seed))
                    ends.append(curve_ends_frame(*where, ids, curve))
    if curves:
        write_curves(ctx.run_dir / "curves.csv", curves)
        write_curve_ends(ctx.run_dir / "curve_ends.csv", ends)
    if sanity:
        write_sanity(ctx.run_dir / "sanity.csv", sanity)
