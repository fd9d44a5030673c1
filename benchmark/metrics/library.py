"""The metrics as a library: score attribution maps of any torch classifier, Quantus-style.

    from benchmark.metrics import score_maps
    table = score_maps(model, images, targets, maps, masks, metrics=["deletion_auc", "pointing_game"])

`model` is any torch.nn.Module that takes the images as given and returns logits (N, C); `images`
(N,1,H,W) or (N,H,W) in the range the model expects (the perturbations of the faithfulness
metrics fill with zero / mean / blur in that range); `targets` (N,) class indices; `maps` (N,H,W);
`masks` (N,H,W) bool lesion masks (only the localisation metrics read them). The result is a
long table, one row per image and metric: image, metric, category, higher_is_better, value (NaN
where the metric is undefined, e.g. localisation on an image without a lesion).

`sign` is the one sign rule of the localisation metrics (sign.py), as a run's metrics.sign: the
positive part of each map by default, "absolute" or "raw". An `explainer` built from the lesion mask
(declaring `from_lesion_mask`, as the oracle) is not applicable where an image's mask is empty or
not given: its rows there are NaN for every metric.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from .registry import METRICS, get_metric, score
from .sign import DEFAULT_SIGN, check_sign

COLUMNS = ["image", "metric", "category", "higher_is_better", "value"]


def _tensor(x: Any, name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if x is None:
        raise ValueError(f"{name} is required")
    t = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x)
    return t.to(device=device, dtype=dtype)


def default_metrics(with_masks: bool) -> list[str]:
    """Every metric computed from maps alone (no re-explaining, no runtime), localisation only with masks."""
    return [n for n, s in METRICS.items() if s.fn is not None and not s.needs_explainer
            and (with_masks or not s.needs_mask)]


def score_maps(model: torch.nn.Module | None, images, targets, maps, masks=None, metrics: Sequence[str] | None = None,
               params: dict[str, dict] | None = None, device: str | torch.device | None = None,
               batch_size: int = 16, image_ids: Sequence[str] | None = None, explainer=None,
               sign: str = DEFAULT_SIGN) -> pd.DataFrame:
    """Score `maps` of `model` on `images` with the named metrics; one row per image and metric.
    `model` may be None for metrics that need none (localisation, complexity): maps made elsewhere are
    scored against masks without their model; a metric that asks the model is then refused, naming why.

    metrics: names from `benchmark list` (default: every map-based metric; the localisation ones only
    when `masks` is given). params: metric -> keyword parameters (e.g. {"deletion_auc": {"steps": 10}}).
    device: where to score (default: the model's device). batch_size: images per metric call.
    image_ids: the `image` column (default 0..N-1). explainer: for the sanity metrics, anything with
    .explain(model, images, targets) -> (N,H,W) (they re-explain the model with its layers randomised);
    one that declares `from_lesion_mask` (the oracle) scores NaN on images without a lesion.
    sign: how the localisation metrics read the maps: "positive" (default, their positive part),
    "absolute" or "raw" (see benchmark.metrics.sign).
    """
    check_sign(sign)
    params = dict(params or {})
    if device is None:
        first = next(model.parameters(), None) if model is not None else None
        device = first.device if first is not None else torch.device("cpu")
    device = torch.device(device)
    images = _tensor(images, "images", torch.float32, device)
    if images.dim() == 3:
        images = images[:, None]
    n = images.shape[0]
    targets = _tensor(targets, "targets", torch.long, device).reshape(-1)
    maps = _tensor(maps, "maps", torch.float32, device)
    if len(targets) != n or tuple(maps.shape) != (n, *images.shape[2:]):
        raise ValueError(f"images {tuple(images.shape)}, targets {tuple(targets.shape)} and maps "
                         f"{tuple(maps.shape)} must describe the same N images of the same size")
    has_mask = torch.zeros(n, dtype=torch.bool, device=device)
    if masks is not None:
        masks = _tensor(masks, "masks", torch.bool, device)
        has_mask[:] = True
    names = list(metrics) if metrics is not None else default_metrics(masks is not None)
    unknown = set(params) - set(names)
    if unknown:
        raise KeyError(f"params given for metrics not scored: {sorted(unknown)}")
    for name in names:
        spec = get_metric(name)
        if spec.fn is None:
            raise ValueError(f"metric {name!r} is measured by the benchmark runner around explain calls, "
                             f"not scored from maps")
        if spec.needs_mask and masks is None:
            raise ValueError(f"metric {name!r} needs lesion masks: pass masks=")
        if spec.needs_explainer and explainer is None:
            raise ValueError(f"metric {name!r} re-explains the model: pass explainer=")
        if model is None and (spec.needs_model or spec.needs_explainer):
            raise ValueError(f"metric {name!r} ({spec.category}) asks the model how the maps' regions move its "
                             f"output: pass model= (maps made elsewhere still need the model they explain); "
                             f"localisation metrics need no model")
    ids = list(image_ids) if image_ids is not None else list(range(n))
    # an explainer built from the lesion mask is not applicable without a lesion: never scored there
    lesion = has_mask & masks.flatten(1).any(1) if masks is not None else has_mask
    not_applicable = (~lesion).cpu().numpy() if getattr(explainer, "from_lesion_mask", False) else np.zeros(n, bool)
    model = model.to(device).eval() if model is not None else None
    rows = []
    for name in names:
        spec = get_metric(name)
        values = []
        for i in range(0, n, batch_size):
            sl = slice(i, min(i + batch_size, n))
            extra = {"explainer": explainer, "context": {}} if spec.needs_explainer else {}
            v = score(name, model, images[sl], targets[sl], maps[sl], None if masks is None else masks[sl],
                      has_mask[sl], **extra, sign=sign, **params.get(name, {}))
            values.append(v.detach().float().cpu().numpy())
        for image, value in zip(ids, np.where(not_applicable, np.nan, np.concatenate(values))):
            rows.append((image, name, spec.category, spec.higher_is_better, float(value)))
    return pd.DataFrame(rows, columns=COLUMNS)
