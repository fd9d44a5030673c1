"""The stage runner: data -> train -> tune -> explain -> score -> repeat -> report, each stage in
its own module, stored and resumable.

Every stage output lives under the run folder, named by a hash of its inputs (config slice,
upstream keys and the source of the code that computes it), written atomically, and skipped when
present: a killed run resumes where it stopped, and a changed metric re-scores without
re-explaining. Explaining and scoring are split into shards of test images, handed as jobs to an
executor (in-process, or Ray across machines) that writes each shard's piece of the store.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import tomli_w

from datasets import Batch

from ..report import stats
from . import report_stage
from .config import Config
from .context import Models, RunContext
from .data import data_key, load_split, train_prior
from .environment import git_commit, resolve_device, seed_everything, versions
from .executor import Executor
from .gather import gather_scores, write_curves_and_sanity
from .jobs import SCORE_COLUMNS
from .repeat import seed_repeatability
from .shards import run_sharded
from .store import atomic_path, stage_key, sweep_temp_files, write_json, write_text
from .train import train_models
from .tune import tune_thresholds
from .validate import check_context, validate

__all__ = ["STAGES", "RunResult", "Runner", "resolve_device", "validate"]
log = logging.getLogger(__name__)
STAGES = ("train", "explain", "score", "report")


@dataclass
class RunResult:
    run_dir: Path
    scores: pd.DataFrame
    summary: pd.DataFrame
    classifiers: dict[str, dict[str, Any]]
    leaderboard: str
    timings: dict[str, float] = field(default_factory=dict)
    work: dict[str, dict[str, int]] = field(default_factory=dict)  # stage -> computed / reused counts


def _store_prior(ctx: RunContext, train: Batch) -> str:
    """The training lesion prior (for mask_prior) as a stored .npy path, "" when the data has none."""
    prior = train_prior(train)
    if prior is None:
        return ""
    p = ctx.run_dir / "context" / f"train-prior-{stage_key(data_key(ctx.cfg, 'train'))}.npy"
    if not p.exists():
        with atomic_path(p) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, prior)
    return str(p)


def _manifest(ctx: RunContext, classifiers: dict, train: Batch, val: Batch, test: Batch) -> dict:
    return {"versions": versions(), "git_commit": git_commit(), "seed": ctx.cfg.run.seed,
            "device": str(ctx.device), "torch_threads": torch.get_num_threads(),
            "executor": getattr(ctx.executor, "name", "local"), "timings_s": ctx.timings,
            "classifiers": classifiers, "skipped_files": ctx.skipped, "work": ctx.work,
            "data_counts": {"train": len(train), "val": len(val), "test": len(test),
                            "test_pneumonia": int(test.labels.sum()),
                            "test_with_lesion": int(test.lesion_masks.flatten(1).any(1).sum())}}


class Runner:
    """Runs one config in one run folder; `run(until)` stops after the named stage."""

    def __init__(self, cfg: Config, run_dir: Path, device: torch.device, executor: Executor | None = None,
                 resume: bool = True):
        self.ctx = RunContext(cfg, Path(run_dir), device, executor, resume)

    def _metrics_for(self, explainer: str) -> list[str]:
        return self.ctx.metrics_for(explainer)

    def _start(self) -> None:
        ctx = self.ctx
        validate(ctx.cfg)
        ctx.run_dir.mkdir(parents=True, exist_ok=True)
        swept = sweep_temp_files(ctx.run_dir)
        if swept:
            log.info("removed %d temp files left by an interrupted run", swept)
        write_text(ctx.run_dir / "config.toml", tomli_w.dumps(ctx.cfg.to_dict()))
        manifest = ctx.run_dir / "manifest.json"
        if ctx.resume and manifest.exists():
            ctx.previous_timings = json.loads(manifest.read_text()).get("timings_s", {})
        seed_everything(ctx.cfg.run.seed, ctx.cfg.run.deterministic)

    def _score_table(self, models: Models, train: Batch, val: Batch, test: Batch, prior_path: str) -> pd.DataFrame:
        ctx = self.ctx
        scores = gather_scores(ctx, models, len(test))
        repeat = seed_repeatability(ctx, models, train, val, test, prior_path)
        if repeat:
            scores = pd.concat([scores, *repeat], ignore_index=True)[SCORE_COLUMNS]
        with atomic_path(ctx.run_dir / "scores.csv") as tmp:
            scores.to_csv(tmp, index=False)
        write_curves_and_sanity(ctx, models, len(test))
        return scores

    def run(self, until: str = "report") -> RunResult:
        if until not in STAGES:
            raise ValueError(f"until={until!r} not in {STAGES}")
        ctx, cfg = self.ctx, self.ctx.cfg
        self._start()
        t0 = time.perf_counter()
        train, val, test = (load_split(cfg, role, ctx.skipped) for role in ("train", "val", "test"))
        ctx.test = test
        ctx.timings["data"] = time.perf_counter() - t0
        prior_path = _store_prior(ctx, train)
        check_context(cfg, test, prior_path)  # before any training: every explainer gets what it needs
        models, classifiers = train_models(ctx, train, val, test)
        scores = pd.DataFrame(columns=SCORE_COLUMNS)
        summary, leaderboard = pd.DataFrame(), ""
        if until in ("score", "report"):
            tune_thresholds(ctx, models, val, np.load(prior_path) if prior_path else None)
        if until != "train":
            run_sharded(ctx, models, len(test), prior_path, "explain")
        if until in ("score", "report"):
            run_sharded(ctx, models, len(test), prior_path, "score")
            scores = self._score_table(models, train, val, test, prior_path)
        manifest = _manifest(ctx, classifiers, train, val, test)
        write_json(ctx.run_dir / "manifest.json", manifest)
        if until == "report":
            t0 = time.perf_counter()
            leaderboard = report_stage.report(ctx, manifest, scores, test, models)
            summary = stats.summarise(scores, cfg.report.bootstrap, cfg.report.confidence, cfg.run.seed)
            ctx.timings["report"] = time.perf_counter() - t0
            write_json(ctx.run_dir / "manifest.json", {**manifest, "timings_s": ctx.timings})
        return RunResult(ctx.run_dir, scores, summary, classifiers, leaderboard, ctx.timings, ctx.work)
