"""Paper tables that fit a declared width (`report.latex_width`: "columnwidth", a journal column of
about 240-250 pt, in a `table`; or "textwidth", a page of about 470 pt, in a `table*`, which spans both
columns of a two-column paper and is an ordinary float in a one-column one).

Compact cells: the mean and the half-width of its bootstrap CI (mean ± half, the half-width the larger
of the two sides), best bold, $^\\dagger$ a significant lead over the runner-up, $^\\ast$ failures
(footnoted); the full precision stays in leaderboard.csv. Per (dataset, model, metric category) the
orientation whose estimated width is narrower is taken (explainers as rows or metrics as rows), and
columns that still do not fit are split into stacked blocks that repeat the row labels. Widths are
estimated from character counts at \\footnotesize; as a guard against an estimate that is short, each
block is scaled down to \\linewidth if (and only if) it is wider. Needs booktabs and graphicx.
"""
from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import pandas as pd

from . import roles
from .tables import _cells, _failed, _groups, _tex_arrow, _tex_failures, fmt, ordered_metrics, significant_leads, tex

WIDTHS_PT = {"columnwidth": 240.0, "textwidth": 465.0}
SEP = 12.0  # \tabcolsep on both sides of a column
PREAMBLE = "% needs \\usepackage{booktabs} and \\usepackage{graphicx}"


def _text_pt(text: str) -> float:
    return 4.4 * len(text)  # \footnotesize, a conservative average glyph width


def _half(r) -> float:
    return float("nan") if pd.isna(r.ci_low) else max(r.mean - r.ci_low, r.ci_high - r.mean, 0.0)


def _half_str(h: float) -> str:
    return "" if math.isnan(h) else f"{h:.2g}" if h >= 0.001 else f"{h:.1g}"


def cell(r, is_best: bool, is_lead: bool) -> tuple[str, float]:
    """(LaTeX, estimated width in pt) of one compact cell `mean ± half`."""
    if r is None:
        return "", 0.0
    sup = ("\\dagger" if is_lead and r.n else "") + ("\\ast" if _failed(r) else "")
    mark = f"$^{{{sup}}}$" if sup else ""
    if r.n == 0:
        return "--" + mark, 20.0
    mean, half = fmt(r.mean), _half_str(_half(r))
    body = (f"\\textbf{{{mean}}}" if is_best else mean) + mark
    width = 4.6 * len(mean) + 5.0 * len(sup) / 6
    if half:
        body += f"{{\\scriptsize\\,$\\pm${half}}}"
        width += 6.0 + 3.6 * len(half)
    return body, width


def _head(name: str, suffix: str = "") -> tuple[str, float]:
    """A header broken at underscores into stacked lines (nested tabular); short parts stay joined
    ("top_k" is one line)."""
    lines: list[str] = []
    for p in name.split("_"):
        if lines and len(lines[-1]) + len(p) < 9:
            lines[-1] += "_" + p
        else:
            lines.append(p)
    width = max(_text_pt(x) for x in lines) + (12.0 if suffix else 0.0)
    texed = [tex(x) + ("\\_" if i < len(lines) - 1 else "") for i, x in enumerate(lines)]
    texed[-1] += suffix
    return "\\begin{tabular}[b]{@{}c@{}}" + "\\\\".join(texed) + "\\end{tabular}", width


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


def _block(head: list[str], rows: list[list[str]], cols: list[int], top: str = "", rules: str = "") -> list[str]:
    spec = "l" + "c" * len(cols)
    lines = ["\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%",
             f"\\begin{{tabular}}{{{spec}}}", "\\toprule"]
    if top:
        lines += [top + " \\\\", rules]
    lines += [" & ".join([head[0], *(head[c + 1] for c in cols)]) + " \\\\", "\\midrule"]
    # None: the rule between the methods and the baselines' block (reference rows)
    lines += ["\\midrule" if r is None else " & ".join([r[0], *(r[c + 1] for c in cols)]) + " \\\\" for r in rows]
    return lines + ["\\bottomrule", "\\end{tabular}}"]


def _ruled(rows: list, base: list[bool]) -> list:
    """Rows of the explainers (methods first), with a rule (None) before the first baseline's row."""
    out = []
    for r, b in zip(rows, base):
        if b and (not out or out[-1] is not None) and any(not x for x in base):
            out.append(None)
        out.append(r)
    return out


def _column_blocks(kinds: list) -> tuple[str, str]:
    """(top header row, its cmidrules) over explainer columns: "methods" and "baselines (reference)";
    kinds holds True for a baseline, False for a method, None for another column (n)."""
    top, rules, col = [""], [], 2
    for k, label in ((False, "methods"), (True, "baselines (reference)")):
        n = sum(1 for x in kinds if x is k)
        if n:
            top.append(f"\\multicolumn{{{n}}}{{c}}{{{label}}}")
            rules.append(f"\\cmidrule(lr){{{col}-{col + n - 1}}}")
            col += n
    top += [""] * sum(1 for x in kinds if x is None)
    return (" & ".join(top), " ".join(rules)) if any(x is True for x in kinds) else ("", "")


def _float(width: str) -> str:
    return "table*" if width == "textwidth" else "table"


def category_table(df: pd.DataFrame, metrics: list[str], lead: set[str], width: str) -> tuple[list[str], list]:
    """Blocks of one (dataset, model, category) table and the summary rows shown (for the footnote)."""
    explainers = roles.ordered(df["explainer"].unique())
    base = [roles.is_baseline(e) for e in explainers]
    grid = {e: row for e, row in _cells(df, explainers, metrics, lead)}
    cells = {(e, m): cell(*c) for e in explainers for m, c in zip(metrics, grid[e])}
    ns = {m: int(df[df.metric == m]["n"].max()) for m in metrics}
    mh = {m: _head(m, " " + _tex_arrow(m)) for m in metrics}
    eh = {e: _head(e) for e in explainers}
    cw = {m: max(cells[(e, m)][1] for e in explainers) for m in metrics}
    # explainers as rows: one column per metric (plus an n row)
    by_metric = [max(mh[m][1], cw[m]) for m in metrics]
    first_e = max(_text_pt(e) for e in [*explainers, "n images"])
    # metrics as rows: one column per explainer, then n
    by_expl = [max(eh[e][1], max(cells[(e, m)][1] for m in metrics)) for e in explainers] + [20.0]
    first_m = max(_text_pt(m) + 10 for m in metrics)
    target = WIDTHS_PT[width]
    if first_e + sum(w + SEP for w in by_metric) <= first_m + sum(w + SEP for w in by_expl):
        head = ["explainer", *(mh[m][0] for m in metrics)]
        rows = _ruled([[tex(e), *(cells[(e, m)][0] for m in metrics)] for e in explainers], base)
        rows.append(["$n$ images", *(str(ns[m]) for m in metrics)])
        groups = chunks(by_metric, first_e, target)
        tops = [("", "")] * len(groups)
    else:
        head = ["metric", *(eh[e][0] for e in explainers), "$n$"]
        rows = [[f"{tex(m)} {_tex_arrow(m)}", *(cells[(e, m)][0] for e in explainers), str(ns[m])] for m in metrics]
        groups = chunks(by_expl, first_m, target)
        tops = [_column_blocks([base[c] if c < len(base) else None for c in cols]) for cols in groups]
    out = []
    for i, cols in enumerate(groups):
        out += (["\\par\\medskip"] if i else []) + _block(head, rows, cols, *tops[i])
    return out, [grid[e][k][0] for e in explainers for k in range(len(metrics))]


def leaderboard_tex(summary: pd.DataFrame, tests: pd.DataFrame | None, confidence: float = 0.95,
                    width: str = "textwidth") -> str:
    """One compact table per (dataset, model, metric category), fitting `width`."""
    if width not in WIDTHS_PT:
        raise ValueError(f"report.latex_width must be one of {sorted(WIDTHS_PT)}, not {width!r}")
    leads = significant_leads(summary, tests)
    env = _float(width)
    out = [PREAMBLE, f"% declared width: \\{width}"]
    for dataset, model, category, df, metrics in _groups(summary):
        lead = {m for m in metrics if (dataset, model, m) in leads}
        blocks, shown = category_table(df, metrics, lead, width)
        out += [f"\\begin{{{env}}}[t]", "\\centering\\footnotesize\\sloppy",
                f"\\caption{{{tex(model)} on {tex(dataset)}, {category}: mean $\\pm$ half-width of the "
                f"{round(confidence * 100)}\\% bootstrap CI (exact Clopper-Pearson for binary metrics) over the $n$ images every explainer scored; best method in bold "
                f"(baselines: reference rows below the rule, never bold), $^\\dagger$ significantly better than the "
                f"runner-up method (paired differences in its favour, Wilcoxon "
                f"signed-rank, Holm, $p<0.05$). Full precision: leaderboard.csv.}}",
                *blocks, *_tex_failures(shown), f"\\end{{{env}}}", ""]
    return "\n".join(out)


def combined_tex(summary: pd.DataFrame, tests: pd.DataFrame | None, confidence: float = 0.95,
                 width: str = "textwidth") -> str:
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
    cells = {(e, *c): cell(*grid.get((e, *c), (None, False, False))) for e in explainers for c in columns}
    heads = [_head(m, " " + _tex_arrow(m)) for _, _, m in columns]
    widths = [max(h[1], *(cells[(e, *c)][1] for e in explainers)) for h, c in zip(heads, columns)]
    first = max(_text_pt(e) for e in explainers)
    head = ["explainer", *(h[0] for h in heads)]
    rows = _ruled([[tex(e), *(cells[(e, *c)][0] for c in columns)] for e in explainers],
                  [roles.is_baseline(e) for e in explainers])
    env = _float(width)
    out = [PREAMBLE, f"% declared width: \\{width}", f"\\begin{{{env}}}[t]", "\\centering\\footnotesize\\sloppy",
           f"\\caption{{All models: mean $\\pm$ half-width of the {round(confidence * 100)}\\% bootstrap CI (exact for binary metrics) on the "
           f"images every explainer scored; best method per column in bold (baselines below the rule, "
           f"never bold), $^\\dagger$ significantly better than the runner-up method (Wilcoxon signed-rank, Holm, $p<0.05$). Full precision: leaderboard.csv.}}"]
    for i, cols in enumerate(chunks(widths, first, WIDTHS_PT[width])):
        groups = list(dict.fromkeys(columns[c][:2] for c in cols))
        top, rules, start = ["" for _ in range(1)], [], 2
        for d, mo in groups:
            n = sum(1 for c in cols if columns[c][:2] == (d, mo))
            top.append(f"\\multicolumn{{{n}}}{{c}}{{{tex(mo)}{' (' + tex(d) + ')' if multi else ''}}}")
            rules.append(f"\\cmidrule(lr){{{start}-{start + n - 1}}}")
            start += n
        out += (["\\par\\medskip"] if i else []) + _block(head, rows, cols, " & ".join(top), " ".join(rules))
    shown = [grid[(e, *c)][0] for e in explainers for c in columns if (e, *c) in grid]
    return "\n".join(out + [*_tex_failures(shown, True), f"\\end{{{env}}}", ""])


# minimal documents of each declared width: a one-column page 470 pt wide; a two-column page of 241 pt columns
DOCUMENTS = {"textwidth": "\\documentclass{article}\\setlength{\\textwidth}{470pt}",
             "columnwidth": "\\documentclass[twocolumn]{article}\\setlength{\\columnsep}{14pt}"
                            "\\setlength{\\textwidth}{496pt}"}
GUARD = "\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%"


def declared_width(text: str) -> str:
    m = re.search(r"% declared width: \\(\w+)", text)
    return m.group(1) if m else "textwidth"


def compile_check(text: str, workdir: Path, width: str | None = None, guard: bool = True,
                  engine: str = "pdflatex") -> list[str]:
    """Compile `text` (a .tex this module wrote) in a minimal document of its declared width (or
    `width`) with booktabs and graphicx; return the log's "Overfull \\hbox" lines (empty: it fits).
    guard=False removes the scale-down guard, so the widths this module estimated are what is checked.
    Raises RuntimeError when it does not compile."""
    width = width or declared_width(text)
    if not guard:
        text = text.replace(GUARD, "{%")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    doc = workdir / "check.tex"
    doc.write_text(DOCUMENTS[width] + "\\usepackage[utf8]{inputenc}\\usepackage{booktabs}\\usepackage{graphicx}\n"
                   "\\begin{document}\n" + text + "\n\\end{document}\n")
    res = subprocess.run([engine, "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=workdir,
                         capture_output=True, text=True, timeout=300)
    log = (workdir / "check.log").read_text(errors="replace") if (workdir / "check.log").exists() else res.stdout
    if res.returncode != 0:
        raise RuntimeError(f"{engine} failed:\n{log[-3000:]}")
    return [line for line in log.splitlines() if line.startswith("Overfull \\hbox")]
