"""The report's "How far to trust these metrics" section (numbers in reliability.py): the agreement
heat map, the discrimination and rank-first tables, one sentence per metric, and their CSVs."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from . import reliability as rel
from . import reliability_checks as checks
from .figure_style import save, theme
from .tables import arrow, fmt, ordered_metrics, write_csv

CAVEAT = ("Not measured here, since a run does not store what they need: how each metric scores the "
          "randomised model's maps (`sanity.csv` keeps only the similarity curves of the sanity metrics) and whether "
          "each metric's ranking of the methods holds under input perturbations too small to change the prediction.")


def agreement_figure(table: pd.DataFrame, stem: Path) -> list[Path] | None:
    """Kendall's tau between the metrics' explainer rankings, one heat map per (dataset, model)."""
    groups = list(table.groupby(["dataset", "model"], sort=True).groups)
    if not groups:
        return None
    theme()
    metrics = ordered_metrics(pd.concat([table.metric_a, table.metric_b]))
    side = 0.36 * len(metrics) + 2.0
    ncols = min(2, len(groups))
    nrows = -(-len(groups) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(side * ncols, side * nrows), squeeze=False)
    for ax, (dataset, model) in zip(axes.flat, groups):
        m = rel.agreement_matrix(table, dataset, model, metrics)
        sns.heatmap(m, annot=True, fmt=".1f", cmap="RdBu_r", vmin=-1, vmax=1, center=0, square=True, ax=ax,
                    cbar_kws={"label": "Kendall's tau", "shrink": 0.6}, annot_kws={"fontsize": 5})
        labels = [f"{x} {arrow(x)}" for x in metrics]
        ax.set_xticks(np.arange(len(metrics)) + 0.5, labels, rotation=50, ha="right", fontsize=6)
        ax.set_yticks(np.arange(len(metrics)) + 0.5, labels, rotation=0, fontsize=6)
        ax.set_title(f"{model} on {dataset}: agreement of the explainer rankings\n(Kendall's tau; 1 same order, "
                     "-1 reversed, blank too few explainers)", fontsize=8)
        ax.grid(False)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    fig.tight_layout()
    return save(fig, stem)


def _discrimination_md(disc: pd.DataFrame) -> list[str]:
    if disc.empty:
        return ["No metric scored both `random` and `oracle` on the same images: discrimination not measured.\n"]
    out = ["| model | metric | n | oracle better | tie | random better | effect | p |", "|---|---|---|---|---|---|---|---|"]
    for r in disc.itertuples(index=False):
        out.append(f"| {r.model} | {r.metric} {arrow(r.metric)} | {r.n} | {r.oracle_better:.0%} | {r.tie:.0%} | "
                   f"{r.random_better:.0%} | {fmt(r.effect)} | {fmt(r.p)} |")
    return out + [""]


def _first_md(first: pd.DataFrame) -> list[str]:
    if first.empty:
        return []
    out = ["| model | metric | leader | P(first) | runner-up | P(first) |", "|---|---|---|---|---|---|"]
    for (dataset, model, metric), g in first.groupby(["dataset", "model", "metric"], sort=True):
        g = g.sort_values(["p_first", "explainer"], ascending=[False, True])
        a = g.iloc[0]
        b = g.iloc[1] if len(g) > 1 else None
        out.append(f"| {model} | {metric} {arrow(metric)} | {a.explainer} | {a.p_first:.0%} | "
                   + (f"{b.explainer} | {b.p_first:.0%} |" if b is not None else "– | – |"))
    return out + [""]


def _judged(table: pd.DataFrame, unjudged) -> pd.DataFrame:
    """The rows of a summary or score table whose (dataset, model, metric) is not in `unjudged`."""
    if not unjudged or table.empty:
        return table
    keys = zip(table["dataset"], table["model"], table["metric"])
    return table[[k not in unjudged for k in keys]]


def trust_section(summary: pd.DataFrame, scores: pd.DataFrame, rep: Path, n_resamples: int, seed: int,
                  unjudged=frozenset()) -> list[str]:
    """Write metric_agreement.csv, discrimination.csv, rank_first.csv and metric_agreement.png/.pdf;
    return the report lines of the section. The (dataset, model, metric) cells of `unjudged` (curve
    metrics without headroom, headroom.py) are left out of every check and said so."""
    all_summary = summary
    summary, scores = _judged(summary, unjudged), _judged(scores, unjudged)
    agree = rel.agreement(summary)
    disc = rel.discrimination(scores)
    first = rel.rank_first(scores, n_resamples, seed)
    write_csv(rep / "metric_agreement.csv", agree)
    write_csv(rep / "metric_agreement_with_baselines.csv", rel.agreement(summary, with_baselines=True))
    write_csv(rep / "discrimination.csv", disc)
    write_csv(rep / "rank_first.csv", first)
    more_disc, more_stab, noise = checks.checks(rep.parent, scores)  # None where the run stored no table
    checks.write(rep, more_disc, more_stab)
    lines = ["## How far to trust these metrics\n",
             "Three checks of every metric, from the stored per-image scores. **Agreement**: Kendall's tau between "
             "the rankings of the methods by two metrics (each by its mean on its common image set, direction applied; "
             "runtime left out; baselines left out, as their fixed order would inflate tau: with them in "
             "`metric_agreement_with_baselines.csv`) — a metric that orders explainers unlike all others measures something else, or "
             "noise. **Discrimination**: on the n images both were scored (lesion images only: the oracle is not "
             "applicable to an image without a lesion), how often the ceiling `oracle` (the true "
             "lesion mask) scores better than the floor `random` in the metric's direction, the rank-biserial "
             "effect (+1: oracle always better) and the Wilcoxon p; a metric that cannot tell these two apart "
             "cannot tell a good explanation from a bad one. **Stability**: the probability that the leader stays "
             f"first among the methods when the images are resampled ({n_resamples} bootstrap resamples, seed {seed}; "
             f"baselines left out). {checks.caveat(more_disc, more_stab, CAVEAT)} Tables: `metric_agreement.csv`, `discrimination.csv`, "
             "`rank_first.csv`.\n"]
    if agreement_figure(agree, rep / "metric_agreement") is not None:
        lines += ["![metric agreement](metric_agreement.png)  \n[PDF](metric_agreement.pdf)\n"]
    lines += ["### Discrimination: oracle against random\n", *_discrimination_md(disc),
              "### Stability: bootstrap probability of ranking first\n", *_first_md(first),
              *checks.markdown(more_disc, more_stab, noise)]
    multi = all_summary["dataset"].nunique() > 1
    for (dataset, model), df in all_summary.groupby(["dataset", "model"], sort=True):
        key = lambda t: t[(t.dataset == dataset) & (t.model == model)]  # noqa: E731
        more = [checks.pooled_for(t, dataset, model) for t in (more_disc, more_stab)]
        lines.append(f"### What the numbers justify: {model}{' on ' + dataset if multi else ''}\n")
        for m in ordered_metrics(df["metric"]):
            if (dataset, model, m) in unjudged:
                lines.append(f"- `{m}`: no headroom (see \"Headroom of the curve metrics\"): left out of these checks "
                             "and of every verdict.")
            elif m in set(agree.metric_a) | set(agree.metric_b) | set(disc.metric) | set(first.metric):
                lines.append("- " + rel.sentence(m, key(agree), key(disc), key(first))
                             + checks.sentence(m, more[0], more[1], noise))
        lines.append("")
    return lines
