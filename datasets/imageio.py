"""Decoding and resizing of image and mask files, with errors that name the file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError


def decode(path: Path) -> np.ndarray:
    """A grey uint8 (H,W) array from a PNG/JPEG file (or DICOM, when pydicom is installed)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.suffix.lower() == ".dcm":
        try:
            import pydicom
        except ImportError:
            raise ImportError(f"reading {path} needs pydicom: pip install pydicom") from None
        try:
            arr = pydicom.dcmread(path).pixel_array.astype(np.float64)
        except Exception as err:  # pydicom raises many types on a damaged file
            raise ValueError(f"cannot decode DICOM {path}: {err}") from None
        lo, hi = arr.min(), arr.max()
        return ((arr - lo) / (hi - lo) * 255).astype(np.uint8) if hi > lo else np.zeros(arr.shape, np.uint8)
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("L"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"cannot decode {path}: {err}") from None


def resize(arr: np.ndarray, size: int, mask: bool = False) -> torch.Tensor:
    """float (size,size) in [0,1] for images (antialiased bilinear); bool for masks (area, >= 0.5)."""
    t = torch.from_numpy(np.array(arr, dtype=np.float32))[None, None] / 255.0
    if t.shape[-2:] != (size, size):
        if mask:
            t = F.interpolate(t, size=(size, size), mode="area")
        else:
            t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    t = t[0, 0]
    return t >= 0.5 if mask else t.clamp(0, 1)


def read_image(path: Path, size: int, mask: bool = False) -> torch.Tensor:
    return resize(decode(path), size, mask)
