"""Maps made elsewhere (another framework, another toolbox, cheXlocalize's per-image saliency),
read per image id from a folder and scored like any explainer's.

A folder holds one file per image, named by its image id: `<id>.npy` (a 2-D array), `<id>.npz`
(its one array, or the array named by `key`) or `<id>.png` (grey, 8 or 16 bit, scaled to [0,1] by
its bit depth: such maps are unsigned). Each map must be H x W of the run's images (resize it where
it was made, so nothing here guesses an interpolation) and finite; a missing id, a wrong size or a
non-finite value is an error naming the file. `register_folder(name, path)` registers the folder
as explainer `name` (the config's `explain.folders`); its maps do not depend on the model, so
localisation scores them without one, and faithfulness metrics perturb the image where the map
points and ask the configured model.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .registry import EXPLAINERS, Explainer, register_explainer

SUFFIXES = (".npy", ".npz", ".png")


class FolderMaps(Explainer):
    """Base of the folder explainers that register_folder makes (one subclass per folder name)."""

    needs_model = False
    needs = ("image_ids",)
    folder = True

    def __init__(self, seed: int = 0, path: str = "", signed: bool = False, key: str = "", fingerprint: str = ""):
        super().__init__(seed)
        if not path:
            raise ValueError(f"explainer {self.name!r}: a maps folder needs a path")
        self.path, self.key = Path(path), key

    def file_for(self, image_id: str) -> Path:
        for suffix in SUFFIXES:
            p = self.path / f"{image_id}{suffix}"
            if p.exists():
                return p
        raise FileNotFoundError(f"explainer {self.name!r}: no map for image {image_id!r} in {self.path} "
                                f"(looked for {image_id}{{{','.join(SUFFIXES)}}})")

    def read(self, image_id: str, shape: tuple[int, int]) -> np.ndarray:
        """The map of `image_id` as float32 (H,W), checked: size `shape`, finite."""
        p = self.file_for(image_id)
        try:
            if p.suffix == ".npy":
                m = np.load(p, allow_pickle=False)
            elif p.suffix == ".npz":
                with np.load(p, allow_pickle=False) as z:
                    names = list(z.files)
                    if self.key:
                        if self.key not in names:
                            raise ValueError(f"{p} has no array {self.key!r}; arrays: {names}")
                        m = z[self.key]
                    elif len(names) == 1:
                        m = z[names[0]]
                    else:
                        raise ValueError(f"{p} holds arrays {names}: name one with explain.params.{self.name}.key")
            else:
                m = _png(p)
        except (OSError, ValueError) as err:
            raise ValueError(f"explainer {self.name!r}: cannot read {p}: {err}") from None
        m = np.asarray(m)
        if m.ndim == 3 and m.shape[0] == 1:
            m = m[0]
        if m.shape != tuple(shape):
            raise ValueError(f"explainer {self.name!r}: {p} is {tuple(m.shape)}, the run's images are {tuple(shape)} "
                             f"(resize the maps where they were made)")
        if not np.issubdtype(m.dtype, np.number) or not np.isfinite(m).all():
            raise ValueError(f"explainer {self.name!r}: {p} holds non-finite or non-numeric values")
        return m.astype(np.float32)

    def check(self, image_ids: Sequence[str], shape: tuple[int, int]) -> None:
        """Every image has a readable, finite map of the right size (before any model pass)."""
        for i in image_ids:
            self.read(str(i), shape)

    def _explain(self, model, images, targets, image_ids):
        maps = np.stack([self.read(str(i), tuple(images.shape[2:])) for i in image_ids])
        return torch.from_numpy(maps).to(images.device)


def _png(p: Path) -> np.ndarray:
    from PIL import Image
    with Image.open(p) as im:
        im.load()
        bits = 16 if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I") else 8
        if im.mode not in ("L", "I;16", "I;16L", "I;16B", "I;16N", "I"):
            raise ValueError(f"a map PNG must be grey, got mode {im.mode}")
        return np.asarray(im, dtype=np.float64) / (2 ** bits - 1)


def fingerprint(path: str | Path) -> str:
    """SHA-256 over the folder's map files (names and bytes, in name order): part of the maps' key,
    so a folder whose maps change is read and scored again."""
    h = hashlib.sha256()
    for p in sorted(q for q in Path(path).iterdir() if q.suffix in SUFFIXES and q.is_file()):
        h.update(p.name.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def register_folder(name: str, signed: bool = False) -> type[FolderMaps]:
    """Explainer `name` for a maps folder (its path comes as a parameter), declared signed or not;
    idempotent for the same name; an existing explainer of another kind keeps its name."""
    held = EXPLAINERS.get(name)
    if held is not None:
        if getattr(held, "folder", False):
            return held
        raise ValueError(f"explain.folders.{name}: {name!r} is already a registered explainer; choose another name")
    return register_explainer(name)(type(f"FolderMaps_{name}", (FolderMaps,), {"__module__": __name__,
                                                                              "signed": bool(signed)}))
