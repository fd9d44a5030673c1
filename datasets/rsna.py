"""RSNA Pneumonia Detection Challenge, in its published layout.

    <root>/stage_2_train_labels.csv     patientId,x,y,width,height,Target (one row per box)
    <root>/stage_2_train_images/<patientId>.dcm

Target 1 rows carry a box each; their union is the lesion mask. Target 0 images are normal with
an empty mask (every image was read by radiologists, so empty is a true negative). The challenge
publishes labels for its training images only, so train/val/test are a deterministic split of
patients by a hash of their id (fractions configurable). Images are decoded by imageio/dicom.py
(modality LUT, window, MONOCHROME1); the masks are drawn from boxes, so data.mask_values does not apply.
"""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np

from .imageio import DEFAULT_RESIZE, check_resize, decode, resize
from .registry import register_dataset
from .sample import Sample

LABEL_FILE = "stage_2_train_labels.csv"
IMAGE_DIR = "stage_2_train_images"


def _bucket(patient_id: str) -> float:
    return int(hashlib.sha256(patient_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


@register_dataset("rsna")
class RSNAPneumonia:
    def __init__(self, split: str = "val", size: int = 224, seed: int = 0, root: str = "",
                 fractions: dict[str, float] | None = None, resize: str = DEFAULT_RESIZE,
                 mask_values: list[int] | None = None):
        if mask_values:
            raise ValueError(f"data.mask_values {mask_values} does not apply to rsna: its lesion masks are drawn "
                             f"from the boxes of {LABEL_FILE}, not read from files")
        self.resize = check_resize(resize)
        fractions = fractions or {"train": 0.8, "val": 0.1, "test": 0.1}
        if split not in fractions:
            raise ValueError(f"unknown RSNA split {split!r}; allowed: {sorted(fractions)}")
        base = Path(root)
        labels = base / LABEL_FILE
        if not labels.is_file():
            raise FileNotFoundError(f"RSNA label file {labels} does not exist (set data.root to the challenge folder)")
        boxes: dict[str, list[tuple[float, float, float, float]]] = {}
        targets: dict[str, int] = {}
        with open(labels, newline="") as fh:
            reader = csv.DictReader(fh)
            missing = {"patientId", "x", "y", "width", "height", "Target"} - set(reader.fieldnames or [])
            if missing:
                raise ValueError(f"{labels} lacks the column(s) {sorted(missing)}")
            for line, row in enumerate(reader, start=2):
                pid = row["patientId"]
                try:
                    target = int(row["Target"])
                    box = tuple(float(row[k]) for k in ("x", "y", "width", "height")) if target == 1 else None
                except ValueError:
                    raise ValueError(f"{labels} line {line}: malformed row {row}") from None
                targets[pid] = max(targets.get(pid, 0), target)
                boxes.setdefault(pid, [])
                if box is not None:
                    boxes[pid].append(box)
        lo = sum(v for k, v in fractions.items() if list(fractions).index(k) < list(fractions).index(split))
        hi = lo + fractions[split]
        self.ids = sorted(p for p in targets if lo <= _bucket(p) < hi)
        if not self.ids:
            raise ValueError(f"RSNA split {split!r} of {labels} is empty")
        self.base, self.size, self.split = base, size, split
        self.targets, self.boxes = targets, boxes

    def __len__(self) -> int:
        return len(self.ids)

    def labels(self) -> list[int]:
        return [self.targets[p] for p in self.ids]

    def __getitem__(self, index: int) -> Sample:
        pid = self.ids[index]
        raw = decode(self.base / IMAGE_DIR / f"{pid}.dcm")
        mask = np.zeros(raw.pixels.shape, dtype=bool)
        for x, y, w, h in self.boxes[pid]:
            x0, y0 = max(int(round(x)), 0), max(int(round(y)), 0)
            mask[y0:int(round(y + h)), x0:int(round(x + w))] = True
        return Sample(image=resize(raw.pixels, self.size, mode=self.resize)[None], label=self.targets[pid],
                      lesion_mask=resize(mask, self.size, mask=True, mode=self.resize), lung_mask=None, id=pid,
                      metadata={"source": "rsna", "split": self.split, "boxes": len(self.boxes[pid]),
                                **raw.metadata()})
