"""Two more checks of the metrics, from the tables the reliability stages store in a run folder
(benchmark/run/randomised_maps.py, perturbed_maps.py), per dataset, model and metric:

- trained against randomised maps (`randomised_scores.csv`): on the (explainer, image) pairs scored
  both with the trained model's map (scores.csv) and with the fully randomised model's map, the
  mean paired difference trained - randomised with the direction applied (positive: the trained
  map scores better), the share of pairs where the trained map is better / tied / worse, the
  matched-pairs rank-biserial effect (positive favours the trained map) and the Wilcoxon
  signed-rank p (Pratt's zeros). A metric blind to the map scores every pair alike: difference 0,
  ties 1, effect 0, p 1. Rows per explainer, and `all` pooling every explainer's pairs (pairs of
  one image share it, so the pooled p is optimistic where explainers agree; the per-explainer
  rows are exact).
- stability (`stability.csv`): on the pairs scored both on the clean image (scores.csv) and on its
  noisy copy (noise too small to change the prediction), the mean absolute score change, and its
  ratio to the spread between explainers: the mean absolute difference between the means of two
  explainers of the leaderboard (`oracle` left out, as the ceiling), on the metric's common image
  set. A ratio near or above 1: noise moves a score as much as the typical gap between two
  explainers, so the metric cannot rank them on single images.

A run without these tables (the checks turned off, or an older run) gets empty tables, and the
report section stays as it was.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..metrics import get_metric
from .stats import common_cells, rank_biserial, wilcoxon
from .tables import arrow, fmt, write_csv

RANDOMISED_COLUMNS = ["dataset", "model", "metric", "explainer", "n", "mean_diff", "trained_better", "tie",
                      "randomised_better", "effect", "p"]
STABILITY_COLUMNS = ["dataset", "model", "metric", "explainer", "n", "mean_abs_change", "spread", "ratio"]
ALL = "all"
CEILING = "oracle"
KEYS = ["dataset", "model", "explainer", "metric", "image_id"]


def _sign(metric: str) -> float:
    return 1.0 if get_metric(metric).higher_is_better else -1.0


def read_table(path: Path) -> pd.DataFrame | None:
    """A stored side table (the score table's columns), None when the run folder has none."""
    if not path.exists():
        return None
    return pd.read_csv(path, dtype={"image_id": str})


def _pairs(scores: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """Rows of `other` joined with the main score of the same (dataset, model, explainer, metric,
    image): columns KEYS + main, other; pairs with a non-finite value on either side dropped."""
    main = scores[KEYS + ["value"]].groupby(KEYS, sort=True)["value"].mean().rename("main")
    side = other[KEYS + ["value"]].groupby(KEYS, sort=True)["value"].mean().rename("other")
    both = pd.concat([main, side], axis=1, join="inner").reset_index()
    finite = np.isfinite(both["main"].astype(float)) & np.isfinite(both["other"].astype(float))
    return both[finite.to_numpy()]


def _groups(pairs: pd.DataFrame):
    """((dataset, model, metric), explainer, rows): each explainer, then ALL pooling them."""
    for (dataset, model, metric), g in pairs.groupby(["dataset", "model", "metric"], sort=True):
        for explainer, e in g.groupby("explainer", sort=True):
            yield (dataset, model, metric), explainer, e
        if g["explainer"].nunique() > 1:
            yield (dataset, model, metric), ALL, g


def randomised_discrimination(scores: pd.DataFrame, randomised: pd.DataFrame) -> pd.DataFrame:
    """Trained against randomised maps per (dataset, model, metric, explainer | all): see the module docstring."""
    rows = []
    for (dataset, model, metric), explainer, g in _groups(_pairs(scores, randomised)):
        s = _sign(metric)
        trained, rand = s * g["main"].to_numpy(float), s * g["other"].to_numpy(float)
        n = len(g)
        rows.append(dict(dataset=dataset, model=model, metric=metric, explainer=explainer, n=n,
                         mean_diff=float((trained - rand).mean()), trained_better=float((trained > rand).mean()),
                         tie=float((trained == rand).mean()), randomised_better=float((trained < rand).mean()),
                         effect=rank_biserial(trained, rand), p=wilcoxon(trained, rand)[1]))
    return pd.DataFrame(rows, columns=RANDOMISED_COLUMNS)


def explainer_spread(scores: pd.DataFrame, exclude: tuple[str, ...] = (CEILING,)) -> pd.DataFrame:
    """Per (dataset, model, metric): the mean absolute difference between the common-set means of two
    explainers (`exclude` left out); NaN with fewer than two explainers."""
    rows = []
    for (dataset, model, metric), _, _, common in common_cells(scores[~scores["explainer"].isin(exclude)]):
        means = common.mean().to_numpy(float) if len(common) else np.zeros(0)
        gaps = np.abs(means[:, None] - means[None, :])[np.triu_indices(len(means), 1)]
        rows.append(dict(dataset=dataset, model=model, metric=metric,
                         spread=float(gaps.mean()) if len(gaps) else float("nan")))
    return pd.DataFrame(rows, columns=["dataset", "model", "metric", "spread"])


def stability(scores: pd.DataFrame, perturbed: pd.DataFrame) -> pd.DataFrame:
    """Score change under noise per (dataset, model, metric, explainer | all): see the module docstring."""
    spread = explainer_spread(scores).set_index(["dataset", "model", "metric"])["spread"]
    rows = []
    for key, explainer, g in _groups(_pairs(scores, perturbed)):
        change = float(np.abs(g["other"].to_numpy(float) - g["main"].to_numpy(float)).mean())
        s = float(spread.get(key, np.nan))
        rows.append(dict(dataset=key[0], model=key[1], metric=key[2], explainer=explainer, n=len(g),
                         mean_abs_change=change, spread=s, ratio=change / s if s > 0 else float("nan")))
    return pd.DataFrame(rows, columns=STABILITY_COLUMNS)


def sigma(perturbed: pd.DataFrame | None) -> float | None:
    """The noise sigma of the stability check, from the table's `sigma` column (None when unknown)."""
    if perturbed is None or "sigma" not in perturbed.columns or perturbed["sigma"].nunique() != 1:
        return None
    return float(perturbed["sigma"].iloc[0])


def pooled(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model, metric): the ALL row, or the one explainer's row where only one was checked."""
    if table.empty:
        return table
    n = table.groupby(["dataset", "model", "metric"])["explainer"].transform("size")
    return table[(table["explainer"] == ALL) | (n == 1)].reset_index(drop=True)


def pooled_for(table: pd.DataFrame | None, dataset: str, model: str) -> pd.DataFrame:
    """The pooled rows of one (dataset, model); an empty table when the run has none."""
    if table is None:
        return pd.DataFrame(columns=RANDOMISED_COLUMNS)
    return pooled(table[(table.dataset == dataset) & (table.model == model)])


def _p(p: float) -> str:
    return "nan" if not np.isfinite(p) else f"{p:.2g}"


def randomised_sentence(r, alpha: float = 0.05) -> str:
    """What one pooled trained-vs-randomised row justifies."""
    verdict = ("tells trained from randomised maps" if r.p < alpha and r.effect > 0 else
               "scores randomised maps above trained ones (reversed)" if r.p < alpha and r.effect < 0 else
               "cannot tell trained from randomised maps" if r.trained_better == 0 and r.randomised_better == 0 else
               "does not significantly tell trained from randomised maps")
    who = "" if r.explainer == ALL else f" of {r.explainer}"
    return (f"{verdict}: trained maps{who} beat randomised maps on {r.trained_better:.0%} of {int(r.n)} image pairs "
            f"(ties {r.tie:.0%}, mean difference {r.mean_diff:+.3g}, p={_p(r.p)})")


def stability_sentence(r, noise: float | None) -> str:
    """What one pooled stability row justifies."""
    what = f"noise of sigma {noise:g}" if noise is not None else "invisible noise"
    text = f"scores move by {r.mean_abs_change:.3g} under {what} ({int(r.n)} image pairs)"
    if not np.isfinite(r.ratio):
        return text + ", with no spread between explainers to compare"
    text += f", {r.ratio:.0%} of the spread between explainers"
    return text + (" — more than explainers differ, so it cannot rank them on single images" if r.ratio >= 1 else "")


def sentence(metric: str, disc: pd.DataFrame, stab: pd.DataFrame, noise: float | None) -> str:
    """The extra sentence about `metric` (pooled tables of one dataset and model); "" when neither
    check measured it."""
    parts = []
    d, s = disc[disc.metric == metric], stab[stab.metric == metric]
    if len(d):
        parts.append(randomised_sentence(d.iloc[0]))
    if len(s):
        parts.append(stability_sentence(s.iloc[0], noise))
    return (" It " + "; ".join(parts) + ".") if parts else ""


def checks(run_dir: Path, scores: pd.DataFrame) -> tuple[pd.DataFrame | None, pd.DataFrame | None, float | None]:
    """(trained-vs-randomised table, stability table, noise sigma) of a run folder; a table is None
    when the run stored no input for it."""
    randomised = read_table(Path(run_dir) / "randomised_scores.csv")
    perturbed = read_table(Path(run_dir) / "stability.csv")
    disc = None if randomised is None else randomised_discrimination(scores, randomised)
    stab = None if perturbed is None else stability(scores, perturbed)
    return disc, stab, sigma(perturbed)


def write(rep: Path, disc: pd.DataFrame | None, stab: pd.DataFrame | None) -> None:
    """report/randomised_discrimination.csv and report/stability.csv; a table the run lacks is removed
    (an earlier build's would describe another config)."""
    for name, table in (("randomised_discrimination.csv", disc), ("stability.csv", stab)):
        if table is None:
            (rep / name).unlink(missing_ok=True)
        else:
            write_csv(rep / name, table)


def caveat(disc: pd.DataFrame | None, stab: pd.DataFrame | None, default: str) -> str:
    """The section's note on what was not measured: `default` (neither) when the run has neither table."""
    if disc is None and stab is None:
        return default
    done = ["**Trained against randomised maps**: each metric on the maps of the fully randomised model (every "
            "layer re-initialised: the last stage of the sanity cascade), faithfulness still on the trained model; "
            "per metric the paired difference trained − randomised in the metric's direction (positive: trained "
            "better), the share of image pairs where the trained map is better, the rank-biserial effect and the "
            "Wilcoxon p (`randomised_discrimination.csv`, per explainer and pooled)." if disc is not None else "",
            "**Stability under noise**: localisation metrics re-scored on maps of noisy copies of the images whose "
            "prediction the noise does not change; the mean absolute score change and its ratio to the spread "
            "between explainers (mean absolute difference of two explainers' means, `oracle` left out) "
            "(`stability.csv`)." if stab is not None else ""]
    missing = [what for what, t in (("how each metric scores the randomised model's maps", disc),
                                    ("how much scores move under input perturbations too small to change the "
                                     "prediction", stab)) if t is None]
    out = ("Two more checks, on maps re-explained for them. " if disc is not None and stab is not None else
           "One more check, on maps re-explained for it. ") + " ".join(d for d in done if d)
    return out + (f" Not measured in this run: {missing[0]} (`metrics.reliability` off, or an older run)." if missing else "")


def markdown(disc: pd.DataFrame | None, stab: pd.DataFrame | None, noise: float | None) -> list[str]:
    """The two tables of the section (pooled rows), [] for a table the run lacks."""
    out = []
    if disc is not None:
        out += ["### Trained against randomised maps\n"]
        rows = pooled(disc)
        if rows.empty:
            out += ["No metric scored both the trained and the randomised model's maps.\n"]
        else:
            out += ["| model | metric | explainers | n | trained − randomised | trained better | tie | randomised better "
                    "| effect | p |", "|---|---|---|---|---|---|---|---|---|---|"]
            for r in rows.itertuples(index=False):
                names = ", ".join(sorted(set(disc[(disc.model == r.model) & (disc.metric == r.metric)
                                              & (disc.explainer != ALL)].explainer)))
                out.append(f"| {r.model} | {r.metric} {arrow(r.metric)} | {names} | {r.n} | {fmt(r.mean_diff)} | "
                           f"{r.trained_better:.0%} | {r.tie:.0%} | {r.randomised_better:.0%} | {fmt(r.effect)} | "
                           f"{fmt(r.p)} |")
            out.append("")
    if stab is not None:
        out += [f"### Stability under noise{f' (sigma {noise:g})' if noise is not None else ''}\n"]
        rows = pooled(stab)
        if rows.empty:
            out += ["No image kept its prediction under the noise, or no metric scored both: stability not measured.\n"]
        else:
            out += ["| model | metric | n | mean abs. change | spread between explainers | ratio |", "|---|---|---|---|---|---|"]
            for r in rows.itertuples(index=False):
                out.append(f"| {r.model} | {r.metric} {arrow(r.metric)} | {r.n} | {fmt(r.mean_abs_change)} | "
                           f"{fmt(r.spread)} | {fmt(r.ratio)} |")
            out.append("")
    return out
