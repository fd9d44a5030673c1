"""Content-keyed memory of randomisation cascades (sanity.py), so randomisation_ssim and
randomisation_spearman re-explain one cascade once per batch (see CascadeMemo)."""
from __future__ import annotations

import hashlib
import weakref
from typing import Callable

import torch
from torch import nn


def _digest(*parts) -> str:
    """A content hash of tensors (dtype, shape and bytes) and plain values."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        if torch.is_tensor(part):
            t = part.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            h.update(repr(part).encode())
        h.update(b"|")
    return h.hexdigest()


_MODEL_DIGESTS: "weakref.WeakKeyDictionary[nn.Module, tuple[tuple, str]]" = weakref.WeakKeyDictionary()


def _model_digest(model: nn.Module) -> str:
    """The content hash of a model's weights, recomputed only when a tensor was replaced or changed in
    place (its version counter; hashing VGG16's 0.5 GB on every call would cost seconds)."""
    tensors = list(model.state_dict().values())
    stamp = tuple((t.data_ptr(), t._version) for t in tensors)
    known = _MODEL_DIGESTS.get(model)
    if known is None or known[0] != stamp:
        known = (stamp, _digest(*tensors))
        _MODEL_DIGESTS[model] = known
    return known[1]


class CascadeMemo:
    """The cascades this process computed last, so the randomisation metrics share them.

    randomisation_ssim and randomisation_spearman compare the same re-explained stages under two
    similarities; the runner scores a shard's metrics one after the other in one process, each over
    the shard's batches, so the second metric finds every batch's stages here instead of
    re-explaining them (half the sanity stage's passes). The key is the content of everything the
    stages depend on: the model's weights, the explainer (class and attributes), images, targets,
    context, seed, layers, stages and the autocast state; a miss recomputes, so sharing never
    changes a number. Least recently used entries go first once the stored maps pass `max_bytes`
    (a shard's stages: 8 stages of 128 maps at 224 px are 200 MB).
    """

    def __init__(self, max_bytes: int = 512 * 2**20) -> None:
        self.max_bytes = max_bytes
        self.entries: dict[str, list[tuple[str, torch.Tensor]]] = {}
        self.hits = 0

    def clear(self) -> None:
        self.entries, self.hits = {}, 0

    @staticmethod
    def _bytes(stages: list[tuple[str, torch.Tensor]]) -> int:
        return sum(m.numel() * m.element_size() for _, m in stages)

    def stages_of(self, model: nn.Module, explainer, images: torch.Tensor, targets: torch.Tensor,
                  context: dict, seed: int, layers: list[str] | None,
                  max_layers: int | None, compute: Callable[[], list[tuple[str, torch.Tensor]]]
                  ) -> list[tuple[str, torch.Tensor]]:
        """The stages stored under this content key, else compute() (cascade_maps) stored and returned."""
        device = images.device.type
        key = _digest(type(explainer).__module__, type(explainer).__qualname__,
                      sorted((k, v) for k, v in vars(explainer).items() if not torch.is_tensor(v)),
                      *(v for v in vars(explainer).values() if torch.is_tensor(v)),
                      _model_digest(model), images, targets,
                      sorted((k, v is None) for k, v in context.items()),
                      *(v for _, v in sorted(context.items()) if torch.is_tensor(v)),
                      seed, layers, max_layers, torch.is_autocast_enabled(device),
                      torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None)
        if key in self.entries:
            self.hits += 1
            self.entries[key] = stages = self.entries.pop(key)  # most recently used last
            return stages
        stages = compute()
        self.entries[key] = stages
        while len(self.entries) > 1 and sum(map(self._bytes, self.entries.values())) > self.max_bytes:
            del self.entries[next(iter(self.entries))]
        return stages
