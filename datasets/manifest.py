"""A generic CSV manifest, so a user's own X-rays and expert masks work without code.

Columns: `image` (path), `label` (1/0, or pneumonia/normal), optional `mask` (lesion mask path;
an empty cell means "not annotated"), optional `lung_mask`, optional `id` (default: the image
file's stem), optional `split`, optional patient column (`patient` by default). Relative paths are
read from the manifest's folder.

Splits (no row may ever be in two splits: train, selection and test data must be disjoint):

- `split_by = "column"` (default): the `split` column says which split each row belongs to, and
  rows are kept where it equals the requested split. A manifest without a `split` column, or with
  an empty `split` cell, is refused (naming the file and the first offending lines) instead of
  putting every row in every split.
- `split_by = "image"` or `"patient"`: a seeded split computed here, for manifests without a
  `split` column (or with an all-empty one; a filled `split` column together with `split_by` is
  refused as ambiguous). Images (by id), or patients (by `patient_column`; every image of one
  patient lands in the same split), are assigned to the splits of `split_fractions` in those
  proportions, stratified by label (a patient counts as pneumonia when any of their images is).
  The assignment is a pure function of `split_seed` and the ids: it does not depend on the row
  order, on the run seed, or on the other parameters of the run, so changing `run.seed` keeps the
  test set. Fractions are of images (or patients) per label, rounded at cumulative boundaries.

Parameters (`data.params` in the config), with defaults:

    path = ""                 # the CSV file, or a folder holding manifest.csv (or data.root)
    split_by = "column"       # "column" | "image" | "patient"
    split_fractions = { train = 0.7, val = 0.15, test = 0.15 }   # split_by image/patient; must sum to 1
    split_seed = 0            # split_by image/patient
    patient_column = "patient"   # required with split_by = "patient"
    labels = { covid19_pneumonia = 1, other_pneumonia = 1, normal = 0 }   # label value -> 1 / 0; replaces
                              # the default 1/0/pneumonia/normal (case and blanks ignored); an unmapped value is an error
    columns = { image = "path", label = "finding", split = "fold" }   # our column -> yours, for any of
                              # image, label, split, mask, lung_mask, id, patient (patient overrides patient_column)

Files are read by imageio (formats, bit depth, DICOM LUTs, masks) and made square by `resize`
(data.resize); `mask_values` (data.mask_values) applies to the `mask` column, while lung masks must
be two-valued (any non-zero is lung).

Checked for every split mode: ids must be unique (an id listed in two splits names the ids and
their splits) and the same image file may not be listed twice. When the patient column is present,
a patient with images in two splits is refused, except with split_by = "image", which the user
chose knowingly (a warning suggests split_by = "patient").
"""
from __future__ import annotations

import csv
import hashlib
import logging
from collections import defaultdict
from pathlib import Path

from .imageio import DEFAULT_RESIZE, check_resize, decode, decode_mask, resize
from .registry import register_dataset
from .sample import Sample

log = logging.getLogger(__name__)

LABELS = {"1": 1, "0": 0, "pneumonia": 1, "normal": 0}
SPLIT_BY = ("column", "image", "patient")
COLUMNS = ("image", "label", "split", "mask", "lung_mask", "id", "patient")  # renamable by data.params.columns
DEFAULT_FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}
SHOWN = 5  # offending rows / ids named in an error message


def _some(items, n: int = SHOWN) -> str:
    items = list(items)
    head = ", ".join(str(i) for i in items[:n])
    return head + (f" and {len(items) - n} more" if len(items) > n else "")


def _order_key(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}\0{key}".encode()).hexdigest()


def seeded_split(groups: dict[str, int], fractions: dict[str, float], seed: int) -> dict[str, str]:
    """Assign each group (image id or patient -> label 0/1) to a split, stratified by label.

    Within each label the groups are ordered by a hash of (seed, group) and cut at the cumulative
    fractions (rounded), so the result depends on the seed and the group names only.
    """
    names = list(fractions)
    total = sum(fractions.values())
    cumulative, acc = [], 0.0
    for name in names:
        acc += fractions[name] / total
        cumulative.append(acc)
    assignment: dict[str, str] = {}
    for label in sorted(set(groups.values())):
        members = sorted((g for g, lab in groups.items() if lab == label), key=lambda g: (_order_key(seed, g), g))
        n, start = len(members), 0
        for name, cum in zip(names, cumulative):
            stop = n if name == names[-1] else int(round(cum * n))
            for g in members[start:stop]:
                assignment[g] = name
            start = max(start, stop)
    return assignment


def label_mapping(labels: dict | None, csv_path) -> dict[str, int]:
    """The label values a manifest may hold -> 0/1: ours (LABELS) or the user's (`labels`, replacing ours),
    matched after stripping blanks and case-insensitively."""
    if labels is None:
        return LABELS
    if not isinstance(labels, dict) or not labels:
        raise ValueError(f"manifest {csv_path}: data.params.labels must be a table of label value -> 0 or 1, "
                         f"e.g. {{ covid19_pneumonia = 1, normal = 0 }}, got {labels!r}")
    out: dict[str, int] = {}
    for value, target in labels.items():
        if isinstance(target, bool) or target not in (0, 1):
            raise ValueError(f"manifest {csv_path}: data.params.labels maps {value!r} to {target!r}; "
                             f"labels map to 1 (pneumonia) or 0 (normal)")
        key = str(value).strip().lower()
        if key in out and out[key] != target:
            raise ValueError(f"manifest {csv_path}: data.params.labels maps {value!r} twice (case and blanks are ignored)")
        out[key] = int(target)
    return out


def column_names(columns: dict | None, present: list[str], csv_path) -> dict[str, str]:
    """Our column name -> the manifest's, from data.params.columns (e.g. { image = "path", label = "finding" })."""
    if not columns:
        return {}
    if not isinstance(columns, dict):
        raise ValueError(f"manifest {csv_path}: data.params.columns must be a table, got {columns!r}")
    unknown = sorted(set(columns) - set(COLUMNS))
    if unknown:
        raise ValueError(f"manifest {csv_path}: data.params.columns names unknown column(s) {unknown}; "
                         f"allowed: {list(COLUMNS)}")
    absent = {ours: theirs for ours, theirs in columns.items() if theirs not in present}
    if absent:
        raise ValueError(f"manifest {csv_path}: data.params.columns {absent} name column(s) the file lacks; "
                         f"its columns: {present}")
    return dict(columns)


@register_dataset("manifest")
class ManifestDataset:
    def __init__(self, split: str = "test", size: int = 224, seed: int = 0, root: str = "", path: str = "",
                 split_by: str = "column", split_fractions: dict[str, float] | None = None, split_seed: int = 0,
                 patient_column: str = "patient", labels: dict | None = None, columns: dict | None = None,
                 resize: str = DEFAULT_RESIZE, mask_values: list[int] | None = None):
        csv_path = Path(path or root)
        if csv_path.is_dir():
            csv_path = csv_path / "manifest.csv"
        if not csv_path.is_file():
            raise FileNotFoundError(f"manifest {csv_path} does not exist (set data.params.path to the CSV file)")
        if split_by not in SPLIT_BY:
            raise ValueError(f"manifest split_by {split_by!r} is not one of {list(SPLIT_BY)}")
        self.base, self.size, self.split, self.csv_path = csv_path.parent, size, split, csv_path
        self.resize, self.mask_values = check_resize(resize), list(mask_values or [])
        mapping = label_mapping(labels, csv_path)
        with open(csv_path, newline="") as fh:
            reader = csv.DictReader(fh)
            rename = column_names(columns, reader.fieldnames or [], csv_path)
            patient_column = "patient" if "patient" in rename else patient_column  # rows carry our names
            columns = {rename.get(c, c) for c in reader.fieldnames or []} | set(rename)
            missing = {"image", "label"} - columns
            if missing:
                raise ValueError(f"manifest {csv_path} lacks the column(s) {sorted(missing)} "
                                 f"(its columns: {reader.fieldnames}; data.params.columns maps ours to yours)")
            rows = [(line, {**row, **{ours: row[theirs] for ours, theirs in rename.items()}})
                    for line, row in enumerate(reader, start=2)]
        if not rows:
            raise ValueError(f"manifest {csv_path} has no rows")

        parsed = []  # (line, row, label, id)
        for line, row in rows:
            label = mapping.get(str(row["label"]).strip().lower())
            if label is None:
                how = (f"data.params.labels {labels}" if labels is not None else
                       f"one of {sorted(LABELS)}; map your values with data.params.labels, e.g. "
                       f"{{ {str(row['label']).strip() or 'value'} = 1, ... }}")
                raise ValueError(f"manifest {csv_path} line {line}: label {row['label']!r} is not in {how}")
            parsed.append((line, row, label, (row.get("id") or "").strip() or Path(row["image"]).stem))
        has_patient = patient_column in columns
        row_split = self._assign_splits(parsed, columns, split_by, split_fractions, split_seed, patient_column)
        if has_patient and split_by == "image":
            log.warning("manifest %s has a patient column %r but split_by = 'image': images of one patient may "
                        "land in different splits; split_by = 'patient' keeps them together", csv_path, patient_column)
        self._check_disjoint(parsed, row_split, patient_column if has_patient and split_by != "image" else None)

        self.rows = []
        for line, row, label, _ in parsed:
            if row_split[line] != split:
                continue
            image = self.base / row["image"]
            if not image.exists():
                raise FileNotFoundError(f"manifest {csv_path} line {line}: image {image} does not exist")
            self.rows.append((line, row, label))
        if not self.rows:
            raise ValueError(f"manifest {csv_path} has no rows for split {split!r} "
                             f"(splits present: {sorted(set(row_split.values()))})")

    def _assign_splits(self, parsed, columns, split_by, fractions, seed, patient_column) -> dict[int, str]:
        """line -> split name, from the `split` column or a seeded split of images or patients."""
        csv_path = self.csv_path
        filled = [(line, (row.get("split") or "").strip()) for line, row, _, _ in parsed]
        if split_by == "column":
            hint = ("set data.params.split_by = \"image\" or \"patient\" for a seeded split "
                    "(split_fractions, split_seed)")
            if "split" not in columns:
                raise ValueError(f"manifest {csv_path} has no 'split' column: without it every row would be in "
                                 f"train, val and test alike; add a split column (train / val / test) or {hint}")
            empty = [line for line, value in filled if not value]
            if empty:
                raise ValueError(f"manifest {csv_path}: {len(empty)} row(s) have an empty 'split' cell "
                                 f"(line(s) {_some(empty)}); fill them or remove the column and {hint}")
            return dict(filled)

        if any(value for _, value in filled):
            raise ValueError(f"manifest {csv_path} has a filled 'split' column and split_by = {split_by!r}: "
                             f"use one or the other (split_by = \"column\" keeps the column's splits)")
        fractions = DEFAULT_FRACTIONS if fractions is None else dict(fractions)
        if not fractions or any(not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 for v in fractions.values()) \
                or abs(sum(fractions.values()) - 1) > 1e-6:
            raise ValueError(f"manifest split_fractions {fractions!r} must map split names to non-negative "
                             f"numbers summing to 1")
        if self.split not in fractions:
            raise ValueError(f"manifest {csv_path}: split {self.split!r} is not one of the split_fractions "
                             f"{list(fractions)}")
        if split_by == "patient":
            if patient_column not in columns:
                raise ValueError(f"manifest {csv_path} has no patient column {patient_column!r} for split_by = "
                                 f"\"patient\" (columns: {sorted(columns)}; set data.params.patient_column)")
            keys = {line: (row.get(patient_column) or "").strip() for line, row, _, _ in parsed}
            empty = [line for line, key in keys.items() if not key]
            if empty:
                raise ValueError(f"manifest {csv_path}: {len(empty)} row(s) have an empty {patient_column!r} cell "
                                 f"(line(s) {_some(empty)})")
        else:
            keys = {line: ident for line, _, _, ident in parsed}
        groups: dict[str, int] = {}
        for line, _, label, _ in parsed:
            groups[keys[line]] = max(groups.get(keys[line], 0), label)
        assignment = seeded_split(groups, fractions, int(seed))
        return {line: assignment[keys[line]] for line, _, _, _ in parsed}

    def _check_disjoint(self, parsed, row_split: dict[int, str], patient_column: str | None) -> None:
        """Refuse ids, image files or patients listed in two splits, and duplicate ids or images."""
        csv_path = self.csv_path
        by_id, by_image, by_patient = defaultdict(list), defaultdict(list), defaultdict(set)
        for line, row, _, ident in parsed:
            by_id[ident].append(line)
            by_image[(self.base / row["image"]).resolve()].append(line)
            if patient_column and (row.get(patient_column) or "").strip():
                by_patient[row[patient_column].strip()].add(row_split[line])
        for what, table in (("id", by_id), ("image", by_image)):
            shared = {k: sorted({row_split[line] for line in lines}) for k, lines in table.items()
                      if len({row_split[line] for line in lines}) > 1}
            if shared:
                raise ValueError(f"manifest {csv_path}: {len(shared)} {what}(s) listed in more than one split "
                                 f"(train and test would share them): "
                                 f"{_some(f'{k} in {v}' for k, v in sorted(shared.items(), key=lambda kv: str(kv[0])))}")
            twice = {k: lines for k, lines in table.items() if len(lines) > 1}
            if twice:
                raise ValueError(f"manifest {csv_path}: {len(twice)} {what}(s) listed more than once "
                                 f"({'ids' if what == 'id' else 'image files'} must be unique): "
                                 f"{_some(f'{k} on lines {v}' for k, v in sorted(twice.items(), key=lambda kv: str(kv[0])))}")
        shared = {p: sorted(s) for p, s in by_patient.items() if len(s) > 1}
        if shared:
            raise ValueError(f"manifest {csv_path}: {len(shared)} patient(s) of column {patient_column!r} have "
                             f"images in more than one split: {_some(f'{p} in {s}' for p, s in sorted(shared.items()))} "
                             f"(split_by = \"patient\" keeps each patient in one split)")

    def __len__(self) -> int:
        return len(self.rows)

    def labels(self) -> list[int]:
        return [label for _, _, label in self.rows]

    def _mask(self, row: dict, column: str, shape, line: int):
        value = (row.get(column) or "").strip()
        if not value:
            return None
        arr = decode_mask(self.base / value, self.mask_values if column == "mask" else None)
        if arr.shape != shape:
            raise ValueError(f"manifest {self.csv_path} line {line}: {column} {self.base / value} has size "
                             f"{arr.shape[::-1]}, its image {shape[::-1]}")
        return resize(arr, self.size, mask=True, mode=self.resize)

    def __getitem__(self, index: int) -> Sample:
        line, row, label = self.rows[index]
        raw = decode(self.base / row["image"])
        shape = raw.pixels.shape
        return Sample(image=resize(raw.pixels, self.size, mode=self.resize)[None], label=label,
                      lesion_mask=self._mask(row, "mask", shape, line),
                      lung_mask=self._mask(row, "lung_mask", shape, line),
                      id=(row.get("id") or "").strip() or Path(row["image"]).stem,
                      metadata={"source": "manifest", "split": self.split, "line": line, **raw.metadata()})
