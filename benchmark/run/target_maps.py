"""Stage other target: the misclassified test images explained for the other class too.

With `explain.target = "label"` a map of a misclassified image explains a class the model did not
predict; with "predicted", one the image does not have. Which one a paper reports changes what its
numbers mean on exactly those images, so the report gives its headline metrics on them under both:
the main maps (the configured target) from scores.csv, and here the same images explained for the
other target (the prediction, or the label), by every model-dependent explainer, scored by the
faithfulness and localisation metrics that score it in the main stage (with the other target too:
a map is scored for the class it explains). Stored and resumed through side_maps (tag "target"),
written to `target_scores.csv` (the score table's columns and `target`, the kind explained here).
Nothing to do (and the table removed) when the target is "pneumonia" or every image is classified right.
"""
from __future__ import annotations

import numpy as np
import torch

from cxr_xai_bench.explainers import EXPLAINERS
from cxr_xai_bench.models import predict_proba

from ..explainer_factory import explainer_from_config
from ..store.code import code_closure
from ..store.files import stage_key
from .context import Models, RunContext
from .side_maps import SidePlan, metrics_of, side_scores, write_table

TABLE = "target_scores.csv"
CATEGORIES = ("faithfulness", "localisation")
OTHER = {"label": "predicted", "predicted": "label"}


def predictions(model: torch.nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([predict_proba(model, images[i:i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)])


def other_target_scores(ctx: RunContext, models: Models, test, prior_path: str) -> None:
    cfg, frames = ctx.cfg, []
    other = OTHER.get(cfg.explain.target)
    for model_name, (model_key, ckpt) in models.items() if other else ():
        todo = [(e, metrics_of(ctx, e, CATEGORIES)) for e in cfg.explain.for_model(model_name)
                if getattr(EXPLAINERS[e], "needs_model", True)]
        todo = [(e, ms) for e, ms in todo if ms]
        if not todo:
            continue
        trained = ctx.state.model(cfg, model_name, str(ckpt), ctx.device)
        predicted = predictions(trained, test.images, cfg.explain.batch_size)
        keep = (predicted != test.labels).numpy()
        if not keep.any():
            continue
        targets = predicted if other == "predicted" else test.labels.clone()
        for explainer, metrics in todo:
            _, mkey = ctx.maps_dir(model_name, model_key, explainer)
            key = stage_key("target", mkey, other, np.flatnonzero(keep).tolist(),
                            code_closure("benchmark.run.target_maps", "benchmark.run.side_maps"))
            exp = explainer_from_config(cfg, explainer)

            def explain(x, t, context, exp=exp):
                return exp.explain(trained, x, t, **context)
            plan = SidePlan("target", model_name, explainer, key, test.images, keep, explain, metrics, targets,
                            work="other_target")
            frames.append(side_scores(ctx, plan, trained, test, prior_path).assign(target=other))
    write_table(ctx, TABLE, frames, ["target"])
