"""The run context every stage shares: the config, the run folder, the device and executor, what
the run has counted so far (work, timings, skipped files, tuned thresholds), what it holds loaded
(`state`: models, test split, priors) and its test-only kill points, and the names of the store's pieces (maps and score folders keyed by their inputs)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from cxr_xai_bench.datasets import Batch
from cxr_xai_bench.explainers import EXPLAINERS
from cxr_xai_bench.models.precision import pass_precision

from .. import metrics as metric_registry
from .config import Config
from .data import data_key
from .jobs import WorkerState
from .kill_hooks import KillPoints
from ..store.code import code_closure
from ..store.files import read_map_shard, stage_key

if TYPE_CHECKING:
    from .executor import Executor

# model name -> (its training stage key, its checkpoint path)
Models = dict[str, tuple[str, Path]]

SHARD_STAGES = ("train", "explain", "score")

# A stage's code version is the source of its root modules and of every project module they import
# (store.code.code_closure); the roots are the modules whose functions the stage runs. The shard
# jobs (explain and score) run in benchmark.run.jobs; training runs models.training's loop.


def explainer_code(name: str) -> tuple[str, ...]:
    """Roots of an explain key: the explainer's module and the explain shard job."""
    return ("benchmark.run.jobs", EXPLAINERS[name].__module__)


def metric_code(name: str) -> tuple[str, ...]:
    """Roots of a score key: the metric function's module and the score shard job."""
    fn = metric_registry.get_metric(name).fn
    return ("benchmark.run.jobs",) + ((fn.__module__,) if fn is not None else ())


def train_code(model: str) -> str:
    """Code version of a train key: the training loop, the model's builder module and the seeding."""
    from cxr_xai_bench.models.builders import MODELS
    return code_closure("cxr_xai_bench.models.training", "benchmark.run.environment", MODELS[model].__module__)


@dataclass
class RunContext:
    cfg: Config
    run_dir: Path
    device: torch.device
    executor: "Executor | None" = None
    resume: bool = True
    timings: dict[str, float] = field(default_factory=dict)
    # a stage reused whole keeps the time it took when it was computed (from the last manifest)
    previous_timings: dict[str, float] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)
    work: dict[str, dict[str, int]] = field(default_factory=lambda: {s: {"computed": 0, "reused": 0}
                                                                      for s in SHARD_STAGES})
    thresholds: dict[tuple[str, str], float | str] = field(default_factory=dict)
    test: Batch | None = None
    # this run's loaded models, test split and priors (for in-process jobs and side stages): one per
    # run, never shared with another run in the process
    state: WorkerState = field(default_factory=WorkerState)
    kills: KillPoints = field(default_factory=KillPoints)  # test-only kill points (kill_hooks)
    # the resolved precisions {"asked", "resolved"} (runner.resolve_precisions), for the manifest
    precision: dict = field(default_factory=dict)
    # what a run without a training or selection split left out, one line each (missing_roles)
    left_out: list[str] = field(default_factory=list)
    # stage name -> its declaration, seconds (stages.run_stage), for the manifest
    stages: dict[str, dict] = field(default_factory=dict)

    def progress(self, msg: str) -> None:
        """One line per stage event in progress.log, so a user (and the kill tests) see where a run is."""
        with open(self.run_dir / "progress.log", "a") as fh:
            fh.write(f"{time.strftime('%H:%M:%S')} {msg}\n")
            fh.flush()

    def keep_previous_timing(self, name: str, computed_before: int, stage: str) -> None:
        if self.work[stage]["computed"] == computed_before and name in self.previous_timings:
            self.timings[name] = self.previous_timings[name]

    def shards(self, n: int) -> list[tuple[int, int]]:
        s = self.cfg.run.shard_size
        return [(i, min(i + s, n)) for i in range(0, n, s)]

    def metrics_for(self, explainer: str) -> list[str]:
        """The sharded metrics that score `explainer` (seed_repeatability has its own stage)."""
        skip = self.cfg.metrics.skip
        return [m for m in self.cfg.metrics.names if explainer not in skip.get(m, ()) and m != "seed_repeatability"]

    def maps_dir(self, model: str, model_key: str, explainer: str) -> tuple[Path, str]:
        cfg = self.cfg
        key = stage_key("explain", model_key, explainer, cfg.explain.params.get(explainer, {}), cfg.explain.target,
                        cfg.explain.batch_size, data_key(cfg, "test"), cfg.run.seed, cfg.run.shard_size,
                        cfg.run.maps_dtype, code_closure(*explainer_code(explainer)), *self.explainer_precision(explainer))
        return self.run_dir / "maps" / f"{model}-{explainer}-{key}", key

    def metric_params(self, model: str, explainer: str, metric: str) -> dict:
        params = self.cfg.metrics.params.get(metric, {})
        if params.get("threshold") == "tuned":
            params = {**params, "threshold": self.thresholds[(model, explainer)]}
        return params

    def explainer_precision(self, explainer: str) -> tuple[str, ...]:
        """Part of a maps key: the precision its model passes ran at when not fp32 (so fp32 keys stay
        those of runs before the setting existed)."""
        p = pass_precision(getattr(EXPLAINERS[explainer], "forward_only", False), self.cfg.run.forward_precision,
                           self.device)
        return () if p == "fp32" else (p,)

    def metric_precision(self, metric: str) -> tuple[str, ...]:
        """Part of a score key, as explainer_precision."""
        p = metric_registry.get_metric(metric).precision(self.cfg.run.forward_precision, self.device)
        return () if p == "fp32" else (p,)

    def metric_sign(self, metric: str) -> tuple[str, ...]:
        """Part of a score key: the sign rule (metrics.sign) of a metric that reads it (localisation),
        so changing the rule re-scores those metrics and no other."""
        return (f"sign={self.cfg.metrics.sign}",) if metric_registry.get_metric(metric).reads_sign else ()

    def scores_dir(self, model: str, explainer: str, metric: str, maps_key: str) -> Path:
        key = stage_key("score", maps_key, metric, self.metric_params(model, explainer, metric),
                        code_closure(*metric_code(metric)), *self.metric_precision(metric), *self.metric_sign(metric))
        return self.run_dir / "scores" / f"{model}-{explainer}-{metric}-{key}"

    def load_maps(self, model: str, model_key: str, explainer: str, n_test: int) -> np.ndarray:
        mdir, _ = self.maps_dir(model, model_key, explainer)
        return np.concatenate([read_map_shard(mdir / f"shard-{k:05d}.npy").maps for k in range(len(self.shards(n_test)))])
