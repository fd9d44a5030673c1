"""The one place in `benchmark` that builds an explainer, so every stage (explain, score, the
reliability side maps, threshold tuning, the speed floor) gets the same object for the same config:
the registry's builder with the config's `explain.params[name]` and the run seed.

It sits at the top of `benchmark` rather than in `benchmark.run` because the speed tools, which the
report imports, build explainers too, and reporting never imports running. A test scans the package
and fails when `build_explainer(` is called anywhere else.
"""
from __future__ import annotations

from typing import Any

from cxr_xai_bench.explainers import build_explainer


def explainer_with(name: str, params: dict[str, Any] | None = None, seed: int | None = None):
    """Explainer `name` with `params`, and `seed` when given (None: the explainer's own default)."""
    params = dict(params or {})
    if seed is None:
        return build_explainer(name, **params)
    return build_explainer(name, seed=seed, **params)


def explainer_from_config(cfg, name: str, seed: int | None = None):
    """Explainer `name` as the run configures it: `cfg.explain.params[name]` and the run seed
    (`seed` replaces it where a stage draws its own)."""
    return explainer_with(name, cfg.explain.params.get(name, {}), cfg.run.seed if seed is None else seed)
