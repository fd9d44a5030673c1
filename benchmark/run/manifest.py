"""What a run's manifest.json holds: versions, commit, seed, device, the split roles, classifiers,
work and timings per stage, each stage's declaration, and the floor (model passes per stage at this
device's measured throughput against the time the stage took)."""
from __future__ import annotations

from dataclasses import asdict

import torch

from cxr_xai_bench.datasets import Batch

from ..speed.floor import floor_table, plan_passes
from .config import Config
from .context import RunContext
from .data import uses_holdout
from .environment import git_commit, versions
from .side_maps import metrics_of, reliability_explainers


def tune_count(cfg: Config, val: Batch) -> int:
    """Validation lesion images the threshold tuning explains (0 when no metric tunes)."""
    if not any(cfg.metrics.params.get(m, {}).get("threshold") == "tuned" for m in cfg.metrics.names):
        return 0
    return min(int((val.has_mask & val.lesion_masks.flatten(1).any(1)).sum()), cfg.metrics.tune_images)


def plan_for(ctx: RunContext, train: Batch, val: Batch, test: Batch) -> dict:
    counts = {"train": _n(train), "val": _n(val), "test": len(test), "tune": tune_count(ctx.cfg, val) if val is not None else 0}
    side = reliability_explainers(ctx.cfg) if ctx.cfg.metrics.reliability else []
    return plan_passes(ctx.cfg, counts, ctx.metrics_for, side, lambda e, c: metrics_of(ctx, e, c))


def _n(batch: Batch | None) -> int:
    return 0 if batch is None else len(batch)


def floor(ctx: RunContext, speed: dict, train: Batch, val: Batch, test: Batch) -> dict:
    reused = {s: w["computed"] == 0 and w["reused"] > 0 for s, w in ctx.work.items()}
    rows = floor_table(plan_for(ctx, train, val, test), speed, ctx.timings, reused)
    return {"throughput": {m: asdict(t) for m, t in speed.items()}, "stages": rows}


def manifest(ctx: RunContext, classifiers: dict, train: Batch, val: Batch, test: Batch) -> dict:
    # which split trained, which selected (best epoch, tuned thresholds) and which was scored: with
    # data.holdout, "train" read the rest of the training split and "select" its held-out fraction
    d = ctx.cfg.data
    held = d.holdout if uses_holdout(ctx.cfg) else None
    roles = {"train": {"split": d.splits["train"], "images": _n(train), "holdout": held, "part": "rest" if held else "all"}
             if train is not None else None,
             "select": {"split": d.splits["val"], "images": _n(val), "holdout": held,
                        "part": "held out" if held else "all", "used_for": ["best epoch", "tuned thresholds"]}
             if val is not None else None,
             "score": {"split": d.splits["test"], "images": len(test), "holdout": None, "part": "all"}}
    return {"versions": versions(), "git_commit": git_commit(), "seed": ctx.cfg.run.seed,
            "device": str(ctx.device), "torch_threads": torch.get_num_threads(),
            "executor": getattr(ctx.executor, "name", "local"), "timings_s": ctx.timings,
            "classifiers": classifiers, "skipped_files": ctx.skipped, "work": ctx.work,
            "stages": ctx.stages, "split_roles": roles, "left_out": ctx.left_out,
            "evaluate_only": train is None,
            "data_counts": {"train": _n(train), "val": _n(val), "test": len(test),
                            "test_pneumonia": int(test.labels.sum()),
                            "test_with_lesion": int(test.lesion_masks.flatten(1).any(1).sum())}}
