"""Which test images each explainer lacked its dataset context for, as stored in the manifest
(`context_gaps`), where the report reads them as not applicable to that explainer rather than as
its failures (benchmark.report.stats). Kept apart from `missing_context`, whose source is part of
the explain and score keys: this module changes no map and no score."""
from __future__ import annotations

import numpy as np

from cxr_xai_bench.datasets import Batch

from .config import Config
from .missing_context import missing


def context_gaps(cfg: Config, test: Batch, prior_path: str = "") -> dict[str, list[str]]:
    """explainer -> ids of the test images it lacks context for; empty unless
    explain.missing_context = "nan" (in mode "error" such a run stops before training)."""
    if cfg.explain.missing_context != "nan":
        return {}
    out = {}
    for name in cfg.explain.names:
        gaps = missing(name, test, prior_path)
        if gaps:
            lacks = np.logical_or.reduce(list(gaps.values()))
            out[name] = [i for i, bad in zip(test.ids, lacks) if bad]
    return out
