"""Planted evidence: any dataset with a marker pasted into some images, a case where the truth is known.

Why: a localisation score compares a map with where a radiologist sees disease, not with what the
model uses. A marker pasted into the training images of one class (like the laterality markers and
text DeGrave et al. 2021 found models relying on) becomes a shortcut the model learns; its exact mask
and the same image without it (the counterfactual) tell, per test image, whether the model relies on
it, and where an explanation of that image must point.

`data.dataset = "planted"` with `data.params = {base = "phantom", q = 1.0, ...}`:
- training and selection splits: the marker goes into images of class `target` with probability q;
- the scored split (`scored_split`, default "test"; COVID-QU-Ex scores "val"): into a share
  `test_share` of the images of both classes, so normals with the marker show whether the marker
  alone moves the model;
- marker: "disc", "square" or "letter" (an L, like a laterality marker), `size` (a fraction of the
  image side), `intensity` (the pasted pixels' value in [0,1]), `position` "fixed" (the upper left
  corner region, as film markers sit) or "random" (drawn per image, inside the image);
- each decision and position is a pure function of (seed, split, index): the same config gives the
  same images.

A sample's `lesion_mask` is the marker's mask (empty where no marker was pasted): the known evidence
the known-truth checks and the localisation metrics score against; the base's own lesion mask stays
in `metadata["base_lesion_mask"]`. `counterfactual(id)` returns the image without the marker.
"""
from __future__ import annotations

import zlib

import numpy as np
import torch

from .registry import DATASETS, build_dataset, register_dataset
from .sample import Sample

SHAPES = ("disc", "square", "letter")
POSITIONS = ("fixed", "random")


def marker_mask(size: int, shape: str, extent: float, cy: float, cx: float) -> torch.Tensor:
    """Bool (size, size) mask of a marker of side `extent` (fraction of the image) centred at (cy, cx)
    (fractions of the image from the top left)."""
    lin = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    y, x = torch.meshgrid(lin, lin, indexing="ij")
    dy, dx, half = y - cy, x - cx, extent / 2
    if shape == "disc":
        return dy ** 2 + dx ** 2 <= half ** 2
    box = (dy.abs() <= half) & (dx.abs() <= half)
    if shape == "square":
        return box
    stroke = extent / 4  # an L: the left bar and the foot, a quarter of the side thick
    return box & ((dx <= -half + stroke) | (dy >= half - stroke))


@register_dataset("planted")
class PlantedDataset:
    """The base dataset with a marker pasted into some images (see the module docstring)."""

    cacheable = False  # the paste is cheap; the base caches its own files when it reads any

    def __init__(self, split: str = "test", size: int = 64, seed: int = 0, base: str = "phantom", q: float = 1.0,
                 test_share: float = 0.5, target: int = 1, shape: str = "disc", extent: float = 0.12,
                 intensity: float = 1.0, position: str = "fixed", scored_split: str = "test", **base_params):
        if base not in DATASETS or base == "planted":
            raise ValueError(f"planted evidence needs a base dataset (data.params.base), one of "
                             f"{sorted(set(DATASETS) - {'planted'})}; got {base!r}")
        if shape not in SHAPES or position not in POSITIONS:
            raise ValueError(f"planted marker: shape must be one of {SHAPES} and position one of {POSITIONS}; "
                             f"got shape {shape!r}, position {position!r}")
        for name, v in (("q", q), ("test_share", test_share), ("intensity", intensity)):
            if not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"planted marker: {name} must lie in [0, 1], got {v}")
        if not 0.0 < float(extent) <= 0.5:
            raise ValueError(f"planted marker: extent (a fraction of the image side) must lie in (0, 0.5], got {extent}")
        self.base = build_dataset(base, split=split, size=size, seed=seed, **base_params)
        self.split, self.size, self.seed = split, size, seed
        self.q, self.test_share, self.target = float(q), float(test_share), int(target)
        self.shape, self.extent, self.intensity, self.position = shape, float(extent), float(intensity), position
        self.scored = split == scored_split
        self._index_of: dict[str, int] = {}
        self._scanned = 0  # base samples read in order by _find

    def __len__(self) -> int:
        return len(self.base)

    def labels(self) -> list[int]:
        return self.base.labels()

    def _draw(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(self.split.encode()), index, 0x9A17])

    def marker(self, index: int, label: int) -> torch.Tensor | None:
        """The marker's mask in image `index` of this split (of class `label`), None where none is pasted."""
        rng = self._draw(index)
        u, cy, cx = rng.random(3)
        if self.scored:
            pasted = u < self.test_share
        else:
            pasted = label == self.target and u < self.q
        if not pasted:
            return None
        if self.position == "fixed":
            cy = cx = 0.1 + self.extent / 2
        else:  # inside the image, a margin of half the marker
            lo, hi = self.extent / 2 + 0.02, 1 - self.extent / 2 - 0.02
            cy, cx = lo + cy * (hi - lo), lo + cx * (hi - lo)
        return marker_mask(self.size, self.shape, self.extent, float(cy), float(cx))

    def __getitem__(self, index: int) -> Sample:
        s = self.base[index]
        self._index_of[s.id] = index
        mask = self.marker(index, s.label)
        image = s.image.clone()
        if mask is not None:
            image[:, mask] = self.intensity
        return Sample(image=image, label=s.label,
                      lesion_mask=mask if mask is not None else torch.zeros(self.size, self.size, dtype=torch.bool),
                      lung_mask=s.lung_mask, id=s.id,
                      metadata={**s.metadata, "planted": mask is not None, "base_lesion_mask": s.lesion_mask})

    def _find(self, sample_id: str) -> int | None:
        """The index of `sample_id`: remembered from __getitem__, else found by reading the base in order
        (a fresh instance, as the reliance stage builds, reads up to that sample once)."""
        if sample_id not in self._index_of and hasattr(self.base, "index_of"):
            return self.base.index_of(sample_id)
        if sample_id not in self._index_of:
            while self._scanned < len(self.base) and sample_id not in self._index_of:
                self._index_of.setdefault(self.base[self._scanned].id, self._scanned)
                self._scanned += 1
        return self._index_of.get(sample_id)

    def counterfactual(self, sample_id: str) -> torch.Tensor | None:
        """The image (1,H,W) of `sample_id` without its marker (the base image), None where no marker was
        pasted or the id is not of this split."""
        index = self._find(sample_id)
        if index is None:
            return None
        s = self.base[index]
        return s.image if self.marker(index, s.label) is not None else None
