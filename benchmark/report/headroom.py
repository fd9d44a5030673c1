"""Headroom of the curve metrics: does the metric's perturbation move the model's output at all?

A deletion curve runs from the unperturbed image to the fully perturbed one (every pixel replaced by
the fill); an insertion curve the other way round; ROAD removes a growing share of the pixels and
imputes them. If the fully perturbed image is classified like the unperturbed one, every map's curve
stays in a band the width of that difference, and a "better" AUC is a difference of noise: the
metric has no headroom. The report shows, per (model, curve metric) and per target class, the mean
output on the unperturbed image, at the curve's start and at its end, and the drop

    drop = mean over the class's images of (output unperturbed - output fully perturbed)

(signed: removing the evidence should lower the target's output). A metric has headroom when the
drop is at least the stated margin (report.headroom_margin) in every target class scored; otherwise
it is marked "no headroom" and kept out of every verdict: the findings' "beats", the leaderboards'
bold and dagger (tables.ranked reads the summary's `judged` column), and the trust section's checks.
Its scores stay in the tables, as numbers.

Where the points come from (curve_ends.csv: the first and last point of every per-image curve,
written beside curves.csv by the run):
- "deletion" metrics: unperturbed = the curve's first point, fully perturbed = its last;
- "insertion" metrics: unperturbed = the last point, fully perturbed = the first;
  (both do not depend on the map: the same for every explainer of an image)
- "removal" metrics (ROAD: the unperturbed image is not on the curve): unperturbed = the classifier
  on the test image from predictions.csv, in the metric's output (the target's probability, or 1
  where its argmax is the target for output "accuracy"); fully perturbed = the last point (the
  largest share removed) of `random`'s curve, a removal that ignores the image, or of every
  explainer's where `random` was not scored.
The target class of an image follows explain.target ("label": its label; "predicted": the
classifier's class; "pneumonia": 1); without predictions.csv the classes are not known and a removal
metric's headroom cannot be judged ("unknown": kept in the verdicts, and said so).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..metrics import get_metric

HEADROOM_COLUMNS = ["dataset", "model", "metric", "class", "n", "p_unperturbed", "p_start", "p_end", "drop",
                    "headroom", "reference"]
CLASS_NAMES = {0: "normal", 1: "pneumonia"}
DEFAULT_MARGIN = 0.1
FLOOR = "random"


def check_margin(margin) -> float:
    """A margin is a number in [0, 1) (outputs are probabilities or hit rates)."""
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 1 or math.isnan(margin):
        raise ValueError(f"report.headroom_margin must be a number in [0, 1), got {margin!r}")
    return float(margin)


def curve_kind(metric: str) -> str | None:
    try:
        return getattr(get_metric(metric), "curve", None)
    except KeyError:
        return None


def _target_class(predictions: pd.DataFrame, target: str) -> pd.Series:
    pred = (predictions["prob_pneumonia"].astype(float) > 0.5).astype(int)
    if target == "predicted":
        return pred
    if target == "pneumonia":
        return pd.Series(1, index=predictions.index)
    return predictions["label"].astype(int)


def _unperturbed(predictions: pd.DataFrame, target: str, output: str) -> pd.DataFrame:
    """(dataset, model, image_id, class, unperturbed) from predictions.csv in the metric's output."""
    t = _target_class(predictions, target)
    prob = predictions["prob_pneumonia"].astype(float)
    p_target = np.where(t == 1, prob, 1 - prob)
    value = ((prob > 0.5).astype(int) == t).astype(float) if output == "accuracy" else p_target
    return pd.DataFrame({"dataset": predictions["dataset"], "model": predictions["model"],
                         "image_id": predictions["image_id"].astype(str), "class": t.map(CLASS_NAMES),
                         "unperturbed": np.asarray(value, dtype=float)})


def headroom(ends: pd.DataFrame | None, predictions: pd.DataFrame | None, target: str = "label",
             margin: float = DEFAULT_MARGIN, params: dict | None = None) -> pd.DataFrame:
    """One row per (dataset, model, curve metric, target class): n images, the mean output unperturbed,
    at the curve's start and end, the drop (see the module docstring), whether it reaches `margin`
    (True / False, None where it cannot be judged) and which curves the points come from. `params`:
    metric -> its resolved parameters (a removal metric's `output`)."""
    margin = check_margin(margin)
    if ends is None or ends.empty:
        return pd.DataFrame(columns=HEADROOM_COLUMNS)
    ends = ends.assign(image_id=ends["image_id"].astype(str))
    rows = []
    for (dataset, model, metric), e in ends.groupby(["dataset", "model", "metric"], sort=True):
        kind = curve_kind(metric)
        if kind is None:
            continue
        e = e[np.isfinite(e["start"].astype(float)) & np.isfinite(e["end"].astype(float))]
        reference = "every explainer (the ends do not depend on the map)"
        if kind == "removal" and FLOOR in set(e["explainer"]):
            e, reference = e[e["explainer"] == FLOOR], f"`{FLOOR}`'s curve (a removal that ignores the image)"
        elif kind == "removal":
            reference = "every explainer's curve (no `random` scored)"
        per_image = e.groupby("image_id", sort=True)[["start", "end"]].mean()
        if kind == "deletion":
            per_image = per_image.assign(unperturbed=per_image["start"], perturbed=per_image["end"])
        elif kind == "insertion":
            per_image = per_image.assign(unperturbed=per_image["end"], perturbed=per_image["start"])
        else:
            per_image = per_image.assign(unperturbed=np.nan, perturbed=per_image["end"])
        per_image["class"] = "all"
        if predictions is not None and not predictions.empty:
            pr = predictions[(predictions["dataset"] == dataset) & (predictions["model"] == model)]
            output = {**get_metric(metric).defaults, **(params or {}).get(metric, {})}.get("output", "probability")
            known = _unperturbed(pr, target, output).set_index("image_id")
            per_image["class"] = known["class"].reindex(per_image.index).fillna("unknown")
            if kind == "removal":
                per_image["unperturbed"] = known["unperturbed"].reindex(per_image.index)
        for cls, g in per_image.groupby("class", sort=True):
            drop = float((g["unperturbed"] - g["perturbed"]).mean()) if g["unperturbed"].notna().all() else float("nan")
            rows.append(dict(dataset=dataset, model=model, metric=metric, **{"class": cls}, n=len(g),
                             p_unperturbed=float(g["unperturbed"].mean()), p_start=float(g["start"].mean()),
                             p_end=float(g["end"].mean()), drop=drop,
                             headroom=None if math.isnan(drop) else bool(drop >= margin), reference=reference))
    return pd.DataFrame(rows, columns=HEADROOM_COLUMNS)


def lacking(table: pd.DataFrame) -> frozenset:
    """(dataset, model, metric) of the curve metrics without headroom in some target class."""
    if table is None or table.empty:
        return frozenset()
    bad = table[table["headroom"].map(lambda h: h is False or h == False)]  # noqa: E712 (None is "unknown")
    return frozenset(map(tuple, bad[["dataset", "model", "metric"]].drop_duplicates().to_numpy().tolist()))


def mark(summary: pd.DataFrame, unjudged) -> pd.DataFrame:
    """The summary with a `judged` column: False for the (dataset, model, metric) cells in `unjudged`
    (no headroom), which tables.ranked then leaves without a best (no bold, no dagger)."""
    keys = list(zip(summary["dataset"], summary["model"], summary["metric"]))
    return summary.assign(judged=[k not in unjudged for k in keys])


def _num(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def headroom_markdown(table: pd.DataFrame, margin: float, multi: bool = False) -> list[str]:
    """The report's lines: the rule with its margin, and the table."""
    if table is None or table.empty:
        return []
    verdict = {True: "yes", False: "**no headroom**", None: "unknown"}
    out = ["## Headroom of the curve metrics\n",
           f"A curve metric whose perturbation leaves the model's output within {margin:g} of the unperturbed "
           "image's (insertion: the fully perturbed image it starts from; deletion: the fully deleted image it ends "
           "at; ROAD: the largest share removed, by `random`'s order) has no headroom: every map's curve stays in "
           "that band, so a difference in its AUC says little. Such a metric is marked **no headroom**, keeps its "
           "numbers in the tables, and is kept out of every verdict (the findings, bold and † of the leaderboards, "
           f"the trust section). Margin `report.headroom_margin` = {margin:g}, judged per target class: drop = mean "
           "of (output unperturbed − output fully perturbed) over the class's images; each class needs a drop of at "
           "least the margin. Outputs: the target's probability (ROAD with output \"accuracy\": the share still "
           "classified as the target). Also in `headroom.csv`.\n",
           "| model | metric | class | n | P(unperturbed) | P(start) | P(end) | drop | headroom |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in table.to_dict("records"):
        model = f"{r['model']} ({r['dataset']})" if multi else r["model"]
        h = r["headroom"] if r["headroom"] is None or isinstance(r["headroom"], bool) else (
            None if pd.isna(r["headroom"]) else bool(r["headroom"]))
        out.append(f"| {model} | {r['metric']} | {r['class']} | {int(r['n'])} | {_num(r['p_unperturbed'])} | "
                   f"{_num(r['p_start'])} | {_num(r['p_end'])} | {_num(r['drop'])} | {verdict[h]} |")
    return out + [""]
