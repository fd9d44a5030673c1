"""Report sections that describe what was measured: the settings a reader needs to read the numbers
(model output explained, explain target, faithfulness fills and orders, split roles, the sign rule
of the localisation metrics) and the
faithfulness metrics broken down by class (pneumonia vs normal images)."""
from __future__ import annotations

import pandas as pd

from ..metrics import get_metric
from ..metrics.sign import sign_sentence
from .stats import bootstrap_ci, common_cells
from .tables import arrow

OUTPUTS = {"raw": "the pre-softmax class score as trained",
           "centred": "the class score minus the mean over classes (half the logit difference)"}
TARGETS = {"label": "each image's true class", "predicted": "the class the model predicts",
           "pneumonia": "the pneumonia class, for every image"}
CLASS_NAMES = {1: "pneumonia", 0: "normal"}
PER_CLASS_COLUMNS = ["dataset", "model", "explainer", "metric", "class", "n", "mean", "ci_low", "ci_high"]


def _faithfulness(cfg) -> list[str]:
    return [m for m in cfg.metrics.names if get_metric(m).category == "faithfulness"]


def _perturbation(name: str, params: dict) -> str:
    """How a faithfulness metric perturbs: its fill and order (ROAD: noisy linear imputation, the
    order in its name)."""
    if name.startswith("road_"):
        return f"noisy linear imputation (noise {params.get('noise')}), order {name.split('_', 1)[1]}"
    parts = [f"fill `{params['fill']}`" if "fill" in params else "",
             f"order `{params['order']}`" if "order" in params else "",
             f"unit `{params['unit']}`" if "unit" in params else "",
             (f"AUC normalised by the curve's own ends (NaN where they differ by less than {params.get('min_drop')})"
              if params.get("normalise") else "")]
    return ", ".join(p for p in parts if p) or "no perturbation setting"


def _split_line(splits: dict, holdout: float) -> str:
    """Which split trained, which selected (best epoch, tuned thresholds) and which was scored; with
    a hold-out (data.holdout, selection split = training split) the two parts of the training split."""
    train, val, test = splits.get("train"), splits.get("val"), splits.get("test")
    if holdout > 0 and val == train:
        return (f"- splits: trained on `{train}` less a hold-out, selected on that hold-out ({holdout:.0%} of "
                f"`{train}`, seeded and stratified by label, no image in both: best epoch, tuned thresholds), "
                f"scored on `{test}` (never used for selection)")
    return (f"- splits: trained on `{train}`, selected on `{val}` (best epoch, tuned thresholds), scored on "
            f"`{test}` (never used for selection)")


def settings_lines(cfg) -> list[str]:
    """What the scores are scores of: the model output explained, the target class, the
    faithfulness perturbations (config over the metric's defaults), the role of each split and how
    the localisation metrics read a signed map (metrics.sign)."""
    outputs = {m: cfg.models.params.get(m, {}).get("output", "raw") for m in cfg.models.names}
    splits = cfg.data.splits
    lines = ["## What was measured\n",
             "- model output explained: " + "; ".join(f"`{m}` {o} ({OUTPUTS.get(o, 'unknown output')})"
                                                      for m, o in outputs.items()),
             f"- explain target: `{cfg.explain.target}` ({TARGETS.get(cfg.explain.target, 'unknown target')})",
             _split_line(splits, getattr(cfg.data, "holdout", 0.0))]
    if any(get_metric(m).category == "localisation" for m in cfg.metrics.names):
        # a run folder written before metrics.sign existed has no such key: its rule is said as it was
        lines.append("- localisation sign rule: " + sign_sentence(getattr(cfg.metrics, "sign", None)))
    faith = _faithfulness(cfg)
    if faith:
        lines.append("- faithfulness perturbations: " + "; ".join(
            f"`{m}` {_perturbation(m, {**get_metric(m).defaults, **cfg.metrics.params.get(m, {})})}" for m in faith))
    return lines + [""]


def per_class(scores: pd.DataFrame, predictions: pd.DataFrame, n_resamples: int = 1000, confidence: float = 0.95,
              seed: int = 0, gaps=None) -> pd.DataFrame:
    """Faithfulness means per class (label 1 pneumonia, 0 normal, from predictions.csv), each cell on
    its common image set (the images every explainer scored or is not applicable to, see
    stats.common_cells) split by class, with bootstrap CIs."""
    faith = scores[[get_metric(m).category == "faithfulness" for m in scores["metric"]]]
    labels = predictions.drop_duplicates(["dataset", "model", "image_id"]).set_index(
        ["dataset", "model", "image_id"])["label"]
    rows = []
    for (dataset, model, metric), _, _, common in common_cells(faith, gaps):
        key = pd.MultiIndex.from_arrays([[dataset] * len(common), [model] * len(common), common.index])
        label = labels.reindex(key).to_numpy()
        for value, name in CLASS_NAMES.items():
            sel = common[label == value]
            for e in common.columns:
                v = sel[e].dropna().to_numpy(dtype=float)
                low, high = bootstrap_ci(v, n_resamples, confidence, seed)
                rows.append(dict(dataset=dataset, model=model, explainer=e, metric=metric, **{"class": name},
                                 n=len(v), mean=float(v.mean()) if len(v) else float("nan"), ci_low=low, ci_high=high))
    return pd.DataFrame(rows, columns=PER_CLASS_COLUMNS)


def per_class_markdown(table: pd.DataFrame, labels=None) -> str:
    """One table per (dataset, model, class): explainers (methods, then the baselines' block) x
    metrics, cells `mean [CI] (n)` at each metric's fixed decimals, display names; at most
    board_format.MAX_COLUMNS columns a table."""
    from . import board_format as bf, roles
    from .labels import label
    out = []
    for (dataset, model), df in table.groupby(["dataset", "model"], sort=True):
        cells = df.set_index(["explainer", "metric", "class"])
        explainers = roles.ordered(df["explainer"].unique())
        first_base = next((e for e in explainers if roles.is_baseline(e)), None)
        for c in CLASS_NAMES.values():
            for metrics in bf.column_chunks(list(dict.fromkeys(df["metric"]))):
                rows: list = []
                for e in explainers:
                    if e == first_base:
                        rows.append(None)
                    row = [label(e, labels)]
                    for m in metrics:
                        r = cells.loc[(e, m, c)] if (e, m, c) in cells.index else None
                        ci = "" if r is None or pd.isna(r.ci_low) else f" [{bf.value(m, r.ci_low)}, {bf.value(m, r.ci_high)}]"
                        row.append("" if r is None else "not scored (n=0)" if r["n"] == 0 else
                                   f"{bf.value(m, r['mean'])}{ci} (n={r['n']})")
                    rows.append(row)
                out += [f"### {label(model, labels)} on {dataset}: faithfulness on the {c} images\n",
                        *bf.md_table(["explainer", *[f"{label(m, labels)} {arrow(m)}" for m in metrics]], rows), ""]
    return "\n".join(out)
