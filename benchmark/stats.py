"""Summaries of the long score table: mean, median and bootstrap confidence intervals per cell."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

CELL = ["dataset", "model", "explainer", "metric"]


def bootstrap_ci(values: np.ndarray, n_resamples: int = 1000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean, resampling images; NaN for fewer than two values."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float("nan"), float("nan")
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap((values,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                              method="percentile", rng=np.random.default_rng(seed), vectorized=True)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def summarise(scores: pd.DataFrame, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """One row per (dataset, model, explainer, metric): n scored, n NaN, mean, median, CI."""
    rows = []
    for key, group in scores.groupby(CELL, sort=True):
        values = group["value"].to_numpy(dtype=float)
        finite = values[~np.isnan(values)]
        low, high = bootstrap_ci(finite, n_resamples, confidence, seed)
        rows.append(dict(zip(CELL, key), n=len(finite), n_nan=int(np.isnan(values).sum()),
                         mean=float(finite.mean()) if len(finite) else float("nan"),
                         median=float(np.median(finite)) if len(finite) else float("nan"),
                         ci_low=low, ci_high=high))
    return pd.DataFrame(rows, columns=CELL + ["n", "n_nan", "mean", "median", "ci_low", "ci_high"])
