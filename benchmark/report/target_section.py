"""The report's "What was explained" section: which class every map explains (explain.target), and the
headline metrics on the misclassified test images under both targets: the main maps (the configured
target, scores.csv) and the same images explained for the other one (the prediction or the label,
target_scores.csv, written by the run's other_target stage). On a correctly classified image both
targets are the same class, so only the misclassified ones can differ."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .tables import fmt
from .record import table_path

HEADLINE = ("pointing_game", "relevance_mass", "iou", "deletion_auc", "road_morf")
SAYS = {"label": "each image's label (explain.target = \"label\"): on a misclassified image, a class the model did not predict",
        "predicted": "the model's prediction (explain.target = \"predicted\"): on a misclassified image, a class the image does not have",
        "pneumonia": "always pneumonia (explain.target = \"pneumonia\"), whatever the label or prediction"}


def read_target_scores(run_dir: Path) -> pd.DataFrame | None:
    p = table_path(run_dir, "target_scores.csv")
    return pd.read_csv(p, dtype={"image_id": str}) if p.exists() else None


def both_targets(scores: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model, explainer, metric) of `other`: n images scored under both targets and the
    mean under each, on those images."""
    keys = ["dataset", "model", "explainer", "metric", "image_id"]
    merged = other.merge(scores[keys + ["value"]], on=keys, suffixes=("_other", "_main"))
    merged = merged[np.isfinite(merged["value_other"]) & np.isfinite(merged["value_main"])]
    rows = [dict(dataset=d, model=m, explainer=e, metric=k, target=g["target"].iloc[0], n=len(g),
                 main=float(g["value_main"].mean()), other=float(g["value_other"].mean()))
            for (d, m, e, k), g in merged.groupby(["dataset", "model", "explainer", "metric"], sort=True)]
    return pd.DataFrame(rows, columns=["dataset", "model", "explainer", "metric", "target", "n", "main", "other"])


def target_lines(target: str, table: pd.DataFrame | None, misclassified: dict[str, int]) -> list[str]:
    lines = ["## What was explained\n", f"Every map explains {SAYS.get(target, target)}."]
    if target == "pneumonia":
        return lines + [""]
    if not any(misclassified.values()):
        return lines + ["Every test image is classified correctly, so the label and the prediction are the same class "
                        "on all of them: the choice changes no number here.\n"]
    counts = ", ".join(f"{m} {k}" for m, k in sorted(misclassified.items()))
    lines.append(f"Misclassified test images (where the two targets differ): {counts}.")
    if table is None or table.empty:
        return lines + ["They were not explained for the other target (a run made before this check, or no "
                        "model-dependent explainer).\n"]
    head = table[table["metric"].isin(HEADLINE)]
    other = table["target"].iloc[0]
    lines += [f"Headline metrics on those images, the maps explaining the configured target ({target}) beside the "
              f"maps of the same images explaining the other ({other}); all metrics in `target_both.csv`.\n",
              f"| model | explainer | metric | n | {target} | {other} |", "|---|---|---|---|---|---|"]
    for r in head.itertuples(index=False):
        lines.append(f"| {r.model} | {r.explainer} | {r.metric} | {r.n} | {fmt(r.main)} | {fmt(r.other)} |")
    return lines + [""]
