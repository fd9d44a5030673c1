"""Names and number formats a reader sees: display names of explainers, metrics and models, the fixed
decimals of each metric, and runtime in sensible units.

Every table, figure and the HTML report takes its names from here, so a paper gets "Grad-CAM", never
`gradcam`. `report.labels` (a {internal name: display name} table in the run config) overrides or
adds names, e.g. a plug-in explainer's; a name with no entry is shown as it is. The CSV tables keep the
internal names (they are for programs).
"""
from __future__ import annotations

import math
from typing import Mapping

DEFAULT_LABELS: dict[str, str] = {
    # explanation methods
    "gradcam": "Grad-CAM", "gradcam_pp": "Grad-CAM++", "eigencam": "EigenCAM", "lrp": "LRP", "lime": "LIME",
    "lime_package": "LIME (lime package)", "integrated_gradients": "Integrated Gradients",
    "occlusion": "Occlusion",
    # baselines
    "random": "Random", "sobel": "Sobel edges", "center": "Centre prior", "lung_prior": "Lung prior",
    "mask_prior": "Mask prior", "oracle": "Oracle (expert mask)",
    # metrics
    "iou": "IoU", "dice": "Dice", "pointing_game": "Pointing game", "relevance_mass": "Relevance mass",
    "relevance_rank": "Relevance rank", "top_k_intersection": "Top-k intersection", "pixel_auroc": "Pixel AUROC",
    "pixel_auprc": "Pixel AUPRC", "lung_mass": "Lung mass", "deletion_auc": "Deletion AUC",
    "insertion_auc": "Insertion AUC", "faithfulness_correlation": "Faithfulness corr.", "road_morf": "ROAD MoRF",
    "road_lerf": "ROAD LeRF", "randomisation_spearman": "Randomisation Spearman",
    "randomisation_ssim": "Randomisation SSIM", "seed_repeatability": "Seed repeatability",
    "seconds_per_image": "Time per image", "peak_memory_mb": "Peak memory (MiB)",
    # models
    "vgg16": "VGG16", "vgg16_bn": "VGG16-BN", "resnet50": "ResNet50", "densenet121": "DenseNet121",
    "xrv_densenet121": "DenseNet121 (torchxrayvision)",
    # categories
    "faithfulness": "Faithfulness", "localisation": "Localisation", "sanity": "Sanity", "runtime": "Runtime",
    "robustness": "Robustness", "complexity": "Complexity", "axiomatic": "Axiomatic",
}

# decimals of a metric's mean (and its CI) in the paper tables: shares and correlations to 3, memory to 1
DECIMALS: dict[str, int] = {"peak_memory_mb": 1}
DEFAULT_DECIMALS = 3
TIME_METRICS = frozenset({"seconds_per_image"})


def label(name: str, labels: Mapping[str, str] | None = None) -> str:
    """The display name of an explainer, metric, model or category: `labels` (report.labels) first,
    then the built-in names, else the name itself."""
    if labels and name in labels:
        return str(labels[name])
    return DEFAULT_LABELS.get(name, name)


def run_labels(cfg) -> dict[str, str]:
    """A run's display names over DEFAULT_LABELS: `report.labels`, after what the dataset changes
    (with planted evidence the known-evidence map is the marker's mask, not an expert's)."""
    data = getattr(cfg, "data", None)
    own = {"oracle": "Oracle (marker mask)"} if getattr(data, "dataset", None) == "planted" else {}
    return {**own, **dict(getattr(getattr(cfg, "report", None), "labels", None) or {})}


def decimals(metric: str) -> int:
    return DECIMALS.get(metric, DEFAULT_DECIMALS)


def time_unit(seconds) -> tuple[str, float]:
    """(unit, factor) that shows a column of seconds with 1-3 digits before the point: "µs", "ms" or
    "s"; chosen from the largest finite value so one column shares one unit."""
    finite = [abs(float(s)) for s in seconds if s is not None and math.isfinite(float(s))]
    top = max(finite, default=1.0)
    if top >= 1.0:
        return "s", 1.0
    if top >= 1e-3:
        return "ms", 1e3
    return "µs", 1e6


def number(metric: str, value, unit: tuple[str, float] | None = None) -> str:
    """A metric value at its fixed decimals (a time in `unit`, from time_unit, to 3 significant
    digits at most 2 decimals); "–" for a missing value. Never scientific notation."""
    if value is None or not math.isfinite(float(value)):
        return "–"
    value = float(value)
    if metric in TIME_METRICS:
        name, factor = unit or time_unit([value])
        scaled = value * factor
        places = 2 if abs(scaled) < 10 else 1 if abs(scaled) < 100 else 0
        return f"{scaled:.{places}f}"
    text = f"{value:.{decimals(metric)}f}"
    return "0." + "0" * decimals(metric) if text.startswith("-") and float(text) == 0 else text
