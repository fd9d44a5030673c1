"""Figures of the report (seaborn/matplotlib), each saved as PNG (dpi 200) and vector PDF with fixed
metadata, so rebuilding a figure from the same tables gives byte-identical files.

One colour-blind-safe style per explainer, fixed by its name (see explainer_styles), the same in
every figure and every run.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from skimage.filters import threshold_otsu  # noqa: E402

from .metrics import get_metric  # noqa: E402
from .store import atomic_path  # noqa: E402
from .tables import arrow, ordered_metrics  # noqa: E402

DPI = 200
MARKERS = ("o", "s", "^", "D")
HEADLINE = ("gradcam", "lrp", "lime")
BASE_MARKERS = ("s", "^", "D", "v", "P", "X")
GREYS = ((0.0, 0.0, 0.0), (0.33, 0.33, 0.33), (0.55, 0.55, 0.55))
LINESTYLES = ("-", "--", "-.", ":")
# no timestamps or software versions in the files: same tables, same bytes
PNG_METADATA = {"Software": None}
PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}
EXPERT_COLOUR, REGION_COLOUR = "#00ff00", "#00e5ff"


def explainer_styles(names) -> dict[str, dict]:
    """{name: {"color", "marker", "linestyle"}}, fixed per name across all figures and runs.

    Explanation methods take seaborn's colour-blind-safe palette by their position among the method
    names (gradcam, lrp, lime first, then sorted) (solid lines, round markers); the baselines of explainers/baselines.py (the floor and
    ceiling a reader compares against) take shades of grey with their own markers and dashed lines, so
    the ten colours suffice for the methods."""
    from explainers import EXPLAINERS

    def baseline(n: str) -> bool:
        return n in EXPLAINERS and EXPLAINERS[n].__module__.endswith(".baselines")

    universe = set(EXPLAINERS) | set(names)
    # the default run's methods first, so they get the three most distinct colours
    methods = sorted((n for n in universe if not baseline(n)), key=lambda n: (n not in HEADLINE, HEADLINE.index(n)
                                                                              if n in HEADLINE else 0, n))
    bases = sorted(n for n in universe if baseline(n))
    # grey (palette index 7) goes last: greys mark the baselines
    palette = [sns.color_palette("colorblind", 10)[k] for k in (0, 1, 2, 3, 4, 5, 6, 8, 9, 7)]
    out = {}
    for name in names:
        if baseline(name):
            j = bases.index(name)
            out[name] = {"color": GREYS[j % len(GREYS)], "marker": BASE_MARKERS[j % len(BASE_MARKERS)],
                         "linestyle": ("--", ":")[j % 2]}
        else:
            i = methods.index(name)
            out[name] = {"color": palette[i % 10], "marker": MARKERS[(i // 10) % len(MARKERS)],
                         "linestyle": LINESTYLES[(i // 10) % len(LINESTYLES)]}
    return out


def _theme() -> None:
    sns.set_theme(style="whitegrid", context="paper", font_scale=0.9)
    plt.rcParams["svg.hashsalt"] = "cxr-xai-bench"
    plt.rcParams["pdf.fonttype"] = 42


def save(fig, stem: Path, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Save `fig` as stem.png and stem.pdf (atomically, fixed metadata) and close it."""
    stem = Path(stem)
    paths = []
    for ext in formats:
        path = stem.with_suffix("." + ext)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format=ext,
                        metadata=PNG_METADATA if ext == "png" else PDF_METADATA)
        paths.append(path)
    plt.close(fig)
    return paths


def _legend_right_and_save(fig, axes, stem: Path) -> list[Path]:
    """One legend for all panels (every panel draws the same explainers), right of the figure."""
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=6, frameon=False)
    fig.tight_layout()
    return save(fig, stem)


def _panels(keys: list, ncols: int, w: float, h: float):
    fig, axes = plt.subplots(len(keys), ncols, figsize=(w * ncols, h * len(keys)), squeeze=False)
    return fig, axes


def leaderboard_figure(summary: pd.DataFrame, stem: Path, per_row: int = 5) -> list[Path]:
    """Mean and bootstrap CI of every explainer, one panel per (model, metric), explainers on the
    y axis in a fixed order, runtime on a log scale; each model's metrics wrap after `per_row` panels."""
    _theme()
    summary = summary.dropna(subset=["mean"])
    groups = list(summary.groupby(["dataset", "model"], sort=True).groups)
    metrics = ordered_metrics(summary["metric"])
    explainers = sorted(summary["explainer"].unique())
    styles = explainer_styles(explainers)
    ncols = min(per_row, len(metrics))
    rows_per = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(len(groups) * rows_per, ncols, figsize=(2.3 * ncols, (0.22 * len(explainers) + 0.9) * len(groups) * rows_per),
                             squeeze=False)
    for g, (dataset, model) in enumerate(groups):
        for k in range(rows_per * ncols):
            ax = axes[g * rows_per + k // ncols][k % ncols]
            if k >= len(metrics):
                ax.axis("off")
                continue
            metric = metrics[k]
            df = summary[(summary.dataset == dataset) & (summary.model == model) & (summary.metric == metric)]
            for _, r in df.iterrows():
                lo, hi = r.ci_low, r.ci_high
                err = None if np.isnan(lo) else [[max(r["mean"] - lo, 0)], [max(hi - r["mean"], 0)]]
                st = styles[r.explainer]
                ax.errorbar([r["mean"]], [explainers.index(r.explainer)], xerr=err, fmt=st["marker"], color=st["color"],
                            capsize=2, ms=4, lw=1)
            ax.set_yticks(range(len(explainers)), explainers if k % ncols == 0 else [""] * len(explainers))
            ax.set_ylim(len(explainers) - 0.5, -0.5)
            if get_metric(metric).category == "runtime":
                _log_axis(ax.xaxis)
            ax.set_title(f"{model}: {metric} {arrow(metric)}", fontsize=8)
            ax.tick_params(labelsize=7)
    _titled(fig, "Mean and 95% bootstrap CI per explainer")
    return save(fig, stem)


def _log_axis(axis) -> None:
    """Log scale; labelled at the decades only when it spans one (minor labels collide on narrow
    panels), else matplotlib's minor labels are the only ones."""
    axis.axes.set_xscale("log") if axis.axis_name == "x" else axis.axes.set_yscale("log")
    lo, hi = axis.get_view_interval()
    if lo > 0 and hi / lo >= 10:
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def rank_heatmap(ranks: pd.DataFrame, stem: Path) -> list[Path]:
    """Average rank (1 = best) of every explainer per metric, one panel per model."""
    _theme()
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


def cd_diagram(friedman: pd.DataFrame, ranks: pd.DataFrame, dataset: str, model: str, stem: Path) -> list[Path]:
    """One critical-difference panel per metric of one (dataset, model)."""
    _theme()
    sel = ranks[(ranks.dataset == dataset) & (ranks.model == model)]
    metrics = ordered_metrics(sel["metric"])
    k = sel["explainer"].nunique()
    panel_height = 0.17 * ((k + 1) // 2) + 0.9
    fig, axes = plt.subplots(len(metrics), 1, figsize=(6.0, panel_height * len(metrics)), squeeze=False)
    for ax, metric in zip(axes[:, 0], metrics):
        r = sel[sel.metric == metric].set_index("explainer")["avg_rank"].to_dict()
        t = friedman[(friedman.dataset == dataset) & (friedman.model == model) & (friedman.metric == metric)].iloc[0]
        p = "n/a" if np.isnan(t.p) else f"{t.p:.3g}"
        _cd_panel(ax, r, float(t.cd), f"{metric} {arrow(metric)}: Friedman p = {p}, n = {int(t.n)} images "
                                      f"({int(t.n_dropped)} dropped), Nemenyi α = {t.alpha:g}")
    _titled(fig, f"{model} on {dataset}: average ranks (1 = best)")
    return save(fig, stem)


def runtime_quality(summary: pd.DataFrame, stem: Path) -> list[Path] | None:
    """Seconds per image (log) against each localisation metric, with the metric's CI, per model."""
    _theme()
    loc = [m for m in ordered_metrics(summary["metric"]) if get_metric(m).category == "localisation"]
    if "seconds_per_image" not in set(summary["metric"]) or not loc:
        return None
    groups = list(summary.groupby(["dataset", "model"], sort=True).groups)
    explainers = sorted(summary["explainer"].unique())
    styles = explainer_styles(explainers)
    fig, axes = _panels(groups, len(loc), 3.2, 2.8)
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
    return _legend_right_and_save(fig, axes, stem)


def curves_figure(curves: pd.DataFrame, stem: Path) -> list[Path]:
    """Mean deletion / insertion curves with their bootstrap CI band, per model and metric."""
    _theme()
    groups = list(curves.groupby(["dataset", "model"], sort=True).groups)
    metrics = ordered_metrics(curves["metric"])
    explainers = sorted(curves["explainer"].unique())
    styles = explainer_styles(explainers)
    baselines = {e for e in explainers if styles[e]["color"] in GREYS}
    fig, axes = _panels(groups, len(metrics), 3.0, 2.6)
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
    fig.suptitle("Mean curve over images; bands: 95% CI of the mean (methods only; grey: baselines)", fontsize=8)
    return _legend_right_and_save(fig, axes, stem)


def sanity_figure(sanity: pd.DataFrame, stem: Path) -> list[Path]:
    """Similarity of the map to the original against the randomised depth (cascading from the
    logits), mean with a normal 95% band (1.96 sd / sqrt n), per model and metric."""
    _theme()
    groups = list(sanity.groupby(["dataset", "model"], sort=True).groups)
    metrics = sorted(sanity["metric"].unique())
    explainers = sorted(sanity["explainer"].unique())
    styles = explainer_styles(explainers)
    fig, axes = _panels(groups, len(metrics), 3.4, 2.9)
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
    return _legend_right_and_save(fig, axes, stem)


def roc_figure(predictions: pd.DataFrame, stem: Path) -> list[Path]:
    """ROC curve of every classifier on the test split and its confusion matrix at p >= 0.5."""
    from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve
    _theme()
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


def own_region(heat: np.ndarray) -> np.ndarray:
    """The explainer's own segmentation as cheXlocalize draws it: Otsu's threshold on the min-max
    normalised map (empty for a constant map)."""
    lo, hi = float(heat.min()), float(heat.max())
    if hi <= lo:
        return np.zeros(heat.shape, dtype=bool)
    norm = (heat - lo) / (hi - lo)
    return norm > threshold_otsu(norm)


def draw_cell(ax, image: np.ndarray, mask: np.ndarray, heat: np.ndarray | None, signed: bool,
              region: bool = True) -> None:
    """The X-ray in grey, the heat map over it (diverging if signed), the expert lesion contour
    (solid green) and the explainer's own Otsu region (dashed cyan)."""
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    if heat is not None:
        if signed:
            lim = float(np.abs(heat).max()) or 1.0
            ax.imshow(heat, cmap="bwr", vmin=-lim, vmax=lim, alpha=0.55)
        else:
            lo, hi = float(heat.min()), float(heat.max())
            ax.imshow((heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat), cmap="inferno", vmin=0, vmax=1, alpha=0.55)
        own = own_region(heat) if region else None
        if own is not None and own.any() and not own.all():
            ax.contour(own, [0.5], colors=REGION_COLOUR, linewidths=0.8, linestyles="dashed")
    if mask.any():
        ax.contour(mask, [0.5], colors=EXPERT_COLOUR, linewidths=0.9)
    ax.set_xticks([])
    ax.set_yticks([])


_LEGEND = "green: expert lesion mask\ndashed cyan: the explainer's Otsu region"


def _titled(fig, text: str) -> None:
    """Suptitle above the panels: reserve its lines so it never covers the panel titles."""
    fig.suptitle(text, fontsize=8, y=1.0, va="top")
    lines = text.count("\n") + 1
    # in inches: an 8 pt line is about 0.14 in; the rest is padding above the first panel title
    fig.tight_layout(rect=(0, 0, 1, 1 - (0.13 * lines + 0.06) / fig.get_figheight()))


def case_figure(cases: dict[str, np.ndarray], title: str, stem: Path) -> list[Path] | None:
    """Rows: explainers; columns: each one's best, median and worst image by the case metric."""
    names = [str(e) for e in cases["explainers"]]
    pick = cases["pick_index"]
    rows = [i for i in range(len(names)) if (pick[i] >= 0).any()]
    if not rows:
        return None
    _theme()
    metric = str(cases["case_metric"])
    fig, axes = plt.subplots(len(rows), 3, figsize=(2.0 * 3, 2.0 * len(rows)), squeeze=False)
    for r, i in enumerate(rows):
        for j, label in enumerate(("best", "median", "worst")):
            ax = axes[r][j]
            k = pick[i, j]
            if k < 0:
                ax.axis("off")
                continue
            draw_cell(ax, cases["images"][k], cases["masks"][k], cases["pick_maps"][i, j], bool(cases["signed"][i]))
            ax.set_title(f"{label} {cases['ids'][k]}\n{metric} {cases['pick_value'][i, j]:.2f}", fontsize=6)
        axes[r][0].set_ylabel(names[i], fontsize=8)
    left_out = [names[i] for i in range(len(names)) if i not in rows]
    note = f"\nno finite {metric} (left out): {', '.join(left_out)}" if left_out else ""
    _titled(fig, f"{title}\n{_LEGEND}{note}")
    return save(fig, stem)


def overlay_figure(cases: dict[str, np.ndarray], title: str, stem: Path) -> list[Path] | None:
    """Rows: the X-ray, then every explainer; columns: the same lesion images for all."""
    idx = cases["overlay_index"]
    if len(idx) == 0:
        return None
    _theme()
    names = [str(e) for e in cases["explainers"]]
    n = len(idx)
    fig, axes = plt.subplots(len(names) + 1, n, figsize=(1.9 * n, 1.9 * (len(names) + 1)), squeeze=False)
    for j, k in enumerate(idx):
        draw_cell(axes[0][j], cases["images"][k], cases["masks"][k], None, False)
        axes[0][j].set_title(str(cases["ids"][k]), fontsize=6)
        for i, name in enumerate(names, start=1):
            draw_cell(axes[i][j], cases["images"][k], cases["masks"][k], cases["overlay_maps"][i - 1, j], bool(cases["signed"][i - 1]))
    for i, name in enumerate(["X-ray"] + names):
        axes[i][0].set_ylabel(name, fontsize=8)
    _titled(fig, f"{title}\n{_LEGEND}")
    return save(fig, stem)
