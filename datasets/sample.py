"""The Sample contract every dataset yields, and a batched view of many samples."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch


@dataclass
class Sample:
    """One X-ray.

    image: float32 (1,H,W) in [0,1]; label: 1 pneumonia, 0 normal; lesion_mask: bool (H,W), or
    None when the image was not annotated (None is "unknown", not "empty").
    """

    image: torch.Tensor
    label: int
    lesion_mask: torch.Tensor | None
    lung_mask: torch.Tensor | None
    id: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Batch:
    """Many samples stacked for batched work on the device.

    lesion_masks is (N,H,W) bool; rows whose mask is unknown are all False and flagged False in
    has_mask, so a metric can return NaN for them instead of scoring an invented empty mask.
    """

    images: torch.Tensor
    labels: torch.Tensor
    lesion_masks: torch.Tensor
    has_mask: torch.Tensor
    lung_masks: torch.Tensor
    ids: list[str]
    # per-row Sample.metadata (source, original size, bit depth...): the run's data summary reads it
    metadata: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.images.to(device), self.labels.to(device), self.lesion_masks.to(device),
                     self.has_mask.to(device), self.lung_masks.to(device), list(self.ids), list(self.metadata))

    def subset(self, index: Sequence[int] | torch.Tensor) -> "Batch":
        index = torch.as_tensor(index, dtype=torch.long)
        return Batch(self.images[index], self.labels[index], self.lesion_masks[index],
                     self.has_mask[index], self.lung_masks[index], [self.ids[i] for i in index.tolist()],
                     [self.metadata[i] for i in index.tolist()] if self.metadata else [])


def collate(samples: Sequence[Sample]) -> Batch:
    """Stack samples; raises naming the first sample whose shape disagrees with the others."""
    if not samples:
        raise ValueError("cannot build a batch from an empty dataset")
    shape = samples[0].image.shape
    for s in samples:
        if s.image.shape != shape:
            raise ValueError(f"sample {s.id!r} has image shape {tuple(s.image.shape)}, expected {tuple(shape)}")
        for name, m in (("lesion mask", s.lesion_mask), ("lung mask", s.lung_mask)):
            if m is not None and m.shape != shape[1:]:
                raise ValueError(f"sample {s.id!r}: {name} shape {tuple(m.shape)} differs from image {tuple(shape[1:])}")
    h, w = shape[1:]
    empty = torch.zeros(h, w, dtype=torch.bool)
    return Batch(
        images=torch.stack([s.image for s in samples]).float(),
        labels=torch.tensor([s.label for s in samples], dtype=torch.long),
        lesion_masks=torch.stack([s.lesion_mask if s.lesion_mask is not None else empty for s in samples]),
        has_mask=torch.tensor([s.lesion_mask is not None for s in samples]),
        lung_masks=torch.stack([s.lung_mask if s.lung_mask is not None else empty for s in samples]),
        ids=[s.id for s in samples],
        metadata=[dict(s.metadata) for s in samples],
    )
