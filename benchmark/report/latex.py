"""Paper tables that fit a declared width (`report.latex_width`: "columnwidth", a journal column of
about 240-250 pt, in a `table`; or "textwidth", a page of about 470 pt, in a `table*`, which spans both
columns of a two-column paper and is an ordinary float in a one-column one).

Compact cells (latex_cells.py): the mean and the half-width of its bootstrap CI (mean ± half, the
half-width the larger of the two sides) at the metric's fixed decimals, runtime in one unit per column,
best method bold, $^\\dagger$ a significant lead over the runner-up, $^\\ast$ failures (footnoted);
display names (`report.labels`); the full precision stays in leaderboard.csv. Per (dataset, model,
metric category) the orientation whose estimated width is narrower is taken (explainers as rows or
metrics as rows), and columns that still do not fit are split into stacked blocks that repeat the row
labels. Nothing is scaled: every table prints at the document's \\footnotesize, as journals require,
so the width estimate errs wide (compile_check proves it). Needs booktabs.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Mapping

import pandas as pd

from . import board_format as bf, roles
from .labels import label
from .latex_cells import cell, failures, head, metric_head, name, text_pt
from .tables import _cells, _groups, ordered_metrics, significant_leads

WIDTHS_PT = {"columnwidth": 240.0, "textwidth": 465.0}
SEP = 12.0  # \tabcolsep on both sides of a column
PREAMBLE = "% needs \\usepackage{booktabs}"


def chunks(widths: list[float], first: float, target: float) -> list[list[int]]:
    """Consecutive column indices grouped so that first + the columns' widths (each plus SEP) stay
    within target; every block holds at least one column."""
    out, cur, used = [], [], first + SEP
    for i, w in enumerate(widths):
        if cur and used + w + SEP > target:
            out.append(cur)
            cur, used = [], first + SEP
        cur.append(i)
        used += w + SEP
    return out + ([cur] if cur else [])


def _block(heads: list[str], rows: list[list[str]], cols: list[int], top: str = "", rules: str = "") -> list[str]:
    """One tabular of the columns `cols`, at its natural width (never scaled: chunks keeps it within the width)."""
    lines = [f"\\begin{{tabular}}{{{'l' + 'c' * len(cols)}}}", "\\toprule"]
    if top:
        lines += [top + " \\\\", rules]
    lines += [" & ".join([heads[0], *(heads[c + 1] for c in cols)]) + " \\\\", "\\midrule"]
    # None: the rule between the methods and the baselines' block (reference rows)
    lines += ["\\midrule" if r is None else " & ".join([r[0], *(r[c + 1] for c in cols)]) + " \\\\" for r in rows]
    return lines + ["\\bottomrule", "\\end{tabular}"]


def _ruled(rows: list, base: list[bool]) -> list:
    """Rows of the explainers (methods first), with a rule (None) before the first baseline's row."""
    out: list = []
    first = base.index(True) if True in base else None
    for i, r in enumerate(rows):
        out += [None, r] if i == first and i > 0 else [r]
    return out


def _column_blocks(kinds: list) -> tuple[str, str]:
    """(top header row, its cmidrules) over explainer columns: "methods" and "baselines (reference)";
    kinds holds True for a baseline, False for a method, None for another column (n)."""
    top, rules, col = [""], [], 2
    for k, block in ((False, "methods"), (True, "baselines (reference)")):
        n = sum(1 for x in kinds if x is k)
        if n:
            top.append(f"\\multicolumn{{{n}}}{{c}}{{{block}}}")
            rules.append(f"\\cmidrule(lr){{{col}-{col + n - 1}}}")
            col += n
    top += [""] * sum(1 for x in kinds if x is None)
    return (" & ".join(top), " ".join(rules)) if any(x is True for x in kinds) else ("", "")


def _float(width: str) -> str:
    return "table*" if width == "textwidth" else "table"


def _units(grid: dict, metrics: list[str]) -> dict:
    """metric -> its runtime unit (None for others) over one table's rows."""
    return {m: bf.unit_of(m, [row[k][0] for row in grid.values()]) for k, m in enumerate(metrics)}


def category_table(df: pd.DataFrame, metrics: list[str], lead: set[str], width: str,
                   labels: Mapping[str, str] | None = None) -> tuple[list[str], list]:
    """Blocks of one (dataset, model, category) table and the summary rows shown (for the footnote)."""
    explainers = roles.ordered(df["explainer"].unique())
    base = [roles.is_baseline(e) for e in explainers]
    grid = {e: row for e, row in _cells(df, explainers, metrics, lead)}
    units = _units(grid, metrics)
    cells = {(e, m): cell(*c, m, units[m]) for e in explainers for m, c in zip(metrics, grid[e])}
    ns = {m: int(df[df.metric == m]["n"].max()) for m in metrics}
    mh = {m: metric_head(m, labels, units[m]) for m in metrics}
    en = {e: name(e, labels) for e in explainers}
    cw = {m: max(cells[(e, m)][1] for e in explainers) for m in metrics}
    # explainers as rows: one column per metric (plus an n row)
    by_metric = [max(mh[m][1], cw[m], text_pt(str(ns[m]))) for m in metrics]
    first_e = max([text_pt("n images"), *(en[e][1] for e in explainers)])
    # metrics as rows: one column per explainer (its name stacked), then n
    eh = {e: head(label(e, labels)) for e in explainers}
    by_expl = [max(eh[e][1], max(cells[(e, m)][1] for m in metrics)) for e in explainers] + [
        max(text_pt("n"), *(text_pt(str(n)) for n in ns.values()))]
    rh = {m: metric_head(m, labels, units[m], stacked=False) for m in metrics}
    first_m = max(rh[m][1] for m in metrics)
    target = WIDTHS_PT[width]
    if first_e + sum(w + SEP for w in by_metric) <= first_m + sum(w + SEP for w in by_expl):
        heads = ["explainer", *(mh[m][0] for m in metrics)]
        rows = _ruled([[en[e][0], *(cells[(e, m)][0] for m in metrics)] for e in explainers], base)
        rows.append(["$n$ images", *(str(ns[m]) for m in metrics)])
        groups = chunks(by_metric, first_e, target)
        tops = [("", "")] * len(groups)
    else:
        heads = ["metric", *(eh[e][0] for e in explainers), "$n$"]
        rows = [[rh[m][0], *(cells[(e, m)][0] for e in explainers), str(ns[m])] for m in metrics]
        groups = chunks(by_expl, first_m, target)
        tops = [_column_blocks([base[c] if c < len(base) else None for c in cols]) for cols in groups]
    out = []
    for i, cols in enumerate(groups):
        out += (["\\par\\medskip"] if i else []) + _block(heads, rows, cols, *tops[i])
    return out, [grid[e][k][0] for e in explainers for k in range(len(metrics))]


def _unjudged_note(df: pd.DataFrame, metrics: list[str], labels) -> str:
    """" No headroom (not ranked, in no verdict): Deletion AUC, ..." for the caption, or nothing."""
    if "judged" not in df.columns:
        return ""
    bad = [m for m in metrics if not df.loc[df["metric"] == m, "judged"].astype(bool).all()]
    return (" No headroom (the perturbation barely moves the output; not ranked, in no verdict): "
            + ", ".join(name(m, labels)[0] for m in bad) + ".") if bad else ""


def _caption(what: str, confidence: float, extra: str = "", across: bool = False) -> str:
    """A leaderboard table's caption; `across`: means over trained instances (across_instances.tex)."""
    if across:
        what += ", across trained instances"
        interval = ("interval of a two-level bootstrap over the instances and the $n$ images every instance scored; "
                    "best method in bold (baselines: reference rows below the rule, never bold). A verdict about the "
                    "architecture holds in every instance (the report's \\emph{What this run supports}).")
        table = "across\\_instances.csv"
    else:
        interval = ("bootstrap CI (exact Clopper-Pearson for binary metrics) over the $n$ images every explainer "
                    "scored; best method in bold (baselines: reference rows below the rule, never bold), "
                    "$^\\dagger$ significantly better than the runner-up method (paired differences in its favour, "
                    "Wilcoxon signed-rank, Holm, $p<0.05$).")
        table = "leaderboard.csv"
    return (f"\\caption{{{what}: mean $\\pm$ half-width of the {round(confidence * 100)}\\% {interval} "
            f"Full precision: {table}.{extra}}}")


def leaderboard_tex(summary: pd.DataFrame, tests: pd.DataFrame | None, confidence: float = 0.95,
                    width: str = "textwidth", labels: Mapping[str, str] | None = None, across: bool = False) -> str:
    """One compact table per (dataset, model, metric category), fitting `width` at \\footnotesize.
    `across`: `summary` is per architecture over several trained instances (instances.architecture_summary;
    the report's across_instances.tex), captioned so, with no significance marks."""
    if width not in WIDTHS_PT:
        raise ValueError(f"report.latex_width must be one of {sorted(WIDTHS_PT)}, not {width!r}")
    leads = significant_leads(summary, tests)
    env = _float(width)
    out = [PREAMBLE, f"% declared width: \\{width}"]
    for dataset, model, category, df, metrics in _groups(summary):
        lead = {m for m in metrics if (dataset, model, m) in leads}
        blocks, shown = category_table(df, metrics, lead, width, labels)
        what = f"{name(model, labels)[0]} on {name(dataset, labels)[0]}, {name(category, labels)[0]}"
        out += [f"\\begin{{{env}}}[t]", "\\centering\\footnotesize\\sloppy",
                _caption(what, confidence, _unjudged_note(df, metrics, labels), across),
                *blocks, *failures(shown, labels), f"\\end{{{env}}}", ""]
    return "\n".join(out)


def combined_tex(summary: pd.DataFrame, tests: pd.DataFrame | None, confidence: float = 0.95,
                 width: str = "textwidth", labels: Mapping[str, str] | None = None) -> str:
    """Every model side by side (explainers as rows, a column group per (dataset, model)), in blocks
    that fit `width`."""
    leads = significant_leads(summary, tests)
    columns, grid = [], {}
    explainers = roles.ordered(summary["explainer"].unique())
    for (dataset, model), df in summary.groupby(["dataset", "model"], sort=True):
        metrics = ordered_metrics(df["metric"])
        lead = {m for m in metrics if (dataset, model, m) in leads}
        for e, row in _cells(df, explainers, metrics, lead):
            for m, c in zip(metrics, row):
                grid[(e, dataset, model, m)] = c
        columns += [(dataset, model, m) for m in metrics]
    multi = summary["dataset"].nunique() > 1
    units = {c: bf.unit_of(c[2], [grid.get((e, *c), (None,))[0] for e in explainers]) for c in columns}
    cells = {(e, *c): cell(*grid.get((e, *c), (None, False, False)), c[2], units[c]) for e in explainers for c in columns}
    mh = [metric_head(c[2], labels, units[c]) for c in columns]
    widths = [max(h[1], *(cells[(e, *c)][1] for e in explainers)) for h, c in zip(mh, columns)]
    first = max(name(e, labels)[1] for e in explainers)
    heads = ["explainer", *(h[0] for h in mh)]
    rows = _ruled([[name(e, labels)[0], *(cells[(e, *c)][0] for c in columns)] for e in explainers],
                  [roles.is_baseline(e) for e in explainers])
    env = _float(width)
    out = [PREAMBLE, f"% declared width: \\{width}", f"\\begin{{{env}}}[t]", "\\centering\\footnotesize\\sloppy",
           _caption("All models", confidence)]
    for i, cols in enumerate(_model_chunks(columns, widths, first, WIDTHS_PT[width], labels, multi)):
        groups = list(dict.fromkeys(columns[c][:2] for c in cols))
        top, rules, start = [""], [], 2
        for d, mo in groups:
            n = sum(1 for c in cols if columns[c][:2] == (d, mo))
            top.append(f"\\multicolumn{{{n}}}{{c}}{{{_group_name(d, mo, labels, multi)[0]}}}")
            rules.append(f"\\cmidrule(lr){{{start}-{start + n - 1}}}")
            start += n
        out += (["\\par\\medskip"] if i else []) + _block(heads, rows, cols, " & ".join(top), " ".join(rules))
    shown = [grid[(e, *c)][0] for e in explainers for c in columns if (e, *c) in grid]
    return "\n".join(out + [*failures(shown, labels, True), f"\\end{{{env}}}", ""])


def _group_name(dataset: str, model: str, labels, multi: bool) -> tuple[str, float]:
    """(LaTeX, width) of a column group's name, stacked like a head: the model, and the dataset where
    there are several."""
    shown = label(model, labels) + (f" ({label(dataset, labels)})" if multi else "")
    return head(shown)


def _model_chunks(columns: list, widths: list[float], first: float, target: float, labels, multi: bool
                  ) -> list[list[int]]:
    """chunks() per (dataset, model): a block holds one model's columns (or part of them), so its
    group name (stacked, \\multicolumn over them) counts once: where it is wider than the columns,
    the block is as wide as the name."""
    out: list[list[int]] = []
    for key in dict.fromkeys(c[:2] for c in columns):
        idx = [i for i, c in enumerate(columns) if c[:2] == key]
        # the name's excess over one column counts as part of the first column: never too narrow
        extra = max(0.0, _group_name(*key, labels, multi)[1] - min(widths[i] for i in idx))
        out += [[idx[k] for k in part] for part in chunks([widths[i] for i in idx], first + extra, target)]
    return out


# minimal documents of each declared width: a one-column page 470 pt wide; a two-column page of 241 pt columns
DOCUMENTS = {"textwidth": "\\documentclass{article}\\setlength{\\textwidth}{470pt}",
             "columnwidth": "\\documentclass[twocolumn]{article}\\setlength{\\columnsep}{14pt}"
                            "\\setlength{\\textwidth}{496pt}"}
SCALING = re.compile(r"\\(resizebox|scalebox|adjustbox)|\{adjustbox\}")


def declared_width(text: str) -> str:
    m = re.search(r"% declared width: \\(\w+)", text)
    return m.group(1) if m else "textwidth"


def compile_check(text: str, workdir: Path, width: str | None = None, engine: str = "pdflatex") -> list[str]:
    """Compile `text` (a .tex this module wrote) in a minimal document of its declared width (or
    `width`) with booktabs; return the log's "Overfull \\hbox" lines (empty: every block fits, at its
    natural size). Raises ValueError on any scaling command (a table must fit without), RuntimeError
    when it does not compile."""
    if SCALING.search(text):
        raise ValueError("a table is scaled (\\resizebox, \\scalebox or adjustbox): it must fit at its font size")
    width = width or declared_width(text)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    doc = workdir / "check.tex"
    doc.write_text(DOCUMENTS[width] + "\\usepackage[utf8]{inputenc}\\usepackage{booktabs}\n"
                   "\\begin{document}\n" + text + "\n\\end{document}\n")
    res = subprocess.run([engine, "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=workdir,
                         capture_output=True, text=True, timeout=300)
    log = (workdir / "check.log").read_text(errors="replace") if (workdir / "check.log").exists() else res.stdout
    if res.returncode != 0:
        raise RuntimeError(f"{engine} failed:\n{log[-3000:]}")
    return [line for line in log.splitlines() if line.startswith("Overfull \\hbox")]
