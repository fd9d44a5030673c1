"""Dataset context that explainers need (lung masks, lesion masks, the training prior), checked
per test image right after the data is loaded and before any training.

`explain.missing_context` says what a run does when some test images lack what an explainer needs:
"error" (default) stops the run there, naming the explainer, what is missing and for how many
images; "nan" explains those images with the missing context left empty and scores them NaN for
that explainer (counted as NaN in the leaderboard's `n_nan` column and logged as a warning).

Applicability, whatever the mode: an explainer built from the image's own lesion mask (it declares
`from_lesion_mask`, as the oracle does) is not applicable to an image whose lesion mask is empty (a
normal X-ray: its map would be all zero) or unknown. Its scores there are NaN for every metric
(`not_applicable`, applied in the one scoring loop) and the report reads them as not applicable to
it (context_gaps), never as its failures. `mask_prior` (the training split's mean mask) applies to
every image.
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from cxr_xai_bench.datasets import Batch
from cxr_xai_bench.explainers import EXPLAINERS

from ..explainer_factory import explainer_from_config
from .config import Config
from .data import explain_context

log = logging.getLogger(__name__)
MODES = ("error", "nan")


def context_available(test: Batch, prior_path: str = "") -> dict[str, np.ndarray]:
    """Per test image, whether each context key an explainer may need is there."""
    n = len(test)
    return {"lung_masks": test.lung_masks.flatten(1).any(1).cpu().numpy().astype(bool),
            "lesion_masks": test.has_mask.cpu().numpy().astype(bool),
            "train_mean_mask": np.full(n, bool(prior_path)), "image_ids": np.ones(n, bool)}


def missing(explainer: str, test: Batch, prior_path: str = "") -> dict[str, np.ndarray]:
    """need -> per-image bool, True where the image lacks it (only the needs some image lacks)."""
    have = context_available(test, prior_path)
    out = {}
    for need in getattr(EXPLAINERS[explainer], "needs", ()):
        ok = have.get(need, np.zeros(len(test), bool))
        if not ok.all():
            out[need] = ~ok
    return out


def not_applicable(explainer: str, test: Batch) -> np.ndarray:
    """Per test image (N,) bool: True where `explainer` is built from the lesion mask
    (`from_lesion_mask`) and the image has no lesion (mask empty or unknown)."""
    if not getattr(EXPLAINERS[explainer], "from_lesion_mask", False):
        return np.zeros(len(test), bool)
    lesion = test.has_mask.bool() & test.lesion_masks.flatten(1).any(1)
    return ~lesion.cpu().numpy().astype(bool)


def check_context(cfg: Config, test: Batch, prior_path: str = "") -> dict[str, int]:
    """Stop before any training when an explainer needs context that some test images lack (mode
    "error"); in mode "nan", warn and return explainer -> how many images will score NaN."""
    problems, counts = [], {}
    for name in cfg.explain.names:
        gaps = missing(name, test, prior_path)
        for need, lacks in gaps.items():
            ids = [i for i, bad in zip(test.ids, lacks) if bad]
            problems.append(f"{name} needs {need!r}, missing for {len(ids)} of {len(test)} test images "
                            f"(e.g. {ids[:3]})")
        if gaps:
            counts[name] = int(np.logical_or.reduce(list(gaps.values())).sum())
    for name in cfg.explain.names:  # maps from a folder: every test image's file read and checked now
        if getattr(EXPLAINERS[name], "folder", False):
            explainer_from_config(cfg, name).check(test.ids, tuple(test.images.shape[2:]))
    if problems and cfg.explain.missing_context == "error":
        raise ValueError("missing context, checked before training: " + "; ".join(problems) + ". Provide it "
                         "in the dataset, leave these explainers out of explain.names, or set "
                         "explain.missing_context = \"nan\" to score those images NaN")
    for p in problems:
        log.warning("%s: those images score NaN for it (explain.missing_context = \"nan\")", p)
    return counts


def job_context(cfg: Config, test: Batch, sl: slice, prior) -> dict:
    """explain_context, with what is missing left empty (zeros) in mode "nan" so the explainer runs;
    the images concerned are then scored NaN by `nan_where_missing`."""
    context = explain_context(test, sl, prior)
    if cfg.explain.missing_context == "nan":
        fill = {"lung_masks": test.lung_masks[sl], "lesion_masks": test.lesion_masks[sl],
                "train_mean_mask": torch.zeros(test.images.shape[2:])}
        context = {k: fill.get(k) if v is None else v for k, v in context.items()}
    return context


def nan_where_missing(cfg: Config, explainer: str, test: Batch, start: int, stop: int, prior_path: str,
                      values: np.ndarray) -> np.ndarray:
    """Per-image values of test images [start, stop) with NaN where the explainer lacked its context."""
    if cfg.explain.missing_context != "nan":
        return values
    gaps = missing(explainer, test, prior_path)
    if not gaps:
        return values
    lacks = np.logical_or.reduce(list(gaps.values()))[start:stop]
    return np.where(lacks, np.nan, np.asarray(values, dtype=float))
