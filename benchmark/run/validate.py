"""Checks of a config that need the registries: unknown names and inconsistent settings fail before
any work is done, naming the key and the allowed values. The config's plug-ins are loaded first, so
their names are known; `check_context` checks, right after the data is loaded and before training,
that every explainer gets the dataset context it needs for every test image."""
from __future__ import annotations

import math

from cxr_xai_bench.datasets import DATASETS
from cxr_xai_bench.explainers import EXPLAINERS
from cxr_xai_bench.models import MODELS
from cxr_xai_bench.models.precision import PRECISIONS

from .. import metrics as metric_registry
from ..metrics.sign import SIGNS
from .config import Config, ConfigError
from .executor import EXECUTORS
from .folders import register_folders
from .missing_context import MODES as MISSING_CONTEXT
from .missing_context import check_context
from .param_check import check_params
from .plugins import load_plugins, normalise
from ..store.files import MAP_DTYPES
from ..store.instances import SEP

__all__ = ["check_context", "check_split_roles", "validate"]


def check_seeds(cfg: Config) -> None:
    """train.seeds (store/instances.py): distinct, apart from run.repeat_seeds (an instance compared with
    itself would repeat perfectly), and no model name that an instance name could be mistaken for."""
    seeds = cfg.train.seeds
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"train.seeds {seeds} names a seed twice: each seed is one trained instance")
    if seeds and set(seeds) & set(cfg.run.repeat_seeds):
        raise ValueError(f"run.repeat_seeds {cfg.run.repeat_seeds} must not repeat a seed of train.seeds {seeds}")
    bad = [m for m in cfg.models.names if SEP in m]
    if bad:
        raise ValueError(f"models.names {bad}: {SEP!r} marks a model instance (`resnet50@s1`); rename the model")


def validate(cfg: Config) -> None:
    cfg.run.plugins = [normalise(s) for s in cfg.run.plugins]  # absolute paths: workers may run elsewhere
    load_plugins(cfg.run.plugins)
    register_folders(cfg)  # explain.folders: registered (and added to explain.names) before names are checked
    metrics = metric_registry.METRICS
    checks = [("data.dataset", [cfg.data.dataset], DATASETS), ("models.names", cfg.models.names, MODELS),
              ("explain.names", cfg.explain.names, EXPLAINERS), ("metrics.names", cfg.metrics.names, metrics)]
    for key, names, registry in checks:
        for name in names:
            if name not in registry:
                raise KeyError(f"{key}: unknown name {name!r}; registered: {sorted(registry)}")
    check_params(cfg)
    check_per_model(cfg)
    if cfg.metrics.sign not in SIGNS:
        raise ConfigError(f"metrics.sign: {cfg.metrics.sign!r} is not one of {list(SIGNS)} (how the localisation "
                          "metrics read a signed map: its positive part, its absolute value, or as returned)")
    for role in ("train", "val", "test"):
        if role not in cfg.data.splits:
            raise KeyError(f"data.splits must name a {role!r} split, got {cfg.data.splits}")
    check_split_roles(cfg)
    check_evaluate_only(cfg)
    if not cfg.models.names and cfg.explain.folders:
        raise ValueError("models.names is empty: a run scores maps for a model (faithfulness metrics ask it how the "
                         "maps' regions move its output, and the classifier table reports it). Name the model the "
                         "maps explain (models.checkpoints for its file), or score the folder's maps against masks "
                         "without a model with benchmark.metrics.score_maps(None, ...) (localisation metrics only)")
    if not cfg.models.names or not cfg.explain.names or not cfg.metrics.names:
        raise ValueError("models.names, explain.names and metrics.names must each name at least one entry")
    if ("seed_repeatability" in cfg.metrics.names) != bool(cfg.run.repeat_seeds):
        raise ValueError("metric seed_repeatability and run.repeat_seeds go together: name the metric in "
                         "metrics.names and give run.repeat_seeds (e.g. [1, 2]), or neither")
    if cfg.run.seed in cfg.run.repeat_seeds:
        raise ValueError(f"run.repeat_seeds {cfg.run.repeat_seeds} must not repeat run.seed {cfg.run.seed}")
    check_seeds(cfg)
    if cfg.run.shard_size < 1:
        raise ValueError(f"run.shard_size must be at least 1, got {cfg.run.shard_size}")
    if cfg.report.figure_workers < 0:
        raise ValueError(f"report.figure_workers must be 0 (one per core) or more, got {cfg.report.figure_workers}")
    if not 0 <= cfg.report.headroom_margin < 1:
        raise ValueError(f"report.headroom_margin must lie in [0, 1) (a difference of probabilities), got "
                         f"{cfg.report.headroom_margin}")
    if not 0 <= cfg.report.equivalence_margin < math.inf:
        raise ValueError(f"report.equivalence_margin must be a finite number >= 0 (0: no parity claims), got "
                         f"{cfg.report.equivalence_margin}")
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
    if not test:
        raise ValueError("data.splits.test is empty: a run scores the split it names there")
    if not train:  # evaluate-only: check_evaluate_only
        if d.holdout > 0:
            raise ValueError(f"data.holdout = {d.holdout} carves the selection split from the training split, "
                             f"but data.splits.train is empty (an evaluate-only run): set data.holdout = 0")
        if val == test:
            raise ValueError(f"data.splits.val and data.splits.test both name split {val!r}: thresholds would be "
                             f"tuned on the scored images; set data.splits.val = \"\" or name another split")
        return
    if not val:
        raise ValueError("data.splits.val is empty but data.splits.train names a split: training selects its best "
                         "epoch on the selection split. Name one, or hold one out (data.splits.val = "
                         f"{train!r} with data.holdout, e.g. 0.1)")
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


def check_evaluate_only(cfg: Config) -> None:
    """Without a training split every model must be given (models.checkpoints): nothing is trained."""
    if cfg.data.splits.get("train"):
        return
    untrained = [m for m in cfg.models.names if m not in cfg.models.checkpoints]
    if untrained:
        raise ValueError(f"data.splits.train is empty (an evaluate-only run), so nothing is trained, but "
                         f"models {untrained} have no file in models.checkpoints: give each a checkpoint "
                         f"(models.checkpoints.<name> = \"file.pt\") or name a training split")
    if cfg.run.repeat_seeds:
        raise ValueError("run.repeat_seeds retrains each model per seed: an evaluate-only run (data.splits.train "
                         "empty) trains nothing; leave run.repeat_seeds empty")


def check_per_model(cfg: Config) -> None:
    """explain.per_model names configured models, only the key "exclude", and explainers of explain.names;
    every model keeps at least one explainer."""
    for model, spec in cfg.explain.per_model.items():
        if model not in cfg.models.names:
            raise KeyError(f"explain.per_model.{model}: {model!r} is not in models.names {cfg.models.names}")
        unknown = sorted(set(spec) - {"exclude"})
        if unknown:
            raise KeyError(f"explain.per_model.{model}: unknown keys {unknown}; allowed: exclude")
        stray = [e for e in spec.get("exclude", []) if e not in cfg.explain.names]
        if stray:
            raise KeyError(f"explain.per_model.{model}.exclude: {stray} not in explain.names {cfg.explain.names}")
        if not cfg.explain.for_model(model):
            raise ValueError(f"explain.per_model.{model}.exclude leaves {model} no explainer")
