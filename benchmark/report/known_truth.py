"""The report's "Known truth" section, from reliance.csv (the run's lesion-reliance stage): where the
dataset renders each pneumonia test image without its lesion, the images whose prediction flips to
normal once the lesion is gone are known-truth cases, where the lesion mask is what the model uses.
On those cases: each explainer's localisation of that evidence, and for each faithfulness metric
whether it scores the known-evidence map (`oracle`) better than `random` (its known-truth validity:
a metric that cannot see evidence the model is known to use cannot judge an explanation)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..metrics import get_metric
from . import roles
from .stats import holm, wilcoxon
from .tables import fmt

LOCALISATION = ("pointing_game", "relevance_mass", "iou")
ALPHA = 0.05


def read_reliance(run_dir: Path) -> pd.DataFrame | None:
    p = Path(run_dir) / "reliance.csv"
    return pd.read_csv(p, dtype={"image_id": str}) if p.exists() else None


def reliance_summary(rel: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (dataset, model), g in rel.groupby(["dataset", "model"], sort=True):
        k, n = int(g["reliant"].sum()), len(g)
        low, high = roles.exact_ci(k, n)
        rows.append(dict(dataset=dataset, model=model, n=n, reliant=k, share=k / n if n else np.nan, ci_low=low,
                         ci_high=high, p_image=float(g["p_image"].mean()), p_counterfactual=float(g["p_counterfactual"].mean())))
    return pd.DataFrame(rows)


def _cases(scores: pd.DataFrame, rel: pd.DataFrame) -> pd.DataFrame:
    keep = rel[rel["reliant"].astype(bool)][["dataset", "model", "image_id"]]
    return scores.merge(keep, on=["dataset", "model", "image_id"])


def explainer_table(scores: pd.DataFrame, rel: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model, explainer, localisation metric): mean and n on the known-truth cases."""
    s = _cases(scores, rel)
    s = s[s["metric"].isin(LOCALISATION)].dropna(subset=["value"])
    out = s.groupby(["dataset", "model", "explainer", "metric"], sort=True)["value"].agg(["mean", "count"]).reset_index()
    return out.rename(columns={"count": "n"})


KNOWN_RANKING = "relevance_mass"  # the known-truth ranking of methods: their share of relevance on the known evidence


def _ranking_agreement(g: pd.DataFrame, truth: pd.DataFrame, sign: float) -> float:
    """Kendall's tau-b between the methods' means on this metric (oriented: larger is better) and their
    means at KNOWN_RANKING, both on the known-truth cases; NaN with fewer than three methods."""
    means = g[~g["explainer"].map(roles.is_baseline).astype(bool)].groupby("explainer")["value"].mean() * sign
    known = truth[~truth["explainer"].map(roles.is_baseline).astype(bool)].groupby("explainer")["value"].mean()
    both = pd.concat([means.rename("metric"), known.rename("known")], axis=1).dropna()
    if len(both) < 3:
        return float("nan")
    return float(sps.kendalltau(both["metric"], both["known"]).statistic)


def metric_validity(scores: pd.DataFrame, rel: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model, faithfulness metric), on the known-truth cases: the known-evidence map
    (`oracle`) against `random` and against each prior baseline (center, lung_prior, mask_prior, sobel:
    maps that know nothing of this image's evidence), paired. Means, the share of images where the
    oracle scores better in the metric's direction, Wilcoxon p (against random; the largest against the
    priors); `sees_evidence`: the oracle better than random with p < ALPHA; `beats_priors`: better than
    every prior with p < ALPHA (Holm across the priors); `ranking_tau`: whether the metric's ranking of
    the methods agrees with their known-truth ranking (their relevance mass on the known evidence);
    `oracle_rank`: the known-evidence map's place among all `maps` scored there (methods and baselines,
    by mean; 1 = the metric ranks the known evidence first; ties count in its favour)."""
    s = _cases(scores, rel)
    truth = s[s["metric"] == KNOWN_RANKING].dropna(subset=["value"])
    rows = []
    for (dataset, model, metric), g in s.groupby(["dataset", "model", "metric"], sort=True):
        try:
            spec = get_metric(metric)
        except (KeyError, ValueError):
            continue
        if spec.category != "faithfulness":
            continue
        wide = g.pivot_table(index="image_id", columns="explainer", values="value")
        if not {"oracle", "random"} <= set(wide.columns):
            continue
        pair = wide[["oracle", "random"]].dropna()
        if pair.empty:
            continue
        sign = 1.0 if spec.higher_is_better else -1.0
        o, r = sign * pair["oracle"].to_numpy(float), sign * pair["random"].to_numpy(float)
        p = wilcoxon(o, r)[1] if len(pair) > 1 else np.nan
        priors = [e for e in sorted(wide.columns) if e not in ("oracle", "random") and roles.is_baseline(e)]
        p_priors, better_priors = [], []
        for prior in priors:
            pp = wide[["oracle", prior]].dropna()
            a, b = sign * pp["oracle"].to_numpy(float), sign * pp[prior].to_numpy(float)
            p_priors.append(wilcoxon(a, b)[1] if len(pp) > 1 else np.nan)
            better_priors.append(bool(len(pp)) and a.mean() > b.mean())
        holm = _holm(p_priors)
        here = truth[(truth["dataset"] == dataset) & (truth["model"] == model)]
        means = sign * wide.mean()  # every map's mean on the cases it scored, oriented: larger is better
        rank = int((means.drop("oracle") > means["oracle"]).sum()) + 1
        rows.append(dict(dataset=dataset, model=model, metric=metric, n=len(pair), oracle=float(pair["oracle"].mean()),
                         random=float(pair["random"].mean()), oracle_better=float((o > r).mean()), p=p,
                         sees_evidence=bool(o.mean() > r.mean() and np.isfinite(p) and p < ALPHA),
                         priors=", ".join(priors), p_priors=float(np.nanmax(holm)) if priors else np.nan,
                         beats_priors=bool(priors) and all(better_priors) and bool(np.all(np.asarray(holm) < ALPHA)),
                         ranking_tau=_ranking_agreement(g, here, sign), oracle_rank=rank, maps=int(means.notna().sum())))
    return pd.DataFrame(rows, columns=["dataset", "model", "metric", "n", "oracle", "random", "oracle_better", "p",
                                       "sees_evidence", "priors", "p_priors", "beats_priors", "ranking_tau",
                                       "oracle_rank", "maps"])


def _holm(p: list[float]) -> list[float]:
    """Holm-adjusted p-values (NaN stays NaN and is not counted)."""
    p = np.asarray(p, dtype=float)
    out = np.full(len(p), np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if len(ok):
        out[ok] = holm(p[ok])
    return list(out)


def failing(valid: pd.DataFrame) -> frozenset:
    """(dataset, model, metric) of the faithfulness metrics that fail their known-truth check: they do
    not score the known evidence above random. Marked wherever their verdicts appear."""
    if valid is None or valid.empty:
        return frozenset()
    bad = valid[~valid["sees_evidence"].astype(bool)]
    return frozenset(zip(bad["dataset"], bad["model"], bad["metric"]))


def mark(summary: pd.DataFrame, known_false: frozenset) -> pd.DataFrame:
    """The summary with `known_truth_fails`: True for the cells of a metric that fails its known-truth
    check on that (dataset, model) (the leaderboards mark its column)."""
    out = summary.copy()
    keys = list(zip(out["dataset"], out["model"], out["metric"])) if len(out) else []
    out["known_truth_fails"] = [k in known_false for k in keys]
    return out


def known_truth_lines(rel: pd.DataFrame, expl: pd.DataFrame, valid: pd.DataFrame, labels=None) -> list[str]:
    from .labels import label

    def n(x: str) -> str:  # display names (report.labels)
        return label(x, labels)
    summ = reliance_summary(rel)
    lines = ["## Known truth: what the models use\n",
             "Each test image with known evidence rendered again without it (an exact counterfactual: the phantom's "
             "pneumonia images without their lesions, drawn from their own stream; with planted evidence, "
             "`data.dataset = \"planted\"`, the image without its pasted marker). A model that classifies the image "
             "as pneumonia and its counterfactual as normal relies on that evidence there: those images are "
             "known-truth cases, where the mask of the evidence (the lesion, or the marker) is what the model uses "
             "(`reliance.csv`).\n",
             "| model | images with the evidence | relies on it | P(pneumonia) with it | without |",
             "|---|---|---|---|---|"]
    for r in summ.itertuples(index=False):
        lines.append(f"| {n(r.model)} | {r.n} | {r.reliant} ({r.share:.0%}, 95% CI {r.ci_low:.0%} to {r.ci_high:.0%}) | "
                     f"{fmt(r.p_image)} | {fmt(r.p_counterfactual)} |")
    weak = summ[summ["share"] < 0.5]
    for r in weak.itertuples(index=False):
        lines.append(f"\n{n(r.model)} relies little on the known evidence ({r.reliant} of {r.n}): what it uses is "
                     f"elsewhere, so those masks are not what its explanations should find.")
    lines.append("")
    if not expl.empty:
        metrics = [m for m in LOCALISATION if m in set(expl["metric"])]
        lines += ["Explainers on the known-truth cases (localisation of the evidence the model is known to use; "
                  "`known_truth_explainers.csv`):\n",
                  "| model | explainer | " + " | ".join(n(m) for m in metrics) + " |", "|---|---|" + "---|" * len(metrics)]
        for model, by_model in expl.groupby("model", sort=True):
            for explainer in roles.ordered(by_model["explainer"].unique()):  # methods, then baselines
                g = by_model[by_model["explainer"] == explainer]
                cell = {r.metric: f"{fmt(r.mean)} (n={r.n})" for r in g.itertuples(index=False)}
                lines.append(f"| {n(model)} | {n(explainer)} | " + " | ".join(cell.get(m, "") for m in metrics) + " |")
        lines.append("")
    if not valid.empty:
        lines += ["Faithfulness metrics against the known truth: on those cases, does the metric score the "
                  "known-evidence map (`oracle`, the lesion mask) better than `random`? A metric that does not "
                  f"cannot see evidence the model is known to use (paired Wilcoxon, p < {ALPHA:g}; "
                  "`known_truth_metrics.csv`).\n",
                  "| model | metric | n | oracle | random | oracle better | p | sees the evidence | above every prior "
                  "(Holm p) | ranking agrees (τ) |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in valid.itertuples(index=False):
            above = "n/a" if not r.priors else f"{'yes' if r.beats_priors else '**no**'} ({fmt(r.p_priors)})"
            tau = "n/a" if pd.isna(r.ranking_tau) else f"{r.ranking_tau:.2f}"
            lines.append(f"| {n(r.model)} | {n(r.metric)} | {r.n} | {fmt(r.oracle)} ({r.oracle_rank} of {r.maps}) | "
                         f"{fmt(r.random)} | {r.oracle_better:.0%} | "
                         f"{fmt(r.p)} | {'yes' if r.sees_evidence else '**no**'} | {above} | {tau} |")
        lines += ["", "Oracle: its mean, and its place among every map scored on those cases (methods and baselines; "
                  "\"1 of k\": the metric ranks the known evidence first). "
                  f"Above every prior: the known-evidence map also beats each prior baseline on those cases (Holm "
                  f"across the priors). Ranking agrees: Kendall's τ between the metric's ranking of the methods and "
                  f"their known-truth ranking (their {KNOWN_RANKING} on the known evidence); 1 is the same order. "
                  "A metric that does not see the evidence is marked \"fails known truth\" wherever its verdicts "
                  "appear (leaderboards, findings)."]
        lines.append("")
    return lines
