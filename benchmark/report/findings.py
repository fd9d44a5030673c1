"""What the run supports: for each explanation method (every explainer that is not a baseline), the
metrics on which it significantly beats `random` and each prior baseline present (`center`,
`lung_prior`, `mask_prior`, `sobel`), those on which that is not shown, and its sanity-check outcome.

Beating a baseline on a metric: the paired test of the two on the cell's common image set (Wilcoxon
signed-rank, Pratt's zeros) gives p_holm < alpha within its declared family (the method against each
baseline of that (model, metric); see roles.family and paired_tests.csv), and the paired difference
favours the method in the metric's direction (mean difference and rank-biserial effect both). Every
verdict is printed with the paired difference (method - baseline) and its CI; where the test does
not reject, the verdict is "not shown (n = ...)", never "does not beat": the data could not tell. Runtime and sanity metrics are not
"beaten"; the sanity outcome is judged apart:

Sanity (cascading parameter randomisation, lower similarity = the map depends on the model): a method
passes a sanity metric when its mean similarity to the randomised model's maps is at most
SANITY_THRESHOLD (0.5) and, where a map that ignores the model (`center`, similarity 1 by
construction) was scored on the same images, it is significantly below it (same paired test).
It fails when its mean similarity is above the threshold, is "inconclusive" when below it but not
significantly below `center` (too few images), and is "not run" where the sanity metric skipped it
(e.g. LIME by default).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..metrics import get_metric
from . import roles
from .tables import _favours_first, fmt

FLOOR = "random"
PRIORS = ("center", "lung_prior", "mask_prior", "sobel")
BASELINES = ("random", "sobel", "center", "lung_prior", "mask_prior", "oracle")
SANITY_THRESHOLD = 0.5
SANITY_REFERENCE = "center"
FINDING_COLUMNS = ["dataset", "model", "explainer", "metric", "baseline", "n", "mean_diff", "diff_ci_low",
                   "diff_ci_high", "p_holm", "beats"]


def _pair(tests: pd.DataFrame, a: str, b: str) -> pd.Series | None:
    t = tests[((tests.a == a) & (tests.b == b)) | ((tests.a == b) & (tests.b == a))]
    return t.iloc[0] if len(t) else None


def beats(pair: pd.Series | None, explainer: str, metric: str, alpha: float = 0.05) -> bool:
    """Whether the paired test row `pair` shows `explainer` significantly better in the metric's direction."""
    return bool(pair is not None and pair["p_holm"] < alpha
                and _favours_first(pair, explainer, get_metric(metric).higher_is_better))


def methods(explainers) -> list[str]:
    return roles.split(explainers)[0]


def comparisons(tests: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """One row per (dataset, model, method, faithfulness or localisation metric, baseline present)."""
    rows = []
    for (dataset, model, metric), t in tests.groupby(["dataset", "model", "metric"], sort=True):
        if get_metric(metric).category not in ("faithfulness", "localisation"):
            continue
        present = set(t.a) | set(t.b)
        for e in methods(present):
            for b in (FLOOR, *PRIORS):
                if b not in present:
                    continue
                pair = _pair(t, e, b)
                sign = 1.0 if pair.a == e else -1.0
                low, high = sorted((sign * float(pair.diff_ci_low), sign * float(pair.diff_ci_high)))
                rows.append(dict(dataset=dataset, model=model, explainer=e, metric=metric, baseline=b, n=int(pair.n),
                                 mean_diff=sign * float(pair.mean_diff), diff_ci_low=low, diff_ci_high=high,
                                 p_holm=float(pair.p_holm),
                                 beats=beats(pair, e, metric, alpha)))
    return pd.DataFrame(rows, columns=FINDING_COLUMNS)


def sanity_outcome(summary: pd.DataFrame, tests: pd.DataFrame, dataset: str, model: str, explainer: str,
                   alpha: float = 0.05) -> str:
    """"passes", "fails", "inconclusive" or "not run", with the similarities (see the module docstring)."""
    s = summary[(summary.dataset == dataset) & (summary.model == model) & (summary.explainer == explainer)
                & (summary.n > 0)]
    s = s[np.array([get_metric(m).category == "sanity" and m.startswith("randomisation") for m in s["metric"]],
                   dtype=bool)]
    if s.empty:
        return "not run"
    verdicts, parts = [], []
    for r in s.itertuples(index=False):
        t = tests[(tests.dataset == dataset) & (tests.model == model) & (tests.metric == r.metric)]
        ref = _pair(t, explainer, SANITY_REFERENCE) if explainer != SANITY_REFERENCE else None
        verdicts.append("fails" if r.mean > SANITY_THRESHOLD else "passes" if ref is None or beats(
            ref, explainer, r.metric, alpha) else "inconclusive")
        diff = None if ref is None else (ref.mean_diff if ref.a == explainer else -ref.mean_diff)
        parts.append(f"{r.metric} {r.mean:.2f}" + ("" if ref is None else f" vs {SANITY_REFERENCE} {r.mean - diff:.2f}"))
    verdict = next((v for v in ("fails", "inconclusive") if v in verdicts), "passes")
    return verdict + " (" + "; ".join(parts) + ")"


def findings(summary: pd.DataFrame, tests: pd.DataFrame, alpha: float = 0.05) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(comparisons, overview): the long table of every method-baseline comparison, and one row per
    (dataset, model, method) with the metrics it beats every baseline on, beats random on but not
    every prior, is not shown to beat random on, and its sanity outcome; each metric with the paired
    difference against random (or the baseline it is not shown to beat) and its CI."""
    comp = comparisons(tests, alpha)
    rows = []
    for (dataset, model, e), c in comp.groupby(["dataset", "model", "explainer"], sort=True):
        all_, floor_only, none = [], [], []
        for metric, g in c.groupby("metric", sort=False):
            lost = sorted(g[~g.beats].baseline)
            ref = g.set_index("baseline")
            floor = _diff(ref.loc[FLOOR]) if FLOOR in ref.index else ""
            shy = "not shown vs " + "; ".join(f"{b} {_diff(ref.loc[b])}" for b in lost)
            if not lost:
                all_.append(f"{metric} ({floor or shy})" if floor else metric)
            elif FLOOR in set(g.baseline) and FLOOR not in lost:
                floor_only.append(f"{metric} ({floor}; {shy})")
            else:
                none.append(f"{metric} ({shy})")
        rows.append(dict(dataset=dataset, model=model, explainer=e, beats_all=", ".join(all_),
                         beats_random_only=", ".join(floor_only), not_random=", ".join(none),
                         sanity=sanity_outcome(summary, tests, dataset, model, e, alpha)))
    return comp, pd.DataFrame(rows, columns=["dataset", "model", "explainer", "beats_all", "beats_random_only",
                                             "not_random", "sanity"])


def _diff(r) -> str:
    """"Δ +0.019 [0.004, 0.035], n = 27": the paired difference (method - baseline) and its CI."""
    ci = "" if pd.isna(r.diff_ci_low) else f" [{fmt(r.diff_ci_low)}, {fmt(r.diff_ci_high)}]"
    return f"Δ {'+' if r.mean_diff >= 0 else ''}{fmt(r.mean_diff)}{ci}, n = {int(r.n)}"


def findings_markdown(overview: pd.DataFrame, multi: bool = False) -> str:
    """The table the report opens with."""
    if overview.empty:
        return ("No explanation method was compared with a baseline (the run holds no method and baseline "
                "scored on the same faithfulness or localisation metric).\n")
    out = ["| model | explainer | beats random and every prior on | beats random, not every prior, on | "
           "not shown to beat random on | sanity |", "|---|---|---|---|---|---|"]
    for r in overview.itertuples(index=False):
        model = f"{r.model} ({r.dataset})" if multi else r.model
        out.append(f"| {model} | {r.explainer} | {r.beats_all or '–'} | {r.beats_random_only or '–'} | "
                   f"{r.not_random or '–'} | {r.sanity} |")
    return "\n".join(out) + "\n"


def findings_note(alpha: float = 0.05) -> str:
    return (f"Significantly better: paired Wilcoxon signed-rank on the images both scored, p < {alpha:g} after Holm's "
            "correction within a declared family, with the paired difference in the method's favour. Families: "
            "\"beats\" = one method against each baseline of the (model, metric) (so adding another explainer changes "
            "no verdict); \"leads\" (the † of the leaderboard) = the methods among themselves; baselines are reference "
            "rows, never ranked. Beside each verdict: Δ, the mean paired difference (method - baseline, in the metric's "
            "units) with its 95% bootstrap CI, and n images. \"Not shown\" means the test did not reject: the data "
            "cannot tell, which is not evidence of parity. Priors: {', '.join(PRIORS)} where present (faithfulness metrics skip center, lung_prior and "
            f"mask_prior by default). Sanity passes when the mean similarity to the randomised model's maps is at "
            f"most {SANITY_THRESHOLD} and significantly below `{SANITY_REFERENCE}` (a map that ignores the model) "
            "where that was scored; inconclusive when below the threshold without a significant difference. "
            "Every comparison: `findings.csv`.\n")

