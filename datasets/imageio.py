"""Reading image and mask files, with one documented mapping to float [0,1], and fitting them to a square.

Images -> float32 (H,W) in [0,1] (`decode`):
- grey integer PNG/TIFF/JPEG (8 or 16 bits): value / (2**bits - 1), `bits` the file's sample depth (a
  TIFF's BitsPerSample, else 8 or 16 by the mode). Never clipped or min-maxed: a dark image stays dark.
  PNG's sBIT chunk is not read: the PNG spec stores a 12-bit image in a 16-bit PNG scaled to 0..65535.
- colour (RGB, RGBA, palette, grey+alpha, CMYK...): PIL's ITU-R 601-2 luma,
  L = R*299/1000 + G*587/1000 + B*114/1000 rounded to 8 bits, alpha ignored, then / 255.
- bilevel ("1") images: 0 or 1.
- 32-bit integer and float images are refused (no defined grey range).
- DICOM (.dcm): modality LUT, VOI LUT or window, MONOCHROME1 inverted: see dicom.py.

Masks -> bool (H,W) (`decode_mask`), from the stored values (grey or palette index; colour masks by
their luma, alpha ignored): with `mask_values`, a pixel is lesion when its value is listed; without,
a mask may hold 0 and at most one other value (0/1, 0/255, boolean) and any non-zero pixel is
lesion. Anything else (label maps, anti-aliased or JPEG masks) is an error naming the file and
the values found.

Geometry (`resize`): a non-square array becomes square by RESIZE_MODES, then is resampled to
size x size (images: antialiased bilinear, clamped to [0,1]; masks: area average >= 0.5). A mask
goes through the same square step as its image, so both stay aligned.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from .dicom import decode_dicom

# "pad": centred in a square of the long side, black (0) around; "crop": the centred square of the
# short side; "squash": stretched (the aspect ratio is lost). Square arrays pass unchanged in all.
RESIZE_MODES = ("pad", "crop", "squash")
DEFAULT_RESIZE = "pad"
SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
SHOWN_VALUES = 8  # distinct mask values named in an error


@dataclass(frozen=True)
class Decoded:
    """An image as read: float32 (H,W) in [0,1] and the sample depth of the file."""
    pixels: np.ndarray
    bit_depth: int

    def metadata(self) -> dict:
        """What a data summary reports of the file: its bit depth and its size [H, W] before resizing."""
        return {"bit_depth": self.bit_depth, "original_size": [int(n) for n in self.pixels.shape]}


def _exists(path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    return path


def _open(path: Path) -> Image.Image:
    try:
        im = Image.open(path)
        im.load()
        return im
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"cannot decode {path}: {err}") from None


def _tiff_bits(im: Image.Image) -> int | None:
    bits = getattr(im, "tag_v2", {}).get(258) if im.format == "TIFF" else None
    if isinstance(bits, tuple):
        bits = bits[0] if bits else None
    return int(bits) if bits else None


def decode(path: Path) -> Decoded:
    """An image file as grey float32 (H,W) in [0,1], by the mapping in the module docstring."""
    path = _exists(path)
    if path.suffix.lower() == ".dcm":
        return Decoded(*decode_dicom(path))
    with _open(path) as im:
        if im.mode == "1":
            return Decoded(np.asarray(im, dtype=np.float32), 1)
        if im.mode in SIXTEEN_BIT or im.mode == "L":
            bits = _tiff_bits(im) or (8 if im.mode == "L" else 16)
            # float32 division of the integer values: bit-identical to the old uint8 / 255.0 for 8 bits
            return Decoded(np.asarray(im, dtype=np.float32) / np.float32(2**bits - 1), bits)
        if im.mode in ("I", "F", "I;16S", "I;32", "I;32S", "F;32"):
            raise ValueError(f"{path}: {im.mode!r} (32-bit integer or float) images have no defined grey range; "
                             f"save it as an 8- or 16-bit grey PNG/TIFF, or as DICOM")
        try:
            grey = im.convert("L")  # ITU-R 601-2 luma; alpha ignored
        except (ValueError, OSError) as err:
            raise ValueError(f"{path}: cannot convert mode {im.mode!r} to grey: {err}") from None
        return Decoded(np.asarray(grey, dtype=np.float32) / np.float32(255), 8)


def _mask_raw(path: Path) -> np.ndarray:
    """The stored values of a mask file: grey values or palette indices; colour masks as luma."""
    if path.suffix.lower() == ".dcm":
        import pydicom
        try:
            return pydicom.dcmread(path).pixel_array
        except Exception as err:  # pydicom raises many types on a damaged file
            raise ValueError(f"cannot decode DICOM mask {path}: {err}") from None
    with _open(path) as im:
        if im.mode in ("LA", "La", "PA"):
            return np.asarray(im.getchannel(0))
        if im.mode in ("1", "L", "P", "I", "F", *SIXTEEN_BIT):
            return np.asarray(im)
        return np.asarray(im.convert("L"))


def decode_mask(path: Path, mask_values: Sequence[int] | None = None) -> np.ndarray:
    """A mask file as bool (H,W): the pixels whose value is in `mask_values`, or, without them, the
    non-zero pixels of a mask holding 0 and at most one other value."""
    path = _exists(path)
    raw = _mask_raw(path)
    if raw.ndim != 2:
        raise ValueError(f"mask {path} has shape {raw.shape}; expected one grey plane (H, W)")
    if mask_values:
        return np.isin(raw, np.asarray(list(mask_values)))
    values = np.unique(raw)
    nonzero = values[values != 0]
    if len(nonzero) > 1:
        shown = ", ".join(str(v) for v in values[:SHOWN_VALUES].tolist())
        more = f" and {len(values) - SHOWN_VALUES} more" if len(values) > SHOWN_VALUES else ""
        raise ValueError(f"mask {path} holds {len(values)} distinct values ({shown}{more}): which are lesion is "
                         f"ambiguous; set data.mask_values to the values that mean lesion, e.g. "
                         f"[{nonzero[-1].item()}] (masks without it must be 0/1, 0/255 or boolean)")
    return raw != 0


def check_resize(mode: str) -> str:
    if mode not in RESIZE_MODES:
        raise ValueError(f"data.resize {mode!r} is not one of {list(RESIZE_MODES)}")
    return mode


def to_square(t: torch.Tensor, mode: str) -> torch.Tensor:
    """(H,W) -> (S,S) by `mode`: centred padding with 0 (S the long side) or centred crop (S the short
    side); squash returns it as it is (the resampling stretches it)."""
    h, w = t.shape
    if check_resize(mode) == "squash" or h == w:
        return t
    if mode == "pad":
        s = max(h, w)
        out = t.new_zeros((s, s))
        top, left = (s - h) // 2, (s - w) // 2
        out[top:top + h, left:left + w] = t
        return out
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return t[top:top + s, left:left + s]


def resize(arr: np.ndarray, size: int, mask: bool = False, mode: str = DEFAULT_RESIZE) -> torch.Tensor:
    """float (size,size) in [0,1] from an image in [0,1] (antialiased bilinear); bool from a bool
    mask (area average >= 0.5); both made square by `mode` first."""
    t = to_square(torch.from_numpy(np.array(arr, dtype=np.float32)), mode)[None, None]
    if t.shape[-2:] != (size, size):
        if mask:
            t = F.interpolate(t, size=(size, size), mode="area")
        else:
            t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    t = t[0, 0]
    return t >= 0.5 if mask else t.clamp(0, 1)


def read_image(path: Path, size: int, mode: str = DEFAULT_RESIZE) -> torch.Tensor:
    return resize(decode(path).pixels, size, mode=mode)


def read_mask(path: Path, size: int, mode: str = DEFAULT_RESIZE, mask_values: Sequence[int] | None = None) -> torch.Tensor:
    return resize(decode_mask(path, mask_values), size, mask=True, mode=mode)
