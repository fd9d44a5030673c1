"""Side maps for the metric reliability checks: test images explained by another model or on other
inputs than the main explain stage's, stored and scored like the main stages.

Two stages use it: randomised_maps.py (the fully randomised model's maps) and perturbed_maps.py
(maps of slightly noisy inputs). Per (model, explainer) and shard of test images, the maps of the
images a stage keeps are one map shard under `reliability/maps/<model>-<explainer>-<tag>-<key>/`
and each metric's values one CSV under `reliability/scores/<model>-<explainer>-<metric>-<tag>-<key>/`,
keyed by their inputs (the main maps' key, the stage's own parameters, the code) and written
atomically: a killed run resumes, a rerun computes nothing, and a changed metric re-scores without
re-explaining. They live apart from maps/ and scores/, which hold the main stages only (and what
the tests and `benchmark compare` enumerate there). Work is counted in manifest `work.reliability` (the other target's, target_maps.py, in `work.other_target`).

Scoring is jobs.run_score's own loop (scoring.score_images): the same metric functions, always on the
TRAINED model (faithfulness measures how well a map explains the model the benchmark is about,
whichever model made the map), with the same params (a tuned threshold included), per-batch seeds
from the batch's first test image, lung masks for a metric that needs them, and the maps read
back from their stored dtype, as the main scores read theirs. Maps run in this process (like threshold tuning and seed repeatability).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from cxr_xai_bench.explainers import EXPLAINERS

from .. import metrics as metric_registry
from .context import RunContext, metric_code
from . import scoring
from .jobs import targets_for
from .missing_context import job_context
from ..store.code import code_closure
from ..store.files import (CorruptShardError, MapShard, atomic_path, map_shard_complete, read_map_shard,
                    remove_map_shard, stage_key, write_map_shard)

from .scoring import SCORE_COLUMNS

WORK = "reliability"
RANDOMISATION = ("randomisation_ssim", "randomisation_spearman")
# (images, targets, context) -> maps (N,H,W), on the device
ExplainBatch = Callable[[torch.Tensor, torch.Tensor, dict], torch.Tensor]


def reliability_explainers(cfg) -> list[str]:
    """The explainers both checks re-explain: those whose maps depend on the model (a map-only
    baseline's randomised or perturbed map says nothing about a metric) and that some randomisation
    metric scores by `metrics.skip` (by default not LIME: re-explaining it costs minutes on a CPU)."""
    return [e for e in cfg.explain.names if getattr(EXPLAINERS[e], "needs_model", True)
            and any(e not in cfg.metrics.skip.get(m, ()) for m in RANDOMISATION)]


def metrics_of(ctx: RunContext, explainer: str, categories: tuple[str, ...]) -> list[str]:
    """The metrics of `categories` that score `explainer` in the main stage and need no re-explaining."""
    out = []
    for m in ctx.metrics_for(explainer):
        spec = metric_registry.get_metric(m)
        if spec.fn is not None and spec.category in categories and not spec.needs_explainer:
            out.append(m)
    return out


@dataclass
class SidePlan:
    tag: str                 # "randomised" / "perturbed": part of the folder names
    model: str
    explainer: str
    key: str                 # hash of everything the maps depend on
    images: torch.Tensor     # (N,1,H,W) the inputs explained and scored (all test images), CPU
    keep: np.ndarray         # (N,) bool: the images explained and scored
    explain: ExplainBatch
    metrics: list[str]
    # (N,) the classes explained and scored; None: the main maps' targets (explain.target)
    targets: torch.Tensor | None = None
    work: str = WORK         # the manifest's work counter these pieces count into


def clean_targets(ctx: RunContext, trained: torch.nn.Module, test) -> torch.Tensor:
    """The classes the main maps explain (explain.target), from the trained model on the clean images."""
    bs, out = ctx.cfg.explain.batch_size, []
    for i in range(0, len(test), bs):
        x = test.images[i:i + bs].to(ctx.device)
        out.append(targets_for(ctx.cfg.explain.target, test.labels[i:i + bs], trained, x).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def _work(ctx: RunContext, plan: SidePlan) -> dict[str, int]:
    return ctx.work.setdefault(plan.work, {"computed": 0, "reused": 0})


def _stored_maps(ctx: RunContext, path: Path) -> MapShard | None:
    if not (ctx.resume and map_shard_complete(path)):
        return None
    try:
        return read_map_shard(path)
    except CorruptShardError as err:  # as the main explain stage: removed and explained again
        ctx.progress(f"corrupt {path}: recomputed ({err})")
        remove_map_shard(path)
        return None


def _maps(ctx: RunContext, plan: SidePlan, path: Path, index: np.ndarray, targets: torch.Tensor, test,
          prior) -> MapShard:
    shard = _stored_maps(ctx, path)
    if shard is not None:
        _work(ctx, plan)["reused"] += 1
        return shard
    bs, parts = ctx.cfg.explain.batch_size, []
    for i in range(0, len(index), bs):
        idx = torch.as_tensor(index[i:i + bs], dtype=torch.long)
        context = {k: None if v is None else v.to(ctx.device)
                   for k, v in job_context(ctx.cfg, test, idx, prior).items()}
        parts.append(plan.explain(plan.images[idx].to(ctx.device), targets[idx].to(ctx.device), context).cpu().numpy())
    maps = np.concatenate(parts) if parts else np.zeros((0, *plan.images.shape[2:]), np.float32)
    zeros = np.zeros(len(index))
    write_map_shard(path, MapShard(maps, [test.ids[i] for i in index], zeros, zeros), ctx.cfg.run.maps_dtype)
    _work(ctx, plan)["computed"] += 1
    ctx.progress(f"{plan.tag} maps {plan.model}/{plan.explainer} {path.name} done")
    return read_map_shard(path)  # score what is stored, as the main stage does


def _score(ctx: RunContext, plan: SidePlan, metric: str, trained, shard: MapShard, index: np.ndarray,
           targets: torch.Tensor, test, span: tuple[int, int], prior, prior_path: str) -> pd.DataFrame:
    """Rows of `metric` for the images `index` (absolute test positions in the shard `span`), scored by
    the main stage's loop on the TRAINED model, with the targets of the clean images."""
    task = scoring.ScoreTask(ctx.cfg, ctx.device, plan.model, plan.explainer, metric,
                             ctx.metric_params(plan.model, plan.explainer, metric), trained, test, plan.images,
                             index, span, shard, lambda idx, x: targets[idx], prior, prior_path)
    # side tables have always been stored as float64 text (the main scores as float32): kept
    return scoring.score_frame(task, scoring.score_images(task).values.astype(float))


def side_scores(ctx: RunContext, plan: SidePlan, trained: torch.nn.Module, test, prior_path: str) -> pd.DataFrame:
    """Explain (or reuse) and score (or reuse) the kept images of every shard; the long table of
    their values (SCORE_COLUMNS), kept images only, in test order."""
    root = ctx.run_dir / "reliability"
    prior = ctx.state.prior(prior_path)
    targets = plan.targets if plan.targets is not None else clean_targets(ctx, trained, test)
    mdir = root / "maps" / f"{plan.model}-{plan.explainer}-{plan.tag}-{plan.key}"
    code = code_closure("benchmark.run.side_maps")
    frames = []
    for k, (a, b) in enumerate(ctx.shards(len(test))):
        index = np.flatnonzero(plan.keep[a:b]) + a
        shard = None
        for metric in plan.metrics:
            params = ctx.metric_params(plan.model, plan.explainer, metric)
            skey = stage_key(plan.tag, plan.key, metric, params, code_closure(*metric_code(metric)), code,
                             *ctx.metric_precision(metric), *ctx.metric_sign(metric))
            out = root / "scores" / f"{plan.model}-{plan.explainer}-{metric}-{plan.tag}-{skey}" / f"shard-{k:05d}.csv"
            if ctx.resume and out.exists():
                _work(ctx, plan)["reused"] += 1
                frames.append(pd.read_csv(out, dtype={"image_id": str}))
                continue
            if shard is None:
                shard = _maps(ctx, plan, mdir / f"shard-{k:05d}.npy", index, targets, test, prior)
            df = _score(ctx, plan, metric, trained, shard, index, targets, test, (a, b), prior, prior_path)
            scoring.write_scores(out, df)
            _work(ctx, plan)["computed"] += 1
            frames.append(df)
    return pd.concat(frames, ignore_index=True)[SCORE_COLUMNS] if frames else pd.DataFrame(columns=SCORE_COLUMNS)


def write_table(ctx: RunContext, name: str, frames: list[pd.DataFrame], extra: list[str] | None = None) -> None:
    """`name` in the run folder from the stage's frames (SCORE_COLUMNS, then `extra`); removed when the
    stage produced none (turned off, nothing to score), so the report never shows an earlier config's numbers."""
    path = ctx.run_dir / name
    frames = [f for f in frames if len(f)]
    if not frames:
        path.unlink(missing_ok=True)
        return
    with atomic_path(path) as tmp:
        pd.concat(frames, ignore_index=True)[SCORE_COLUMNS + list(extra or [])].to_csv(tmp, index=False)
