"""Figures of the report built from its tables: rank heat map, critical-difference diagrams, runtime
against quality, deletion / insertion / ROAD curves, sanity cascades and ROC curves (style and saving
in figure_style, overlays in overlays, the leaderboard figures in paper_figures).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..metrics import get_metric
from .figure_style import GREYS, LINESTYLES, explainer_styles, legend_right_and_save, panels, save, theme, titled
from .tables import arrow, ordered_metrics


def _log_axis(axis) -> None:
    """Log scale; labelled at the decades only when it spans one (minor labels collide on narrow
    panels), else matplotlib's minor labels are the only ones."""
    axis.axes.set_xscale("log") if axis.axis_name == "x" else axis.axes.set_yscale("log")
    lo, hi = axis.get_view_interval()
    if lo > 0 and hi / lo >= 10:
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def rank_heatmap(ranks: pd.DataFrame, stem: Path) -> list[Path]:
    """Average rank (1 = best) of every explainer per metric, one panel per model."""
    theme()
    groups = list(ranks.groupby(["dataset", "model"], sort=True).groups)
    explainers = sorted(ranks["explainer"].unique())
    metrics = ordered_metrics(ranks["metric"])
    width, height = 0.7 * len(metrics) + 2.4, 0.3 * len(explainers) + 1.4
    # one model under the other: many metrics make a wide panel already
    fig, axes = plt.subplots(len(groups), 1, figsize=(width, height * len(groups)), squeeze=False)
    for ax, (dataset, model) in zip(axes[:, 0], groups):
        df = ranks[(ranks.dataset == dataset) & (ranks.model == model)]
        wide = df.pivot(index="explainer", columns="metric", values="avg_rank").reindex(index=explainers, columns=metrics)
        sns.heatmap(wide, annot=True, fmt=".1f", cmap="viridis_r", vmin=1, vmax=len(explainers), ax=ax,
                    cbar_kws={"label": "average rank (1 = best)"}, annot_kws={"fontsize": 6})
        ax.set_xticklabels([f"{m} {arrow(m)}" for m in metrics], rotation=40, ha="right", fontsize=7)
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.grid(False)
        ax.set_title(f"{model} on {dataset} (blank: no image scored by every explainer)" if wide.isna().any().any()
                     else f"{model} on {dataset}", fontsize=8)
    fig.tight_layout()
    return save(fig, stem)


def _cd_panel(ax, ranks: dict[str, float], cd: float, title: str) -> None:
    """Demšar's critical-difference diagram: the rank axis, each explainer hooked to its average rank,
    and bars joining the groups whose ranks differ by less than the critical difference."""
    names = sorted(ranks, key=lambda e: (ranks[e], e))
    k = len(names)
    lo, hi = 1, max(k, 2)
    ax.set_xlim(lo - 0.5, hi + 0.5)
    half = (k + 1) // 2
    ax.set_ylim(-(half * 0.55 + 0.6), 1.6)
    ax.axis("off")
    ax.hlines(0, lo, hi, color="black", lw=1)
    for t in range(lo, hi + 1):
        ax.vlines(t, 0, 0.15, color="black", lw=0.8)
        ax.text(t, 0.25, str(t), ha="center", va="bottom", fontsize=6)
    styles = explainer_styles(names)
    for i, e in enumerate(names):
        left = i < half
        depth = -(i + 1) if left else -(k - i)
        x_end = lo - 0.4 if left else hi + 0.4
        c = styles[e]["color"]
        ax.plot([ranks[e], ranks[e], x_end], [0, depth * 0.55 - 0.3, depth * 0.55 - 0.3], color=c, lw=0.9)
        ax.text(x_end + (-0.05 if left else 0.05), depth * 0.55 - 0.3, f"{e} ({ranks[e]:.2f})", ha="right" if left else "left",
                va="center", fontsize=6, color="black")
    if np.isfinite(cd):
        ax.plot([lo, lo + cd], [1.1, 1.1], color="black", lw=1.5)
        ax.text(lo + cd / 2, 1.2, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=6)
        # maximal runs of rank-consecutive explainers closer than CD are not significantly different
        cliques = []
        values = [ranks[e] for e in names]
        for i in range(k):
            j = i
            while j + 1 < k and values[j + 1] - values[i] < cd:
                j += 1
            if j > i and not any(s <= i and j <= t for s, t in cliques):
                cliques.append((i, j))
        for level, (i, j) in enumerate(cliques):
            y = -0.15 - 0.12 * (level + 1)
            ax.plot([values[i] - 0.03, values[j] + 0.03], [y, y], color="black", lw=2.2, solid_capstyle="butt")
    ax.set_title(title, fontsize=7)


def cd_metrics(friedman: pd.DataFrame, dataset: str, model: str) -> list[str]:
    """The metrics of one (dataset, model) whose Friedman test rejects (p < its alpha): the Nemenyi
    post-hoc comparison, hence a critical-difference diagram, only makes sense after a rejection."""
    t = friedman[(friedman.dataset == dataset) & (friedman.model == model)]
    return ordered_metrics(t[t["p"] < t["alpha"]]["metric"])


def cd_diagram(friedman: pd.DataFrame, ranks: pd.DataFrame, dataset: str, model: str, stem: Path,
               ncols: int = 3) -> list[Path] | None:
    """One critical-difference panel per metric of one (dataset, model) whose Friedman test rejects, in
    a grid of `ncols` columns, a metric category starting a new row; None when no test rejects."""
    sel = ranks[(ranks.dataset == dataset) & (ranks.model == model)]
    metrics = [m for m in cd_metrics(friedman, dataset, model) if m in set(sel["metric"])]
    if not metrics:
        return None
    theme()
    slots: list[str | None] = []  # row-major; None leaves a panel empty so each category starts a row
    for m in metrics:
        if slots and get_metric(m).category != get_metric(next(x for x in reversed(slots) if x)).category:
            slots += [None] * (-len(slots) % ncols)
        slots.append(m)
    ncols = min(ncols, len(slots))
    nrows = -(-len(slots) // ncols)
    k = sel["explainer"].nunique()
    panel_height = 0.17 * ((k + 1) // 2) + 1.0
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.0 * ncols, panel_height * nrows), squeeze=False)
    for ax, metric in zip(axes.flat, slots + [None] * (nrows * ncols - len(slots))):
        if metric is None:
            ax.axis("off")
            continue
        r = sel[sel.metric == metric].set_index("explainer")["avg_rank"].to_dict()
        t = friedman[(friedman.dataset == dataset) & (friedman.model == model) & (friedman.metric == metric)].iloc[0]
        p = "n/a" if np.isnan(t.p) else f"{t.p:.3g}"
        _cd_panel(ax, r, float(t.cd), f"{metric} {arrow(metric)} ({get_metric(metric).category})\n"
                                      f"Friedman p = {p}, n = {int(t.n)} ({int(t.n_dropped)} dropped)")
    alpha = friedman["alpha"].iloc[0]
    titled(fig, f"{model} on {dataset}: average ranks (1 = best); bars join explainers closer than the Nemenyi CD "
                f"(α = {alpha:g})")
    return save(fig, stem)


def runtime_quality(summary: pd.DataFrame, stem: Path) -> list[Path] | None:
    """Seconds per image (log) against each localisation metric, with the metric's CI, per model."""
    theme()
    loc = [m for m in ordered_metrics(summary["metric"]) if get_metric(m).category == "localisation"]
    if "seconds_per_image" not in set(summary["metric"]) or not loc:
        return None
    groups = list(summary.groupby(["dataset", "model"], sort=True).groups)
    explainers = sorted(summary["explainer"].unique())
    styles = explainer_styles(explainers)
    fig, axes = panels(groups, len(loc), 3.2, 2.8)
    for row, (dataset, model) in enumerate(groups):
        df = summary[(summary.dataset == dataset) & (summary.model == model)].set_index(["metric", "explainer"])
        for col, metric in enumerate(loc):
            ax = axes[row][col]
            for e in explainers:
                if ("seconds_per_image", e) not in df.index or (metric, e) not in df.index:
                    continue
                x, r = df.loc[("seconds_per_image", e), "mean"], df.loc[(metric, e)]
                if np.isnan(r["mean"]):
                    continue
                err = None if np.isnan(r.ci_low) else [[max(r["mean"] - r.ci_low, 0)], [max(r.ci_high - r["mean"], 0)]]
                st = styles[e]
                ax.errorbar([x], [r["mean"]], yerr=err, fmt=st["marker"], color=st["color"], capsize=2, ms=4, lw=1, label=e)
            _log_axis(ax.xaxis)
            ax.set_xlabel("seconds per image (log)", fontsize=7)
            ax.set_ylabel(f"{metric} {arrow(metric)}", fontsize=7)
            ax.set_title(f"{model} on {dataset}", fontsize=8)
            ax.tick_params(labelsize=6)
    return legend_right_and_save(fig, axes, stem)


def curves_figure(curves: pd.DataFrame, stem: Path) -> list[Path]:
    """Mean deletion / insertion curves with their bootstrap CI band, per model and metric."""
    theme()
    groups = list(curves.groupby(["dataset", "model"], sort=True).groups)
    metrics = ordered_metrics(curves["metric"])
    explainers = sorted(curves["explainer"].unique())
    styles = explainer_styles(explainers)
    baselines = {e for e in explainers if styles[e]["color"] in GREYS}
    fig, axes = panels(groups, len(metrics), 3.0, 2.6)
    for row, (dataset, model) in enumerate(groups):
        for col, metric in enumerate(metrics):
            ax = axes[row][col]
            df = curves[(curves.dataset == dataset) & (curves.model == model) & (curves.metric == metric)]
            for e in explainers:
                d = df[df.explainer == e].sort_values("step")
                if d.empty:
                    continue
                st = styles[e]
                ax.plot(d.fraction, d["mean"], color=st["color"], ls=st["linestyle"], lw=1.1, label=e)
                if e not in baselines:  # bands of every baseline would bury the methods' lines
                    ax.fill_between(d.fraction, d.ci_low, d.ci_high, color=st["color"], alpha=0.12, lw=0)
            ax.set_xlabel("fraction of pixels perturbed", fontsize=7)
            ax.set_ylabel("target probability", fontsize=7)
            ax.set_title(f"{model} on {dataset}: {metric} {arrow(metric)}", fontsize=8)
            ax.tick_params(labelsize=6)
    fig.suptitle("Mean curve over images (oracle: lesion images only, where it applies); bands: 95% CI of the mean "
                 "(methods only; grey: baselines)", fontsize=8)
    return legend_right_and_save(fig, axes, stem)


def sanity_figure(sanity: pd.DataFrame, stem: Path) -> list[Path]:
    """Similarity of the map to the original against the randomised depth (cascading from the
    logits), mean with a normal 95% band (1.96 sd / sqrt n), per model and metric."""
    theme()
    groups = list(sanity.groupby(["dataset", "model"], sort=True).groups)
    metrics = sorted(sanity["metric"].unique())
    explainers = sorted(sanity["explainer"].unique())
    styles = explainer_styles(explainers)
    fig, axes = panels(groups, len(metrics), 3.4, 2.9)
    for row, (dataset, model) in enumerate(groups):
        for col, metric in enumerate(metrics):
            ax = axes[row][col]
            df = sanity[(sanity.dataset == dataset) & (sanity.model == model) & (sanity.metric == metric)]
            layers = df.drop_duplicates("stage").sort_values("stage")
            for e in explainers:
                d = df[df.explainer == e].sort_values("stage")
                if d.empty:
                    continue
                st = styles[e]
                half = 1.96 * d.sd.fillna(0) / np.sqrt(d.n.clip(lower=1))
                ax.plot(d.stage, d["mean"], color=st["color"], ls=st["linestyle"], marker=st["marker"], ms=3, lw=1.1, label=e)
                ax.fill_between(d.stage, d["mean"] - half, d["mean"] + half, color=st["color"], alpha=0.12, lw=0)
            ax.set_xticks(layers.stage, layers.layer, rotation=50, ha="right", fontsize=5)
            ax.set_xlabel("randomised down to layer (cascading from the logits)", fontsize=7)
            ax.set_ylabel(f"similarity to the original map ({metric})", fontsize=7)
            ax.set_title(f"{model} on {dataset}", fontsize=8)
            ax.tick_params(axis="y", labelsize=6)
    return legend_right_and_save(fig, axes, stem)


def roc_figure(predictions: pd.DataFrame, stem: Path) -> list[Path]:
    """ROC curve of every classifier on the test split and its confusion matrix at p >= 0.5."""
    from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve
    theme()
    groups = list(predictions.groupby(["dataset", "model"], sort=True).groups)
    palette = sns.color_palette("colorblind", max(len(groups), 1))
    fig, axes = plt.subplots(1, len(groups) + 1, figsize=(3.0 * (len(groups) + 1), 2.9), squeeze=False)
    ax = axes[0][0]
    for i, (dataset, model) in enumerate(groups):
        d = predictions[(predictions.dataset == dataset) & (predictions.model == model)]
        y, p = d.label.to_numpy(), d.prob_pneumonia.to_numpy()
        cm = confusion_matrix(y, (p >= 0.5).astype(int), labels=[0, 1])
        if len(np.unique(y)) == 2:
            fpr, tpr, _ = roc_curve(y, p)
            ax.plot(fpr, tpr, color=palette[i], lw=1.2, ls=LINESTYLES[i % 4],
                    label=f"{model} (AUROC {roc_auc_score(y, p):.3f}, n={len(y)})")
        cax = axes[0][i + 1]
        sns.heatmap(cm, annot=True, fmt="d", cmap="Blues", cbar=False, ax=cax, annot_kws={"fontsize": 8},
                    xticklabels=["normal", "pneumonia"], yticklabels=["normal", "pneumonia"])
        cax.set_xlabel("predicted (p ≥ 0.5)", fontsize=7)
        cax.set_ylabel("label", fontsize=7)
        cax.set_title(f"{model} on {dataset}", fontsize=8)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    ax.set_xlabel("false positive rate", fontsize=7)
    ax.set_ylabel("true positive rate", fontsize=7)
    ax.set_title("ROC on the test split", fontsize=8)
    ax.legend(fontsize=6, loc="lower right")
    ax.set_aspect("equal")
    fig.tight_layout()
    return save(fig, stem)
