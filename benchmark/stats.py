"""Statistics of the long score table: per-cell summaries with bootstrap CIs, paired tests between
explainers with effect sizes, and the Friedman test with average ranks and the Nemenyi critical
difference.

NaN handling: a NaN score means "not scored" (e.g. localisation on an image without a lesion). Cell
summaries use the finite values and report n (scored) and n_nan; paired tests use the images both
explainers scored; the Friedman test uses the images every explainer of the cell scored and reports
how many images it dropped.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

CELL = ["dataset", "model", "explainer", "metric"]
PAIR_COLUMNS = ["dataset", "model", "metric", "a", "b", "n", "mean_diff", "diff_ci_low", "diff_ci_high",
                "statistic", "p", "p_holm", "rank_biserial"]
FRIEDMAN_COLUMNS = ["dataset", "model", "metric", "k", "n", "n_dropped", "statistic", "p", "cd", "alpha"]
RANK_COLUMNS = ["dataset", "model", "metric", "explainer", "avg_rank", "n"]


def bootstrap_ci(values: np.ndarray, n_resamples: int = 1000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean, resampling images; NaN for fewer than two values."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float("nan"), float("nan")
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])
    with warnings.catch_warnings():
        # scipy warns on degenerate resamples of tiny samples; the interval is still the percentile one
        warnings.simplefilter("ignore")
        res = stats.bootstrap((values,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                              method="percentile", rng=np.random.default_rng(seed), vectorized=True)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def bootstrap_ci_columns(values: np.ndarray, n_resamples: int = 1000, confidence: float = 0.95,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap CI of the column means of an (N, S) array (curves), resampling rows
    (images) jointly for all columns; NaN for fewer than two rows."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"bootstrap_ci_columns: expected an (N, S) array, got shape {values.shape}")
    if len(values) < 2:
        nan = np.full(values.shape[1], np.nan)
        return nan, nan.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap((values,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                              method="percentile", rng=np.random.default_rng(seed), vectorized=True, axis=0)
    low, high = np.asarray(res.confidence_interval.low), np.asarray(res.confidence_interval.high)
    # constant columns (e.g. the curve's first point) give NaN from scipy; their interval is the value
    const = np.all(values == values[:1], axis=0)
    low[const], high[const] = values[0, const], values[0, const]
    return low, high


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


def rank_biserial(a: np.ndarray, b: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation of a - b (Kerby 2014): (T+ - T-) / (T+ + T-) over the
    ranks of the nonzero |differences|, zeros dropped as in Wilcoxon's default. In [-1, 1]; positive
    when a tends to exceed b; NaN when every difference is zero or there are none."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    d = d[d != 0]
    if len(d) == 0:
        return float("nan")
    r = stats.rankdata(np.abs(d))
    return float((r[d > 0].sum() - r[d < 0].sum()) / r.sum())


def paired_tests(scores: pd.DataFrame, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Every pair of explainers on the images both scored, per (dataset, model, metric): Wilcoxon
    signed-rank test (Holm-corrected across the pairs of that cell), the matched-pairs rank-biserial
    effect size and a paired bootstrap CI of the mean difference a - b. p = 1 when all differences
    are zero (no evidence either way); p NaN when no image was scored by both."""
    rows = []
    for (dataset, model, metric), cell in scores.groupby(["dataset", "model", "metric"], sort=True):
        wide = cell.pivot_table(index="image_id", columns="explainer", values="value", aggfunc="first", dropna=False)
        names = sorted(wide.columns)
        pairs = []
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                both = wide[[a, b]].dropna()
                diff = (both[a] - both[b]).to_numpy(dtype=float)
                stat, p = float("nan"), float("nan")
                if len(diff) and np.all(diff == 0):
                    p = 1.0
                elif len(diff):
                    res = stats.wilcoxon(both[a], both[b])
                    stat, p = float(res.statistic), float(res.pvalue)
                low, high = bootstrap_ci(diff, n_resamples, confidence, seed)
                pairs.append(dict(dataset=dataset, model=model, metric=metric, a=a, b=b, n=len(diff),
                                  mean_diff=float(diff.mean()) if len(diff) else float("nan"),
                                  diff_ci_low=low, diff_ci_high=high, statistic=stat, p=p,
                                  rank_biserial=rank_biserial(both[a], both[b])))
        if pairs:
            p = np.array([r["p"] for r in pairs])
            adj = np.full(len(p), np.nan)
            ok = ~np.isnan(p)
            adj[ok] = holm(p[ok])
            for r, q in zip(pairs, adj):
                r["p_holm"] = float(q)
            rows.extend(pairs)
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def nemenyi_cd(k: int, n: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference of average ranks (Demšar 2006): q_alpha * sqrt(k(k+1) / (6n)), with
    q_alpha the studentized range quantile for k groups and infinite degrees of freedom over sqrt(2)."""
    if k < 2 or n < 1:
        return float("nan")
    q = stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(k * (k + 1) / (6 * n)))


def friedman(scores: pd.DataFrame, higher_is_better: dict[str, bool] | None = None,
             alpha: float = 0.05) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Friedman test across explainers per (dataset, model, metric) on the images every explainer
    scored, with average ranks (1 = best in the metric's direction, ties share the mean rank) and the
    Nemenyi critical difference. Returns (tests, ranks). The test needs k >= 3 explainers and n >= 2
    images; otherwise its statistic and p are NaN (the ranks are still given when n >= 1)."""
    if higher_is_better is None:
        from .metrics import get_metric
        higher_is_better = {m: get_metric(m).higher_is_better for m in scores["metric"].unique()}
    tests, ranks = [], []
    for (dataset, model, metric), cell in scores.groupby(["dataset", "model", "metric"], sort=True):
        wide = cell.pivot_table(index="image_id", columns="explainer", values="value", aggfunc="first", dropna=False)
        wide = wide[sorted(wide.columns)]
        complete = wide.dropna()
        k, n = wide.shape[1], len(complete)
        values = complete.to_numpy(dtype=float)
        stat = p = float("nan")
        if k >= 3 and n >= 2 and not np.all(values == values[:, :1]):
            res = stats.friedmanchisquare(*values.T)
            stat, p = float(res.statistic), float(res.pvalue)
        elif k >= 3 and n >= 2:
            stat, p = 0.0, 1.0  # every image ties all explainers: no evidence of a difference
        tests.append(dict(dataset=dataset, model=model, metric=metric, k=k, n=n, n_dropped=len(wide) - n,
                          statistic=stat, p=p, cd=nemenyi_cd(k, n, alpha), alpha=alpha))
        if n:
            sign = -1.0 if higher_is_better[metric] else 1.0
            avg = stats.rankdata(sign * values, axis=1).mean(0)
            ranks += [dict(dataset=dataset, model=model, metric=metric, explainer=e, avg_rank=float(r), n=n)
                      for e, r in zip(complete.columns, avg)]
    return pd.DataFrame(tests, columns=FRIEDMAN_COLUMNS), pd.DataFrame(ranks, columns=RANK_COLUMNS)
