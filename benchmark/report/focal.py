"""The focal-lesion table: the leaderboard on the images whose lesion covers under half the lung,
with the normals (COVID-QU-Ex's `focal` subset, read from `lesion_share` in predictions.csv).

Why its own table: a lesion that fills most of both lungs is hit by any map that stays inside the
lungs, so on the whole split the anatomical priors look like localisation; on focal lesions a map
must find the lesion itself. Faithfulness is kept for the same images so the two can be read together.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pandas as pd

from ..metrics import get_metric
from . import headroom, latex, stats, tables
from ..store.files import write_text

FOCAL_SHARE = 0.5  # lesion area / lung area under which a lesion is focal (datasets.covid_qu_ex)
CATEGORIES = ("localisation", "faithfulness")
KEYS = ["dataset", "model", "image_id"]


def focal_images(predictions: pd.DataFrame) -> pd.DataFrame:
    """(dataset, model, image_id) of the focal subset: a known lesion share under FOCAL_SHARE (normals
    share 0); images whose lesion or lung mask is unknown (share NaN) are left out."""
    share = pd.to_numeric(predictions["lesion_share"], errors="coerce")
    return predictions.loc[share < FOCAL_SHARE, KEYS].drop_duplicates()


def focal_scores(scores: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """The localisation and faithfulness scores of the focal images."""
    keep = [get_metric(m).category in CATEGORIES for m in scores["metric"]]
    return scores[keep].merge(focal_images(predictions), on=KEYS, how="inner")


def focal_section(scores: pd.DataFrame, predictions: pd.DataFrame | None, rep: Path, n_resamples: int,
                  confidence: float, seed: int, width: str, notes: list[str], gaps=None,
                  unjudged=frozenset(), labels: Mapping[str, str] | None = None) -> list[str]:
    """Report lines of the focal-lesion leaderboard (and focal_leaderboard.csv / .tex); the cells of
    `unjudged` (curve metrics without headroom on the whole split) rank nobody (headroom.mark)."""
    if predictions is None or not pd.to_numeric(predictions["lesion_share"], errors="coerce").notna().any():
        notes.append("- focal-lesion table: not reported, `predictions.csv` has no `lesion_share` (a run before it, "
                     "or a dataset without lung masks).")
        return []
    sub = focal_scores(scores, predictions)
    if sub.empty:
        notes.append("- focal-lesion table: not reported, no scored image has a lesion under half the lung.")
        return []
    share = pd.to_numeric(predictions.drop_duplicates(KEYS)["lesion_share"], errors="coerce")
    lesion = share > 0
    summary = headroom.mark(stats.summarise(sub, n_resamples, confidence, seed, gaps), unjudged)
    tests = stats.paired_tests(sub, n_resamples, confidence, seed, gaps)
    tables.write_csv(rep / "focal_leaderboard.csv", summary)
    write_text(rep / "focal_leaderboard.tex", latex.leaderboard_tex(summary, tests, confidence, width, labels))
    n_models = max(predictions["model"].nunique(), 1)
    return ["## Focal lesions\n",
            f"The images whose lesion covers under {FOCAL_SHARE:.0%} of the lung area ({int((lesion & (share < FOCAL_SHARE)).sum() / n_models)} "
            f"of {int(lesion.sum() / n_models)} lesion images) and the normals ({int((share == 0).sum() / n_models)}); images "
            "without a lesion or lung mask are left out. A lesion that fills the lungs is hit by any map that stays in "
            "them; here a map must find the lesion. Localisation and faithfulness only; also in "
            "`focal_leaderboard.csv` and `.tex`.\n", tables.leaderboard_markdown(summary, confidence, tests, labels=labels)]
