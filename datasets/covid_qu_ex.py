"""COVID-QU-Ex "Infection Segmentation Data" in its published layout.

    <root>/{Train,Val,Test}/{COVID-19,Non-COVID,Normal}/{images,infection masks,lung masks}/<name>.png

Label: pneumonia (1) for COVID-19 and Non-COVID, normal (0) for Normal. Lesion mask: the
infection mask for COVID-19 and Normal (all-zero on Normal is a true negative). Non-COVID
infection masks are all zero because they were never annotated, so they load as None (unknown),
never as empty. A split without mask folders loads images and labels only. Files are read by
imageio (8-bit grey PNGs, 0/255 masks; `mask_values` applies to the infection masks only).
"""
from __future__ import annotations

import os
from pathlib import Path

from .imageio import DEFAULT_RESIZE, check_resize, decode, decode_mask, read_mask, resize
from .registry import register_dataset
from .sample import Sample

CLASSES = {"COVID-19": 1, "Non-COVID": 1, "Normal": 0}
ANNOTATED = {"COVID-19", "Normal"}
SPLITS = {"train": "Train", "val": "Val", "test": "Test"}
SUBSETS = ("all", "focal")


def default_root() -> Path | None:
    """$CXR_DATA_ROOT holding covid-qu-ex/ (else None: set data.root to the dataset folder)."""
    env = os.environ.get("CXR_DATA_ROOT")
    p = Path(env) / "covid-qu-ex" / "Infection Segmentation Data" if env else None
    return p if p is not None and p.is_dir() else None


@register_dataset("covid_qu_ex")
class CovidQuEx:
    """One split of COVID-QU-Ex. `classes` restricts the folders read; `subset="focal"` keeps
    normals and those annotated pneumonia images whose lesion covers under half the lung."""

    def __init__(self, split: str = "val", size: int = 224, seed: int = 0, root: str | None = None,
                 classes: list[str] | None = None, subset: str = "all", resize: str = DEFAULT_RESIZE,
                 mask_values: list[int] | None = None):
        if split not in SPLITS:
            raise ValueError(f"unknown COVID-QU-Ex split {split!r}; allowed: {sorted(SPLITS)}")
        if subset not in SUBSETS:
            raise ValueError(f"unknown subset {subset!r}; allowed: {SUBSETS}")
        base = Path(root) if root else default_root()
        if base is None:
            raise FileNotFoundError("COVID-QU-Ex not found: set data.params.root to the folder holding "
                                    "Train/ and Val/ (\"Infection Segmentation Data\") or set CXR_DATA_ROOT")
        self.root = base / SPLITS[split]
        if not self.root.is_dir():
            raise FileNotFoundError(f"COVID-QU-Ex split folder {self.root} does not exist")
        classes = list(classes or CLASSES)
        unknown = set(classes) - set(CLASSES)
        if unknown:
            raise ValueError(f"unknown COVID-QU-Ex classes {sorted(unknown)}; allowed: {sorted(CLASSES)}")
        self.split, self.size = split, size
        self.resize, self.mask_values = check_resize(resize), list(mask_values or [])
        self.items: list[tuple[str, str]] = []
        for cls in classes:
            folder = self.root / cls / "images"
            if not folder.is_dir():
                raise FileNotFoundError(f"COVID-QU-Ex class folder {folder} does not exist")
            names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() == ".png")
            self.items += [(cls, n) for n in names]
        if not self.items:
            raise ValueError(f"COVID-QU-Ex split {self.root} holds no images for classes {classes}")
        if subset == "focal":
            self.items = [it for it in self.items if self._is_focal(*it)]

    def __len__(self) -> int:
        return len(self.items)

    def labels(self) -> list[int]:
        return [CLASSES[c] for c, _ in self.items]

    def _mask_path(self, cls: str, name: str, kind: str) -> Path | None:
        p = self.root / cls / kind / name
        return p if p.exists() else None

    def _is_focal(self, cls: str, name: str) -> bool:
        if cls == "Normal":
            return True
        if cls not in ANNOTATED:
            return False
        les, lung = self._mask_path(cls, name, "infection masks"), self._mask_path(cls, name, "lung masks")
        if les is None or lung is None:
            return False
        lesion_area = read_mask(les, 64, self.resize, self.mask_values).sum()
        return bool(lesion_area < 0.5 * read_mask(lung, 64, self.resize).sum())

    def __getitem__(self, index: int) -> Sample:
        cls, name = self.items[index]
        raw = decode(self.root / cls / "images" / name)
        image = resize(raw.pixels, self.size, mode=self.resize)
        masks = {}
        for kind in ("infection masks", "lung masks"):
            p = self._mask_path(cls, name, kind)
            if p is None:
                masks[kind] = None
                continue
            m = decode_mask(p, self.mask_values if kind == "infection masks" else None)
            if m.shape != raw.pixels.shape:
                raise ValueError(f"{p}: mask size {m.shape[::-1]} differs from its image {raw.pixels.shape[::-1]}")
            masks[kind] = resize(m, self.size, mask=True, mode=self.resize)
        lesion = masks["infection masks"] if cls in ANNOTATED else None
        return Sample(image=image[None], label=CLASSES[cls], lesion_mask=lesion, lung_mask=masks["lung masks"],
                      id=f"{cls}/{Path(name).stem}",
                      metadata={"source": "covid_qu_ex", "split": self.split, "class": cls, **raw.metadata()})
