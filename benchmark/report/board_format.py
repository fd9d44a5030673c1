"""How a leaderboard shows a value and a column head, in Markdown and LaTeX alike: display names
(labels.label, `report.labels` first), fixed decimals per metric (labels.number), runtime in one unit
per column with the unit in the head, and the column limit of a Markdown table.

The CSV tables keep internal names and full precision; these strings are for a reader (and a paper).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

from ..metrics import get_metric
from . import labels as lb
from .roles import BASELINE_BLOCK

# a Markdown table holds the explainer column and at most 9 value columns: wider ones are split
MAX_COLUMNS = 10


def failed(r) -> int:
    return int(getattr(r, "n_failed", 0) or 0)


def arrow(metric: str) -> str:
    return "↑" if get_metric(metric).higher_is_better else "↓"


def unit_of(metric: str, rows) -> tuple[str, float] | None:
    """The one unit of a runtime column (labels.time_unit over the column's means and CI ends), None
    for any other metric. `rows`: the summary rows (or None) of that column."""
    if metric not in lb.TIME_METRICS:
        return None
    values = [v for r in rows if r is not None for v in (r.mean, r.ci_low, r.ci_high) if pd.notna(v)]
    return lb.time_unit(values)


def head(metric: str, labels: Mapping[str, str] | None, unit: tuple[str, float] | None = None) -> str:
    """A column's display name with the runtime unit: "Time per image (ms)"."""
    return lb.label(metric, labels) + (f" ({unit[0]})" if unit else "")


def value(metric: str, x, unit: tuple[str, float] | None = None) -> str:
    return lb.number(metric, x, unit)


def ci(r, metric: str, unit: tuple[str, float] | None = None) -> str:
    """" [low, high]" at the metric's decimals, or nothing when one image gives no interval."""
    return "" if pd.isna(r.ci_low) else f" [{value(metric, r.ci_low, unit)}, {value(metric, r.ci_high, unit)}]"


def md_cell(r, is_best: bool, is_lead: bool, metric: str, unit: tuple[str, float] | None = None,
            with_n: bool = True) -> str:
    """`mean [CI] (n=…, k failed)` of one summary row, bold when best, † for a significant lead."""
    if r is None:
        return ""
    k = failed(r)
    fails = f", {k} failed" if k else ""
    if r.n == 0:
        return f"not scored (n=0{fails})" if with_n else "not scored" + (f" ({k} failed)" if k else "")
    text = value(metric, r.mean, unit) + ci(r, metric, unit) + (
        f" (n={r.n}{fails})" if with_n else (f" ({k} failed)" if k else ""))
    return f"**{text}**" + ("†" if is_lead else "") if is_best else text


def column_chunks(items: Sequence, per: int = MAX_COLUMNS - 1) -> list[list]:
    """`items` (the value columns of one table) in consecutive groups of at most `per`."""
    items = list(items)
    return [items[i:i + per] for i in range(0, len(items), per)] or [[]]


def md_table(head_cells: list[str], rows: list[list[str] | None], ncols: int | None = None) -> list[str]:
    """Markdown lines of one table; a None row is the rule opening the baselines' block."""
    n = len(head_cells) - 1 if ncols is None else ncols
    out = ["| " + " | ".join(head_cells) + " |", "|---|" + "---|" * n]
    for r in rows:
        out.append(f"| *{BASELINE_BLOCK}* |" + " |" * n if r is None else "| " + " | ".join(r) + " |")
    return out
