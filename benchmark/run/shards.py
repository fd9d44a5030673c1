"""Stages explain and score: plan the shard jobs whose output is missing and hand them to the
executor (in this process or on Ray workers); each job writes one piece of the store."""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from .context import Models, RunContext
from .executor import LocalExecutor
from .jobs import ShardJob
from ..store.files import CorruptShardError, map_shard_complete, read_map_shard, remove_map_shard

log = logging.getLogger(__name__)
SHARDED = ("explain", "score")


def _job(ctx: RunContext, stage: str, model: str, ckpt: Path, explainer: str, metric: str, start: int, stop: int,
         maps_path: Path, out_path: Path, prior_path: str) -> ShardJob:
    return ShardJob(stage, ctx.cfg.to_dict(), model, str(ckpt), explainer, metric, start, stop, str(maps_path),
                    str(out_path), prior_path, str(ctx.device), ctx.device.type == "cuda")


def _reusable_map_shard(ctx: RunContext, maps_path: Path, model: str, explainer: str) -> bool:
    """A stored map shard passes its checksum; a corrupted one is removed, logged and explained again."""
    if not (ctx.resume and map_shard_complete(maps_path)):
        return False
    try:
        read_map_shard(maps_path)
        return True
    except CorruptShardError as err:
        log.warning("%s; explaining it again", err)
        ctx.progress(f"corrupt {maps_path.name} of {model}/{explainer}: recomputed")
        remove_map_shard(maps_path)
        return False


def plan(ctx: RunContext, models: Models, n_test: int, prior_path: str, stage: str) -> list[ShardJob]:
    """The shard jobs of `stage` whose output is missing (all of them without resume)."""
    jobs = []
    for model, (model_key, ckpt) in models.items():
        for explainer in ctx.cfg.explain.for_model(model):
            mdir, mkey = ctx.maps_dir(model, model_key, explainer)
            for k, (a, b) in enumerate(ctx.shards(n_test)):
                maps_path = mdir / f"shard-{k:05d}.npy"
                if stage == "explain":
                    if _reusable_map_shard(ctx, maps_path, model, explainer):
                        ctx.work["explain"]["reused"] += 1
                    else:
                        jobs.append(_job(ctx, "explain", model, ckpt, explainer, "", a, b, maps_path, maps_path, prior_path))
                    continue
                for metric in ctx.metrics_for(explainer):
                    out = ctx.scores_dir(model, explainer, metric, mkey) / f"shard-{k:05d}.csv"
                    if ctx.resume and out.exists():
                        ctx.work["score"]["reused"] += 1
                        continue
                    job = _job(ctx, "score", model, ckpt, explainer, metric, a, b, maps_path, out, prior_path)
                    jobs.append(replace(job, metric_params=ctx.metric_params(model, explainer, metric)))
    return jobs


def execute(ctx: RunContext, jobs: list[ShardJob], stage: str) -> None:
    if not jobs:
        return
    executor = ctx.executor or LocalExecutor()
    if ctx.test is not None:
        ctx.state.keep_test_split(ctx.cfg, ctx.test)  # the driver holds the test split: in-process jobs reuse it

    def done(job: ShardJob) -> None:
        ctx.work[stage]["computed"] += 1
        ctx.progress(f"{job.label} done")
        ctx.kills.point(stage)  # test-only (CXR_TEST_KILL_AFTER="explain:N" / "score:N"); a no-op otherwise
    executor.run(jobs, desc=f"{stage} ({executor.name})", on_done=done, state=ctx.state)


def run_sharded(ctx: RunContext, models: Models, n_test: int, prior_path: str, stage: str) -> None:
    """Plan and run one sharded stage (the runner times it and counts its work)."""
    execute(ctx, plan(ctx, models, n_test, prior_path, stage), stage)
