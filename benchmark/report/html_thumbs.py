"""The case browser's thumbnails, drawn from the browser store (browser_store.py): per image a grey
X-ray PNG and a lesion contour PNG (transparent, green outline), per (model, explainer, image) the map
as a palette PNG with alpha (32 levels). PNG from Pillow carries no timestamp: the same store gives
the same bytes.

Colours: unsigned maps in inferno, transparent where low (alpha rises with the value, so the X-ray
shows through where the map is weak); signed maps in blue-white-red, transparent at zero.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from PIL import Image
from scipy.ndimage import binary_erosion

from .figure_style import EXPERT_COLOUR

LEVELS = 32  # colour levels of a map thumbnail: a small palette, 25% smaller files than 64 on noisy maps


def palette(signed: bool) -> tuple[np.ndarray, np.ndarray]:
    """(LEVELS, 3) uint8 colours and (LEVELS,) uint8 alpha of the overlay palette."""
    t = (np.arange(LEVELS) + 0.5) / LEVELS
    rgb = colormaps["bwr" if signed else "inferno"](t)[:, :3]
    alpha = np.abs(t - 0.5) * 2 * 0.85 if signed else np.clip((t - 0.1) / 0.6, 0, 1) * 0.8
    return np.rint(rgb * 255).astype(np.uint8), np.rint(alpha * 255).astype(np.uint8)


def gradient(signed: bool, stops: int = 9) -> str:
    """A CSS linear-gradient of the palette (the legend's colour bar), with its alpha."""
    rgb, alpha = palette(signed)
    idx = np.linspace(0, LEVELS - 1, stops).round().astype(int)
    parts = [f"rgba({r},{g},{b},{a / 255:.2f}) {100 * k / (stops - 1):.0f}%"
             for k, (r, g, b), a in zip(range(stops), rgb[idx], alpha[idx])]
    return "linear-gradient(to right, " + ", ".join(parts) + ")"


def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True, **kw)
    return buf.getvalue()


def overlay_png(q: np.ndarray, signed: bool) -> bytes:
    """A quantised map (uint8, 0..255) as a palette PNG with per-level alpha."""
    rgb, alpha = palette(signed)
    img = Image.fromarray((q.astype(np.uint16) * LEVELS // 256).astype(np.uint8), "P")
    img.putpalette(rgb.reshape(-1).tolist())
    return _png(img, transparency=alpha.tobytes())


def xray_png(grey: np.ndarray) -> bytes:
    return _png(Image.fromarray(grey, "L"))


def contour_png(mask: np.ndarray) -> bytes | None:
    """The outline of a lesion mask as a 2-colour PNG (transparent, expert green); None when empty."""
    if not mask.any():
        return None
    edge = mask & ~binary_erosion(mask, border_value=0)
    img = Image.fromarray(edge.astype(np.uint8), "P")
    green = [int(EXPERT_COLOUR[i:i + 2], 16) for i in (1, 3, 5)]
    img.putpalette([0, 0, 0] + green)
    return _png(img, transparency=bytes([0, 255]))


def slug(name: str) -> str:
    """A file-name-safe form of a model or explainer name (registry names are already safe)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _write(path: Path, data: bytes) -> None:
    """A plain write: the whole folder is built aside and moved into place (html_report.write_html)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_thumbs(html: Path, stores: dict[str, dict[str, np.ndarray]], order: list[str]) -> dict:
    """Write every thumbnail under html/thumbs/ for the case ids in `order`; return
    {"xray": {id: path}, "mask": {id: path}, "maps": {model: {explainer: {id: path}}}} (paths
    relative to html/). An image's X-ray and contour come from the first model that stores it."""
    out: dict = {"xray": {}, "mask": {}, "maps": {}}
    number = {i: k for k, i in enumerate(order)}
    for model in sorted(stores):
        store = stores[model]
        ids = [str(i) for i in store["ids"]]
        for j, image_id in enumerate(ids):
            if image_id not in number or image_id in out["xray"]:
                continue
            stem = f"{number[image_id]:04d}.png"
            out["xray"][image_id] = f"thumbs/xray/{stem}"
            _write(html / out["xray"][image_id], xray_png(store["images"][j]))
            outline = contour_png(store["masks"][j])
            if outline is not None:
                out["mask"][image_id] = f"thumbs/mask/{stem}"
                _write(html / out["mask"][image_id], outline)
        per_model = out["maps"].setdefault(model, {})
        for i, e in enumerate(str(x) for x in store["explainers"]):
            per_model[e] = {}
            for j, image_id in enumerate(ids):
                if image_id not in number or not store["applicable"][i, j]:
                    continue
                rel = f"thumbs/{slug(model)}/{slug(e)}/{number[image_id]:04d}.png"
                _write(html / rel, overlay_png(store["maps"][i, j], bool(store["signed"][i])))
                per_model[e][image_id] = rel
    return out
