"""Shard jobs: explain or score one contiguous slice of test images for one (model, explainer[, metric]).

A job is a small picklable record; `run_job` does its work in whatever process runs it (this one
for the in-process executor, a Ray worker for the distributed one), loading the test split, the
checkpoint and the dataset context once per process and reusing them for every later shard. Each
job writes exactly one piece of the store atomically, so running a job twice is harmless.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch

from cxr_xai_bench.datasets import Batch
from cxr_xai_bench.explainers import build_explainer
from cxr_xai_bench.models import build_model, load_checkpoint, place_model, predict_proba
from cxr_xai_bench.models.precision import autocast, pass_precision

from .. import metrics as metric_registry
from .config import Config, config_from_dict
from .data import data_key, load_split
from .kill_hooks import kill_in_job
from .missing_context import job_context, nan_where_missing
from .store import MapShard, atomic_path, read_map_shard, stage_key, write_map_shard

log = logging.getLogger(__name__)
SCORE_COLUMNS = ["dataset", "split", "model", "explainer", "metric", "image_id", "value"]


@dataclass(frozen=True)
class ShardJob:
    stage: str             # "explain" or "score"
    config: dict           # Config.to_dict(): a worker rebuilds everything it needs from it
    model: str
    checkpoint: str        # trained weights of `model`
    explainer: str
    metric: str            # "" for explain jobs
    start: int             # test images [start, stop)
    stop: int
    maps_path: str         # the map shard: written by explain, read by score
    out_path: str          # the one file this job writes (complete once it exists)
    prior_path: str        # training lesion prior (.npy) for the mask_prior baseline; "" when none
    device: str
    uses_gpu: bool
    metric_params: dict | None = None  # replaces the config's params of `metric` (a tuned threshold)

    @property
    def label(self) -> str:
        what = f"{self.model}/{self.explainer}" + (f"/{self.metric}" if self.metric else "")
        return f"{self.stage} {what} [{self.start}:{self.stop}]"


class WorkerState:
    """What one process loads once and reuses across shards: test splits, models, priors."""

    def __init__(self) -> None:
        self.tests: dict[str, Batch] = {}
        self.models: dict[tuple[str, str], torch.nn.Module] = {}
        self.priors: dict[str, np.ndarray | None] = {}

    def test_split(self, cfg: Config) -> Batch:
        key = stage_key(data_key(cfg, "test"))
        if key not in self.tests:
            self.tests[key] = load_split(cfg, "test")
        return self.tests[key]

    def model(self, cfg: Config, name: str, checkpoint: str, device: torch.device) -> torch.nn.Module:
        key = (checkpoint, str(device))
        if key not in self.models:
            model = build_model(name, **cfg.models.params.get(name, {}))
            load_checkpoint(model, checkpoint)
            self.models[key] = place_model(model, device).eval()
        return self.models[key]

    def prior(self, path: str) -> np.ndarray | None:
        if path not in self.priors:
            self.priors[path] = np.load(path) if path else None
        return self.priors[path]


STATE = WorkerState()


def targets_for(kind: str, labels: torch.Tensor, model: torch.nn.Module | None = None,
                images: torch.Tensor | None = None) -> torch.Tensor:
    """The class each map explains: the label, the model's prediction, or always pneumonia."""
    if kind == "label":
        return labels.clone()
    if kind == "predicted":
        return predict_proba(model, images).argmax(1)
    if kind == "pneumonia":
        return torch.ones_like(labels)
    raise ValueError(f"explain.target {kind!r} must be 'label', 'predicted' or 'pneumonia'")


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextlib.contextmanager
def peak_memory(device: torch.device) -> Iterator[dict]:
    """Peak memory the block added, in MiB: CUDA allocator peak on a GPU, sampled RSS on the CPU."""
    out = {"mb": 0.0}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield out
        torch.cuda.synchronize(device)
        out["mb"] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        return
    base, peak, stop = _rss_mb(), [0.0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_mb())
            stop.wait(0.002)
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        yield out
    finally:
        stop.set()
        t.join()
        out["mb"] = max(0.0, max(peak[0], _rss_mb()) - base)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_explain(job: ShardJob, state: WorkerState = STATE) -> str:
    cfg, device = config_from_dict(job.config), torch.device(job.device)
    test = state.test_split(cfg)
    model = state.model(cfg, job.model, job.checkpoint, device)
    exp = build_explainer(job.explainer, seed=cfg.run.seed, **cfg.explain.params.get(job.explainer, {}))
    prior = state.prior(job.prior_path)
    bs = cfg.explain.batch_size
    maps, seconds, memory = [], [], []
    for i in range(job.start, job.stop, bs):
        sl = slice(i, min(i + bs, job.stop))
        x = test.images[sl].to(device)
        targets = targets_for(cfg.explain.target, test.labels[sl], model, x).to(device)
        context = {k: None if v is None else v.to(device) for k, v in job_context(cfg, test, sl, prior).items()}
        with peak_memory(device) as mem:
            _sync(device)
            t0 = time.perf_counter()
            try:
                with autocast(pass_precision(getattr(exp, "forward_only", False), cfg.run.forward_precision, device), device):
                    m = exp.explain(model, x, targets, **context)
            except FloatingPointError as err:  # a NaN / inf map is never stored: name what produced it
                raise RuntimeError(f"{job.label}: {err} of the batch of test images {list(test.ids[sl])}; no "
                                   f"map of this shard was stored, and the shards finished so far are kept") from err
            _sync(device)
            dt = time.perf_counter() - t0
        maps.append(m.cpu().numpy())
        seconds.extend([dt / len(x)] * len(x))
        memory.extend([mem["mb"]] * len(x))
    kill_in_job(job)
    write_map_shard(job.out_path, MapShard(np.concatenate(maps), list(test.ids[job.start:job.stop]),
                                           np.asarray(seconds), np.asarray(memory)), cfg.run.maps_dtype)
    return job.out_path


RUNNER_MEASURED = {"seconds_per_image": "seconds", "peak_memory_mb": "peak_memory_mb"}


def _batch_seed(spec, params: dict, run_seed: int, first_image: int) -> dict:
    """Metric params with a per-batch `seed` (random subsets, ROAD noise) unless the config sets one:
    drawn from the run seed and the batch's first test image, so image i of every batch does not
    get the same draws, and a resume (same shards, same batches) gets the same numbers."""
    if "seed" not in spec.defaults or "seed" in params:
        return params
    return {**params, "seed": int(np.random.SeedSequence([run_seed, first_image]).generate_state(1)[0] >> 1)}


def run_score(job: ShardJob, state: WorkerState = STATE) -> str:
    cfg, device = config_from_dict(job.config), torch.device(job.device)
    test = state.test_split(cfg)
    shard = read_map_shard(job.maps_path)
    spec = metric_registry.get_metric(job.metric)
    params = job.metric_params if job.metric_params is not None else cfg.metrics.params.get(job.metric, {})
    aux: dict[str, list] = {}
    if spec.fn is None:
        values = np.asarray(getattr(shard, RUNNER_MEASURED[job.metric]), dtype=float)
    else:
        needs_model = spec.needs_model or spec.needs_explainer or cfg.explain.target == "predicted"
        model = state.model(cfg, job.model, job.checkpoint, device) if needs_model else None
        extra: dict[str, Any] = {}
        if spec.needs_explainer:
            extra["explainer"] = build_explainer(job.explainer, seed=cfg.run.seed, **cfg.explain.params.get(job.explainer, {}))
        prior = state.prior(job.prior_path)
        bs = cfg.explain.batch_size
        values, sizes = [], []
        for i in range(job.start, job.stop, bs):
            sl = slice(i, min(i + bs, job.stop))
            local = slice(sl.start - job.start, sl.stop - job.start)
            x = test.images[sl].to(device)
            targets = targets_for(cfg.explain.target, test.labels[sl], model, x).to(device)
            if "explainer" in extra:
                extra["context"] = {k: None if v is None else v.to(device)
                                    for k, v in job_context(cfg, test, sl, prior).items()}
            if spec.needs_lung:  # all-False rows where an image has no lung mask: the metric scores NaN there
                extra["lung_masks"] = test.lung_masks[sl].to(device)
            sink: dict[str, Any] = {}
            with autocast(spec.precision(cfg.run.forward_precision, device), device):
                v = metric_registry.score(job.metric, model, x, targets, torch.from_numpy(shard.maps[local]).to(device),
                                          test.lesion_masks[sl].to(device), test.has_mask[sl].to(device),
                                          sink=sink, **extra, **_batch_seed(spec, params, cfg.run.seed, sl.start))
            values.append(v.float().cpu().numpy())
            sizes.append(len(x))
            for k, a in sink.items():
                aux.setdefault(k, []).append(a.detach().float().cpu().numpy() if torch.is_tensor(a) else a)
        values = np.concatenate(values) if values else np.zeros(0)
    values = nan_where_missing(cfg, job.explainer, test, job.start, job.stop, job.prior_path, values)
    kill_in_job(job)
    if aux:
        write_score_aux(Path(job.out_path), aux, sizes)
    df = pd.DataFrame({"dataset": cfg.data.dataset, "split": cfg.data.splits["test"], "model": job.model,
                       "explainer": job.explainer, "metric": job.metric, "image_id": shard.ids, "value": values})
    with atomic_path(job.out_path) as tmp:
        df.to_csv(tmp, index=False)
    return job.out_path


def aux_path(score_path: Path) -> Path:
    return score_path.with_name(score_path.name + ".aux.npz")


def write_score_aux(score_path: Path, aux: dict[str, list], sizes: list[int]) -> None:
    """Per-image curves a metric handed back (deletion curves, randomisation stages), beside its
    scores: per-image arrays of the batches are joined, shared ones (fractions, layer names) kept once."""
    arrays = {}
    for k, parts in aux.items():
        per_image = all(isinstance(a, np.ndarray) and a.ndim >= 2 and len(a) == n for a, n in zip(parts, sizes))
        arrays[k] = np.concatenate(parts) if per_image else np.asarray(parts[0])
    with atomic_path(aux_path(score_path)) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def run_job(job: ShardJob, state: WorkerState = STATE) -> str:
    if job.stage == "explain":
        return run_explain(job, state)
    if job.stage == "score":
        return run_score(job, state)
    raise ValueError(f"unknown stage {job.stage!r}")
