"""Which test images each explainer lacked its dataset context for, or is not applicable to (built
from the lesion mask, the image has none: missing_context.not_applicable), as stored in the manifest
(`context_gaps`), where the report reads them as not applicable to that explainer rather than as
its failures (benchmark.report.stats). Kept apart from `missing_context`, whose source is part of
the explain and score keys: this module changes no map and no score."""
from __future__ import annotations

import numpy as np

from cxr_xai_bench.datasets import Batch

from .config import Config
from .missing_context import missing, not_applicable


def context_gaps(cfg: Config, test: Batch, prior_path: str = "") -> dict[str, list[str]]:
    """explainer -> ids of the test images it lacks context for (only with explain.missing_context =
    "nan": in mode "error" such a run stops before training) or is not applicable to (the oracle on
    images without a lesion, in either mode)."""
    out = {}
    for name in cfg.explain.names:
        lacks = not_applicable(name, test)
        gaps = missing(name, test, prior_path) if cfg.explain.missing_context == "nan" else {}
        if gaps:
            lacks = lacks | np.logical_or.reduce(list(gaps.values()))
        if lacks.any():
            out[name] = [i for i, bad in zip(test.ids, lacks) if bad]
    return out
