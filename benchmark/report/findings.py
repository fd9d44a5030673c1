"""What the run supports: for each explanation method (every explainer that is not a baseline), the
metrics on which it significantly beats `random` and each prior baseline present (`center`,
`lung_prior`, `mask_prior`, `sobel`), those on which that is not shown, and its sanity-check outcome.

Beating a baseline on a metric: the paired test of the two on the cell's common image set (Wilcoxon
signed-rank, Pratt's zeros) gives p_holm < alpha within its declared family (the method against each
baseline of that (model, metric); see roles.family and paired_tests.csv), and the paired difference
favours the method in the metric's direction (mean difference and rank-biserial effect both). Every
verdict is printed with the paired difference (method - baseline) and its CI; where the test does
not reject, the verdict is "not shown (n = ...)", never "does not beat": the data could not tell. Runtime and sanity metrics are not
"beaten" (JUDGED_APART: runtime is cost, the sanity outcome is judged apart, below); every other category
(faithfulness, localisation, robustness, complexity, axiomatic, and any a plug-in metric declares) is
judged by this one rule in the metric's declared direction, with no code per category.

Sanity (cascading parameter randomisation, Adebayo et al. 2018), judged per randomisation metric from
the per-image values the metric hands back (sanity_images.csv; metrics/sanity.py), never from the
signed mean over stages (where +0.9 and -0.9 cancel). Per image i:
- s_i = |similarity| of the trained model's map to the LAST stage's map (every layer randomised);
- z_i = |similarity| of the same explainer's trained-model maps of image i and of another image (the
  null: how alike two maps are that explain different inputs);
- a degenerate trained-model map (constant or non-finite, where a rank correlation is undefined)
  counts as a failure: s_i = 1 and d_i = 1, and the count is shown (a broken explainer fails);
- a last-stage map that collapsed to a constant while the trained map did not (Grad-CAM of a
  randomised network is often all zero after its ReLU) changed as much as a map can: s_i = 0 and
  d_i = -z_i, and the count is shown;
- d_i = s_i - z_i, on the images with a null partner.
With D the mean of d and S the mean of s and their 95% bootstrap CIs (images resampled):
- passes when D's upper bound < SANITY_MARGIN (0.1) and S's upper bound < 1 - SANITY_MARGIN: the
  randomised model's map is no more like the original than another image's map is (to within the
  margin), and it is not an identical map (which an image-independent map, such as `center`, would
  also be to another image's);
- fails when D's lower bound >= SANITY_MARGIN or S's lower bound >= 1 - SANITY_MARGIN (the map
  survives randomisation: an edge detector, a constant map);
- "inconclusive" otherwise (the CI straddles the margin), "not run" where the sanity metric skipped
  the method (e.g. LIME by default), "not judged" where the run folder lacks the per-image values.
A method fails if it fails one randomisation metric, is inconclusive if it is on one, passes otherwise.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..metrics import get_metric
from . import roles
from .stats import bootstrap_ci
from .tables import _favours_first, fmt
from .verdict_cells import FLOOR, _diff, _shortfall

JUDGED_APART = ("sanity", "runtime")  # categories never "beaten": cost, and the sanity verdict below
PRIORS = ("center", "lung_prior", "mask_prior", "sobel")
KNOWN_MARK = "‡"  # a metric that fails its known-truth check (report/known_truth.py), beside its verdicts
BASELINES = ("random", "sobel", "center", "lung_prior", "mask_prior", "oracle")
SANITY_MARGIN = 0.1  # on the |similarity| scale (Spearman, SSIM): the verdict's equivalence margin
SANITY_VERDICT_COLUMNS = ["dataset", "model", "explainer", "metric", "n", "degenerate_map", "degenerate_last",
                          "no_null", "abs_last", "abs_null", "diff", "diff_ci_low", "diff_ci_high", "last",
                          "last_ci_low", "last_ci_high", "verdict"]
FINDING_COLUMNS = ["dataset", "model", "explainer", "metric", "baseline", "n", "mean_diff", "diff_ci_low",
                   "diff_ci_high", "p_holm", "beats", "equivalence_margin", "p_tost_holm", "equivalent", "judged"]


def _pair(tests: pd.DataFrame, a: str, b: str) -> pd.Series | None:
    t = tests[((tests.a == a) & (tests.b == b)) | ((tests.a == b) & (tests.b == a))]
    return t.iloc[0] if len(t) else None


def beats(pair: pd.Series | None, explainer: str, metric: str, alpha: float = 0.05) -> bool:
    """Whether the paired test row `pair` shows `explainer` significantly better in the metric's direction."""
    return bool(pair is not None and pair["p_holm"] < alpha
                and _favours_first(pair, explainer, get_metric(metric).higher_is_better))


def methods(explainers) -> list[str]:
    return roles.split(explainers)[0]


def equivalent(pair: pd.Series | None, alpha: float = 0.05) -> bool:
    """Whether the pair's equivalence test (TOST within ±equivalence_margin, Holm in its family; stats.tost)
    rejects both one-sided hypotheses: the only ground on which a report claims parity."""
    return bool(pair is not None and "p_tost_holm" in pair.index and pair["p_tost_holm"] < alpha)


def comparisons(tests: pd.DataFrame, alpha: float = 0.05, unjudged=frozenset()) -> pd.DataFrame:
    """One row per (dataset, model, method, metric of a category not JUDGED_APART, baseline present).
    A (dataset, model, metric) in `unjudged` (a curve metric without headroom, report/headroom.py)
    keeps its numbers, judged False, and is neither beaten nor equivalent."""
    rows = []
    for (dataset, model, metric), t in tests.groupby(["dataset", "model", "metric"], sort=True):
        if get_metric(metric).category in JUDGED_APART:
            continue
        present = set(t.a) | set(t.b)
        for e in methods(present):
            for b in (FLOOR, *PRIORS):
                if b not in present:
                    continue
                pair = _pair(t, e, b)
                sign = 1.0 if pair.a == e else -1.0
                low, high = sorted((sign * float(pair.diff_ci_low), sign * float(pair.diff_ci_high)))
                judged = (dataset, model, metric) not in unjudged
                rows.append(dict(dataset=dataset, model=model, explainer=e, metric=metric, baseline=b, n=int(pair.n),
                                 mean_diff=sign * float(pair.mean_diff), diff_ci_low=low, diff_ci_high=high,
                                 p_holm=float(pair.p_holm),
                                 beats=judged and beats(pair, e, metric, alpha),
                                 equivalence_margin=float(pair.get("equivalence_margin", float("nan"))),
                                 p_tost_holm=float(pair.get("p_tost_holm", float("nan"))),
                                 equivalent=judged and equivalent(pair, alpha), judged=judged))
    return pd.DataFrame(rows, columns=FINDING_COLUMNS)


def sanity_cell(rows: pd.DataFrame, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict:
    """The sanity verdict of one (model, explainer, randomisation metric) from its sanity_images.csv rows
    (see the module docstring): counts, means, the CIs of D and S, and "passes" / "fails" / "inconclusive"."""
    last, null = rows["last"].to_numpy(float), rows["null"].to_numpy(float)
    deg_map = rows["degenerate_map"].to_numpy(float) > 0
    deg_last = (rows["degenerate_last"].to_numpy(float) > 0) | ~np.isfinite(last)
    collapsed = deg_last & ~deg_map  # the randomised map went constant: it changed, the explainer did not break
    deg = deg_map | deg_last
    no_null = ~deg_map & ~np.isfinite(null)
    use = ~no_null
    with np.errstate(invalid="ignore"):
        s = np.where(deg_map, 1.0, np.where(collapsed, 0.0, np.abs(last)))[use]
        d = np.where(deg_map, 1.0, np.where(collapsed, 0.0, np.abs(last)) - np.abs(null))[use]
    ok = ~deg & ~no_null
    d_low, d_high = bootstrap_ci(d, n_resamples, confidence, seed)
    s_low, s_high = bootstrap_ci(s, n_resamples, confidence, seed)
    if not (np.isfinite(d_high) and np.isfinite(s_high)):
        verdict = "inconclusive"
    elif d_low >= SANITY_MARGIN or s_low >= 1 - SANITY_MARGIN:
        verdict = "fails"
    elif d_high < SANITY_MARGIN and s_high < 1 - SANITY_MARGIN:
        verdict = "passes"
    else:
        verdict = "inconclusive"
    mean = lambda x: float(x.mean()) if len(x) else float("nan")  # noqa: E731
    return dict(n=int(use.sum()), degenerate_map=int(deg_map.sum()), degenerate_last=int((deg_last & ~deg_map).sum()),
                no_null=int(no_null.sum()), abs_last=mean(np.abs(last[ok])), abs_null=mean(np.abs(null[ok])),
                diff=mean(d), diff_ci_low=d_low, diff_ci_high=d_high, last=mean(s), last_ci_low=s_low,
                last_ci_high=s_high, verdict=verdict)


def sanity_table(images: pd.DataFrame | None, n_resamples: int = 1000, confidence: float = 0.95,
                 seed: int = 0) -> pd.DataFrame:
    """One sanity_cell row per (dataset, model, explainer, metric) of sanity_images.csv, baselines
    included (as reference rows: a map that ignores the model should fail)."""
    rows = []
    if images is not None:
        for (dataset, model, explainer, metric), g in images.groupby(["dataset", "model", "explainer", "metric"],
                                                                      sort=True):
            rows.append(dict(dataset=dataset, model=model, explainer=explainer, metric=metric,
                             **sanity_cell(g, n_resamples, confidence, seed)))
    return pd.DataFrame(rows, columns=SANITY_VERDICT_COLUMNS)


def _sanity_text(metric: str, r: dict) -> str:
    """"randomisation_spearman: Δ -0.320 [-0.41, -0.23], n = 40, abs. similarity last stage 0.221 vs
    other images 0.542" (no "|" in it: the text goes into a Markdown table cell)."""
    ci = "" if pd.isna(r["diff_ci_low"]) else f" [{fmt(r['diff_ci_low'])}, {fmt(r['diff_ci_high'])}]"
    text = f"{metric}: Δ {'+' if r['diff'] >= 0 else ''}{fmt(r['diff'])}{ci}, n = {r['n']}"
    if np.isfinite(r["abs_last"]):
        text += f", abs. similarity last stage {fmt(r['abs_last'])} vs other images {fmt(r['abs_null'])}"
    if r["degenerate_map"]:
        text += f", {r['degenerate_map']} degenerate trained maps counted as failures"
    if r["degenerate_last"]:
        text += f", {r['degenerate_last']} randomised maps collapsed to a constant (counted as changed)"
    if r["no_null"]:
        text += f", {r['no_null']} without another image's map"
    return text


def sanity_outcome(summary: pd.DataFrame, tests: pd.DataFrame, dataset: str, model: str, explainer: str,
                   alpha: float = 0.05, images: pd.DataFrame | None = None, n_resamples: int = 1000,
                   seed: int = 0) -> str:
    """"passes", "fails", "inconclusive", "not run" or "not judged", with each randomisation metric's
    paired difference D and its (1 - alpha) CI (see the module docstring). `images`: sanity_images.csv
    (artifacts.load_sanity_images); without it (a run folder made before it existed) the method is
    "not judged": the stage means cannot tell a model-dependent map from cancelling signs."""
    s = summary[(summary.dataset == dataset) & (summary.model == model) & (summary.explainer == explainer)
                & (summary.n > 0)]
    s = s[np.array([get_metric(m).category == "sanity" and m.startswith("randomisation") for m in s["metric"]],
                   dtype=bool)]
    if s.empty:
        return "not run"
    verdicts, parts = [], []
    for metric in sorted(s["metric"]):
        rows = None if images is None else images[(images.dataset == dataset) & (images.model == model)
                                                  & (images.explainer == explainer) & (images.metric == metric)]
        if rows is None or rows.empty:
            verdicts.append("not judged")
            parts.append(f"{metric}: no per-image values (sanity_images.csv)")
            continue
        r = sanity_cell(rows, n_resamples, 1 - alpha, seed)
        verdicts.append(r["verdict"])
        parts.append(_sanity_text(metric, r))
    verdict = next((v for v in ("fails", "inconclusive", "not judged") if v in verdicts), "passes")
    return verdict + " (" + "; ".join(parts) + ")"


def with_sanity(overview: pd.DataFrame, summary: pd.DataFrame, tests: pd.DataFrame, images: pd.DataFrame | None,
                alpha: float = 0.05, n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """The findings overview with its sanity column judged from the per-image values `images`."""
    if overview.empty:
        return overview
    sanity = [sanity_outcome(summary, tests, r.dataset, r.model, r.explainer, alpha, images, n_resamples, seed)
              for r in overview.itertuples(index=False)]
    return overview.assign(sanity=sanity)


def findings(summary: pd.DataFrame, tests: pd.DataFrame, alpha: float = 0.05,
             unjudged=frozenset(), known_false=frozenset()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(comparisons, overview): the long table of every method-baseline comparison, and one row per
    (dataset, model, method) with the metrics it beats every baseline on, beats random on but not
    every prior, is not shown to beat random on, and its sanity outcome; each metric with the paired
    difference against random (or the baseline it is not shown to beat) and its CI; "equivalent to b
    within ±m" only where the equivalence test rejects (see `equivalent`). The metrics of `unjudged`
    (no headroom) are in none of these: they are listed in `not_judged`. The metrics of `known_false`
    (dataset, model, metric: they fail their known-truth check, known_truth.failing) carry KNOWN_MARK
    wherever they appear."""
    comp = comparisons(tests, alpha, unjudged)
    rows = []
    for (dataset, model, e), c in comp.groupby(["dataset", "model", "explainer"], sort=True):
        all_, floor_only, none, unjudged_here = [], [], [], []
        for name, g in c.groupby("metric", sort=False):
            metric = name + (KNOWN_MARK if (dataset, model, name) in known_false else "")
            if not g["judged"].all():
                unjudged_here.append(metric)
                continue
            lost = sorted(g[~g.beats].baseline)
            ref = g.set_index("baseline")
            floor = _diff(ref.loc[FLOOR]) if FLOOR in ref.index else ""
            shy = _shortfall(ref, lost, floor)
            if not lost:
                all_.append(f"{metric} ({floor or shy})" if floor else metric)
            elif FLOOR in set(g.baseline) and FLOOR not in lost:
                floor_only.append(f"{metric} ({floor}; {shy})")
            else:
                none.append(f"{metric} ({shy})")
        rows.append(dict(dataset=dataset, model=model, explainer=e, beats_all=", ".join(all_),
                         beats_random_only=", ".join(floor_only), not_random=", ".join(none),
                         not_judged=", ".join(unjudged_here),
                         sanity=sanity_outcome(summary, tests, dataset, model, e, alpha)))
    return comp, pd.DataFrame(rows, columns=["dataset", "model", "explainer", "beats_all", "beats_random_only",
                                             "not_random", "sanity", "not_judged"])


def findings_markdown(overview: pd.DataFrame, multi: bool = False) -> str:
    """The table the report opens with."""
    if overview.empty:
        return ("No explanation method was compared with a baseline (the run holds no method and baseline "
                "scored on the same metric outside sanity and runtime).\n")
    out = ["| model | explainer | beats random and every prior on | beats random, not every prior, on | "
           "not shown to beat random on | sanity |", "|---|---|---|---|---|---|"]
    for r in overview.itertuples(index=False):
        model = f"{r.model} ({r.dataset})" if multi else r.model
        out.append(f"| {model} | {r.explainer} | {r.beats_all or '–'} | {r.beats_random_only or '–'} | "
                   f"{r.not_random or '–'} | {r.sanity} |")
    skipped = {}
    for r in overview.itertuples(index=False):
        for m in filter(None, str(getattr(r, "not_judged", "") or "").split(", ")):
            skipped.setdefault(f"{r.model} ({r.dataset})" if multi else r.model, set()).add(m)
    if KNOWN_MARK in "".join(overview.astype(str).to_numpy().ravel()):
        out += ["", f"{KNOWN_MARK} the metric fails its known-truth check on that model: it does not score the evidence "
                "the model is known to use above a random map (see \"Known truth\"), so its verdicts say little."]
    if skipped:
        out += ["", "Not judged (no headroom: the perturbation barely moves the model's output; see \"Headroom of the "
                "curve metrics\"): " + "; ".join(f"{k}: {', '.join(sorted(v))}" for k, v in sorted(skipped.items()))
                + "."]
    return "\n".join(out) + "\n"


def findings_note(alpha: float = 0.05) -> str:
    return (f"Significantly better: paired Wilcoxon signed-rank on the images both scored, p < {alpha:g} after Holm's "
            "correction within a declared family, with the paired difference in the method's favour. Families: "
            "\"beats\" = one method against each baseline of the (model, metric) (so adding another explainer changes "
            "no verdict); \"leads\" (the † of the leaderboard) = the methods among themselves; baselines are reference "
            "rows, never ranked. Beside each verdict: Δ, the mean paired difference (method - baseline, in the metric's "
            "units) with its 95% bootstrap CI, and n images. \"Not shown\" means the test did not reject: the data "
            "cannot tell, which is not evidence of parity. Parity is claimed only by an equivalence test: "
            "\"equivalent to b within ±m\" where TOST (two one-sided paired t-tests of the mean difference against "
            f"-m and +m, Holm within the same family) rejects both at p < {alpha:g}; m = report.equivalence_margin, "
            f"in the metric's units. Priors: {', '.join(PRIORS)} where present (faithfulness metrics skip center, lung_prior and "
            f"mask_prior by default). Sanity, per randomisation metric, from per-image values: Δ = the mean of "
            "|similarity to the last cascade stage's map (every layer randomised)| − |similarity to the same "
            "explainer's map of another image| with its 95% bootstrap CI; a degenerate trained map (constant or "
            "non-finite) counts as a failure (Δ = 1 for that image), a randomised map that collapsed to a constant "
            "as a complete change (similarity 0); both are counted. Passes "
            f"when Δ's upper bound is below {SANITY_MARGIN:g} and the last stage's mean |similarity| is below "
            f"{1 - SANITY_MARGIN:g} with 95% confidence (the randomised map is as unlike the original as another "
            f"image's map, and not identical to it); fails when Δ's lower bound is at least {SANITY_MARGIN:g} or "
            f"that similarity's lower bound at least {1 - SANITY_MARGIN:g}; inconclusive otherwise (`sanity_verdicts.csv`). "
            "Every comparison: `findings.csv`.\n")

