"""Leaderboard tables and figures derived from the score table alone."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .metrics import get_metric  # noqa: E402
from .store import atomic_path, write_text  # noqa: E402


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    return f"{x:.3g}" if abs(x) < 0.01 and x != 0 else f"{x:.3f}"


def _arrow(metric: str) -> str:
    return "↑" if get_metric(metric).higher_is_better else "↓"


def leaderboard_markdown(summary: pd.DataFrame, confidence: float = 0.95) -> str:
    """One table per (dataset, model): explainers as rows, metrics as columns, best mean in bold."""
    out = [f"Cells: mean [{int(confidence * 100)}% bootstrap CI] (n images scored). "
           "↑ higher is better, ↓ lower is better; best mean per column in bold.\n"]
    for (dataset, model), df in summary.groupby(["dataset", "model"], sort=True):
        metrics = list(dict.fromkeys(df["metric"]))
        explainers = list(dict.fromkeys(df["explainer"]))
        best = {}
        for m in metrics:
            col = df[df.metric == m].dropna(subset=["mean"])
            if len(col):
                best[m] = col.loc[col["mean"].idxmax() if get_metric(m).higher_is_better else col["mean"].idxmin(), "explainer"]
        out.append(f"### {model} on {dataset}\n")
        out.append("| explainer | " + " | ".join(f"{m} {_arrow(m)}" for m in metrics) + " |")
        out.append("|---|" + "---|" * len(metrics))
        for e in explainers:
            cells = []
            for m in metrics:
                r = df[(df.explainer == e) & (df.metric == m)]
                if r.empty:
                    cells.append("")
                    continue
                r = r.iloc[0]
                text = f"{_fmt(r['mean'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}] (n={r['n']})"
                cells.append(f"**{text}**" if best.get(m) == e else text)
            out.append(f"| {e} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight", format=path.suffix.lstrip("."))
    plt.close(fig)


def leaderboard_figure(summary: pd.DataFrame, path: Path) -> None:
    """Point plot per metric: mean with its bootstrap CI for every explainer, one colour per model."""
    metrics = list(dict.fromkeys(summary["metric"]))
    models = list(dict.fromkeys(summary["model"]))
    explainers = list(dict.fromkeys(summary["explainer"]))
    palette = sns.color_palette("colorblind", len(models))
    sns.set_theme(style="whitegrid", context="paper")
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for j, model in enumerate(models):
            df = summary[(summary.metric == metric) & (summary.model == model)].set_index("explainer").reindex(explainers)
            x = np.arange(len(explainers)) + (j - (len(models) - 1) / 2) * 0.18
            err = np.vstack([df["mean"] - df["ci_low"], df["ci_high"] - df["mean"]]).clip(min=0)
            ax.errorbar(x, df["mean"], yerr=np.nan_to_num(err), fmt="o", color=palette[j], label=model, capsize=2, ms=4)
        ax.set_xticks(range(len(explainers)), explainers, rotation=45, ha="right")
        ax.set_title(f"{metric} {_arrow(metric)}")
        if get_metric(metric).category == "runtime":
            ax.set_yscale("log")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def overlay_grid(images: np.ndarray, masks: np.ndarray, maps: dict[str, np.ndarray], signed: dict[str, bool],
                 ids: list[str], title: str, path: Path) -> None:
    """Rows: explainers; columns: X-rays. Heat map over the image with the expert lesion contour."""
    names = list(maps)
    n = len(ids)
    fig, axes = plt.subplots(len(names) + 1, n, figsize=(1.9 * n, 1.9 * (len(names) + 1)), squeeze=False)
    for j in range(n):
        axes[0][j].imshow(images[j], cmap="gray", vmin=0, vmax=1)
        if masks[j].any():
            axes[0][j].contour(masks[j], [0.5], colors="lime", linewidths=0.8)
        axes[0][j].set_title(ids[j], fontsize=6)
        for i, name in enumerate(names, start=1):
            m = maps[name][j]
            ax = axes[i][j]
            ax.imshow(images[j], cmap="gray", vmin=0, vmax=1)
            if signed[name]:
                lim = float(np.abs(m).max()) or 1.0
                ax.imshow(m, cmap="bwr", vmin=-lim, vmax=lim, alpha=0.55)
            else:
                lo, hi = float(m.min()), float(m.max())
                ax.imshow((m - lo) / (hi - lo) if hi > lo else np.zeros_like(m), cmap="inferno", vmin=0, vmax=1, alpha=0.55)
            if masks[j].any():
                ax.contour(masks[j], [0.5], colors="lime", linewidths=0.8)
    for i, name in enumerate(["X-ray"] + names):
        axes[i][0].set_ylabel(name, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def write_tables(summary: pd.DataFrame, report_dir: Path, confidence: float) -> str:
    md = leaderboard_markdown(summary, confidence)
    write_text(report_dir / "leaderboard.md", md)
    with atomic_path(report_dir / "leaderboard.csv") as tmp:
        summary.to_csv(tmp, index=False)
    return md
