"""Stage lesion reliance: where the dataset can render a test image without its lesion (an exact
counterfactual: the phantom's generator draws lesions from their own stream), how much each model's
pneumonia output drops when the lesion is removed. A pneumonia image the model classifies as
pneumonia, and as normal once its lesion is gone, is a known-truth case: the lesion mask is then
what the model uses, and the report checks every explainer and faithfulness metric against it.

Written to `reliance.csv` (dataset, split, model, image_id, p_image, p_counterfactual, drop, reliant).
Two forward passes per pneumonia test image and model; nothing when the dataset has no
counterfactuals (the table removed, so the report never shows an earlier run's)."""
from __future__ import annotations

import pandas as pd
import torch

from cxr_xai_bench.datasets import build_dataset
from cxr_xai_bench.models import predict_proba

from ..store.files import atomic_path
from .context import Models, RunContext
from .data import file_params

TABLE = "reliance.csv"
COLUMNS = ["dataset", "split", "model", "image_id", "p_image", "p_counterfactual", "drop", "reliant"]


def counterfactuals(cfg, test) -> tuple[list[int], torch.Tensor] | None:
    """(positions in the test split, their images without lesions) of the pneumonia test images the
    dataset can render without the lesion; None when it offers no counterfactuals."""
    d = cfg.data
    params = {**d.params, **({"root": d.root} if d.root else {})}
    ds = build_dataset(d.dataset, split=d.splits["test"], size=d.size, seed=cfg.run.seed, **file_params(cfg), **params)
    if not hasattr(ds, "counterfactual"):
        return None
    # every image with known evidence: the phantom's pneumonia images; planted markers sit in both classes
    lesion = test.has_mask & test.lesion_masks.flatten(1).any(1)
    index, images = [], []
    for i in lesion.nonzero().flatten().tolist():
        cf = ds.counterfactual(test.ids[i])
        if cf is not None:
            index.append(i)
            images.append(cf)
    return (index, torch.stack(images)) if index else None


def lesion_reliance(ctx: RunContext, models: Models, test) -> None:
    cfg, path = ctx.cfg, ctx.run_dir / TABLE
    got = counterfactuals(cfg, test)
    if got is None:
        path.unlink(missing_ok=True)
        return
    index, removed = got
    rows = []
    for name, (_, ckpt) in models.items():
        model = ctx.state.model(cfg, name, str(ckpt), ctx.device)
        p = predict_proba(model, test.images[index])[:, 1]
        q = predict_proba(model, removed)[:, 1]
        for k, i in enumerate(index):
            rows.append((cfg.data.dataset, cfg.data.splits["test"], name, test.ids[i], float(p[k]), float(q[k]),
                         float(p[k] - q[k]), bool(p[k] > 0.5 and q[k] <= 0.5)))
    with atomic_path(path) as tmp:
        pd.DataFrame(rows, columns=COLUMNS).to_csv(tmp, index=False, float_format="%.10g")
