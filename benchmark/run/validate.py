"""Checks of a config that need the registries: unknown names and inconsistent settings fail before
any work is done, naming the key and the allowed values. The config's plug-ins are loaded first, so
their names are known; `check_context` checks, right after the data is loaded and before training,
that every explainer gets the dataset context it needs for every test image."""
from __future__ import annotations

from cxr_xai_bench.datasets import DATASETS
from cxr_xai_bench.explainers import EXPLAINERS
from cxr_xai_bench.models import MODELS
from cxr_xai_bench.models.precision import PRECISIONS

from .. import metrics as metric_registry
from .config import Config
from .executor import EXECUTORS
from .missing_context import MODES as MISSING_CONTEXT
from .missing_context import check_context
from .param_check import check_params
from .plugins import load_plugins, normalise
from ..store.files import MAP_DTYPES

__all__ = ["check_context", "check_split_roles", "validate"]


def validate(cfg: Config) -> None:
    cfg.run.plugins = [normalise(s) for s in cfg.run.plugins]  # absolute paths: workers may run elsewhere
    load_plugins(cfg.run.plugins)
    metrics = metric_registry.METRICS
    checks = [("data.dataset", [cfg.data.dataset], DATASETS), ("models.names", cfg.models.names, MODELS),
              ("explain.names", cfg.explain.names, EXPLAINERS), ("metrics.names", cfg.metrics.names, metrics)]
    for key, names, registry in checks:
        for name in names:
            if name not in registry:
                raise KeyError(f"{key}: unknown name {name!r}; registered: {sorted(registry)}")
    check_params(cfg)
    for role in ("train", "val", "test"):
        if role not in cfg.data.splits:
            raise KeyError(f"data.splits must name a {role!r} split, got {cfg.data.splits}")
    check_split_roles(cfg)
    if not cfg.models.names or not cfg.explain.names or not cfg.metrics.names:
        raise ValueError("models.names, explain.names and metrics.names must each name at least one entry")
    if ("seed_repeatability" in cfg.metrics.names) != bool(cfg.run.repeat_seeds):
        raise ValueError("metric seed_repeatability and run.repeat_seeds go together: name the metric in "
                         "metrics.names and give run.repeat_seeds (e.g. [1, 2]), or neither")
    if cfg.run.seed in cfg.run.repeat_seeds:
        raise ValueError(f"run.repeat_seeds {cfg.run.repeat_seeds} must not repeat run.seed {cfg.run.seed}")
    if cfg.run.shard_size < 1:
        raise ValueError(f"run.shard_size must be at least 1, got {cfg.run.shard_size}")
    if cfg.report.figure_workers < 0:
        raise ValueError(f"report.figure_workers must be 0 (one per core) or more, got {cfg.report.figure_workers}")
    precisions = [("train.precision", cfg.train.precision, PRECISIONS), ("run.forward_precision", cfg.run.forward_precision, PRECISIONS)]
    precisions += [(f"models.train.{m}.precision", t["precision"], PRECISIONS) for m, t in cfg.models.train.items() if "precision" in t]
    for key, value, allowed in (("run.maps_dtype", cfg.run.maps_dtype, MAP_DTYPES), ("run.executor", cfg.run.executor, EXECUTORS),
                                *precisions):
        if value not in allowed:
            raise ValueError(f"{key}: {value!r} is not one of {list(allowed)}")
    for metric, names in cfg.metrics.skip.items():
        if metric not in metrics:
            raise KeyError(f"metrics.skip: unknown metric {metric!r}; registered: {sorted(metrics)}")
        for name in names:
            if name not in EXPLAINERS:
                raise KeyError(f"metrics.skip.{metric}: unknown explainer {name!r}; registered: {sorted(EXPLAINERS)}")
    if cfg.explain.target not in ("label", "predicted", "pneumonia"):
        raise ValueError(f"explain.target {cfg.explain.target!r} must be 'label', 'predicted' or 'pneumonia'")
    if cfg.explain.missing_context not in MISSING_CONTEXT:
        raise ValueError(f"explain.missing_context {cfg.explain.missing_context!r} must be one of {list(MISSING_CONTEXT)}")


def check_split_roles(cfg: Config) -> None:
    """The scored split never takes part in selection (best epoch, tuned thresholds): refuse a
    selection split that is the scored one, or that is the training split without a hold-out."""
    d = cfg.data
    if not 0 <= d.holdout < 1:
        raise ValueError(f"data.holdout must be a fraction in [0, 1), got {d.holdout}")
    train, val, test = d.splits["train"], d.splits["val"], d.splits["test"]
    if val == test:
        raise ValueError(f"data.splits.val and data.splits.test both name split {val!r}: models would be selected "
                         f"(best epoch) and thresholds tuned on the images that are scored. Select on another split, "
                         f"or on a hold-out of the training split: data.splits.val = {train!r} with data.holdout "
                         f"(e.g. 0.1)")
    if test == train:
        raise ValueError(f"data.splits.train and data.splits.test both name split {test!r}: the benchmark would "
                         f"score the images the models were trained on")
    if val == train and d.holdout <= 0:
        raise ValueError(f"data.splits.train and data.splits.val both name split {train!r} and data.holdout is "
                         f"{d.holdout}: models would be selected on their own training images. Set data.holdout "
                         f"(e.g. 0.1) to hold out a stratified part of {train!r} for selection")
    if d.holdout > 0 and val != train:
        raise ValueError(f"data.holdout = {d.holdout} carves the selection split from the training split, but "
                         f"data.splits.val names {val!r}, not data.splits.train {train!r}: set data.splits.val = "
                         f"{train!r}, or data.holdout = 0")
