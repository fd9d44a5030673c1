"""Across training runs: the statistics of several trained instances of one architecture (train.seeds;
instance names in store/instances.py), from the per-instance tables the report already computed.

Per (dataset, architecture, metric, explainer):
- the mean over instances and images, with a two-level percentile bootstrap interval. Each resample
  draws k instances with replacement from the architecture's k, and n image ids with replacement
  from the n images every instance scored (each instance's common image set, stats.common_cells,
  intersected); the resample's mean is the mean over the drawn instances of each one's mean over the
  drawn images. The image draw is one draw shared by the drawn instances, not one per instance: the
  instances score the same test images, so an image's difficulty is shared across them (crossed, not
  nested), and independent draws per instance would average it out and make the interval too narrow.
  With every image alike within each instance the interval is that of the instance means alone; with
  every instance alike, that of the images alone. Seeded (report.bootstrap resamples, run.seed).
- the method ranking's agreement: for each instance the methods (not baselines) ordered best first on
  that instance's common image set (tables.ranked: a metric without headroom ranks nobody); Kendall's
  tau between every two instances' orders, over the methods both rank, averaged over the pairs; the
  leading method (first in the most instances, ties by name) and the share of instances it leads in.
- verdicts that hold across instances: "beats <baseline>" (findings.comparisons, per instance: paired
  Wilcoxon with Holm, favouring the method) and "leads" (tables.significant_leads: the best method is
  significantly better than the runner-up) only where they hold in EVERY instance; where they hold in
  some, the count is shown and it is not a verdict.
"""
from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..store.instances import architecture, by_architecture  # noqa: F401 (by_architecture: the section's)
from . import stats
from .tables import ordered_metrics, ranked, significant_leads

MEAN_COLUMNS = ["dataset", "architecture", "metric", "explainer", "instances", "n", "mean", "ci_low", "ci_high",
                "sd_instances"]
AGREEMENT_COLUMNS = ["dataset", "architecture", "metric", "instances", "judged_in", "kendall_tau", "pairs", "leader",
                     "leader_share", "leads_every_instance"]
VERDICT_COLUMNS = ["dataset", "architecture", "explainer", "metric", "baseline", "instances", "holds_in", "holds"]


def repeated(models) -> dict[str, list[str]]:
    """Architecture -> its instances, for the architectures with at least two (train.seeds)."""
    return {a: ms for a, ms in by_architecture(models).items() if len(ms) >= 2}


def resample_plan(n_instances: int, n_images: int, n_resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(instance draws (B, k), image draws (B, n)) of the two-level bootstrap, from one seeded generator."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, n_instances, size=(n_resamples, n_instances)),
            rng.integers(0, n_images, size=(n_resamples, n_images)))


def plan_means(values: np.ndarray, instance_draws: np.ndarray, image_draws: np.ndarray) -> np.ndarray:
    """The resample means of an images x instances array under a plan: for resample b, the mean over
    the instances instance_draws[b] of their means over the images image_draws[b]."""
    per_instance = values[image_draws].mean(axis=1)          # (B, k): each instance on resample b's images
    return np.take_along_axis(per_instance, instance_draws, axis=1).mean(axis=1)


def two_level_ci(values: np.ndarray, n_resamples: int = 1000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high) of an images x instances array (no NaN): the mean of the instance means and
    the percentile interval of the two-level bootstrap (module docstring); NaN bounds below 2 x 2."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean()) if values.size else float("nan")
    if values.ndim != 2 or min(values.shape) < 2:
        return mean, float("nan"), float("nan")
    means = plan_means(values, *resample_plan(values.shape[1], values.shape[0], n_resamples, seed))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return mean, float(low), float(high)


def _common(scores: pd.DataFrame, gaps) -> dict[tuple[str, str, str], pd.DataFrame]:
    """(dataset, instance, metric) -> its common image set, images x explainers (stats.common_cells)."""
    return {key: common for key, _, _, common in stats.common_cells(scores, gaps)}


def _wide_cells(scores: pd.DataFrame, gaps):
    """(dataset, architecture, metric, explainer, members, images x instances values) for every
    architecture with >= 2 instances: each instance's values on the images every instance scored."""
    groups = repeated(scores["model"].astype(str))
    if not groups:
        return
    cells = _common(scores[scores["model"].astype(str).map(architecture).isin(groups)], gaps)
    for (dataset, metric) in sorted({(d, m) for d, _, m in cells}):
        for arch, members in groups.items():
            frames = [cells.get((dataset, m, metric)) for m in members]
            if any(f is None for f in frames):
                continue
            for e in sorted(set.intersection(*(set(f.columns) for f in frames))):
                wide = pd.concat([f[e].rename(m) for f, m in zip(frames, members)], axis=1, join="inner").dropna()
                yield dataset, arch, metric, e, members, wide.to_numpy(float)


def instance_means(scores: pd.DataFrame, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
                   gaps=None) -> pd.DataFrame:
    """MEAN_COLUMNS per (dataset, architecture with >= 2 instances, metric, explainer)."""
    rows = []
    for dataset, arch, metric, e, members, values in _wide_cells(scores, gaps):
        mean, low, high = two_level_ci(values, n_resamples, confidence, seed)
        sd = float(values.mean(axis=0).std(ddof=1)) if len(values) else float("nan")
        rows.append(dict(dataset=dataset, architecture=arch, metric=metric, explainer=e,
                         instances=len(members), n=len(values), mean=mean, ci_low=low, ci_high=high,
                         sd_instances=sd))
    return pd.DataFrame(rows, columns=MEAN_COLUMNS)


def instance_points(scores: pd.DataFrame, gaps=None) -> pd.DataFrame:
    """Each instance's mean on the images every instance of its architecture scored (the images of
    instance_means): dataset, model (the architecture), metric, explainer, instance, mean."""
    rows = [dict(dataset=dataset, model=arch, metric=metric, explainer=e, instance=m, mean=float(v))
            for dataset, arch, metric, e, members, values in _wide_cells(scores, gaps) if len(values)
            for m, v in zip(members, values.mean(axis=0))]
    return pd.DataFrame(rows, columns=["dataset", "model", "metric", "explainer", "instance", "mean"])


def architecture_summary(means: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """instance_means shaped as a per-model summary (`model` = the architecture) for the leaderboard
    figures; a metric is judged only where every instance's summary judges it (headroom.mark)."""
    out = means.rename(columns={"architecture": "model"}).copy()
    if "judged" in summary.columns and len(out):
        arch = summary["model"].astype(str).map(architecture)
        judged = summary.assign(arch=arch).groupby(["dataset", "arch", "metric"])["judged"].all()
        out["judged"] = [bool(judged.get((d, a, m), True)) for d, a, m in zip(out["dataset"], out["model"], out["metric"])]
    return out


def mean_kendall(orders: list[list[str]]) -> tuple[float, int]:
    """Mean Kendall tau over every two orders (best first) on the items both hold, and the number of
    pairs with at least two such items (NaN, 0 when none)."""
    taus = []
    for a, b in itertools.combinations(orders, 2):
        both = [x for x in a if x in b]
        if len(both) < 2:
            continue
        tau = sps.kendalltau([a.index(x) for x in both], [b.index(x) for x in both]).statistic
        taus.append(float(tau))
    return (float(np.mean(taus)), len(taus)) if taus else (float("nan"), 0)


def agreement(summary: pd.DataFrame, tests: pd.DataFrame | None) -> pd.DataFrame:
    """AGREEMENT_COLUMNS per (dataset, architecture with >= 2 instances, metric) from the per-instance
    leaderboard `summary` (headroom-marked) and paired `tests`."""
    groups = repeated(summary["model"].astype(str))
    leads = significant_leads(summary, tests)
    rows = []
    for dataset, df in summary.groupby("dataset", sort=True):
        for arch, members in groups.items():
            per = {m: df[df.model == m] for m in members}
            for metric in dict.fromkeys(df[df.model.isin(members)]["metric"]):
                orders = [ranked(per[m], metric) for m in members]
                tau, pairs = mean_kendall(orders)
                firsts = Counter(o[0] for o in orders if o)
                leader = min(firsts, key=lambda e: (-firsts[e], e)) if firsts else ""
                every = bool(leader) and all(o and o[0] == leader and (dataset, m, metric) in leads
                                             for m, o in zip(members, orders))
                judged = sum(_judged(per[m], metric) for m in members)
                rows.append(dict(dataset=dataset, architecture=arch, metric=metric, instances=len(members),
                                 judged_in=judged, kendall_tau=tau, pairs=pairs, leader=leader,
                                 leader_share=firsts[leader] / len(members) if leader else float("nan"),
                                 leads_every_instance=every))
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)


def _judged(summary: pd.DataFrame, metric: str) -> bool:
    """Whether one instance's summary judges `metric` (headroom.mark: a curve metric without headroom is
    not judged, and ranks nobody)."""
    col = summary[summary.metric == metric]
    return "judged" not in col.columns or bool(col["judged"].astype(bool).all())


def verdicts(comparisons: pd.DataFrame) -> pd.DataFrame:
    """VERDICT_COLUMNS per (dataset, architecture with >= 2 instances, method, metric, baseline) of
    findings.comparisons: `holds` only where the method beats the baseline in every instance (an
    instance without the comparison, or where it is not judged, does not hold)."""
    if comparisons.empty:
        return pd.DataFrame(columns=VERDICT_COLUMNS)
    groups = repeated(comparisons["model"].astype(str))
    rows = []
    for arch, members in groups.items():
        c = comparisons[comparisons["model"].isin(members)]
        for (dataset, e, metric, b), g in c.groupby(["dataset", "explainer", "metric", "baseline"], sort=True):
            won = int((g["beats"].astype(bool) & g["judged"].astype(bool)).sum())
            rows.append(dict(dataset=dataset, architecture=arch, explainer=e, metric=metric, baseline=b,
                             instances=len(members), holds_in=won, holds=won == len(members)))
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def standing(rows: pd.DataFrame):
    """One method's rows of `verdicts` (one dataset and architecture), per metric compared with random in
    report order: (metric, kind, holds_in, instances, baselines), kind "every" (beats random and every
    baseline in every instance), "random" (random in every instance, not every baseline), "some" (random
    in some instances only: counted, not a verdict) or "none"."""
    for metric in ordered_metrics(rows["metric"]):
        m = rows[rows.metric == metric]
        floor = m[m.baseline == "random"]
        if floor.empty:
            continue
        k, n = int(floor["holds_in"].iloc[0]), int(floor["instances"].iloc[0])
        if bool(floor["holds"].iloc[0]):
            kind = "every" if bool(m["holds"].all()) else "random"
        else:
            kind = "some" if k > 0 else "none"
        yield metric, kind, k, n, len(m)


def classifier_spread(classifiers: dict[str, dict]) -> list[dict]:
    """Per architecture with >= 2 instances: the instances' accuracy (and test AUROC) as mean and SD
    (ddof 1), from manifest.json's classifiers."""
    out = []
    for arch, members in repeated(classifiers).items():
        row = {"architecture": arch, "instances": len(members)}
        for split, key in (("val", "accuracy"), ("test", "accuracy"), ("test", "auroc")):
            v = np.array([float((classifiers[m].get(split) or {}).get(key, np.nan)) for m in members])
            v = v[np.isfinite(v)]
            row[f"{split}_{key}"] = (float(v.mean()) if len(v) else float("nan"),
                                     float(v.std(ddof=1)) if len(v) > 1 else float("nan"))
        out.append(row)
    return out
