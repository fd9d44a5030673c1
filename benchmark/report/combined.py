"""Every model side by side (leaderboard_all.md) in Markdown tables of at most
board_format.MAX_COLUMNS columns: one group of tables per metric category, each table the category's
columns of as many whole models as fit (a model with more metrics in a category than fit one table
gets several). Rows: display names, methods first, then the baselines' block; "not run" where
explain.per_model left the pair out."""
from __future__ import annotations

from typing import Mapping

import pandas as pd

from ..metrics import get_metric, ordered_categories
from . import board_format as bf, roles
from .labels import label
from .tables import _cells, _with_rule, ordered_metrics, significant_leads

Column = tuple[str, str, str]  # (dataset, model, metric)


def pack(units: list[list[Column]], per: int = bf.MAX_COLUMNS - 1) -> list[list[Column]]:
    """Consecutive units (one model's columns of a category, each at most `per` long) joined into
    tables of at most `per` columns; a unit is never split across two tables."""
    out: list[list[Column]] = []
    for unit in units:
        if out and len(out[-1]) + len(unit) <= per:
            out[-1] = out[-1] + unit
        else:
            out.append(list(unit))
    return out


def _grid(summary: pd.DataFrame, explainers: list[str], tests: pd.DataFrame | None) -> dict:
    """(explainer, dataset, model, metric) -> (summary row or None, is best, significant lead)."""
    leads, grid = significant_leads(summary, tests), {}
    for (dataset, model), df in summary.groupby(["dataset", "model"], sort=True):
        metrics = ordered_metrics(df["metric"])
        lead = {m for m in metrics if (dataset, model, m) in leads}
        for e, row in _cells(df, explainers, metrics, lead):
            grid.update({(e, dataset, model, m): c for m, c in zip(metrics, row)})
    return grid


def combined_markdown(summary: pd.DataFrame, tests: pd.DataFrame | None = None, not_run: frozenset = frozenset(),
                      labels: Mapping[str, str] | None = None) -> str:
    """The all-models tables: cells `mean [CI]` at the metric's decimals (no n: leaderboard.md has
    it), best method per column in bold, † a significant lead, runtime in one unit per column."""
    explainers = roles.ordered(summary["explainer"].unique())
    grid = _grid(summary, explainers, tests)
    multi = summary["dataset"].nunique() > 1
    metrics_of = {key: ordered_metrics(df["metric"]) for key, df in summary.groupby(["dataset", "model"], sort=True)}
    out: list[str] = []
    for category in ordered_categories(get_metric(m).category for m in summary["metric"].unique()):
        units = [[(d, mo, m) for m in chunk] for (d, mo), ms in metrics_of.items()
                 for chunk in bf.column_chunks([m for m in ms if get_metric(m).category == category]) if chunk]
        tables = pack(units)
        scored = set(summary.loc[summary["metric"].map(lambda m: get_metric(m).category == category), "explainer"])
        rows_of = [e for e in explainers if e in scored]
        for i, columns in enumerate(tables):
            of = f" ({i + 1} of {len(tables)})" if len(tables) > 1 else ""
            out.append(f"#### {label(category, labels)}{of}\n")
            units_of = {c: bf.unit_of(c[2], [grid.get((e, *c), (None,))[0] for e in rows_of]) for c in columns}
            head = ["explainer", *(f"{label(mo, labels)}{' (' + label(d, labels) + ')' if multi else ''}: "
                                   f"{bf.head(m, labels, units_of[(d, mo, m)])} {bf.arrow(m)}" for d, mo, m in columns)]
            rows = [[label(e, labels), *("not run" if (c[1], e) in not_run else
                                         bf.md_cell(*grid.get((e, *c), (None, False, False)), c[2], units_of[c],
                                                    with_n=False) for c in columns)] for e in rows_of]
            out += bf.md_table(head, _with_rule(rows_of, rows)) + [""]
    return "\n".join(out)
