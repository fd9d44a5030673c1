"""Leaderboard tables (Markdown, CSV; the LaTeX cells' marks and footnotes for latex.py) derived from the
summary and the tests alone."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import pandas as pd

from ..metrics import category_key, get_metric, ordered_categories
from ..store.files import atomic_path, write_text
from . import roles

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


def arrow(metric: str) -> str:
    return "↑" if get_metric(metric).higher_is_better else "↓"


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


def _ci(r) -> str:
    """" [low, high]", or nothing when one image gives no interval."""
    return "" if pd.isna(r.ci_low) else f" [{fmt(r.ci_low)}, {fmt(r.ci_high)}]"


def _failed(r) -> int:
    return int(getattr(r, "n_failed", 0) or 0)


def _md_cell(r, is_best: bool, is_lead: bool, with_n: bool = True) -> str:
    if r is None:
        return ""
    k = _failed(r)
    failed = f", {k} failed" if k else ""
    if r.n == 0:
        return f"not scored (n=0{failed})" if with_n else "not scored" + (f" ({k} failed)" if k else "")
    text = fmt(r.mean) + _ci(r) + (f" (n={r.n}{failed})" if with_n else (f" ({k} failed)" if k else ""))
    return f"**{text}**" + ("†" if is_lead else "") if is_best else text


def _tex_failures(rows, with_model: bool = False) -> list[str]:
    """The footnote under a LaTeX table naming the cells marked $^\\ast$ and their failed images."""
    failed = [f"{tex(r.explainer)} ({tex(r.model) + ', ' if with_model else ''}{tex(r.metric)}): {_failed(r)}"
              for r in rows if r is not None and _failed(r)]
    if not failed:
        return []
    return ["\\par\\smallskip{\\footnotesize $^{\\ast}$ images the explainer failed on (NaN where another explainer "
            "scored the image), left out of every explainer's statistics: " + "; ".join(failed) + ".}"]


def _groups(summary: pd.DataFrame) -> Iterator[tuple[str, str, str, pd.DataFrame, list[str]]]:
    """(dataset, model, category, that table's rows, its metrics) in a fixed order."""
    for (dataset, model), df in summary.groupby(["dataset", "model"], sort=True):
        metrics = ordered_metrics(df["metric"])
        for category in ordered_categories(get_metric(m).category for m in metrics):
            ms = [m for m in metrics if get_metric(m).category == category]
            if ms:  # rows: only the explainers scored on this category (metrics.skip leaves some out)
                yield dataset, model, category, df[df["metric"].isin(ms)], ms


def leaderboard_markdown(summary: pd.DataFrame, confidence: float = 0.95, tests: pd.DataFrame | None = None,
                         not_run: frozenset = frozenset()) -> str:
    """One table per (dataset, model, metric category): explainers as rows, metrics as columns, cells
    `mean [CI] (n)`, best mean in bold, † where its lead over the runner-up is significant."""
    out = [f"Cells: mean [{round(confidence * 100)}% bootstrap CI; {CI_NOTE}] (n images scored). {SET_NOTE}. "
           f"↑ higher is better, ↓ lower is better; best method per column in bold; {SIG_NOTE}; {BASE_NOTE}.\n"]
    leads = significant_leads(summary, tests)
    for dataset, model, category, df, metrics in _groups(summary):
        # pairs explain.per_model left out: rows saying "not run" (where another model ran the explainer here)
        others = set(summary[summary["metric"].isin(metrics)]["explainer"])
        explainers = roles.ordered(set(df["explainer"]) | {e for m, e in not_run if m == model and e in others})
        out.append(f"### {model} on {dataset}: {category}\n")
        unjudged = set(df.loc[~df["judged"].astype(bool), "metric"]) if "judged" in df.columns else set()
        out.append("| explainer | " + " | ".join(f"{m} {arrow(m)}" + (" (no headroom: not ranked)" if m in unjudged else "")
                                                for m in metrics) + " |")
        out.append("|---|" + "---|" * len(metrics))
        lead = {m for m in metrics if (dataset, model, m) in leads}
        for e, row in _cells(df, explainers, metrics, lead):
            out += _block_rule(e, explainers, len(metrics))
            cells = ["not run" if (model, e) in not_run else _md_cell(*c) for c in row]
            out.append(f"| {e} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def _block_rule(e: str, explainers: list[str], ncols: int) -> list[str]:
    """The separator row opening the baselines' block, before the first baseline of `explainers`."""
    first = next((x for x in explainers if roles.is_baseline(x)), None)
    return [f"| *{roles.BASELINE_BLOCK}* |" + " |" * ncols] if e == first else []


def _combined_parts(summary: pd.DataFrame, tests: pd.DataFrame | None):
    columns = []  # (dataset, model, metric)
    for (dataset, model), df in summary.groupby(["dataset", "model"], sort=True):
        columns += [(dataset, model, m) for m in ordered_metrics(df["metric"])]
    leads = significant_leads(summary, tests)
    explainers = roles.ordered(summary["explainer"].unique())
    grid = {}
    for (dataset, model), df in summary.groupby(["dataset", "model"], sort=True):
        metrics = [m for d, mo, m in columns if (d, mo) == (dataset, model)]
        lead = {m for m in metrics if (dataset, model, m) in leads}
        for e, row in _cells(df, explainers, metrics, lead):
            for m, cell in zip(metrics, row):
                grid[(e, dataset, model, m)] = cell
    return columns, explainers, grid


def combined_markdown(summary: pd.DataFrame, tests: pd.DataFrame | None = None, not_run: frozenset = frozenset()) -> str:
    """Every model side by side: one row per explainer, one column per (model, metric); "not run" where
    explain.per_model left the pair out."""
    columns, explainers, grid = _combined_parts(summary, tests)
    multi = summary["dataset"].nunique() > 1
    head = [f"{mo}{' (' + d + ')' if multi else ''} {m} {arrow(m)}" for d, mo, m in columns]
    out = ["| explainer | " + " | ".join(head) + " |", "|---|" + "---|" * len(columns)]
    for e in explainers:
        out += _block_rule(e, explainers, len(columns))
        out.append(f"| {e} | " + " | ".join("not run" if (c[1], e) in not_run else
                                            _md_cell(*grid.get((e, *c), (None, False, False)), with_n=False)
                                            for c in columns) + " |")
    return "\n".join(out) + "\n"


def rank_markdown(friedman: pd.DataFrame, ranks: pd.DataFrame) -> str:
    """Average ranks (1 = best) per (dataset, model): explainers x metrics, with the Friedman p, the
    Nemenyi critical difference and the images used (n, the common set) and dropped (failed by some
    explainer: scored by another, NaN in it). A metric
    no image of which every explainer scored keeps its column, empty, with n = 0."""
    out = []
    for (dataset, model), tests in friedman.groupby(["dataset", "model"], sort=True):
        metrics = ordered_metrics(tests["metric"])
        tests = tests.set_index("metric")
        df = ranks[(ranks.dataset == dataset) & (ranks.model == model)]
        wide = df.pivot(index="explainer", columns="metric", values="avg_rank")
        explainers = roles.ordered(set(wide.index) | set(df["explainer"]))
        out += [f"### {model} on {dataset}: average ranks\n",
                "| explainer | " + " | ".join(f"{m} {arrow(m)}" for m in metrics) + " |",
                "|---|" + "---|" * len(metrics)]
        for e in explainers:
            out += _block_rule(e, explainers, len(metrics))
            vals = [wide.loc[e, m] if m in wide.columns else float("nan") for m in metrics]
            out.append(f"| {e} | " + " | ".join("" if pd.isna(v) else f"{v:.2f}" for v in vals) + " |")
        t = [tests.loc[m] for m in metrics]
        out += ["| *Friedman p* | " + " | ".join(fmt(float(r.p)) if pd.notna(r.p) else "n/a" for r in t) + " |",
                "| *Nemenyi CD* | " + " | ".join(f"{r.cd:.2f}" if pd.notna(r.cd) else "n/a" for r in t) + " |",
                "| *n images (failed by some)* | " + " | ".join(f"{int(r.n)} ({int(r.n_dropped)})" for r in t) + " |", ""]
    return "\n".join(out)


def write_csv(path: Path, df: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.10g", lineterminator="\n")


def write_tables(summary: pd.DataFrame, report_dir: Path, confidence: float, tests: pd.DataFrame | None = None,
                 friedman: pd.DataFrame | None = None, ranks: pd.DataFrame | None = None,
                 not_run: frozenset = frozenset()) -> str:
    """Write leaderboard.{md,csv}, leaderboard_all.md, paired_tests.csv, friedman.csv, ranks.{csv,md}
    (the LaTeX tables come from latex.py); return the Markdown leaderboard."""
    report_dir = Path(report_dir)
    md = leaderboard_markdown(summary, confidence, tests, not_run)
    write_text(report_dir / "leaderboard.md", md)
    write_csv(report_dir / "leaderboard.csv", summary)
    write_text(report_dir / "leaderboard_all.md", combined_markdown(summary, tests, not_run))
    if tests is not None:
        write_csv(report_dir / "paired_tests.csv", tests)
    if friedman is not None and ranks is not None:
        write_csv(report_dir / "friedman.csv", friedman)
        write_csv(report_dir / "ranks.csv", ranks)
        write_text(report_dir / "ranks.md", rank_markdown(friedman, ranks))
    return md
