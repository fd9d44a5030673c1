"""A generic CSV manifest, so a user's own X-rays and expert masks work without code.

Columns: `image` (path), `label` (1/0, or pneumonia/normal), optional `mask` (lesion mask path;
an empty cell means "not annotated"), optional `lung_mask`, optional `id`, optional `split`
(rows are kept where it equals the requested split; without the column every row belongs to
every split). Relative paths are read from the manifest's folder.
"""
from __future__ import annotations

import csv
from pathlib import Path

from .imageio import decode, resize
from .registry import register_dataset
from .sample import Sample

LABELS = {"1": 1, "0": 0, "pneumonia": 1, "normal": 0}


@register_dataset("manifest")
class ManifestDataset:
    def __init__(self, split: str = "test", size: int = 224, seed: int = 0, root: str = "", path: str = ""):
        csv_path = Path(path or root)
        if csv_path.is_dir():
            csv_path = csv_path / "manifest.csv"
        if not csv_path.is_file():
            raise FileNotFoundError(f"manifest {csv_path} does not exist (set data.params.path to the CSV file)")
        self.base, self.size, self.split = csv_path.parent, size, split
        with open(csv_path, newline="") as fh:
            reader = csv.DictReader(fh)
            missing = {"image", "label"} - set(reader.fieldnames or [])
            if missing:
                raise ValueError(f"manifest {csv_path} lacks the column(s) {sorted(missing)}")
            rows = list(enumerate(reader, start=2))
        self.rows = []
        for line, row in rows:
            if "split" in row and row["split"] and row["split"] != split:
                continue
            label = LABELS.get(str(row["label"]).strip().lower())
            if label is None:
                raise ValueError(f"manifest {csv_path} line {line}: label {row['label']!r} is not one of {sorted(LABELS)}")
            image = self.base / row["image"]
            if not image.exists():
                raise FileNotFoundError(f"manifest {csv_path} line {line}: image {image} does not exist")
            self.rows.append((line, row, label))
        if not self.rows:
            raise ValueError(f"manifest {csv_path} has no rows for split {split!r}")
        self.csv_path = csv_path

    def __len__(self) -> int:
        return len(self.rows)

    def labels(self) -> list[int]:
        return [label for _, _, label in self.rows]

    def _mask(self, row: dict, column: str, shape, line: int):
        value = (row.get(column) or "").strip()
        if not value:
            return None
        arr = decode(self.base / value)
        if arr.shape != shape:
            raise ValueError(f"manifest {self.csv_path} line {line}: {column} {self.base / value} has size "
                             f"{arr.shape[::-1]}, its image {shape[::-1]}")
        return resize(arr, self.size, mask=True)

    def __getitem__(self, index: int) -> Sample:
        line, row, label = self.rows[index]
        raw = decode(self.base / row["image"])
        return Sample(image=resize(raw, self.size)[None], label=label,
                      lesion_mask=self._mask(row, "mask", raw.shape, line),
                      lung_mask=self._mask(row, "lung_mask", raw.shape, line),
                      id=(row.get("id") or Path(row["image"]).stem),
                      metadata={"source": "manifest", "split": self.split, "line": line})
