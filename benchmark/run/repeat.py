"""Stage repeat: metric seed_repeatability. Each model trained again per run.repeat_seeds seed, its
test maps compared with the main seed's by Spearman rank correlation, stored per seed
(`seed-<s>.csv`) and reused like every other stage. The score table gets one value per image: the
mean over the repeat seeds (an image scored once per seed would count as several images)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from cxr_xai_bench.datasets import Batch

from ..metrics.sanity import map_similarity
from .context import Models, RunContext
from .missing_context import not_applicable
from ..store.code import code_closure
from ..store.files import as_stored, atomic_path, stage_key
from .train import train_or_load
from .tune import explain_here


def _repeat_frame(ctx: RunContext, test: Batch, model: str, explainer: str, value: np.ndarray) -> pd.DataFrame:
    cfg = ctx.cfg
    return pd.DataFrame({"dataset": cfg.data.dataset, "split": cfg.data.splits["test"], "model": model,
                         "explainer": explainer, "metric": "seed_repeatability", "image_id": test.ids, "value": value})


def mean_over_seeds(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One row per (dataset, split, model, explainer, metric, image id) of per-seed score frames: the
    mean of its finite values over the seeds (NaN when none is), in the first frame's image order."""
    df = pd.concat(frames, ignore_index=True)
    keys = ["dataset", "split", "model", "explainer", "metric", "image_id"]
    return df.groupby(keys, sort=False, dropna=False)["value"].mean().reset_index()[keys + ["value"]]


def seed_repeatability(ctx: RunContext, models: Models, train: Batch, val: Batch, test: Batch,
                       prior_path: str) -> list[pd.DataFrame]:
    """Per-image seed_repeatability rows, one per image (mean over run.repeat_seeds) of each model and
    explainer (higher = the explanation does not hang on the training seed)."""
    cfg, per_seed = ctx.cfg, {}
    if not cfg.run.repeat_seeds or "seed_repeatability" not in cfg.metrics.names:
        return []
    prior = np.load(prior_path) if prior_path else None
    for seed in cfg.run.repeat_seeds:
        for name, (model_key, _) in models.items():
            model, other_key, _, _ = train_or_load(ctx, name, train, val, seed=seed)
            for explainer in cfg.explain.for_model(name):
                if explainer in cfg.metrics.skip.get("seed_repeatability", ()):
                    continue
                _, mkey = ctx.maps_dir(name, model_key, explainer)
                key = stage_key("repeat", mkey, other_key, code_closure("benchmark.metrics.sanity", "benchmark.run.repeat"))
                path = ctx.run_dir / "scores" / f"{name}-{explainer}-seed_repeatability-{key}" / f"seed-{seed}.csv"
                frames = per_seed.setdefault((name, explainer), [])
                if path.exists() and ctx.resume:
                    frames.append(pd.read_csv(path, dtype={"image_id": str}))
                    ctx.work["score"]["reused"] += 1
                    continue
                maps = explain_here(ctx, model, explainer, test, torch.arange(len(test)), prior)
                main = torch.from_numpy(ctx.load_maps(name, model_key, explainer, len(test)))
                # compare like with like: the main maps were read back from their stored dtype
                other = torch.from_numpy(as_stored(maps.numpy(), cfg.run.maps_dtype))
                value = map_similarity(main, other, "spearman").float().numpy()
                value[not_applicable(explainer, test)] = np.nan  # the oracle without a lesion: not scored
                df = _repeat_frame(ctx, test, name, explainer, value)
                with atomic_path(path) as tmp:
                    df.to_csv(tmp, index=False)
                ctx.work["score"]["computed"] += 1
                ctx.progress(f"seed_repeatability {name}/{explainer} seed {seed} done")
                frames.append(df)
    return [mean_over_seeds(frames) for frames in per_seed.values()]
