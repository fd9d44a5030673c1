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


def _rows(df: pd.DataFrame, explainers: list[str], metrics: list[str], lead: set[str]):
    """(explainer, [(cell text "mean [lo, hi]" or None, n, is best, best leads significantly)])
    for one (dataset, model) table; `lead` names the metrics whose best has a significant lead."""
    cells = {(r.explainer, r.metric): r for r in df.itertuples(index=False)}
    best = {m: r[0] for m in metrics if (r := _ranked(df, m))}
    for e in explainers:
        row = []
        for m in metrics:
            r = cells.get((e, m))
            text = None if r is None else f"{_fmt(r.mean)} [{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]"
            row.append((text, None if r is None else r.n, best.get(m) == e, best.get(m) == e and m in lead))
        yield e, row


def _ranked(df: pd.DataFrame, metric: str) -> list[str]:
    col = df[df.metric == metric].dropna(subset=["mean"])
    return list(col.sort_values("mean", ascending=not get_metric(metric).higher_is_better)["explainer"])


def significant_leads(summary: pd.DataFrame, tests: pd.DataFrame | None, alpha: float = 0.05) -> set[tuple]:
    """(dataset, model, metric) cells whose best explainer beats the runner-up at Holm-adjusted p < alpha."""
    leads = set()
    if tests is None or tests.empty:
        return leads
    for (dataset, model), df in summary.groupby(["dataset", "model"], sort=True):
        for metric in dict.fromkeys(df["metric"]):
            ranked = _ranked(df, metric)
            if len(ranked) < 2:
                continue
            pair = tests[(tests.dataset == dataset) & (tests.model == model) & (tests.metric == metric)
                         & (((tests.a == ranked[0]) & (tests.b == ranked[1])) | ((tests.a == ranked[1]) & (tests.b == ranked[0])))]
            if len(pair) and pair["p_holm"].iloc[0] < alpha:
                leads.add((dataset, model, metric))
    return leads


def leaderboard_markdown(summary: pd.DataFrame, confidence: float = 0.95, tests: pd.DataFrame | None = None) -> str:
    """One table per (dataset, model): explainers as rows, metrics as columns, best mean in bold;
    † where the best is significantly better than the runner-up (paired Wilcoxon, Holm, p < 0.05)."""
    out = [f"Cells: mean [{int(confidence * 100)}% bootstrap CI] (n images scored). "
           "↑ higher is better, ↓ lower is better; best mean per column in bold; † the best is "
           "significantly better than the runner-up (paired Wilcoxon signed-rank, Holm-corrected, p < 0.05).\n"]
    leads = significant_leads(summary, tests)
    for (dataset, model), df in summary.groupby(["dataset", "model"], sort=True):
        metrics = list(dict.fromkeys(df["metric"]))
        explainers = list(dict.fromkeys(df["explainer"]))
        out.append(f"### {model} on {dataset}\n")
        out.append("| explainer | " + " | ".join(f"{m} {_arrow(m)}" for m in metrics) + " |")
        out.append("|---|" + "---|" * len(metrics))
        lead = {m for m in metrics if (dataset, model, m) in leads}
        for e, row in _rows(df, explainers, metrics, lead):
            cells = []
            for text, n, is_best, is_lead in row:
                text = "" if text is None else f"{text} (n={n})"
                cells.append(f"**{text}**" + ("†" if is_lead else "") if is_best else text)
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


def _draw_cell(ax, image: np.ndarray, mask: np.ndarray, heat: np.ndarray | None, signed: bool) -> None:
    """X-ray in grey, the heat map over it (diverging if signed), the expert lesion contour in green."""
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    if heat is not None:
        if signed:
            lim = float(np.abs(heat).max()) or 1.0
            ax.imshow(heat, cmap="bwr", vmin=-lim, vmax=lim, alpha=0.55)
        else:
            lo, hi = float(heat.min()), float(heat.max())
            ax.imshow((heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat), cmap="inferno", vmin=0, vmax=1, alpha=0.55)
    if mask.any():
        ax.contour(mask, [0.5], colors="lime", linewidths=0.8)
    ax.set_xticks([])
    ax.set_yticks([])


def overlay_grid(images: np.ndarray, masks: np.ndarray, maps: dict[str, np.ndarray], signed: dict[str, bool],
                 ids: list[str], title: str, path: Path) -> None:
    """Rows: explainers; columns: the same X-rays for every explainer."""
    names = list(maps)
    n = len(ids)
    fig, axes = plt.subplots(len(names) + 1, n, figsize=(1.9 * n, 1.9 * (len(names) + 1)), squeeze=False)
    for j in range(n):
        _draw_cell(axes[0][j], images[j], masks[j], None, False)
        axes[0][j].set_title(ids[j], fontsize=6)
        for i, name in enumerate(names, start=1):
            _draw_cell(axes[i][j], images[j], masks[j], maps[name][j], signed[name])
    for i, name in enumerate(["X-ray"] + names):
        axes[i][0].set_ylabel(name, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def case_grid(rows: list[tuple[str, bool, list[tuple[np.ndarray, np.ndarray, np.ndarray, str]]]], title: str,
              path: Path) -> None:
    """Rows: explainers; columns: that explainer's best, median and worst image (captions say which)."""
    n = max(len(cells) for _, _, cells in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(2.0 * n, 2.0 * len(rows)), squeeze=False)
    for i, (name, signed, cells) in enumerate(rows):
        for j in range(n):
            if j < len(cells):
                image, mask, heat, caption = cells[j]
                _draw_cell(axes[i][j], image, mask, heat, signed)
                axes[i][j].set_title(caption, fontsize=6)
            else:
                axes[i][j].axis("off")
        axes[i][0].set_ylabel(name, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def _tex(text: str) -> str:
    return text.replace("\\", "\\textbackslash{}").replace("_", "\\_").replace("%", "\\%").replace("&", "\\&")


def leaderboard_latex(summary: pd.DataFrame, tests: pd.DataFrame | None = None) -> str:
    """booktabs tables (one per dataset and model): mean and CI per cell, best in bold."""
    leads = significant_leads(summary, tests)
    out = ["% needs \\usepackage{booktabs}"]
    for (dataset, model), df in summary.groupby(["dataset", "model"], sort=True):
        metrics = list(dict.fromkeys(df["metric"]))
        up, down = "$\\uparrow$", "$\\downarrow$"
        head = " & ".join(f"{_tex(m)} {up if get_metric(m).higher_is_better else down}" for m in metrics)
        out += ["\\begin{table}[t]", "\\centering\\small",
                f"\\caption{{{_tex(model)} on {_tex(dataset)}: mean [95\\% bootstrap CI]; best in bold, "
                f"$^\\dagger$ significantly better than the runner-up (Wilcoxon, Holm, $p<0.05$).}}",
                "\\begin{tabular}{l" + "c" * len(metrics) + "}", "\\toprule", f"explainer & {head} \\\\", "\\midrule"]
        lead = {m for m in metrics if (dataset, model, m) in leads}
        for e, row in _rows(df, list(dict.fromkeys(df["explainer"])), metrics, lead):
            cells = []
            for text, _, is_best, is_lead in row:
                text = text or ""
                cells.append(f"\\textbf{{{text}}}" + ("$^\\dagger$" if is_lead else "") if is_best else text)
            out.append(f"{_tex(e)} & " + " & ".join(cells) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(out)


def write_tables(summary: pd.DataFrame, report_dir: Path, confidence: float, tests: pd.DataFrame | None = None) -> str:
    md = leaderboard_markdown(summary, confidence, tests)
    write_text(report_dir / "leaderboard.md", md)
    write_text(report_dir / "leaderboard.tex", leaderboard_latex(summary, tests))
    with atomic_path(report_dir / "leaderboard.csv") as tmp:
        summary.to_csv(tmp, index=False)
    if tests is not None:
        with atomic_path(report_dir / "paired_tests.csv") as tmp:
            tests.to_csv(tmp, index=False)
    return md
