"""What a run loaded, per split role: image and label counts, lesion masks (non-empty / empty /
unannotated, and which pneumonia rows have an empty one), lung masks, original sizes, bit depths and
skipped files. Shown to the user at load, stored in manifest.json ("data_summary"), and a few test
images kept (data_preview.npz) for the report's preview figure."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from cxr_xai_bench.datasets import Batch

from ..report.data_section import PREVIEW_FILE, PREVIEW_PER_LABEL
from ..store.files import atomic_path

# its own logger, which the CLI lets through at INFO: the summary is for the user, not a diagnostic
log = logging.getLogger(__name__)
GENERATED = "generated"
TEXT_IDS = 10  # ids listed on screen; the manifest lists all


def split_summary(batch: Batch, split: str, skipped: list[dict] | None = None) -> dict[str, Any]:
    """The counts of one loaded split; `skipped` holds data.skip_bad's records for this role."""
    n = len(batch)
    labels = batch.labels.cpu().numpy()
    annotated = batch.has_mask.cpu().numpy().astype(bool)
    lesion_any = batch.lesion_masks.flatten(1).any(1).cpu().numpy()
    empty = annotated & ~lesion_any
    empty_pneu = np.flatnonzero(empty & (labels == 1))
    meta = batch.metadata if len(batch.metadata) == n else [{}] * n
    # a sample without the file's own size was made at the run's size (the phantom): that size, "generated"
    sizes = [m.get("original_size") for m in meta]
    run_hw = [int(v) for v in batch.images.shape[-2:]]
    hw = np.array([list(s) if s is not None else run_hw for s in sizes], dtype=np.int64).reshape(n, 2)
    from_files = sum(s is not None for s in sizes)
    depths = {m.get("bit_depth", GENERATED) for m in meta}
    return {
        "split": split,
        "images": n,
        "labels": {"pneumonia": int((labels == 1).sum()), "normal": int((labels == 0).sum())},
        "lesion_masks": {"non_empty": int((annotated & lesion_any).sum()), "empty": int(empty.sum()),
                         "unannotated": int((~annotated).sum()), "empty_on_pneumonia": len(empty_pneu),
                         "empty_on_pneumonia_ids": [batch.ids[i] for i in empty_pneu]},
        # a missing lung mask is stored all-False, so "present" means a non-empty one
        "lung_masks": {"present": int(batch.lung_masks.flatten(1).any(1).sum())},
        "original_size": {"min_h": int(hw[:, 0].min()), "max_h": int(hw[:, 0].max()),
                          "min_w": int(hw[:, 1].min()), "max_w": int(hw[:, 1].max()),
                          "source": "files" if from_files == n else GENERATED if from_files == 0 else "mixed"},
        "bit_depths": sorted(depths, key=lambda d: (isinstance(d, str), d if not isinstance(d, str) else 0, str(d))),
        "skipped": len(skipped or []),
        "skipped_files": [{k: v for k, v in s.items() if k != "split"} for s in skipped or []],
    }


def data_summary(dataset: str, splits: dict[str, str], batches: dict[str, Batch], skipped: list[dict]) -> dict[str, Any]:
    """{role: split_summary} for the roles train / val / test, with the dataset's name."""
    roles = {role: split_summary(b, splits.get(role, role), [s for s in skipped if s.get("split") == role])
             for role, b in batches.items()}
    return {"dataset": dataset, "roles": roles}


def _ids(ids: list[str]) -> str:
    more = f", ... ({len(ids) - TEXT_IDS} more, all in manifest.json data_summary)" if len(ids) > TEXT_IDS else ""
    return ", ".join(ids[:TEXT_IDS]) + more


def span(size: dict[str, Any], axis: str) -> str:
    """"256" or "256-1024": an original size range along one axis."""
    lo, hi = size[f"min_{axis}"], size[f"max_{axis}"]
    return str(lo) if lo == hi else f"{lo}-{hi}"


def summary_text(summary: dict[str, Any]) -> str:
    """The summary as a few lines for the terminal."""
    lines = [f"Data loaded ({summary['dataset']}):"]
    for role, s in summary["roles"].items():
        lab, les, size = s["labels"], s["lesion_masks"], s["original_size"]
        lines.append(
            f"  {role} (split {s['split']}): {s['images']} images ({lab['pneumonia']} pneumonia, {lab['normal']} normal); "
            f"lesion masks {les['non_empty']} non-empty, {les['empty']} empty, {les['unannotated']} unannotated; "
            f"lung masks {s['lung_masks']['present']}; original size H {span(size, 'h')}, W {span(size, 'w')} "
            f"({size['source']}); bit depth {', '.join(map(str, s['bit_depths']))}; "
            f"skipped {s['skipped']}")
        if les["empty_on_pneumonia"]:
            lines.append(f"    {les['empty_on_pneumonia']} pneumonia images with an empty lesion mask: "
                         f"{_ids(les['empty_on_pneumonia_ids'])}")
        for f in s["skipped_files"][:TEXT_IDS]:
            lines.append(f"    skipped item {f.get('index')}: {f.get('error')}")
    return "\n".join(lines)


def show(summary: dict[str, Any]) -> None:
    log.info("%s", summary_text(summary))


def preview_rows(batch: Batch, per_label: int = PREVIEW_PER_LABEL) -> list[int]:
    """Up to `per_label` rows per label, pneumonia first; rows with a non-empty lesion mask first, so
    the preview shows contours where the split has any, but the last place kept for a row without one
    (unannotated or empty), where the label has such rows, so a reader sees those too."""
    labels = batch.labels.cpu().numpy()
    lesion = (batch.has_mask & batch.lesion_masks.flatten(1).any(1)).cpu().numpy()
    rows: list[int] = []
    for label in (1, 0):
        outlined = [int(i) for i in np.flatnonzero((labels == label) & lesion)]
        other = [int(i) for i in np.flatnonzero((labels == label) & ~lesion)]
        take = outlined[:per_label - 1 if other else per_label]
        rows += take + other[:per_label - len(take)]
    return rows


def preview_arrays(batch: Batch, per_label: int = PREVIEW_PER_LABEL) -> dict[str, np.ndarray]:
    rows = preview_rows(batch, per_label)
    return {"images": np.round(batch.images[rows, 0].clamp(0, 1).cpu().numpy() * 255).astype(np.uint8),
            "lesion_masks": batch.lesion_masks[rows].cpu().numpy().astype(bool),
            "has_mask": batch.has_mask[rows].cpu().numpy().astype(bool),
            "lung_masks": batch.lung_masks[rows].cpu().numpy().astype(bool),
            "labels": batch.labels[rows].cpu().numpy().astype(np.int64),
            "ids": np.array([batch.ids[i] for i in rows], dtype=str)}


def write_preview(run_dir: Path, test: Batch, per_label: int = PREVIEW_PER_LABEL) -> Path:
    """Store the preview images of the test split in the run folder; left untouched when it already
    holds the same arrays (a zip carries its write time, and the report key hashes the file)."""
    path = Path(run_dir) / PREVIEW_FILE
    arrays = preview_arrays(test, per_label)
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as old:
                if set(old.files) == set(arrays) and all(np.array_equal(old[k], v) for k, v in arrays.items()):
                    return path
        except (OSError, ValueError):
            pass  # damaged: written anew
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return path
