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
- stability of the ranking (`stability.csv`): does the metric's ranking of the METHODS hold when the
  inputs change by noise too small to change the prediction? Per (dataset, model, metric), on the
  images every method (roles.split: baselines left out, their order is fixed by construction) was
  scored on both clean (scores.csv) and noisy (stability.csv, only the images whose prediction the
  noise kept): Kendall's tau-b (scipy.stats.kendalltau) between the methods' clean means and their
  noisy means on those images (1: the ranking holds, -1: reversed; NaN with fewer than two methods or
  an all-tied ranking), and the share of those images whose per-image method ranks (average ranks
  for ties, direction applied) change, with its exact Clopper-Pearson 95% interval. With two methods
  tau is +1 or -1 (does the order flip), and the per-image share carries the detail.

A run without these tables (the checks turned off, or an older run) gets empty tables, and the
report section stays as it was.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scipy import stats as sps

from ..metrics import get_metric
from . import roles
from .record import table_path
from .stats import rank_biserial, wilcoxon
from .tables import arrow, fmt, write_csv

RANDOMISED_COLUMNS = ["dataset", "model", "metric", "explainer", "n", "mean_diff", "trained_better", "tie",
                      "randomised_better", "effect", "p"]
STABILITY_COLUMNS = ["dataset", "model", "metric", "methods", "n_methods", "n", "tau", "n_changed", "changed",
                     "changed_ci_low", "changed_ci_high"]
ALL = "all"
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


def _method_cells(scores: pd.DataFrame, perturbed: pd.DataFrame):
    """((dataset, model, metric), methods, clean (images x methods), noisy (images x methods)): the
    methods' scores on the images every method has finite on both, per cell of the perturbed table."""
    pairs = _pairs(scores, perturbed)
    pairs = pairs[~pairs["explainer"].map(roles.is_baseline).astype(bool)]
    for key, g in pairs.groupby(["dataset", "model", "metric"], sort=True):
        clean = g.pivot(index="image_id", columns="explainer", values="main").astype(float)
        noisy = g.pivot(index="image_id", columns="explainer", values="other").astype(float)
        keep = clean.notna().all(axis=1) & noisy.notna().all(axis=1)
        yield key, list(clean.columns), clean[keep], noisy[keep]


def _kendall(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-b of two rankings (scipy); NaN with fewer than two items or a ranking all tied."""
    if len(a) < 2 or len(np.unique(a)) < 2 or len(np.unique(b)) < 2:
        return float("nan")
    return float(sps.kendalltau(a, b).statistic)


def stability(scores: pd.DataFrame, perturbed: pd.DataFrame) -> pd.DataFrame:
    """Stability of the methods' ranking under noise per (dataset, model, metric): see the module docstring."""
    rows = []
    for (dataset, model, metric), methods, clean, noisy in _method_cells(scores, perturbed):
        s, n = _sign(metric), len(clean)
        tau = _kendall(s * clean.mean().to_numpy(), s * noisy.mean().to_numpy()) if n else float("nan")
        if n and len(methods) > 1:
            changed = (sps.rankdata(s * clean.to_numpy(), axis=1) != sps.rankdata(s * noisy.to_numpy(), axis=1)).any(1)
            k = int(changed.sum())
        else:
            k = 0
        low, high = roles.exact_ci(k, n) if len(methods) > 1 else (float("nan"), float("nan"))
        rows.append(dict(dataset=dataset, model=model, metric=metric, methods=", ".join(methods),
                         n_methods=len(methods), n=n, tau=tau, n_changed=k,
                         changed=k / n if n and len(methods) > 1 else float("nan"),
                         changed_ci_low=low, changed_ci_high=high))
    return pd.DataFrame(rows, columns=STABILITY_COLUMNS)


def sigma(perturbed: pd.DataFrame | None) -> float | None:
    """The noise sigma of the stability check, from the table's `sigma` column (None when unknown)."""
    if perturbed is None or "sigma" not in perturbed.columns or perturbed["sigma"].nunique() != 1:
        return None
    return float(perturbed["sigma"].iloc[0])


def pooled(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model, metric): the ALL row, or the one explainer's row where only one was
    checked (the stability table has one row per cell already)."""
    if table.empty or "explainer" not in table.columns:
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
    """What one stability row justifies about the metric's ranking of the methods (follows "It ")."""
    what = f"noise of sigma {noise:g}" if noise is not None else "invisible noise"
    if r.n_methods < 2 or not r.n:
        return (f"has no ranking stability measured under {what} ({int(r.n_methods)} method(s) re-explained on "
                f"noisy inputs, {int(r.n)} images)")
    verb = ("keeps" if r.tau == 1 else "reverses" if r.tau == -1 else
            "cannot order (tied means)" if not np.isfinite(r.tau) else "changes")
    return (f"{verb} its ranking of the methods ({r.methods}) under {what}: Kendall tau {_tau(r.tau)} between the "
            f"clean and the noisy means on {int(r.n)} images whose prediction the noise kept; the methods' order on "
            f"single images changes on {r.changed:.0%} of them [{r.changed_ci_low:.0%}, {r.changed_ci_high:.0%}]")


def _tau(t: float) -> str:
    return "nan" if not np.isfinite(t) else f"{t:+.2f}"


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
    randomised = read_table(table_path(run_dir, "randomised_scores.csv"))
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
            "**Stability of the ranking under noise**: localisation metrics re-scored on maps of noisy copies of the "
            "images whose prediction the noise does not change; per metric, Kendall's tau between the methods' "
            "ranking (baselines left out) by their clean and by their noisy means on the same images, and the "
            "share of images whose per-image method ranks change, with its exact 95% interval "
            "(`stability.csv`)." if stab is not None else ""]
    missing = [what for what, t in (("how each metric scores the randomised model's maps", disc),
                                    ("whether each metric's ranking of the methods holds under input perturbations "
                                     "too small to change the prediction", stab)) if t is None]
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
        out += [f"### Stability of the ranking under noise{f' (sigma {noise:g})' if noise is not None else ''}\n"]
        rows = pooled(stab)
        if rows.empty:
            out += ["No image kept its prediction under the noise, or no metric scored both: stability not measured.\n"]
        else:
            out += ["| model | metric | methods | n | Kendall tau, clean vs noisy ranking | images whose method order "
                    "changes |", "|---|---|---|---|---|---|"]
            for r in rows.itertuples(index=False):
                share = ("–" if not np.isfinite(r.changed) else
                         f"{r.changed:.0%} [{r.changed_ci_low:.0%}, {r.changed_ci_high:.0%}] ({int(r.n_changed)} of {int(r.n)})")
                out.append(f"| {r.model} | {r.metric} {arrow(r.metric)} | {r.methods} | {r.n} | {_tau(r.tau)} | {share} |")
            out.append("")
    return out
