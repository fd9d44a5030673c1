"""Leaderboard figures a paper can use as they are: the main figure (a few chosen metrics per category,
at a two-column paper's page width and column width) and one figure per metric category.

Every panel shows one (dataset, model, metric): the methods as rows (display names, labels.py), each a
point at its mean with its 95% CI as an error bar, in its own colour (figure_style.explainer_styles,
the same in every figure); the baselines as grey vertical reference lines at their means, each with
its marker on the panel's top edge and named in the legend, so a baseline a metric skips leaves no
empty row. A curve metric without headroom (summary column `judged` False, headroom.py) is drawn
greyed and labelled "no headroom". Runtime (seconds, MiB) spans decades: it gets a figure of its own
on log axes, never a grid that mixes log and linear axes. The files keep their size in inches
(save(tight=False)), so a paper includes them at 100% and the text keeps its size.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib.pyplot as plt
import matplotlib.transforms as mtransforms
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ..metrics import get_metric
from . import roles
from .figure_style import DPI, explainer_styles, save, theme
from .labels import label
from .tables import arrow, ordered_metrics

PAGE_WIDTH, COLUMN_WIDTH = 7.0, 3.4  # inches: a two-column paper's text width and column width
PER_CATEGORY = 3
# the main figure's metrics, in order of preference per category; a category scored with none of
# them shows its first metrics (tables.ordered_metrics) instead
MAIN_METRICS: dict[str, tuple[str, ...]] = {
    "localisation": ("pointing_game", "relevance_mass", "iou", "pixel_auroc", "dice"),
    "faithfulness": ("deletion_auc", "insertion_auc", "road_morf", "road_lerf", "faithfulness_correlation")}
LOG_CATEGORIES = frozenset({"runtime"})
NO_HEADROOM = "no headroom"
ROW_IN, PANEL_EXTRA_IN, LEGEND_ROW_IN = 0.19, 0.62, 0.17  # inches per method row, per panel's title and ticks


def category(metric: str) -> str:
    return get_metric(metric).category


def main_metrics(metrics) -> list[str]:
    """The main figure's metrics among those scored: per category of MAIN_METRICS (else, when the run
    scored none of those categories, its first two linear ones) the preferred metrics first, then the
    category's others, PER_CATEGORY at most."""
    present = ordered_metrics(metrics)
    cats = list(dict.fromkeys(category(m) for m in present))
    chosen = [c for c in MAIN_METRICS if c in cats] or [c for c in cats if c not in LOG_CATEGORIES][:2]
    out = []
    for c in chosen:
        mine = [m for m in present if category(m) == c]
        preferred = [m for m in MAIN_METRICS.get(c, ()) if m in mine]
        out += (preferred + [m for m in mine if m not in preferred])[:PER_CATEGORY]
    return out


def _slots(metrics: list[str], ncols: int) -> list[str | None]:
    """Row-major panel slots; a category that does not fit the rest of a row starts a new one (None: empty)."""
    slots: list[str | None] = []
    for i, m in enumerate(metrics):
        left = -len(slots) % ncols
        rest = sum(1 for x in metrics[i:] if category(x) == category(m))
        if i and category(m) != category(metrics[i - 1]) and 0 < left < min(rest, ncols):
            slots += [None] * left
        slots.append(m)
    return slots + [None] * (-len(slots) % ncols)


def _panel(ax, cell: pd.DataFrame, methods: list[str], styles: dict, labels, log: bool, judged: bool,
           points: pd.DataFrame | None = None) -> None:
    """One (dataset, model, metric): methods as points with CIs on rows, baselines as vertical lines;
    `points` (a model that is an architecture of several instances): each instance's mean as an open
    marker just below its method's row."""
    fade = 1.0 if judged else 0.35
    if points is not None and len(points):
        for i, e in enumerate(methods):
            x = points.loc[points["explainer"] == e, "mean"].to_numpy(float)
            x = x[np.isfinite(x) & ((x > 0) if log else True)]
            if len(x):
                st = styles[e]
                ax.plot(x, np.full(len(x), i + 0.3), st["marker"], mfc="none", mec=st["color"], mew=0.6, ms=2.6,
                        alpha=0.9 * fade, zorder=2, ls="none")
    top = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    by_name = cell.set_index("explainer")
    for i, e in enumerate(methods):
        if e not in by_name.index or np.isnan(by_name.at[e, "mean"]):
            ax.text(0.02, i, "not scored", transform=mtransforms.blended_transform_factory(ax.transAxes, ax.transData),
                    fontsize=5, color="0.45", va="center")
            continue
        r, st = by_name.loc[e], styles[e]
        err = None if np.isnan(r.ci_low) else [[max(r["mean"] - r.ci_low, 0)], [max(r.ci_high - r["mean"], 0)]]
        ax.errorbar([r["mean"]], [i], xerr=err, fmt=st["marker"], color=st["color"], capsize=1.5, ms=3.5, lw=1,
                    alpha=fade, zorder=3)
    for e in sorted(set(by_name.index) - set(methods)):
        x, st = by_name.at[e, "mean"], styles[e]
        if np.isnan(x) or (log and x <= 0):
            continue
        ax.axvline(x, color=st["color"], ls=st["linestyle"], lw=0.8, alpha=0.8 * fade, zorder=1)
        ax.plot([x], [1.0], st["marker"], transform=top, color=st["color"], ms=3, clip_on=False, alpha=fade, zorder=4)
    ax.margins(x=0.06)  # a baseline's marker at the axis end stays whole
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_yticks(range(len(methods)), [label(m, labels) for m in methods])
    ax.set_ylim(len(methods) - 0.5, -0.6)
    ax.tick_params(labelsize=6, pad=1.5)
    ax.grid(axis="y", visible=False)
    if not judged:
        ax.set_facecolor("0.93")
        ax.set_xlabel(NO_HEADROOM, fontsize=6, color="0.3", style="italic", labelpad=1)


def _legend_handles(baselines: list[str], styles: dict, labels) -> list:
    """One entry per baseline (a panel labels itself "no headroom" where that applies)."""
    return [Line2D([], [], color=styles[b]["color"], ls=styles[b]["linestyle"], marker=styles[b]["marker"], ms=3,
                   lw=0.8, label=label(b, labels)) for b in baselines]


def leaderboard_grid(summary: pd.DataFrame, metrics: list[str], stem: Path, width: float, ncols: int,
                     labels: Mapping[str, str] | None = None, title: str | None = None,
                     points: pd.DataFrame | None = None) -> list[Path] | None:
    """Panels of `metrics` (wrapping after `ncols`) for every (dataset, model), `width` inches wide;
    None when no metric has a mean. `points` (instances.instance_points, when `summary` is per
    architecture): each trained instance's mean, drawn in its method's row."""
    summary = summary[summary["metric"].isin(metrics)].dropna(subset=["mean"])
    metrics = [m for m in metrics if m in set(summary["metric"])]
    if not metrics:
        return None
    theme()
    methods, baselines = roles.split(summary["explainer"])
    styles = explainer_styles(methods + baselines)
    groups = list(summary.groupby(["dataset", "model"], sort=True).groups)
    ncols = min(ncols, len(metrics))
    slots = _slots(metrics, ncols)
    rows_per = len(slots) // ncols
    judged = summary["judged"].astype(bool) if "judged" in summary.columns else pd.Series(True, summary.index)
    handles = _legend_handles(baselines, styles, labels)
    if points is not None and len(points):
        handles.append(Line2D([], [], color="0.3", ls="none", marker="o", mfc="none", mew=0.6, ms=2.6,
                              label="one trained instance's mean"))
    legend_cols = max(1, min(len(handles), int(width // 1.15)))
    legend_h = LEGEND_ROW_IN * (0.8 + -(-len(handles) // legend_cols)) + 0.04 if handles else 0.0  # + its title
    title_h = 0.15 if title else 0.0
    panel_h = ROW_IN * max(len(methods), 1) + PANEL_EXTRA_IN
    height = panel_h * rows_per * len(groups) + legend_h + title_h
    fig, axes = plt.subplots(rows_per * len(groups), ncols, figsize=(width, height), squeeze=False)
    multi = summary["dataset"].nunique() > 1
    for g, (dataset, model) in enumerate(groups):
        for k, metric in enumerate(slots):
            ax = axes[g * rows_per + k // ncols][k % ncols]
            if metric is None:
                ax.axis("off")
                continue
            key = (summary.dataset == dataset) & (summary.model == model) & (summary.metric == metric)
            pts = None
            if points is not None:
                pts = points[(points.dataset == dataset) & (points.model == model) & (points.metric == metric)]
            _panel(ax, summary[key], methods, styles, labels, category(metric) in LOG_CATEGORIES,
                   bool(judged[key].all()), pts)
            ax.set_title(f"{label(metric, labels)} {arrow(metric)}", fontsize=6.5, pad=5)  # clear of the markers
            if k % ncols:
                ax.set_yticklabels([])
            else:
                name = label(model, labels) + (f" ({label(dataset, labels)})" if multi else "")
                ax.set_ylabel(name, fontsize=7, fontweight="bold")
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=legend_cols, fontsize=6, frameon=False,
                   bbox_to_anchor=(0.5, 0.0), handlelength=2.2, columnspacing=1.0,
                   title="Baselines (vertical lines at their means)", title_fontsize=6)
    if title:
        fig.suptitle(title, fontsize=7.5, y=1.0, va="top")
    fig.tight_layout(pad=0.3, h_pad=0.4, w_pad=0.5, rect=(0, legend_h / height, 1, 1 - title_h / height))
    _keep_row_labels_inside(fig, axes)
    return save(fig, stem, tight=False)


def _keep_row_labels_inside(fig, axes) -> None:
    """tight_layout can leave the bold model name left of the page when method names are long
    (seen on the COVID-QU-Ex record): move the panels' left edge right by the overflow."""
    fig.set_dpi(DPI)  # measured at the PNG's resolution: the label sits further left there than at 100 dpi
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    left = min((ax.yaxis.label.get_window_extent(renderer).x0 for ax in axes[:, 0] if ax.get_ylabel()), default=0.0)
    if left < 2.0:  # pixels
        fig.subplots_adjust(left=fig.subplotpars.left + (2.0 - left) / (fig.dpi * fig.get_figwidth()))


def main_figure(summary: pd.DataFrame, stem: Path, labels: Mapping[str, str] | None = None,
                width: float = PAGE_WIDTH, points: pd.DataFrame | None = None) -> list[Path] | None:
    """The main figure: main_metrics as panels, one row of panels per model at page width (two rows,
    a category each, at column width). A run with several instances per architecture draws one row
    per architecture (instances.architecture_summary) with each instance's mean (`points`)."""
    metrics = main_metrics(summary.dropna(subset=["mean"])["metric"])
    ncols = len(metrics) if width >= PAGE_WIDTH else PER_CATEGORY
    return leaderboard_grid(summary, metrics, stem, width, max(ncols, 1), labels, points=points)


def categories(summary: pd.DataFrame) -> list[str]:
    """The categories with a mean, in report order (one leaderboard-<category> figure each)."""
    return list(dict.fromkeys(category(m) for m in ordered_metrics(summary.dropna(subset=["mean"])["metric"])))


def category_figure(summary: pd.DataFrame, cat: str, stem: Path, labels: Mapping[str, str] | None = None,
                    per_row: int = 5) -> list[Path] | None:
    """All metrics of one category at page width, `per_row` panels a row; log axes for runtime."""
    metrics = [m for m in ordered_metrics(summary.dropna(subset=["mean"])["metric"]) if category(m) == cat]
    scale = " (log axes)" if cat in LOG_CATEGORIES else ""
    return leaderboard_grid(summary, metrics, stem, PAGE_WIDTH, per_row, labels,
                            title=f"{label(cat, labels)}: mean and 95% CI per method{scale}; lines: baselines")


ACROSS_CAPTION = ("Several trained instances per architecture: one row per architecture, each method's mean over "
                  "instances and images with the 95% interval of the two-level bootstrap (instances, then images; "
                  "\"Across training runs\"), each instance's own mean as an open marker below it; baselines' lines "
                  "at their means over instances; a greyed panel: a curve metric without headroom in some instance. "
                  "Each instance's panels: the `leaderboard-<category>` figures.\n")


def markdown(figures: Mapping, files: list[Path], across: bool = False) -> list[str]:
    """report.md's lines for the leaderboard figures that build.py started drawing (`figures`: stem ->
    Future of the paths or None): the main figure, then the category figures; their paths go to `files`."""
    lines = []
    names = ["main-figure"] + [n for n in figures if n.startswith("leaderboard-")]  # the main figure first
    for name, future in ((n, figures.get(n)) for n in names):
        if future is None or not future.result():
            continue
        files += list(future.result())
        if name == "main-figure":
            column = figures.get("main-figure-column")
            files += list(column.result() or []) if column is not None else []
            lines += [f"![main figure: chosen metrics, methods with 95% CIs, baselines as lines]({name}.png)  \n"
                      f"[PDF]({name}.pdf)\n",
                      "Chosen metrics per category: each method's mean with its 95% CI; grey vertical lines: the "
                      "baselines' means; a greyed panel: a curve metric without headroom (not judged). For a paper: "
                      f"`main-figure.pdf` ({PAGE_WIDTH} in, page width), `main-figure-column.pdf` ({COLUMN_WIDTH} in, "
                      "column width); every metric of a category in its `leaderboard-<category>.pdf`, below.\n"]
            if across:
                lines.append(ACROSS_CAPTION)
        else:
            lines.append(f"![leaderboard figure: {name[len('leaderboard-'):]}]({name}.png)  \n[PDF]({name}.pdf)\n")
    return lines
