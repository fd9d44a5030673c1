"""Preprocessed splits cached as memory-mapped uint8 arrays, so decoding and resizing thousands
of PNG/DICOM files happens once per (dataset, split, size, selection), not every run or epoch.

Images are stored as uint8 at the target size and read back through the cache on the first run
too, so a cached and an uncached run see the same numbers.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from cxr_xai_bench.datasets import Batch

FILES = ("images", "lesion_masks", "has_mask", "lung_masks", "labels")


def _to_arrays(batch: Batch) -> dict[str, np.ndarray]:
    return {
        "images": np.round(batch.images[:, 0].clamp(0, 1).numpy() * 255).astype(np.uint8),
        "lesion_masks": np.packbits(batch.lesion_masks.numpy(), axis=-1),  # masks: 1 bit a pixel
        "has_mask": batch.has_mask.numpy().astype(np.uint8),
        "lung_masks": np.packbits(batch.lung_masks.numpy(), axis=-1),
        "labels": batch.labels.numpy().astype(np.int64),
    }


def _read(folder: Path) -> tuple[Batch, dict]:
    meta = json.loads((folder / "meta.json").read_text())
    a = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in FILES}
    images = torch.from_numpy(np.asarray(a["images"], dtype=np.float32) / 255.0)[:, None]
    width = images.shape[-1]

    def unpack(name: str) -> torch.Tensor:
        return torch.from_numpy(np.unpackbits(a[name], axis=-1, count=width).astype(bool))

    batch = Batch(images=images, labels=torch.from_numpy(np.array(a["labels"])),
                  lesion_masks=unpack("lesion_masks"), has_mask=torch.from_numpy(np.array(a["has_mask"], dtype=bool)),
                  lung_masks=unpack("lung_masks"), ids=meta["ids"],
                  metadata=meta.get("metadata") or [{} for _ in meta["ids"]])
    return batch, meta


def cached_split(cache_dir: Path, key: str, build: Callable[[], tuple[Batch, list]]) -> tuple[Batch, list]:
    """The split stored under `key`, built by `build()` (returning the batch and skipped items) once."""
    folder = Path(cache_dir) / key
    if (folder / "meta.json").exists():
        try:
            batch, meta = _read(folder)
            return batch, meta["skipped"]
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            shutil.rmtree(folder, ignore_errors=True)  # damaged cache: rebuild it
    batch, skipped = build()
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{key}."))
    try:
        for name, arr in _to_arrays(batch).items():
            np.save(tmp / f"{name}.npy", arr)
        # per-sample metadata as JSON (tuples come back as lists, anything else unusual as its str):
        # the first run reads it back from here too, so cached and uncached runs summarise alike
        (tmp / "meta.json").write_text(json.dumps({"ids": batch.ids, "skipped": skipped,
                                                   "metadata": batch.metadata}, default=str))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished the same cache first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _read(folder)[0], skipped
