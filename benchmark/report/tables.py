"""Leaderboard tables (Markdown, CSV; the LaTeX cells' marks and footnotes for latex.py) derived from the
summary and the tests alone."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator, Mapping

import pandas as pd

from ..metrics import category_key, get_metric, ordered_categories
from ..store.files import atomic_path, write_text
from . import board_format as bf, roles
from .labels import label

SIG_NOTE = ("† the best method is significantly better than the runner-up method (its paired differences favour the "
            "best and a paired Wilcoxon signed-rank test, Holm-corrected across the pairs of methods, gives p < 0.05)")
BASE_NOTE = ("baselines (random, edge, priors, oracle) are reference rows in their own block below the methods: "
             "never bold, never ranked")
CI_NOTE = "exact Clopper-Pearson CI for binary metrics (per-image values 0 or 1)"
SET_NOTE = ("Every explainer of a column is scored on the same images: those all of them scored; "
            "\"k failed\" counts the images another explainer scored and this one did not (NaN), left out for all")


def fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    return f"{x:.3g}" if abs(x) < 0.01 and x != 0 else f"{x:.3f}"


arrow = bf.arrow  # other sections import it from here


def tex(text: str) -> str:
    return text.replace("\\", "\\textbackslash{}").replace("_", "\\_").replace("%", "\\%").replace("&", "\\&")


def _tex_arrow(metric: str) -> str:
    return "$\\uparrow$" if get_metric(metric).higher_is_better else "$\\downarrow$"


def ordered_metrics(metrics) -> list[str]:
    """Metrics grouped by category (the known CATEGORIES in order, then a plug-in's own categories
    alphabetically: metrics.category_key), first-seen order inside a category."""
    metrics = list(dict.fromkeys(metrics))
    return sorted(metrics, key=lambda m: category_key(get_metric(m).category))


def ranked(df: pd.DataFrame, metric: str) -> list[str]:
    """Methods (not baselines, see roles) of one (dataset, model) summary ordered best first in the
    metric's direction; an explainer not applicable to some common image (smaller n, see stats) has its
    mean on other images and is not ranked. A metric the summary marks not judged (`judged` False: a
    curve metric without headroom, headroom.mark) ranks nobody: no best, no bold, no dagger."""
    col = df[df.metric == metric].dropna(subset=["mean"])
    if "judged" in col.columns and not col["judged"].astype(bool).all():
        return []
    col = col[~col["explainer"].map(roles.is_baseline).astype(bool)]
    col = col[col["n"] == col["n"].max()]
    return list(col.sort_values(["mean", "explainer"], ascending=[not get_metric(metric).higher_is_better, True],
                                kind="stable")["explainer"])


def _favours_first(pair: pd.Series, first: str, higher_is_better: bool) -> bool:
    """Whether the paired comparison of one (a, b) row favours `first` in the metric's direction: its
    mean paired difference and its rank-biserial effect (the Wilcoxon test's own direction) both."""
    sign = (1.0 if pair["a"] == first else -1.0) * (1.0 if higher_is_better else -1.0)
    return bool(sign * pair["mean_diff"] > 0 and sign * pair["rank_biserial"] > 0)


def significant_leads(summary: pd.DataFrame, tests: pd.DataFrame | None, alpha: float = 0.05) -> set[tuple]:
    """(dataset, model, metric) cells whose best explainer (by its mean on the cell's common image set)
    beats the runner-up: their paired difference favours the best in the metric's direction and the
    Wilcoxon test's Holm-adjusted p < alpha."""
    leads: set[tuple] = set()
    if tests is None or tests.empty:
        return leads
    for (dataset, model), df in summary.groupby(["dataset", "model"], sort=True):
        for metric in dict.fromkeys(df["metric"]):
            order = ranked(df, metric)
            if len(order) < 2:
                continue
            first, second = order[0], order[1]
            pair = tests[(tests.dataset == dataset) & (tests.model == model) & (tests.metric == metric)
                         & (((tests.a == first) & (tests.b == second)) | ((tests.a == second) & (tests.b == first)))]
            if len(pair) and pair["p_holm"].iloc[0] < alpha and _favours_first(
                    pair.iloc[0], first, get_metric(metric).higher_is_better):
                leads.add((dataset, model, metric))
    return leads


def _cells(df: pd.DataFrame, explainers: list[str], metrics: list[str], lead: set[str]
           ) -> Iterator[tuple[str, list[tuple[object, bool, bool]]]]:
    """(explainer, [(summary row or None, is best, best leads significantly)]) for one table."""
    rows = {(r.explainer, r.metric): r for r in df.itertuples(index=False)}
    best = {m: order[0] for m in metrics if (order := ranked(df, m))}
    for e in explainers:
        yield e, [(rows.get((e, m)), best.get(m) == e, best.get(m) == e and m in lead) for m in metrics]


def _groups(summary: pd.DataFrame) -> Iterator[tuple[str, str, str, pd.DataFrame, list[str]]]:
    """(dataset, model, category, that table's rows, its metrics) in a fixed order."""
    for (dataset, model), df in summary.groupby(["dataset", "model"], sort=True):
        metrics = ordered_metrics(df["metric"])
        for category in ordered_categories(get_metric(m).category for m in metrics):
            ms = [m for m in metrics if get_metric(m).category == category]
            if ms:  # rows: only the explainers scored on this category (metrics.skip leaves some out)
                yield dataset, model, category, df[df["metric"].isin(ms)], ms


def _column_units(grid: dict, metrics: list[str]) -> dict:
    """metric -> its runtime unit (None for others) over the column's rows of one table."""
    return {m: bf.unit_of(m, [row[k][0] for row in grid.values()]) for k, m in enumerate(metrics)}


def _with_rule(explainers: list[str], rows: list[list[str]]) -> list:
    """Rows in `explainers` order with the rule (None) opening the baselines' block."""
    first = next((x for x in explainers if roles.is_baseline(x)), None)
    out: list = []
    for e, r in zip(explainers, rows):
        out += [None, r] if e == first else [r]
    return out


def leaderboard_markdown(summary: pd.DataFrame, confidence: float = 0.95, tests: pd.DataFrame | None = None,
                         not_run: frozenset = frozenset(), labels: Mapping[str, str] | None = None) -> str:
    """One table per (dataset, model, metric category), split into tables of at most bf.MAX_COLUMNS
    columns: explainers as rows (display names, methods then baselines), metrics as columns, cells
    `mean [CI] (n)` at the metric's fixed decimals, best method in bold, † where its lead over the
    runner-up is significant."""
    out = [f"Cells: mean [{round(confidence * 100)}% bootstrap CI; {CI_NOTE}] (n images scored). {SET_NOTE}. "
           f"↑ higher is better, ↓ lower is better; best method per column in bold; {SIG_NOTE}; {BASE_NOTE}.\n"]
    leads = significant_leads(summary, tests)
    for dataset, model, category, df, metrics in _groups(summary):
        # pairs explain.per_model left out: rows saying "not run" (where another model ran the explainer here)
        others = set(summary[summary["metric"].isin(metrics)]["explainer"])
        explainers = roles.ordered(set(df["explainer"]) | {e for m, e in not_run if m == model and e in others})
        unjudged = set(df.loc[~df["judged"].astype(bool), "metric"]) if "judged" in df.columns else set()
        lead = {m for m in metrics if (dataset, model, m) in leads}
        grid = dict(_cells(df, explainers, metrics, lead))
        units = _column_units(grid, metrics)
        parts = bf.column_chunks(range(len(metrics)))
        for i, cols in enumerate(parts):
            of = f" ({i + 1} of {len(parts)})" if len(parts) > 1 else ""
            out.append(f"### {label(model, labels)} on {label(dataset, labels)}: {label(category, labels)}{of}\n")
            head = ["explainer", *(f"{bf.head(metrics[k], labels, units[metrics[k]])} {bf.arrow(metrics[k])}"
                                   + (" (no headroom: not ranked)" if metrics[k] in unjudged else "") for k in cols)]
            rows = [[label(e, labels), *("not run" if (model, e) in not_run else
                                         bf.md_cell(*grid[e][k], metrics[k], units[metrics[k]]) for k in cols)]
                    for e in explainers]
            out += bf.md_table(head, _with_rule(explainers, rows)) + [""]
    return "\n".join(out)


def p_text(p: float) -> str:
    """A p-value without scientific notation: "< 0.001" below, three decimals above."""
    return "n/a" if pd.isna(p) else "< 0.001" if p < 0.001 else f"{p:.3f}"


def rank_markdown(friedman: pd.DataFrame, ranks: pd.DataFrame, labels: Mapping[str, str] | None = None) -> str:
    """Average ranks (1 = best) per (dataset, model) and metric category, in tables of at most
    bf.MAX_COLUMNS columns: explainers x metrics, with the Friedman p, the Nemenyi critical difference
    and the images used (n, the common set) and dropped (failed by some explainer: scored by another,
    NaN in it). A metric no image of which every explainer scored keeps its column, empty, with n = 0."""
    out = []
    for (dataset, model), tests in friedman.groupby(["dataset", "model"], sort=True):
        all_metrics = ordered_metrics(tests["metric"])
        tests = tests.set_index("metric")
        df = ranks[(ranks.dataset == dataset) & (ranks.model == model)]
        wide = df.pivot(index="explainer", columns="metric", values="avg_rank")
        explainers = roles.ordered(set(wide.index) | set(df["explainer"]))
        for category in ordered_categories(get_metric(m).category for m in all_metrics):
            in_category = [m for m in all_metrics if get_metric(m).category == category]
            parts = bf.column_chunks(in_category)
            for i, metrics in enumerate(parts):
                of = f" ({i + 1} of {len(parts)})" if len(parts) > 1 else ""
                out.append(f"### {label(model, labels)} on {label(dataset, labels)}: average ranks, "
                           f"{label(category, labels)}{of}\n")
                rows = []
                for e in explainers:
                    vals = [wide.loc[e, m] if m in wide.columns and e in wide.index else float("nan") for m in metrics]
                    rows.append([label(e, labels), *("" if pd.isna(v) else f"{v:.2f}" for v in vals)])
                t = [tests.loc[m] for m in metrics]
                rows += [["*Friedman p*", *(p_text(float(r.p)) for r in t)],
                         ["*Nemenyi CD*", *(f"{r.cd:.2f}" if pd.notna(r.cd) else "n/a" for r in t)],
                         ["*n images (failed by some)*", *(f"{int(r.n)} ({int(r.n_dropped)})" for r in t)]]
                head = ["explainer", *(f"{label(m, labels)} {bf.arrow(m)}" for m in metrics)]
                out += bf.md_table(head, _with_rule(explainers, rows[:len(explainers)]) + rows[len(explainers):])
                out.append("")
    return "\n".join(out)


def write_csv(path: Path, df: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.10g", lineterminator="\n")


def write_tables(summary: pd.DataFrame, report_dir: Path, confidence: float, tests: pd.DataFrame | None = None,
                 friedman: pd.DataFrame | None = None, ranks: pd.DataFrame | None = None,
                 not_run: frozenset = frozenset(), labels: Mapping[str, str] | None = None) -> str:
    """Write leaderboard.{md,csv}, paired_tests.csv, friedman.csv, ranks.{csv,md} (leaderboard_all.md
    comes from combined.py, the LaTeX tables from latex.py); return the Markdown leaderboard. The CSVs keep internal
    names and full precision; the Markdown shows display names (`labels` over labels.DEFAULT_LABELS)."""
    report_dir = Path(report_dir)
    md = leaderboard_markdown(summary, confidence, tests, not_run, labels)
    write_text(report_dir / "leaderboard.md", md)
    write_csv(report_dir / "leaderboard.csv", summary)
    if tests is not None:
        write_csv(report_dir / "paired_tests.csv", tests)
    if friedman is not None and ranks is not None:
        write_csv(report_dir / "friedman.csv", friedman)
        write_csv(report_dir / "ranks.csv", ranks)
        write_text(report_dir / "ranks.md", rank_markdown(friedman, ranks, labels))
    return md
