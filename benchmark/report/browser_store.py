"""What the HTML report's case browser needs of every scored test image, stored compactly at the
report stage (RUN/browser/<model>.npz), so `benchmark report` redraws its thumbnails from the run
folder alone (no maps/ folder, no data, no models).

Per model: ids (N,) of the scored images in test order; images (N,h,w) uint8, the X-rays shrunk to at
most THUMB px on the long side; masks (N,2h,2w) bool, the lesion masks at twice that size (a thin
contour); has_mask (N,) bool (False: not annotated, never "no lesion"); explainers (E,); signed (E,);
maps (E,N,h,w) uint8, each map at thumbnail size, scaled per map as the overlay figures draw it:
unsigned min-max to 0..255, signed by its largest absolute value with 128 at zero. A non-finite map
(an explainer not applicable to the image) is stored all zero with applicable False (E,N).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..store.files import atomic_path

THUMB = 128  # the long side of a thumbnail in pixels (64-px runs keep their own size)


def thumb_shape(h: int, w: int, limit: int = THUMB) -> tuple[int, int]:
    scale = min(1.0, limit / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def _resize(a: np.ndarray, shape: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """One (H,W) array resized to `shape` with Pillow (box filter when shrinking, bilinear when growing,
    nearest for masks): the same bytes on every machine."""
    if a.shape == shape:
        return a
    if nearest:
        img = Image.fromarray(a.astype(np.uint8) * 255, "L").resize(shape[::-1], Image.Resampling.NEAREST)
        return np.asarray(img) > 127
    shrink = shape[0] < a.shape[0]
    img = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), "F")
    return np.asarray(img.resize(shape[::-1], Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR))


def quantise(heat: np.ndarray, signed: bool) -> np.ndarray:
    """A map as uint8: unsigned min-max to 0..255 (constant: 0); signed v / max|v| with 128 at zero."""
    heat = np.nan_to_num(np.asarray(heat, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if signed:
        lim = float(np.abs(heat).max()) or 1.0
        q = heat / lim * 127.5 + 127.5
    else:
        lo, hi = float(heat.min()), float(heat.max())
        q = (heat - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(heat)
    return np.clip(np.rint(q), 0, 255).astype(np.uint8)


def write_browser(path: Path, images: np.ndarray, masks: np.ndarray, has_mask: np.ndarray, image_ids: list[str],
                  maps: dict[str, np.ndarray], signed: dict[str, bool], keep: list[str] | None = None) -> None:
    """Store one model's case-browser arrays (module docstring). images, masks (N,H,W) of the test split
    in `image_ids` order; maps {explainer: (N,H,W)}; `keep` the scored image ids (default: all), kept in
    test order."""
    images, masks = np.asarray(images, dtype=np.float32), np.asarray(masks, dtype=bool)
    if images.ndim != 3 or images.shape != masks.shape or len(image_ids) != len(images):
        raise ValueError(f"write_browser: images {images.shape}, masks {masks.shape} and {len(image_ids)} ids must agree")
    wanted = set(map(str, keep)) if keep is not None else None
    rows = [k for k, i in enumerate(image_ids) if wanted is None or str(i) in wanted]
    names = sorted(maps)
    h, w = thumb_shape(*images.shape[1:])
    small = np.stack([_resize(images[k], (h, w)) for k in rows]) if rows else np.zeros((0, h, w))
    grey = np.clip(np.rint(small * 255.0), 0, 255).astype(np.uint8)
    outline = np.stack([_resize(masks[k], (2 * h, 2 * w), nearest=True) for k in rows]) if rows else \
        np.zeros((0, 2 * h, 2 * w), bool)
    quant = np.zeros((len(names), len(rows), h, w), np.uint8)
    applicable = np.zeros((len(names), len(rows)), bool)
    for i, e in enumerate(names):
        if maps[e].shape != images.shape:
            raise ValueError(f"write_browser: maps of {e!r} have shape {maps[e].shape}, images {images.shape}")
        for j, k in enumerate(rows):
            m = np.asarray(maps[e][k], dtype=np.float32)
            applicable[i, j] = bool(np.isfinite(m).all())
            if applicable[i, j]:
                quant[i, j] = quantise(_resize(m, (h, w)), bool(signed[e]))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, ids=np.asarray([str(image_ids[k]) for k in rows]), images=grey, masks=outline,
                                has_mask=np.asarray(has_mask, dtype=bool)[rows], explainers=np.asarray(names),
                                signed=np.asarray([bool(signed[e]) for e in names]), maps=quant, applicable=applicable)


def read_browser(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a browser npz (no pickles)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
