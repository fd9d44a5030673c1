"""The one scoring loop: a metric's per-image values for some test images of one (model, explainer).

Both the main score stage (jobs.run_score, a shard job) and the reliability side stages
(side_maps.side_scores: randomised and perturbed maps) score through `score_images`, so a rule of
scoring (per-batch seeds, the dataset context a re-explaining metric gets, lung masks, precision,
NaN where an explainer lacked its context) is written once and holds for every table of scores.
Callers differ only in what they hand in: the images (noisy ones for the perturbed check), how the
explained class of a batch is found, and which images of the shard are scored.

Two rules of every table live here too: the localisation metrics read the maps through the run's one
sign rule (metrics.sign, benchmark.metrics.sign), and an explainer built from the image's lesion mask
(the oracle: `from_lesion_mask`) is not applicable where that mask is empty or unknown, so its values
there are NaN for every metric (missing_context.not_applicable; the report reads them as not
applicable through the manifest's context_gaps, never as failures).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from cxr_xai_bench.datasets import Batch
from cxr_xai_bench.models.precision import autocast

from .. import metrics as metric_registry
from ..explainer_factory import explainer_from_config
from ..store.files import MapShard, atomic_path
from .config import Config
from .missing_context import job_context, nan_where_missing, not_applicable

SCORE_COLUMNS = ["dataset", "split", "model", "explainer", "metric", "image_id", "value"]
# metrics the runner measures while explaining: the map shard's column that holds them
RUNNER_MEASURED = {"seconds_per_image": "seconds", "peak_memory_mb": "peak_memory_mb"}
# (absolute test positions of a batch, its images on the device) -> the classes its maps explain
TargetsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def batch_seed(spec, params: dict, run_seed: int, first_image: int) -> dict:
    """Metric params with a per-batch `seed` (random subsets, ROAD noise) unless the config sets one:
    drawn from the run seed and the batch's first test image, so image i of every batch does not
    get the same draws, and a resume (same shards, same batches) gets the same numbers."""
    if "seed" not in spec.defaults or "seed" in params:
        return params
    return {**params, "seed": int(np.random.SeedSequence([run_seed, first_image]).generate_state(1)[0] >> 1)}


@dataclass
class ScoreTask:
    """One metric on some images of one shard [start, stop) of one (model, explainer)."""
    cfg: Config
    device: torch.device
    model_name: str
    explainer: str
    metric: str
    params: dict                    # the metric's params (a tuned threshold included)
    model: torch.nn.Module | None   # the TRAINED model (None where neither metric nor target needs it)
    test: Batch
    images: torch.Tensor            # (N,1,H,W) CPU, indexed by test position: the inputs the maps explain
    index: np.ndarray               # ascending absolute test positions scored, all in [start, stop)
    span: tuple[int, int]           # the shard (start, stop): the NaN rule reads the whole shard's context
    maps: MapShard                  # one map (and runner measurement) per entry of `index`
    targets: TargetsFn
    prior: np.ndarray | None        # training lesion prior, for the context of a re-explaining metric
    prior_path: str
    keep_aux: bool = False          # collect what the metric hands back in its sink (curves) per batch


@dataclass
class Scored:
    values: np.ndarray              # (len(index),) float, NaN where not scorable
    aux: dict[str, list]            # per batch: what the metric put in its sink (keep_aux only)
    sizes: list[int]                # images per batch, to join the per-image aux arrays


def score_images(task: ScoreTask) -> Scored:
    """Score `task.metric` on the images `task.index`, in batches of explain.batch_size."""
    cfg, device, spec = task.cfg, task.device, metric_registry.get_metric(task.metric)
    aux: dict[str, list] = {}
    sizes: list[int] = []
    if spec.fn is None:
        values = np.asarray(getattr(task.maps, RUNNER_MEASURED[task.metric]), dtype=float)
    else:
        extra: dict[str, Any] = {}
        if spec.needs_explainer:
            extra["explainer"] = explainer_from_config(cfg, task.explainer)
        parts, bs = [], cfg.explain.batch_size
        for i in range(0, len(task.index), bs):
            idx = torch.as_tensor(task.index[i:i + bs], dtype=torch.long)
            x = task.images[idx].to(device)
            targets = task.targets(idx, x).to(device)
            if spec.needs_explainer:
                extra["context"] = {k: None if v is None else v.to(device)
                                    for k, v in job_context(cfg, task.test, idx, task.prior).items()}
            if spec.needs_lung:  # all-False rows where an image has no lung mask: the metric scores NaN there
                extra["lung_masks"] = task.test.lung_masks[idx].to(device)
            sink: dict[str, Any] | None = {} if task.keep_aux else None
            with autocast(spec.precision(cfg.run.forward_precision, device), device):
                v = metric_registry.score(task.metric, task.model, x, targets,
                                          torch.from_numpy(task.maps.maps[i:i + bs]).to(device),
                                          task.test.lesion_masks[idx].to(device), task.test.has_mask[idx].to(device),
                                          sink=sink, sign=cfg.metrics.sign, **extra,
                                          **batch_seed(spec, task.params, cfg.run.seed, int(idx[0])))
            parts.append(v.float().cpu().numpy())
            sizes.append(len(x))
            for k, a in (sink or {}).items():
                aux.setdefault(k, []).append(a.detach().float().cpu().numpy() if torch.is_tensor(a) else a)
        values = np.concatenate(parts) if parts else np.zeros(0)
    return Scored(_nan_where_missing(task, values), aux, sizes)


def _nan_where_missing(task: ScoreTask, values: np.ndarray) -> np.ndarray:
    """NaN for the images whose explainer lacked its dataset context, and for those it is not
    applicable to (built from the lesion mask, the image has none). The rule reads whole shards,
    so the values go into their shard's places first; the dtype is kept (float32 scores are stored
    as float32 text, as they always were)."""
    start, stop = task.span
    full = np.full(stop - start, np.nan, dtype=values.dtype if values.dtype.kind == "f" else float)
    full[task.index - start] = values
    full = nan_where_missing(task.cfg, task.explainer, task.test, start, stop, task.prior_path, full)
    full = np.where(not_applicable(task.explainer, task.test)[start:stop], np.nan, full).astype(full.dtype)
    return full[task.index - start]


def score_frame(task: ScoreTask, values: np.ndarray) -> pd.DataFrame:
    """The long-table rows (SCORE_COLUMNS) of the task's images."""
    cfg = task.cfg
    return pd.DataFrame({"dataset": cfg.data.dataset, "split": cfg.data.splits["test"], "model": task.model_name,
                         "explainer": task.explainer, "metric": task.metric, "image_id": list(task.maps.ids),
                         "value": values}, columns=SCORE_COLUMNS)


def write_scores(path: str | Path, frame: pd.DataFrame, scored: Scored | None = None) -> None:
    """The rows as one CSV (and the metric's aux curves beside it), written atomically: complete once it exists."""
    if scored is not None and scored.aux:
        write_score_aux(Path(path), scored.aux, scored.sizes)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


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
