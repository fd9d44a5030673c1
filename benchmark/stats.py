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


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone), in the input order."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def paired_tests(scores: pd.DataFrame) -> pd.DataFrame:
    """Wilcoxon signed-rank tests between every pair of explainers on the images both scored,
    per (dataset, model, metric), Holm-corrected across the pairs of that cell."""
    rows = []
    for (dataset, model, metric), cell in scores.groupby(["dataset", "model", "metric"], sort=True):
        wide = cell.pivot_table(index="image_id", columns="explainer", values="value", aggfunc="first")
        names = sorted(wide.columns)
        pairs = []
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                both = wide[[a, b]].dropna()
                diff = (both[a] - both[b]).to_numpy()
                if len(diff) == 0 or np.all(diff == 0):
                    p = 1.0
                else:
                    p = float(stats.wilcoxon(both[a], both[b]).pvalue)
                pairs.append(dict(dataset=dataset, model=model, metric=metric, a=a, b=b, n=len(diff),
                                  mean_diff=float(diff.mean()) if len(diff) else float("nan"), p=p))
        if pairs:
            adj = holm(np.array([r["p"] for r in pairs]))
            for r, q in zip(pairs, adj):
                r["p_holm"] = float(q)
            rows.extend(pairs)
    return pd.DataFrame(rows, columns=["dataset", "model", "metric", "a", "b", "n", "mean_diff", "p", "p_holm"])
