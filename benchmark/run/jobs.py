"""Shard jobs: explain or score one contiguous slice of test images for one (model, explainer[, metric]).

A job is a small picklable record; `run_job` does its work in whatever process runs it (this one
for the in-process executor, a Ray worker for the distributed one), loading the test split, the
checkpoint and the dataset context once per process (a WorkerState, handed in) and reusing them for every later shard. Each
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
from typing import Iterator

import numpy as np
import torch

from cxr_xai_bench.datasets import Batch
from cxr_xai_bench.models import build_model, load_checkpoint, place_model, predict_proba
from cxr_xai_bench.models.precision import autocast, pass_precision

from .. import metrics as metric_registry
from . import scoring
from ..explainer_factory import explainer_from_config
from .config import Config, config_from_dict
from .data import data_key, load_split
from .kill_hooks import kill_in_job
from .missing_context import job_context
from ..store.files import MapShard, read_map_shard, stage_key, write_map_shard
from ..store.instances import architecture
from .scoring import SCORE_COLUMNS, aux_path, score_frame, write_scores  # noqa: F401  (gather, runner read them here)

log = logging.getLogger(__name__)


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


def file_signature(path: str) -> tuple[int, int, int, int]:
    """What tells one version of a file from the next without reading it: inode, size, modification and
    change times (ns). An atomic rewrite (temp file + rename, as every checkpoint is written) gets a new
    inode; a rewrite in place a new change time."""
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class WorkerState:
    """What one process loads once and reuses across shards: test splits, models, priors.

    Never module-wide: a run owns one (RunContext.state, handed to the in-process executor and the
    side stages), and a Ray worker process one per process (ray_executor). Models and priors are keyed
    by path AND the file's signature (file_signature), so a checkpoint written again under the same
    name (a --no-resume retrain) is loaded again, never served from the old weights."""

    def __init__(self) -> None:
        self.tests: dict[str, Batch] = {}
        # (checkpoint path, device) -> (the file's signature when loaded, the model)
        self.models: dict[tuple[str, str], tuple[tuple, torch.nn.Module]] = {}
        self.priors: dict[str, tuple[tuple, np.ndarray]] = {}

    def test_split(self, cfg: Config) -> Batch:
        key = stage_key(data_key(cfg, "test"))
        if key not in self.tests:
            self.tests[key] = load_split(cfg, "test")
        return self.tests[key]

    def keep_test_split(self, cfg: Config, test: Batch) -> None:
        """The driver already holds the test split: in-process jobs reuse it."""
        self.tests.setdefault(stage_key(data_key(cfg, "test")), test)

    def keep_model(self, checkpoint: str | Path, device: torch.device | str, model: torch.nn.Module) -> None:
        """A model the driver trained or loaded from `checkpoint`, for in-process jobs to reuse (while
        that file is unchanged)."""
        self.models[(str(checkpoint), str(device))] = (file_signature(str(checkpoint)), model)

    def model(self, cfg: Config, name: str, checkpoint: str | Path, device: torch.device) -> torch.nn.Module:
        key, sig = (str(checkpoint), str(device)), file_signature(str(checkpoint))
        held = self.models.get(key)
        if held is None or held[0] != sig:  # never loaded, or the file was written again since
            self.models.pop(key, None)  # release the stale weights before loading the new ones
            arch = architecture(name)  # an instance (`resnet50@s1`) is built as its architecture
            model = build_model(arch, **cfg.models.params.get(arch, {}))
            load_checkpoint(model, checkpoint)
            self.models[key] = (sig, place_model(model, device).eval())
        return self.models[key][1]

    def loaded_models(self) -> list[tuple[str, torch.nn.Module]]:
        """(checkpoint path, model) of every model held, in the order they were kept or loaded."""
        return [(ckpt, model) for (ckpt, _), (_, model) in self.models.items()]

    def prior(self, path: str) -> np.ndarray | None:
        if not path:
            return None
        sig = file_signature(path)
        held = self.priors.get(path)
        if held is None or held[0] != sig:
            self.priors[path] = (sig, np.load(path))
        return self.priors[path][1]

    def clear(self) -> None:
        """Release everything held (a finished run's models, splits and priors)."""
        self.tests.clear(), self.models.clear(), self.priors.clear()


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


def run_explain(job: ShardJob, state: WorkerState) -> str:
    cfg, device = config_from_dict(job.config), torch.device(job.device)
    test = state.test_split(cfg)
    model = state.model(cfg, job.model, job.checkpoint, device)
    exp = explainer_from_config(cfg, job.explainer)
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


def run_score(job: ShardJob, state: WorkerState) -> str:
    """Score one metric on one map shard through the shared loop (scoring.score_images), then write its rows."""
    cfg, device = config_from_dict(job.config), torch.device(job.device)
    test = state.test_split(cfg)
    shard = read_map_shard(job.maps_path)
    spec = metric_registry.get_metric(job.metric)
    params = job.metric_params if job.metric_params is not None else cfg.metrics.params.get(job.metric, {})
    needs_model = spec.fn is not None and (spec.needs_model or spec.needs_explainer or cfg.explain.target == "predicted")
    model = state.model(cfg, job.model, job.checkpoint, device) if needs_model else None

    def targets(idx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return targets_for(cfg.explain.target, test.labels[idx], model, x)
    task = scoring.ScoreTask(cfg, device, job.model, job.explainer, job.metric, params, model, test, test.images,
                             np.arange(job.start, job.stop), (job.start, job.stop), shard, targets,
                             state.prior(job.prior_path), job.prior_path, keep_aux=True)
    scored = scoring.score_images(task)
    kill_in_job(job)
    write_scores(job.out_path, score_frame(task, scored.values), scored)
    return job.out_path


def run_job(job: ShardJob, state: WorkerState) -> str:
    """Run one shard job with `state`, the loaded data and models of the process that runs it."""
    if job.stage == "explain":
        return run_explain(job, state)
    if job.stage == "score":
        return run_score(job, state)
    raise ValueError(f"unknown stage {job.stage!r}")
