"""Explainers by name. Every entry has the same call, so the runner never branches on which it holds:

    explainer = build_explainer("gradcam", seed=0, **params)
    maps = explainer.explain(model, images, targets)   # (N,H,W) float32 at input resolution

Baselines that read the dataset rather than the model declare `needs` (context keys such as
"lung_masks", "lesion_masks", "train_mean_mask") and receive them as keyword arguments. One whose
map is built from the image's own lesion mask (the oracle) also declares `from_lesion_mask = True`:
it is not applicable to an image whose mask is empty or unknown, and the benchmark scores it NaN
there for every metric (never as an all-zero map that counts).
"""
from __future__ import annotations

import zlib
from typing import Callable

import numpy as np
import torch
from torch import nn

EXPLAINERS: dict[str, type["Explainer"]] = {}


def register_explainer(name: str) -> Callable[[type], type]:
    def add(cls: type) -> type:
        if name in EXPLAINERS:
            raise ValueError(f"explainer {name!r} registered twice")
        cls.name = name
        EXPLAINERS[name] = cls
        return cls
    return add


class Explainer:
    """Base: subclasses set `signed` and implement `_explain` for one batch."""

    name: str = ""
    signed: bool = False
    needs_model: bool = True
    # only classifies images (no gradients): a run may run its passes at run.forward_precision
    forward_only: bool = False
    needs: tuple[str, ...] = ()
    # the map is built from the image's own lesion mask: not applicable (scored NaN) where it is empty or unknown
    from_lesion_mask: bool = False

    def __init__(self, seed: int = 0):
        self.seed = seed

    def explain(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor, **context) -> torch.Tensor:
        missing = [k for k in self.needs if context.get(k) is None]
        if missing:
            raise ValueError(f"{self.name} needs {missing}, which this dataset or call does not provide")
        if images.dim() != 4 or images.shape[1] != 1:
            raise ValueError(f"{self.name}: images must be (N,1,H,W), got {tuple(images.shape)}")
        targets = torch.as_tensor(targets, dtype=torch.long, device=images.device).reshape(-1)
        if len(targets) != len(images):
            raise ValueError(f"{self.name}: {len(images)} images but {len(targets)} targets")
        maps = self._explain(model, images, targets, **{k: context[k] for k in self.needs}).detach().float()
        if maps.shape != (images.shape[0], *images.shape[2:]):
            raise RuntimeError(f"{self.name} returned maps {tuple(maps.shape)} for images {tuple(images.shape)}")
        bad = ~torch.isfinite(maps).flatten(1).all(1)
        if bad.any():
            raise FloatingPointError(f"{self.name} produced non-finite values for images {bad.nonzero().flatten().tolist()}")
        return maps

    def _explain(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor, **context) -> torch.Tensor:
        raise NotImplementedError

    def passes(self, side: int) -> tuple[int, int] | None:
        """(forward, backward) images through the model per explained image of side `side`, for the
        run's time floor; None when unknown (a plug-in that does not say). Model-free maps need none.
        The contract tests count the real passes of every registered explainer against this."""
        return None if self.needs_model else (0, 0)

    def image_seed(self, image: torch.Tensor) -> int:
        """A seed from the explainer seed and the image's bytes: batch order never changes a map."""
        data = image.detach().cpu().numpy().astype(np.float32).tobytes()
        return (zlib.crc32(data) ^ (self.seed * 2654435761)) & 0x7FFFFFFF


def build_explainer(name: str, seed: int = 0, **params) -> Explainer:
    if name not in EXPLAINERS:
        raise KeyError(f"unknown explainer {name!r}; registered: {sorted(EXPLAINERS)}")
    try:
        return EXPLAINERS[name](seed=seed, **params)
    except TypeError as err:
        raise TypeError(f"explainer {name!r}: bad parameters {params}: {err}") from None
