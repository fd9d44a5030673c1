"""Statistics of the long score table: per-cell summaries with bootstrap CIs, paired tests between
explainers with effect sizes, and the Friedman test with average ranks and the Nemenyi critical
difference.

One common image set. A leaderboard compares explainers, so every number of a (dataset, model,
metric) cell is computed on the same images: those every explainer of that cell scored (a finite
value). The summary means, medians and CIs, the paired tests and the Friedman ranks all use this
set, so the mean difference of two explainers in the leaderboard is the mean of their paired
differences. A NaN score is read as follows:
- NaN for every explainer of the cell (e.g. localisation on an image without ground truth, or a
  normal image's empty mask): the image is not in the cell's set and counts for nobody;
- NaN (or no row) for some explainers of an image others scored: a failure of those explainers
  (degenerate maps score 0, not NaN, so NaN there is a true failure). The image leaves the common
  set, and each explainer's failures are counted (`n_failed` in the summary, `n_dropped` in the
  Friedman table: the images some explainer failed on).
- NaN because the explainer lacked the dataset context it needs on that image (`gaps`: explainer
  -> image ids, from the manifest's `context_gaps`, with explain.missing_context = "nan"; e.g. the
  lesion-mask oracle on a normal image): not applicable. It is neither that explainer's failure
  nor a reason to drop the image for the others: the common set keeps the image, that explainer's
  numbers (mean, CI, and its paired tests) use the common images it applies to, and the Friedman
  test and ranks of a cell leave out any explainer not applicable to some common image, since
  they need every explainer on every image. Without `gaps`, such NaNs read as failures.
A cell with no common image keeps its rows with n = 0 (reported "not scored").

One row per image. The table should hold one value per (cell, image); several rows of one image
(e.g. one per training seed) are averaged to one value, with a warning, so an image never counts
twice.

Wilcoxon zeros. A zero paired difference (a tie, frequent for 0/1 metrics such as the pointing
game) is kept with Pratt's method (zero_method="pratt"): zeros take part in ranking |d| and are
then left out of the signed-rank sums. Wilcoxon's default ("wilcox") drops them before ranking,
which tests only the discordant images and lets an effect size ignore a majority of ties.
Pratt rather than "zsplit": with zeros, scipy (method="auto") runs an exact permutation test up to
13 pairs and the normal approximation above; for the latter scipy applies Cureton's (1967)
correction of the mean and variance for Pratt's ranks, while its "zsplit" variance keeps the
zeros' ranks (a conservative test). The rank-biserial effect size uses the same ranks:
r = (R+ - R-) / (n(n+1)/2), zeros counted in the denominator, so many ties shrink it toward 0.
"""
from __future__ import annotations

import logging
import math
import warnings
from typing import Collection, Iterator, Mapping

import numpy as np
import pandas as pd
from scipy import stats

from . import roles

log = logging.getLogger(__name__)
CELL = ["dataset", "model", "explainer", "metric"]
GROUP = ["dataset", "model", "metric"]
SUMMARY_COLUMNS = CELL + ["n", "n_failed", "n_nan", "mean", "median", "ci_low", "ci_high"]
PAIR_COLUMNS = ["dataset", "model", "metric", "a", "b", "n", "mean_diff", "diff_ci_low", "diff_ci_high",
                "statistic", "p", "p_holm", "rank_biserial", "family", "equivalence_margin", "p_tost", "p_tost_holm"]
EQUIVALENCE_MARGIN = 0.05  # report.equivalence_margin's default
FRIEDMAN_COLUMNS = ["dataset", "model", "metric", "k", "n", "n_dropped", "statistic", "p", "cd", "alpha"]
RANK_COLUMNS = ["dataset", "model", "metric", "explainer", "avg_rank", "n"]
ZERO_METHOD = "pratt"
Gaps = Mapping[str, Collection[str]]


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


def wide_cell(cell: pd.DataFrame) -> pd.DataFrame:
    """Images x explainers of one (dataset, model, metric) cell, sorted by image id and explainer;
    non-finite values as NaN, an image without a row for an explainer as NaN, and several rows of one
    (image, explainer) averaged to one value (with a warning)."""
    values = cell["value"].astype(float)
    cell = cell.assign(value=values.where(np.isfinite(values)))
    grouped = cell.groupby(["image_id", "explainer"], sort=True)["value"]
    dup = grouped.size()
    if (dup > 1).any():
        key = cell[GROUP].iloc[0].tolist()
        log.warning("scores of %s hold %d (image, explainer) pairs with several rows; each is averaged to one value",
                    "/".join(map(str, key)), int((dup > 1).sum()))
    return grouped.mean().unstack("explainer").sort_index(axis=1)


def not_applicable(wide: pd.DataFrame, gaps: Gaps | None) -> pd.DataFrame:
    """Images x explainers of a wide cell: True where the explainer lacked its context (`gaps`)."""
    out = pd.DataFrame(False, index=wide.index, columns=wide.columns)
    for e in wide.columns:
        if gaps and gaps.get(e):
            out[e] = wide.index.isin(list(gaps[e]))
    return out


def common_cells(scores: pd.DataFrame, gaps: Gaps | None = None
                 ) -> Iterator[tuple[tuple, pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    """((dataset, model, metric), wide, scored, common) per cell, each images x explainers: every image
    of the cell's rows, the images at least one explainer scored, and the common set (every explainer
    scored it or is not applicable to it; see the module docstring). Without `gaps` the common set
    has no NaN; with them, NaN marks exactly the not-applicable entries."""
    for key, cell in scores.groupby(GROUP, sort=True):
        wide = wide_cell(cell)
        scored = wide[wide.notna().any(axis=1)]
        na = not_applicable(scored, gaps)
        yield key, wide, scored, scored[(scored.notna() | na).all(axis=1)]


def summarise(scores: pd.DataFrame, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
              gaps: Gaps | None = None) -> pd.DataFrame:
    """One row per (dataset, model, explainer, metric) on the cell's common image set: n (common
    images the explainer applies to), n_failed (images another explainer scored and this one did not
    though it applied), n_nan (images of the table this explainer did not score, failures and
    not-applicable images included), mean, median and the CI: bootstrap, or the exact Clopper-Pearson
    interval of the hit rate for a binary metric (per-image values only 0 or 1; see roles)."""
    rows = []
    for (dataset, model, metric), wide, scored, common in common_cells(scores, gaps):
        # failed: another explainer scored the image, this one did not though it applied
        failed = (scored.isna() & ~not_applicable(scored, gaps)).sum()
        for e in wide.columns:
            values = common[e].dropna().to_numpy(dtype=float)
            low, high = (roles.exact_ci(int(values.sum()), len(values), confidence) if roles.is_binary(metric, values)
                         else bootstrap_ci(values, n_resamples, confidence, seed))
            rows.append(dict(dataset=dataset, model=model, explainer=e, metric=metric, n=len(values),
                             n_failed=int(failed[e]), n_nan=int(wide[e].isna().sum()),
                             mean=float(values.mean()) if len(values) else float("nan"),
                             median=float(np.median(values)) if len(values) else float("nan"), ci_low=low, ci_high=high))
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    return out.sort_values(CELL, kind="stable").reset_index(drop=True)


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
    """Matched-pairs rank-biserial correlation of d = a - b (Kerby 2014) with Pratt's zeros:
    (R+ - R-) / (n(n+1)/2), ranks of |d| over all n pairs, zero differences ranked but in neither sum.
    In [-1, 1]; positive when a tends to exceed b; 0 when every difference is zero; NaN without pairs."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(d) == 0:
        return float("nan")
    r = stats.rankdata(np.abs(d))
    return float((r[d > 0].sum() - r[d < 0].sum()) / r.sum())


def wilcoxon(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(statistic, two-sided p) of the Wilcoxon signed-rank test of a - b with Pratt's zeros (see the
    module docstring); p = 1 (statistic NaN) when every difference is zero, both NaN without pairs."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(d) == 0:
        return float("nan"), float("nan")
    if np.all(d == 0):
        return float("nan"), 1.0  # no evidence either way
    res = stats.wilcoxon(d, zero_method=ZERO_METHOD, method="auto")
    return float(res.statistic), float(res.pvalue)


def tost(a: np.ndarray, b: np.ndarray, margin: float) -> float:
    """p of the paired equivalence test (TOST, Schuirmann 1987) of the mean difference d = a - b within
    (-margin, +margin): two one-sided paired t-tests, H0 mean(d) <= -margin against > -margin and H0
    mean(d) >= +margin against < +margin; p is the larger of the two one-sided p's, so p < alpha
    rejects both, and only then are the two "equivalent within ±margin". A t-test on the mean
    difference, not a rank test: the margin is a stated distance in the metric's units, the CI
    printed beside each verdict is of that mean. NaN without a margin (<= 0) or with fewer than two
    pairs; with every difference equal (no spread) 0 when it lies strictly inside the margin, else 1."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if not margin > 0 or len(d) < 2:
        return float("nan")
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0 or not np.isfinite(sd):
        return 0.0 if abs(mean) < margin else 1.0
    se, df = sd / math.sqrt(len(d)), len(d) - 1
    p_low = float(stats.t.sf((mean + margin) / se, df))    # H0: mean <= -margin
    p_high = float(stats.t.cdf((mean - margin) / se, df))  # H0: mean >= +margin
    return max(p_low, p_high)


def paired_tests(scores: pd.DataFrame, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
                 gaps: Gaps | None = None, equivalence_margin: float = EQUIVALENCE_MARGIN) -> pd.DataFrame:
    """Every pair of explainers on the common image set of each (dataset, model, metric), less the
    images one of the two is not applicable to (`gaps`): Wilcoxon
    signed-rank test (Pratt's zeros; Holm-corrected within the pair's declared family of that cell,
    roles.family: methods among themselves for "leads", one method against each baseline for "beats",
    baselines among themselves apart, so adding an unrelated explainer moves no verdict), the matched-pairs
    rank-biserial effect size and a paired bootstrap CI of the mean difference a - b. p = 1 when all
    differences are zero (no evidence either way); p NaN when the cell has no common image. p_tost:
    the equivalence test of the pair within ±equivalence_margin (tost; NaN with a margin of 0),
    p_tost_holm Holm-corrected in the same family: parity is claimed only where p_tost_holm < alpha,
    never from a p that does not reject."""
    rows = []
    for (dataset, model, metric), _, _, common in common_cells(scores, gaps):
        names = list(common.columns)
        pairs = []
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                both = common[[a, b]].dropna()
                diff = (both[a] - both[b]).to_numpy(dtype=float)
                stat, p = wilcoxon(both[a].to_numpy(dtype=float), both[b].to_numpy(dtype=float))
                low, high = bootstrap_ci(diff, n_resamples, confidence, seed)
                pairs.append(dict(dataset=dataset, model=model, metric=metric, a=a, b=b, n=len(diff),
                                  mean_diff=float(diff.mean()) if len(diff) else float("nan"),
                                  diff_ci_low=low, diff_ci_high=high, statistic=stat, p=p,
                                  rank_biserial=rank_biserial(both[a], both[b]), family=roles.family(a, b),
                                  equivalence_margin=float(equivalence_margin),
                                  p_tost=tost(both[a].to_numpy(dtype=float), both[b].to_numpy(dtype=float),
                                              equivalence_margin)))
        for fam in dict.fromkeys(r["family"] for r in pairs):
            group = [r for r in pairs if r["family"] == fam]
            for col in ("p", "p_tost"):
                p = np.array([r[col] for r in group])
                adj = np.full(len(p), np.nan)
                ok = ~np.isnan(p)
                adj[ok] = holm(p[ok])
                for r, q in zip(group, adj):
                    r[col + "_holm"] = float(q)
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
             alpha: float = 0.05, gaps: Gaps | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Friedman test across explainers per (dataset, model, metric) on the common image set, with
    average ranks (1 = best in the metric's direction, ties share the mean rank) and the Nemenyi
    critical difference; an explainer not applicable to some common image (`gaps`) is left out of
    that cell's test and ranks. n_dropped counts the images some explainer failed on (scored by another).
    Returns (tests, ranks). The test needs k >= 3 explainers and n >= 2 images; otherwise its statistic
    and p are NaN (the ranks are still given when n >= 1)."""
    if higher_is_better is None:
        from ..metrics import get_metric
        higher_is_better = {m: get_metric(m).higher_is_better for m in scores["metric"].unique()}
    tests, ranks = [], []
    for (dataset, model, metric), _, scored, common in common_cells(scores, gaps):
        complete = common.loc[:, common.notna().all(axis=0)]
        k, n = complete.shape[1], len(complete)
        values = complete.to_numpy(dtype=float)
        stat = p = float("nan")
        if k >= 3 and n >= 2 and not np.all(values == values[:, :1]):
            res = stats.friedmanchisquare(*values.T)
            stat, p = float(res.statistic), float(res.pvalue)
        elif k >= 3 and n >= 2:
            stat, p = 0.0, 1.0  # every image ties all explainers: no evidence of a difference
        tests.append(dict(dataset=dataset, model=model, metric=metric, k=k, n=n, n_dropped=len(scored) - n,
                          statistic=stat, p=p, cd=nemenyi_cd(k, n, alpha), alpha=alpha))
        if n:
            sign = -1.0 if higher_is_better[metric] else 1.0
            avg = stats.rankdata(sign * values, axis=1).mean(0)
            ranks += [dict(dataset=dataset, model=model, metric=metric, explainer=e, avg_rank=float(r), n=n)
                      for e, r in zip(complete.columns, avg)]
    return pd.DataFrame(tests, columns=FRIEDMAN_COLUMNS), pd.DataFrame(ranks, columns=RANK_COLUMNS)
