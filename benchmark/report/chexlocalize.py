"""Export of thresholded saliency segmentations (and expert masks) in cheXlocalize's JSON format.

cheXlocalize's eval.py reads `{image_id: {task: rle}}`, where rle is pycocotools' mask.encode of the
(H, W) uint8 Fortran-ordered mask with `counts` decoded to a str, and decodes it with mask.decode.
It evaluates all ten of its LOCALIZATION_TASKS for every image, so by default the other nine are
written as empty masks. Pneumonia is not one of its tasks: `task` defaults to "Airspace Opacity",
the nearest one (the phantom's and RSNA's lesions are opacities); pass another name to change it.
Segmentation follows cheXlocalize: min-max normalise each map, then Otsu's threshold (or a fixed one),
batched on the device by benchmark.metrics.segmentation.segment, on the maps read through the run's
sign rule (metrics.sign; by default their positive part), as the iou and dice scores read them.

Only annotated images are exported (`has_mask`): an image whose lesion mask is unknown is left out
of gt.json and of every explainer's file, since written as an empty mask it would be scored by
eval.py --true_pos_only False as a true negative. Annotated normal images (an empty expert mask)
stay: they are the negatives.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from pycocotools import mask as mask_utils

from ..metrics.segmentation import segment
from ..metrics.sign import DEFAULT_SIGN, apply_sign
from ..store.files import write_text

LOCALIZATION_TASKS = ("Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Lesion", "Airspace Opacity", "Edema",
                      "Consolidation", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Support Devices")
DEFAULT_TASK = "Airspace Opacity"


def encode(masks: np.ndarray) -> list[dict]:
    """RLE of each (H, W) mask of an (N, H, W) stack, as cheXlocalize's encode_segmentation writes it."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"encode: expected (N, H, W) masks, got shape {masks.shape}")
    # pycocotools encodes an (H, W, N) Fortran-ordered stack in one call
    rles = mask_utils.encode(np.asfortranarray(masks.astype(np.uint8).transpose(1, 2, 0)))
    return [{"size": [int(s) for s in r["size"]], "counts": r["counts"].decode()} for r in rles]


def decode(rle: dict) -> np.ndarray:
    """(H, W) bool mask of one RLE entry, as cheXlocalize's eval.py reads it."""
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


def _document(ids: list[str], masks: np.ndarray, task: str, all_tasks: bool) -> dict:
    if len(ids) != len(masks):
        raise ValueError(f"{len(ids)} image ids for {len(masks)} masks")
    if task not in LOCALIZATION_TASKS:
        raise KeyError(f"task {task!r} is not a cheXlocalize localisation task; use one of {list(LOCALIZATION_TASKS)}")
    rles = encode(masks)
    empty = encode(np.zeros((1, *masks.shape[1:]), dtype=bool))[0] if all_tasks else None
    return {str(i): {t: (r if t == task else empty) for t in (LOCALIZATION_TASKS if all_tasks else (task,))}
            for i, r in zip(ids, rles)}


def _annotated(has_mask, n: int, ids: list[str]) -> np.ndarray:
    """Bool (N,) of the images to export: those with an expert annotation (all when has_mask is None)."""
    keep = np.ones(n, bool) if has_mask is None else np.asarray(has_mask, dtype=bool).reshape(-1)
    if len(ids) != n:
        raise ValueError(f"{len(ids)} image ids for {n} masks")
    if len(keep) != n:
        raise ValueError(f"{len(keep)} has_mask flags for {n} masks")
    return keep


def export_segmentations(path: Path, maps: np.ndarray | torch.Tensor, ids: list[str], task: str = DEFAULT_TASK,
                         threshold: str | float = "otsu", all_tasks: bool = True, has_mask=None,
                         sign: str = DEFAULT_SIGN) -> np.ndarray:
    """Write the explainer's segmentations of (N, H, W) maps as cheXlocalize JSON, only for the images
    flagged in `has_mask` (all when None); return the segmentations of every image (N, H, W) bool.
    `sign`: how the maps are read before segmenting (benchmark.metrics.sign; default their positive part)."""
    maps = torch.as_tensor(maps)
    if maps.ndim != 3:
        raise ValueError(f"export_segmentations: expected (N, H, W) maps, got shape {tuple(maps.shape)}")
    keep = _annotated(has_mask, len(maps), ids)
    if not torch.isfinite(maps).all():
        raise FloatingPointError("export_segmentations: maps hold NaN or inf")
    seg = segment(apply_sign(maps.float(), sign), threshold).cpu().numpy().astype(bool)
    kept = [i for i, k in zip(ids, keep) if k]
    write_text(path, json.dumps(_document(kept, seg[keep], task, all_tasks), sort_keys=True))
    return seg


def export_ground_truth(path: Path, masks: np.ndarray, ids: list[str], task: str = DEFAULT_TASK,
                        all_tasks: bool = True, has_mask=None) -> None:
    """Write expert lesion masks (N, H, W) as cheXlocalize ground-truth JSON (its eval.py --gt_path),
    only for the images flagged in `has_mask` (all when None): an unknown mask is not an empty one."""
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"export_ground_truth: expected (N, H, W) masks, got shape {masks.shape}")
    keep = _annotated(has_mask, len(masks), ids)
    kept = [i for i, k in zip(ids, keep) if k]
    write_text(path, json.dumps(_document(kept, masks[keep], task, all_tasks), sort_keys=True))


def read_segmentations(path: Path, task: str = DEFAULT_TASK) -> dict[str, np.ndarray]:
    """{image_id: (H, W) bool} of one task from a cheXlocalize JSON file."""
    doc = json.loads(Path(path).read_text())
    return {i: decode(tasks[task]) for i, tasks in doc.items()}
