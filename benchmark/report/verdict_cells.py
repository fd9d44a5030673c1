"""The text of one verdict cell of the findings table: the comparison with random with its paired
difference and CI, the other baselines by name (their differences are in findings.csv)."""
from __future__ import annotations

import pandas as pd

from .tables import fmt

FLOOR = "random"


def _shortfall(ref: pd.DataFrame, lost: list[str], floor: str) -> str:
    """What a method was not shown to beat, short enough for a table cell: the comparison with
    random with its Δ and CI, the priors by name only (their Δs are in findings.csv)."""
    unshown = [b for b in lost if not ref.loc[b, "equivalent"]]
    same = [b for b in lost if ref.loc[b, "equivalent"]]
    margin = f"±{ref['equivalence_margin'].iloc[0]:g}"
    parts = [f"not shown vs {FLOOR} {floor}"] if FLOOR in unshown else []
    parts += [f"equivalent to {FLOOR} within {margin} ({floor})"] if FLOOR in same else []
    rest = [b for b in unshown if b != FLOOR]
    parts += [("nor vs " if FLOOR in unshown else "not shown vs ") + ", ".join(rest)] if rest else []
    rest = [b for b in same if b != FLOOR]
    parts += [f"equivalent to {', '.join(rest)} within {margin}"] if rest else []
    return "; ".join(parts)


def _diff(r) -> str:
    """"Δ +0.019 [0.004, 0.035], n = 27": the paired difference (method - baseline) and its CI."""
    ci = "" if pd.isna(r.diff_ci_low) else f" [{fmt(r.diff_ci_low)}, {fmt(r.diff_ci_high)}]"
    return f"Δ {'+' if r.mean_diff >= 0 else ''}{fmt(r.mean_diff)}{ci}, n = {int(r.n)}"
