"""How far to trust the metrics of a run, from its stored per-image scores alone (per dataset and model):

- agreement: Kendall's tau-b between the explainer rankings of every pair of metrics, each ranking
  by the mean on the metric's common image set with the direction applied (so tau = 1 means the two
  metrics order the explainers the same way from best to worst, -1 the reverse). Runtime metrics
  are left out (they rank cost, not quality), every other category is in (a plug-in's own too); a
  pair needs three explainers both metrics scored.
- discrimination: on the images both `random` (the floor) and `oracle` (the ceiling: the true lesion
  mask) were scored, which are the lesion images only (the oracle is not applicable to an image
  without a lesion, where its map is all zero: its scores there are NaN, so those rows drop out and
  `n` counts lesion images), the share where oracle scores better than random in the metric's direction
  (ties and losses apart), the matched-pairs rank-biserial effect (positive favours oracle) and the
  Wilcoxon signed-rank p (Pratt's zeros). A metric that scores both maps alike (blind to the map)
  has share 0, ties 1, effect 0, p 1. Only faithfulness and localisation metrics are discriminated
  this way: the true lesion mask is a ceiling of those only (not of sanity, runtime, complexity,
  robustness or a plug-in's own category).
- stability: the bootstrap probability that each explainer ranks first on a metric, resampling the
  images of the common set (seeded); ties for first share the resample. Baselines are left out (the
  oracle would win every localisation metric by construction); agreement is among the methods too,
  and with the baselines on request (agreement(..., with_baselines=True)).

Not computed, since a run stores neither: each metric's response to the randomised model's maps
(sanity.csv keeps only the similarity curves) and to small input perturbations.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..metrics import get_metric
from . import roles
from .stats import common_cells, rank_biserial, wilcoxon

AGREEMENT_COLUMNS = ["dataset", "model", "metric_a", "metric_b", "n_explainers", "tau", "p"]
DISCRIMINATION_COLUMNS = ["dataset", "model", "metric", "n", "oracle_better", "tie", "random_better",
                          "effect", "p"]
FIRST_COLUMNS = ["dataset", "model", "metric", "explainer", "p_first", "n", "resamples"]
FLOOR, CEILING = "random", "oracle"
NOT_RANKED = ("runtime",)  # categories left out of the agreement: they rank cost, not quality
DISCRIMINATED = ("faithfulness", "localisation")  # oracle is their ceiling


def _sign(metric: str) -> float:
    return 1.0 if get_metric(metric).higher_is_better else -1.0


def agreement(summary: pd.DataFrame, with_baselines: bool = False) -> pd.DataFrame:
    """Kendall's tau-b of the explainer rankings (common-set means, direction applied) of every pair of
    non-runtime metrics per (dataset, model), among the methods only (baselines, whose order is fixed
    by construction, would inflate it) unless `with_baselines`; NaN where fewer than three explainers
    have both means or a ranking is all ties."""
    rows = []
    if not with_baselines:
        summary = summary[~summary["explainer"].map(roles.is_baseline).astype(bool)]
    summary = summary[np.array([get_metric(m).category not in NOT_RANKED for m in summary["metric"]], dtype=bool)]
    for (dataset, model), df in summary.groupby(["dataset", "model"], sort=True):
        wide = df.pivot(index="explainer", columns="metric", values="mean")
        metrics = list(wide.columns)
        for i, a in enumerate(metrics):
            for b in metrics[i + 1:]:
                both = wide[[a, b]].dropna()
                tau = p = float("nan")
                if len(both) >= 3 and both[a].nunique() > 1 and both[b].nunique() > 1:
                    res = sps.kendalltau(_sign(a) * both[a], _sign(b) * both[b])
                    tau, p = float(res.statistic), float(res.pvalue)
                rows.append(dict(dataset=dataset, model=model, metric_a=a, metric_b=b, n_explainers=len(both),
                                 tau=tau, p=p))
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)


def agreement_matrix(table: pd.DataFrame, dataset: str, model: str, metrics: list[str]) -> pd.DataFrame:
    """The symmetric metrics x metrics tau matrix of one (dataset, model), 1 on the diagonal."""
    t = table[(table.dataset == dataset) & (table.model == model)]
    out = pd.DataFrame(np.nan, index=metrics, columns=metrics)
    for r in t.itertuples(index=False):
        if r.metric_a in out.index and r.metric_b in out.index:
            out.loc[r.metric_a, r.metric_b] = out.loc[r.metric_b, r.metric_a] = r.tau
    for m in metrics:
        out.loc[m, m] = 1.0
    return out


def discrimination(scores: pd.DataFrame, floor: str = FLOOR, ceiling: str = CEILING) -> pd.DataFrame:
    """Per (dataset, model, metric) of the faithfulness and localisation categories: how clearly the
    metric separates `ceiling` from `floor` on the n images both were scored, the lesion images (the
    oracle is NaN, not applicable, elsewhere; see the module docstring)."""
    rows = []
    keep = np.array([get_metric(m).category in DISCRIMINATED for m in scores["metric"]], bool)
    sel = scores[keep & scores["explainer"].isin([floor, ceiling]).to_numpy()]
    for (dataset, model, metric), wide, _, _ in common_cells(sel):
        if floor not in wide.columns or ceiling not in wide.columns:
            continue
        both = wide[[floor, ceiling]].dropna()
        s = _sign(metric)
        top, bottom = s * both[ceiling].to_numpy(float), s * both[floor].to_numpy(float)
        n = len(both)
        share = (lambda x: float(x.mean()) if n else float("nan"))
        rows.append(dict(dataset=dataset, model=model, metric=metric, n=n, oracle_better=share(top > bottom),
                         tie=share(top == bottom), random_better=share(top < bottom),
                         effect=rank_biserial(top, bottom), p=wilcoxon(top, bottom)[1]))
    return pd.DataFrame(rows, columns=DISCRIMINATION_COLUMNS)


def rank_first(scores: pd.DataFrame, n_resamples: int = 1000, seed: int = 0,
               exclude: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Bootstrap probability that each method ranks first per (dataset, model, metric): images of the
    common set resampled with replacement (`n_resamples` times, seeded), the explainer with the best
    mean in the metric's direction counted, ties for first sharing the resample equally. `exclude`
    (default: every baseline, see roles) is left out: a baseline is a reference, never first."""
    rows = []
    if exclude is None:
        exclude = tuple(roles.split(scores["explainer"].unique())[1])
    sel = scores[~scores["explainer"].isin(exclude)]
    for (dataset, model, metric), _, _, common in common_cells(sel):
        names, n = list(common.columns), len(common)
        if n == 0 or not names:
            continue
        values = _sign(metric) * common.to_numpy(dtype=float)
        idx = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
        means = values[idx].mean(axis=1)  # (resamples, explainers)
        best = np.isclose(means, means.max(axis=1, keepdims=True), rtol=0, atol=1e-12)
        p = (best / best.sum(axis=1, keepdims=True)).mean(axis=0)
        rows += [dict(dataset=dataset, model=model, metric=metric, explainer=e, p_first=float(q), n=n,
                      resamples=n_resamples) for e, q in zip(names, p)]
    return pd.DataFrame(rows, columns=FIRST_COLUMNS)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def sentence(metric: str, agree: pd.DataFrame, disc: pd.DataFrame, first: pd.DataFrame, alpha: float = 0.05) -> str:
    """One sentence about one metric of one (dataset, model) from its agreement, discrimination and
    rank-first rows (each already restricted to that dataset and model)."""
    parts = []
    d = disc[disc.metric == metric]
    if len(d) and d.iloc[0].n:
        r = d.iloc[0]
        verdict = ("separates oracle from random" if r.p < alpha and r.effect > 0 else
                   "scores random above oracle (reversed)" if r.p < alpha and r.effect < 0 else
                   "cannot tell oracle from random" if r.oracle_better == 0 and r.random_better == 0 else
                   "not shown to separate oracle from random")  # the test did not reject: not evidence of parity
        parts.append(f"{verdict}: oracle better on {_pct(r.oracle_better)} of {int(r.n)} images "
                     f"(ties {_pct(r.tie)}, effect {r.effect:+.2f}, p={r.p:.2g})")
    elif get_metric(metric).category in DISCRIMINATED:
        parts.append("has no images scored for both random and oracle")
    a = agree[(agree.metric_a == metric) | (agree.metric_b == metric)].dropna(subset=["tau"])
    if len(a):
        other = np.where(a.metric_a == metric, a.metric_b, a.metric_a)
        a = a.assign(other=other).sort_values(["tau", "other"], ascending=[False, True])
        hi, lo = a.iloc[0], a.iloc[-1]
        parts.append(f"agrees most with {hi.other} (tau {hi.tau:.2f})"
                     + (f" and least with {lo.other} (tau {lo.tau:.2f})" if len(a) > 1 else ""))
    f = first[first.metric == metric].sort_values(["p_first", "explainer"], ascending=[False, True])
    if len(f):
        lead = f.iloc[0]
        parts.append(f"its leader {lead.explainer} ranks first in {_pct(lead.p_first)} of bootstrap resamples")
    if not parts:
        return f"`{metric}`: nothing to judge it by in this run."
    return f"`{metric}`: " + "; ".join(parts) + "."
