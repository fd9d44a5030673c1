"""Every component parameter of a config checked against what the component accepts, before any data
is loaded or any model trained: a typo in `data.params`, `models.params.<m>`, `models.train.<m>`,
`explain.params.<e>` or `metrics.params.<m>` would otherwise surface as a bare TypeError from deep
inside a stage, for explainers and metrics only after training. The accepted keys are read from the
registered builder's signature (datasets, models, explainers: a plug-in's are checked like ours),
from a metric's registered defaults (what `metrics.score` accepts), from TrainConfig's fields. A
builder taking **kwargs accepts any key: nothing can be known about what it does with them."""
from __future__ import annotations

import dataclasses
import difflib
import inspect
from typing import Any, Callable, Iterable, Mapping

from cxr_xai_bench.datasets import DATASETS
from cxr_xai_bench.explainers import EXPLAINERS
from cxr_xai_bench.models import MODELS, TrainConfig
from cxr_xai_bench.models.output_head import OUTPUT_PARAMS, check_output_params

from .. import metrics as metric_registry
from .config import Config, ConfigError, DataSection

__all__ = ["accepted_keys", "check_params", "dataset_set_by"]

# Keywords the runner passes itself: set in a params table they would collide with its own ("got
# multiple values for keyword argument") or, for TrainConfig's seed, be silently replaced, so the
# error says which config key sets them instead.
EXPLAINER_SET_BY = {"seed": "run.seed"}
TRAIN_SET_BY = {"seed": "run.seed (and run.repeat_seeds)"}


def dataset_set_by() -> dict[str, str]:
    """What data.read_split passes to a dataset besides data.params (keep in step with it: a test spies
    on its call). `resize` and `mask_values` count once DataSection has them, as read_split then passes them."""
    own = [k for k in ("size", "root", "resize", "mask_values") if k in {f.name for f in dataclasses.fields(DataSection)}]
    return {"split": "data.splits", "seed": "run.seed", **{k: f"data.{k}" for k in own}}


def accepted_keys(fn: Callable[..., Any]) -> set[str] | None:
    """The keyword parameters `fn` (a class: its __init__) accepts; None when it takes **kwargs or has
    no signature to read, where any key must be let through."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return {n for n, p in sig.parameters.items() if p.kind in kinds}


def _check_keys(where: str, params: Mapping[str, Any], accepted: set[str] | None, kind: str, name: str,
                set_by: Mapping[str, str]) -> None:
    for key in params:
        if key in set_by:
            raise ConfigError(f"{where}: parameter {key!r} of {kind} {name!r} is set by {set_by[key]}, "
                              f"not in {where}")
    if accepted is None:
        return
    allowed = sorted(accepted - set(set_by))
    for key in params:
        if key not in accepted:
            near = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            listed = ", ".join(allowed) if allowed else "none (it takes no parameters)"
            raise ConfigError(f"{where}: unknown parameter {key!r} for {kind} {name!r}; allowed: {listed}{hint}")


def _check_table(where: str, table: Mapping[str, Mapping[str, Any]], registered: Iterable[str], kind: str,
                 accepted: Callable[[str], set[str] | None], set_by: Mapping[str, str]) -> None:
    # a table may name a registered component the run leaves out (the defaults' metrics.params keep
    # every metric's budget when metrics.names is narrowed), but never one that does not exist
    registered = sorted(registered)
    for name, params in table.items():
        if name not in registered:
            near = difflib.get_close_matches(name, registered, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(f"{where}.{name}: no {kind} {name!r} is registered; registered: "
                              f"{', '.join(registered)}{hint}")
        _check_keys(f"{where}.{name}", params, accepted(name), kind, name, set_by)


def check_params(cfg: Config) -> None:
    """Raise ConfigError naming the table, the key, the component and the allowed keys for the first
    parameter a component does not accept. Component names must already be known (validate checks)."""
    _check_keys("data.params", cfg.data.params, accepted_keys(DATASETS[cfg.data.dataset]), "dataset",
                cfg.data.dataset, dataset_set_by())
    _check_table("models.params", cfg.models.params, MODELS, "model",  # build_model takes OUTPUT_PARAMS for any model
                 lambda n: None if (k := accepted_keys(MODELS[n])) is None else k | set(OUTPUT_PARAMS), {})
    for name, params in cfg.models.params.items():
        try:
            check_output_params(params, MODELS[name])
        except ValueError as err:
            raise ConfigError(f"models.params.{name}: {err}") from None
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    _check_table("models.train", cfg.models.train, MODELS, "model", lambda n: train_fields, TRAIN_SET_BY)
    _check_table("explain.params", cfg.explain.params, EXPLAINERS, "explainer",
                 lambda n: accepted_keys(EXPLAINERS[n]), EXPLAINER_SET_BY)
    metrics = metric_registry.METRICS
    # metrics.score refuses any key outside the registered defaults, whatever the function's signature
    _check_table("metrics.params", cfg.metrics.params, metrics, "metric", lambda n: set(metrics[n].defaults), {})
