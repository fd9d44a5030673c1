"""Stage randomised maps: every faithfulness and localisation metric scored on the maps of the FULLY
randomised model, for the report's "trained against randomised maps" check (a metric that scores
both alike cannot tell good from bad explanations).

Full randomisation is the last stage of the sanity metrics' cascade (Adebayo et al. 2018, "Sanity
checks for saliency maps", Sec. 3: cascading randomisation down to the input, "all layers
randomised"): on a deep copy of the trained model, every re-initialisable module (`layers` of the
randomisation metrics' params, default all), top (logits) first, reset after torch.manual_seed(seed),
with the randomisation metrics' `seed` (default 0). This is exactly the model whose maps the last
point of `randomisation_ssim` / `randomisation_spearman` compares with (tested), so the two checks
speak of one model. Batch norm resets to the identity, as in the cascade (see metrics/sanity.py).

Maps: the model-dependent explainers a randomisation metric scores (side_maps.reliability_explainers),
explaining the classes the main maps explain (the trained model's targets). Scores: on the TRAINED
model, each metric that scores the explainer in the main stage (faithfulness measures how well a
map explains the trained model; a map made by a model with destroyed weights should explain it
badly). Written to `randomised_scores.csv` (the score table's columns; `value` is the score of the
randomised model's map), stored and resumed through side_maps. `metrics.reliability = false` turns
it off (and removes the table).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..explainer_factory import explainer_from_config
from ..metrics import get_metric
from ..metrics.sanity import randomisable_layers
from .context import Models, RunContext
from .side_maps import (RANDOMISATION, SidePlan, metrics_of, reliability_explainers, side_scores,
                        write_table)
from ..store.code import code_closure
from ..store.files import stage_key

TABLE = "randomised_scores.csv"
CATEGORIES = ("faithfulness", "localisation")


def randomisation_params(cfg) -> dict:
    """`seed` and `layers` of the randomisation metrics (ssim's, else spearman's config, else defaults)."""
    for m in RANDOMISATION:
        if m in cfg.metrics.params or m in cfg.metrics.names:
            merged = {**get_metric(m).defaults, **cfg.metrics.params.get(m, {})}
            return {"seed": int(merged["seed"]), "layers": list(merged["layers"])}
    return {"seed": 0, "layers": []}


def fully_randomised(model: nn.Module, seed: int = 0, layers: list[str] | None = None) -> nn.Module:
    """A deep copy of `model` with every layer of `layers` (default: all re-initialisable modules,
    top-down) re-initialised in cascade order, torch seeded with `seed` before each reset: the
    model of the last stage of sanity.cascade_maps. The caller's model and RNG are untouched."""
    available = randomisable_layers(model)
    layers = list(layers) if layers else available
    unknown = [name for name in layers if name not in available]
    if unknown:
        raise KeyError(f"layers {unknown} are not re-initialisable modules of the model; available: {available}")
    randomised = copy.deepcopy(model)
    modules = dict(randomised.named_modules())
    devices = sorted({p.device.index for p in randomised.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):
        for name in layers:
            torch.manual_seed(seed)
            modules[name].reset_parameters()
    return randomised


def randomised_scores(ctx: RunContext, models: Models, test, prior_path: str) -> None:
    """Explain with each model's fully randomised copy, score on the trained model, write TABLE."""
    cfg, frames = ctx.cfg, []
    explainers = reliability_explainers(cfg) if cfg.metrics.reliability else []
    params = randomisation_params(cfg)
    for model_name, (model_key, ckpt) in models.items():
        todo = [(e, metrics_of(ctx, e, CATEGORIES)) for e in explainers if e in cfg.explain.for_model(model_name)]
        todo = [(e, ms) for e, ms in todo if ms]
        if not todo:
            continue
        trained = ctx.state.model(cfg, model_name, str(ckpt), ctx.device)
        randomised = None
        for explainer, metrics in todo:
            _, mkey = ctx.maps_dir(model_name, model_key, explainer)
            key = stage_key("randomised", mkey, params,
                            code_closure("benchmark.run.randomised_maps", "benchmark.run.side_maps",
                                         "benchmark.metrics.sanity"))
            exp = explainer_from_config(cfg, explainer)

            def explain(x, t, context, exp=exp):
                nonlocal randomised
                if randomised is None:  # built only when some map is missing
                    randomised = fully_randomised(trained, params["seed"], params["layers"]).eval()
                return exp.explain(randomised, x, t, **context)
            keep = torch.ones(len(test), dtype=torch.bool).numpy()
            plan = SidePlan("randomised", model_name, explainer, key, test.images, keep, explain, metrics)
            frames.append(side_scores(ctx, plan, trained, test, prior_path))
    write_table(ctx, TABLE, frames)
