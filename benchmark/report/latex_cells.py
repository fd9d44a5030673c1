"""The pieces of a LaTeX leaderboard table and their estimated widths at \\footnotesize (the tables'
font size): display names escaped for LaTeX, compact cells `mean ± half-width` at the metric's fixed
decimals, column heads broken at spaces into stacked lines, the failures' footnote.

Widths are estimated per character from the Computer Modern 8 pt glyphs (measured with pdflatex:
lower case about 4.2 pt, capitals about 6.1 pt, digits 4.25 pt, bold digits 4.9 pt), rounded up, so
an estimate is never short; tests/benchmark/test_latex.py compiles the tables and checks it.
"""
from __future__ import annotations

import math
from typing import Mapping

import pandas as pd

from . import board_format as bf
from .labels import label
from .tables import _tex_arrow, tex

LINE_CHARS = 12  # a stacked head joins words while a line stays this short


def text_pt(text: str, bold: bool = False) -> float:
    """Estimated width in pt of plain text at \\footnotesize; never below what pdflatex sets."""
    width = 0.0
    for ch in text:
        if ch.isupper() or ch in "mwMW@%&":
            width += 7.2
        elif ch.isdigit():
            width += 4.4
        elif ch.isalpha():
            width += 4.5
        else:
            width += 3.6
    return width * (1.15 if bold else 1.0)


def tex_name(text: str) -> str:
    """A display name (or number) as LaTeX: escaped, µ and the en dash spelled for pdflatex."""
    return tex(text).replace("µ", "$\\mu$").replace("–", "--")


def name(key: str, labels: Mapping[str, str] | None) -> tuple[str, float]:
    """(LaTeX, width) of the display name of an explainer, metric, model or category."""
    shown = label(key, labels)
    return tex_name(shown), text_pt(shown)


def _half(r) -> float:
    return float("nan") if pd.isna(r.ci_low) else max(r.mean - r.ci_low, r.ci_high - r.mean, 0.0)


def cell(r, is_best: bool, is_lead: bool, metric: str, unit=None) -> tuple[str, float]:
    """(LaTeX, estimated width in pt) of one compact cell `mean ± half` at the metric's decimals."""
    if r is None:
        return "", 0.0
    sup = ("\\dagger" if is_lead and r.n else "") + ("\\ast" if bf.failed(r) else "")
    mark = f"$^{{{sup}}}$" if sup else ""
    marks = 4.5 * (sup.count("\\dagger") + sup.count("\\ast"))
    if r.n == 0:
        return "--" + mark, 12.0 + marks
    mean = bf.value(metric, r.mean, unit)
    half = "" if math.isnan(_half(r)) else bf.value(metric, _half(r), unit)
    body = (f"\\textbf{{{tex_name(mean)}}}" if is_best else tex_name(mean)) + mark
    width = text_pt(mean, bold=is_best) + marks
    if half:
        body += f"{{\\scriptsize\\,$\\pm${tex_name(half)}}}"
        width += 10.0 + 0.8 * text_pt(half)  # \, and ± at \scriptsize, then the digits at 6 pt
    return body, width


def head(text: str, suffix: str = "", suffix_pt: float = 0.0) -> tuple[str, float]:
    """A column head broken at spaces into stacked lines of at most LINE_CHARS characters (a longer
    word keeps a line of its own), `suffix` (LaTeX, `suffix_pt` wide) after the last line."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= LINE_CHARS:
            lines[-1] += " " + word
        else:
            lines.append(word)
    widths = [text_pt(x) for x in lines]
    widths[-1] += suffix_pt
    texed = [tex_name(x) for x in lines]
    texed[-1] += suffix
    return "\\begin{tabular}[b]{@{}c@{}}" + "\\\\".join(texed) + "\\end{tabular}", max(widths)


def metric_head(metric: str, labels: Mapping[str, str] | None, unit=None, stacked: bool = True) -> tuple[str, float]:
    """A metric's head with its unit and direction arrow: stacked (a column head) or on one line (a row label)."""
    shown = bf.head(metric, labels, unit)
    if stacked:
        return head(shown, " " + _tex_arrow(metric), 8.0)
    return f"{tex_name(shown)} {_tex_arrow(metric)}", text_pt(shown) + 8.0


def failures(rows, labels: Mapping[str, str] | None, with_model: bool = False) -> list[str]:
    """The footnote under a LaTeX table naming the cells marked $^\\ast$ and their failed images."""
    failed = [f"{name(r.explainer, labels)[0]} ({name(r.model, labels)[0] + ', ' if with_model else ''}"
              f"{name(r.metric, labels)[0]}): {bf.failed(r)}" for r in rows if r is not None and bf.failed(r)]
    if not failed:
        return []
    return ["\\par\\smallskip{\\footnotesize $^{\\ast}$ images the explainer failed on (NaN where another explainer "
            "scored the image), left out of every explainer's statistics: " + "; ".join(failed) + ".}"]
