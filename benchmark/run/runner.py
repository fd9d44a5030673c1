"""The stage runner: data -> train -> tune -> explain -> score -> repeat -> report, each stage in
its own module, stored and resumable.

Every stage output lives under the run folder, named by a hash of its inputs (config slice,
upstream keys and the source of the code that computes it), written atomically, and skipped when
present: a killed run resumes where it stopped, and a changed metric re-scores without
re-explaining. Explaining and scoring are split into shards of test images, handed as jobs to an
executor (in-process, or Ray across machines) that writes each shard's piece of the store.
"""
from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import tomli_w

from cxr_xai_bench.datasets import Batch
from cxr_xai_bench.models.precision import PRECISIONS, resolve_precision

from ..report import stats
from ..speed.floor import floor_table, format_floor, plan_passes, throughputs
from . import report_stage
from .config import Config
from .context import Models, RunContext
from .context_gaps import context_gaps
from .data import data_key, load_split, train_prior
from .data_summary import data_summary, show as show_data, summary_text, write_preview
from .environment import git_commit, resolve_device, seed_everything, versions
from .executor import Executor
from .gather import gather_scores, write_curves_and_sanity
from .jobs import SCORE_COLUMNS
from .perturbed_maps import stability_scores
from .randomised_maps import randomised_scores
from .repeat import seed_repeatability
from .run_lock import RunLock
from .shards import run_sharded
from .side_maps import metrics_of, reliability_explainers
from ..store.files import atomic_path, stage_key, sweep_temp_files, write_json, write_text
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
    floor: dict[str, Any] = field(default_factory=dict)  # throughput and per-stage floor (speed.floor)


def _store_prior(ctx: RunContext, train: Batch) -> str:
    """The training lesion prior (for mask_prior) as a stored .npy path, "" when the data has none;
    kept when stored and resuming, written anew without resume (--no-resume)."""
    prior = train_prior(train)
    if prior is None:
        return ""
    p = ctx.run_dir / "context" / f"train-prior-{stage_key(data_key(ctx.cfg, 'train'))}.npy"
    if not (ctx.resume and p.exists()):
        with atomic_path(p) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, prior)
    return str(p)


def resolve_precisions(cfg: Config, device: torch.device) -> dict[str, dict[str, str]]:
    """Every "auto" precision (train.precision, models.train.<m>.precision, run.forward_precision) resolved
    once, here in the driver, for `device`, written into `cfg` (a Runner's own copy): the shard jobs, Ray
    workers and worker-trained models get the resolved value and never resolve again on their own CPU
    (an AMX worker would run bf16 where the driver's keys say fp32). The train key holds the resolved
    train precision, the maps and score keys the resolved pass precision where it is not fp32; the
    manifest records both {"asked", "resolved"}. A value validate() will refuse is left for it to name."""
    asked = {"run.forward_precision": cfg.run.forward_precision, "train.precision": cfg.train.precision,
             **{f"models.train.{m}.precision": t["precision"] for m, t in cfg.models.train.items() if "precision" in t}}

    def resolved(p):
        return resolve_precision(p, device) if p in PRECISIONS else p
    cfg.run.forward_precision = resolved(cfg.run.forward_precision)
    cfg.train.precision = resolved(cfg.train.precision)
    for t in cfg.models.train.values():
        if "precision" in t:
            t["precision"] = resolved(t["precision"])
    got = {"run.forward_precision": cfg.run.forward_precision, "train.precision": cfg.train.precision,
           **{f"models.train.{m}.precision": t["precision"] for m, t in cfg.models.train.items() if "precision" in t}}
    return {"asked": asked, "resolved": got}


def tune_count(cfg: Config, val: Batch) -> int:
    """Validation lesion images the threshold tuning explains (0 when no metric tunes)."""
    if not any(cfg.metrics.params.get(m, {}).get("threshold") == "tuned" for m in cfg.metrics.names):
        return 0
    return min(int((val.has_mask & val.lesion_masks.flatten(1).any(1)).sum()), cfg.metrics.tune_images)


def plan_for(ctx: RunContext, train: Batch, val: Batch, test: Batch) -> dict:
    counts = {"train": len(train), "val": len(val), "test": len(test), "tune": tune_count(ctx.cfg, val)}
    side = reliability_explainers(ctx.cfg) if ctx.cfg.metrics.reliability else []
    return plan_passes(ctx.cfg, counts, ctx.metrics_for, side, lambda e, c: metrics_of(ctx, e, c))


def _floor(ctx: RunContext, speed: dict, train: Batch, val: Batch, test: Batch) -> dict:
    reused = {s: w["computed"] == 0 and w["reused"] > 0 for s, w in ctx.work.items()}
    rows = floor_table(plan_for(ctx, train, val, test), speed, ctx.timings, reused)
    return {"throughput": {m: asdict(t) for m, t in speed.items()}, "stages": rows}


def _manifest(ctx: RunContext, classifiers: dict, train: Batch, val: Batch, test: Batch) -> dict:
    from .data import uses_holdout
    # which split trained, which selected (best epoch, tuned thresholds) and which was scored: with
    # data.holdout, "train" read the rest of the training split and "select" its held-out fraction
    d = ctx.cfg.data
    held = d.holdout if uses_holdout(ctx.cfg) else None
    roles = {"train": {"split": d.splits["train"], "images": len(train), "holdout": held, "part": "rest" if held else "all"},
             "select": {"split": d.splits["val"], "images": len(val), "holdout": held,
                        "part": "held out" if held else "all", "used_for": ["best epoch", "tuned thresholds"]},
             "score": {"split": d.splits["test"], "images": len(test), "holdout": None, "part": "all"}}
    return {"versions": versions(), "git_commit": git_commit(), "seed": ctx.cfg.run.seed,
            "device": str(ctx.device), "torch_threads": torch.get_num_threads(),
            "executor": getattr(ctx.executor, "name", "local"), "timings_s": ctx.timings,
            "classifiers": classifiers, "skipped_files": ctx.skipped, "work": ctx.work,
            "split_roles": roles,
            "data_counts": {"train": len(train), "val": len(val), "test": len(test),
                            "test_pneumonia": int(test.labels.sum()),
                            "test_with_lesion": int(test.lesion_masks.flatten(1).any(1).sum())}}


def plan_text(cfg: Config, device: torch.device) -> str:
    """`run --plan`: the resolved config and the work it plans (model passes per stage and the floor
    they set at this device's measured throughput), before any training; writes nothing."""
    validate(cfg)
    ctx = RunContext(cfg, Path("."), device)
    train, val, test = (load_split(cfg, role, ctx.skipped) for role in ("train", "val", "test"))
    speed = throughputs(cfg, device)
    rows = floor_table(plan_for(ctx, train, val, test), speed, {})
    total = sum(r["floor_s"] for r in rows)
    loaded = data_summary(cfg.data.dataset, cfg.data.splits, {"train": train, "val": val, "test": test}, ctx.skipped)
    return "\n".join([tomli_w.dumps(cfg.to_dict()), summary_text(loaded), f"Images: train {len(train)}, select {len(val)}, score {len(test)}. "
                      f"Work planned (nothing stored is assumed; a resumed run does less):", format_floor(rows, speed),
                      f"Floor of the whole run: {total:.0f} s of model passes on {device}."])


class Runner:
    """Runs one config in one run folder; `run(until)` stops after the named stage."""

    def __init__(self, cfg: Config, run_dir: Path, device: torch.device, executor: Executor | None = None,
                 resume: bool = True):
        self.asked_config = tomli_w.dumps(cfg.to_dict())  # config.toml: the config as asked ("auto" stays)
        cfg = copy.deepcopy(cfg)
        self.precision = resolve_precisions(cfg, device)
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
        write_text(ctx.run_dir / "config.toml", self.asked_config)
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
        with RunLock(self.ctx.run_dir):  # one run per folder: a second one refuses here, before any work
            return self._run(until)

    def _run(self, until: str) -> RunResult:
        ctx, cfg = self.ctx, self.ctx.cfg
        self._start()
        t0 = time.perf_counter()
        train, val, test = (load_split(cfg, role, ctx.skipped) for role in ("train", "val", "test"))
        ctx.test = test
        loaded = data_summary(cfg.data.dataset, cfg.data.splits, {"train": train, "val": val, "test": test}, ctx.skipped)
        show_data(loaded)
        write_preview(ctx.run_dir, test)  # the report's preview figure reads it from the run folder
        ctx.timings["data"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        speed = throughputs(cfg, ctx.device, ctx.run_dir / "context", ctx.resume)  # stored: a resumed run does not measure again
        ctx.timings["throughput"] = time.perf_counter() - t0
        prior_path = _store_prior(ctx, train)
        check_context(cfg, test, prior_path)  # before any training: every explainer gets what it needs
        gaps = context_gaps(cfg, test, prior_path)
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
            randomised_scores(ctx, models, test, prior_path)  # metric reliability: randomised_scores.csv
            stability_scores(ctx, models, test, prior_path)  # and stability.csv (metrics.reliability)
        manifest = _manifest(ctx, classifiers, train, val, test)
        manifest["context_gaps"] = gaps
        manifest["precision"] = self.precision
        manifest["data_summary"] = loaded
        manifest["floor"] = floor = _floor(ctx, speed, train, val, test)
        write_json(ctx.run_dir / "manifest.json", manifest)
        if until == "report":
            t0 = time.perf_counter()
            leaderboard = report_stage.report(ctx, manifest, scores, test, models)
            summary = stats.summarise(scores, cfg.report.bootstrap, cfg.report.confidence, cfg.run.seed, gaps)
            ctx.timings["report"] = time.perf_counter() - t0
            manifest["floor"] = floor = _floor(ctx, speed, train, val, test)
            write_json(ctx.run_dir / "manifest.json", {**manifest, "timings_s": ctx.timings})
        return RunResult(ctx.run_dir, scores, summary, classifiers, leaderboard, ctx.timings, ctx.work, floor)
