"""Which explainers are baselines (reference rows) and which metrics are binary (exact intervals).

Baselines (random, sobel, center, lung_prior, mask_prior, oracle, ...) are the floor and ceiling a reader
compares methods against: they appear in every table as reference rows, in their own block, and are
never "best", never bold, never rank first and never enter an agreement or a method family. An
explainer is a baseline when its class declares `baseline = True` (a plug-in may declare it either
way); else when its registry entry lives in a `baselines` module (as figure_style reads it); else
when its name is one of the built-in baselines (a table read without the registry entry).

Binary metrics (per-image values only 0 or 1, e.g. the pointing game, hit rates) get an exact
Clopper-Pearson interval of the hit rate instead of the bootstrap: a metric is binary when its spec
declares `binary = True`, or, without a declaration, when every value of the cell is 0 or 1; a
declared binary metric whose values are not all 0/1 falls back to the bootstrap.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

BUILTIN_BASELINES = ("random", "sobel", "center", "lung_prior", "mask_prior", "oracle")
BASELINE_BLOCK = "Baselines (reference)"


def is_baseline(name: str) -> bool:
    from cxr_xai_bench.explainers import EXPLAINERS

    cls = EXPLAINERS.get(name)
    if cls is not None:
        declared = getattr(cls, "baseline", None)
        if declared is not None:
            return bool(declared)
        return cls.__module__.endswith(".baselines")
    return name in BUILTIN_BASELINES


def split(names) -> tuple[list[str], list[str]]:
    """(methods, baselines), each sorted, of the explainer names given."""
    names = sorted(set(names))
    return [n for n in names if not is_baseline(n)], [n for n in names if is_baseline(n)]


def ordered(names) -> list[str]:
    """Methods first, then baselines, each sorted."""
    m, b = split(names)
    return m + b


def is_binary(metric: str, values: np.ndarray) -> bool:
    """Whether the cell's values take an exact binomial interval (see the module docstring)."""
    values = np.asarray(values, dtype=float)
    all01 = bool(len(values)) and bool(np.isin(values, (0.0, 1.0)).all())
    try:
        from ..metrics import get_metric
        declared = getattr(get_metric(metric), "binary", None)
    except (KeyError, ValueError):
        declared = None
    return all01 if declared is None else bool(declared) and all01


def exact_ci(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson interval of a proportion k / n; NaN without trials."""
    if n <= 0:
        return float("nan"), float("nan")
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def family(a: str, b: str) -> str:
    """The Holm family of a paired test: "methods" (method vs method: who leads), "baselines:<method>"
    (that method vs each baseline: what it beats), "reference" (baseline vs baseline)."""
    ba, bb = is_baseline(a), is_baseline(b)
    if not ba and not bb:
        return "methods"
    if ba and bb:
        return "reference"
    return "baselines:" + (b if ba else a)
