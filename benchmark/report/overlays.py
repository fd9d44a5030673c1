"""Overlay figures: heat maps over the X-rays with the expert lesion contour and the explainer's
own Otsu region (the same images for every explainer), and best / median / worst cases per explainer.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from skimage.filters import threshold_otsu

from .figure_style import EXPERT_COLOUR, GRID_DPI, REGION_COLOUR, save, theme, titled


def own_region(heat: np.ndarray) -> np.ndarray:
    """The explainer's own segmentation as cheXlocalize draws it: Otsu's threshold on the min-max
    normalised map (empty for a constant map)."""
    lo, hi = float(heat.min()), float(heat.max())
    if hi <= lo:
        return np.zeros(heat.shape, dtype=bool)
    norm = (heat - lo) / (hi - lo)
    return norm > threshold_otsu(norm)


def draw_cell(ax, image: np.ndarray, mask: np.ndarray, heat: np.ndarray | None, signed: bool,
              region: bool = True) -> None:
    """The X-ray in grey, the heat map over it (diverging if signed), the expert lesion contour
    (solid green) and the explainer's own Otsu region (dashed cyan)."""
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    if heat is not None:
        if signed:
            lim = float(np.abs(heat).max()) or 1.0
            ax.imshow(heat, cmap="bwr", vmin=-lim, vmax=lim, alpha=0.55)
        else:
            lo, hi = float(heat.min()), float(heat.max())
            ax.imshow((heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat), cmap="inferno", vmin=0, vmax=1, alpha=0.55)
        own = own_region(heat) if region else None
        if own is not None and own.any() and not own.all():
            ax.contour(own, [0.5], colors=REGION_COLOUR, linewidths=0.8, linestyles="dashed")
    if mask.any():
        ax.contour(mask, [0.5], colors=EXPERT_COLOUR, linewidths=0.9)
    ax.set_xticks([])
    ax.set_yticks([])


_LEGEND = "green: expert lesion mask\ndashed cyan: the explainer's Otsu region"


def case_figure(cases: dict[str, np.ndarray], title: str, stem: Path) -> list[Path] | None:
    """Rows: explainers; columns: each one's best, median and worst image by the case metric."""
    names = [str(e) for e in cases["explainers"]]
    pick = cases["pick_index"]
    rows = [i for i in range(len(names)) if (pick[i] >= 0).any()]
    if not rows:
        return None
    theme()
    metric = str(cases["case_metric"])
    fig, axes = plt.subplots(len(rows), 3, figsize=(2.0 * 3, 2.0 * len(rows)), squeeze=False)
    for r, i in enumerate(rows):
        for j, label in enumerate(("best", "median", "worst")):
            ax = axes[r][j]
            k = pick[i, j]
            if k < 0:
                ax.axis("off")
                continue
            draw_cell(ax, cases["images"][k], cases["masks"][k], cases["pick_maps"][i, j], bool(cases["signed"][i]))
            ax.set_title(f"{label} {cases['ids'][k]}\n{metric} {cases['pick_value'][i, j]:.2f}", fontsize=6)
        axes[r][0].set_ylabel(names[i], fontsize=8)
    left_out = [names[i] for i in range(len(names)) if i not in rows]
    note = f"\nno finite {metric} (left out): {', '.join(left_out)}" if left_out else ""
    titled(fig, f"{title}\n{_LEGEND}{note}")
    return save(fig, stem, dpi=GRID_DPI)


def overlay_figure(cases: dict[str, np.ndarray], title: str, stem: Path) -> list[Path] | None:
    """Rows: the X-ray, then every explainer; columns: the same lesion images for all."""
    idx = cases["overlay_index"]
    if len(idx) == 0:
        return None
    theme()
    names = [str(e) for e in cases["explainers"]]
    n = len(idx)
    fig, axes = plt.subplots(len(names) + 1, n, figsize=(1.9 * n, 1.9 * (len(names) + 1)), squeeze=False)
    for j, k in enumerate(idx):
        draw_cell(axes[0][j], cases["images"][k], cases["masks"][k], None, False)
        axes[0][j].set_title(str(cases["ids"][k]), fontsize=6)
        for i, name in enumerate(names, start=1):
            draw_cell(axes[i][j], cases["images"][k], cases["masks"][k], cases["overlay_maps"][i - 1, j], bool(cases["signed"][i - 1]))
    for i, name in enumerate(["X-ray"] + names):
        axes[i][0].set_ylabel(name, fontsize=8)
    titled(fig, f"{title}\n{_LEGEND}")
    return save(fig, stem, dpi=GRID_DPI)
