"""The stage runner: the pipeline's stages (pipeline.PIPELINE: data -> throughput -> context -> train
-> tune -> explain -> score -> reliability -> manifest -> report) run in order under their declared
contracts (stages.run_stage), each stored and resumable.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import tomli_w

from cxr_xai_bench.models.precision import PRECISIONS, resolve_precision

from ..speed.floor import floor_table, format_floor, throughputs
from ..store.files import sweep_temp_files, write_json, write_text
from .config import Config
from .context import RunContext
from .data import load_split
from .data_summary import data_summary, summary_text
from .environment import resolve_device, seed_everything
from .executor import Executor
from .jobs import SCORE_COLUMNS
from .manifest import floor, plan_for
from .missing_roles import resolve_missing_roles
from .pipeline import PIPELINE
from .run_lock import RunLock
from .stages import PHASES, run_stages
from .validate import validate

__all__ = ["STAGES", "RunResult", "Runner", "resolve_device", "validate"]
log = logging.getLogger(__name__)
STAGES = PHASES  # `run --until` choices


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
        precision = resolve_precisions(cfg, device)
        left_out = resolve_missing_roles(cfg)
        self.ctx = RunContext(cfg, Path(run_dir), device, executor, resume, precision=precision, left_out=left_out)

    @property
    def precision(self) -> dict[str, dict[str, str]]:
        return self.ctx.precision

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

    def run(self, until: str = "report") -> RunResult:
        if until not in PHASES:
            raise ValueError(f"until={until!r} not in {PHASES}")
        with RunLock(self.ctx.run_dir):  # one run per folder: a second one refuses here, before any work
            return self._run(until)

    def _run(self, until: str) -> RunResult:
        ctx = self.ctx
        self._start()
        got = run_stages(ctx, PIPELINE, until)
        # the manifest again, now with every stage's time, work and the floor they set
        manifest = {**got["manifest"], "timings_s": ctx.timings, "work": ctx.work, "stages": ctx.stages}
        manifest["floor"] = floor(ctx, got["speed"], got["train"], got["val"], got["test"])
        write_json(ctx.run_dir / "manifest.json", manifest)
        scores = got.get("scores", pd.DataFrame(columns=SCORE_COLUMNS))
        return RunResult(ctx.run_dir, scores, got.get("summary", pd.DataFrame()), got["classifiers"],
                         got.get("leaderboard", ""), ctx.timings, ctx.work, manifest["floor"])
