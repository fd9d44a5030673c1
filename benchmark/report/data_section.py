"""The report's "Data" section: what the run loaded per split role (manifest.json "data_summary")
as a table, and a preview grid of test images per class with their lesion and lung mask contours,
drawn from data_preview.npz in the run folder (written at load: images uint8 (N,H,W), lesion_masks,
has_mask, lung_masks bool, labels int, ids str)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from .figure_style import EXPERT_COLOUR, save, theme, titled

PREVIEW_FILE = "data_preview.npz"
PREVIEW_PER_LABEL = 4
LUNG_COLOUR = "#ff8c00"  # orange: apart from the green lesion contour on grey
LABEL_NAMES = {1: "pneumonia", 0: "normal"}
ROLE_ORDER = ("train", "val", "test")
# a generated image (the phantom) has no file size: the run's size stands in for it
SIZE_NOTE = {"generated": " (generated)", "mixed": " (some generated)"}
REPORT_IDS = 20  # ids listed in report.md; manifest.json lists all


def read_preview(run_dir: Path) -> dict[str, np.ndarray] | None:
    path = Path(run_dir) / PREVIEW_FILE
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _mask_state(has_mask: bool, lesion: np.ndarray) -> str:
    return "lesion: unannotated" if not has_mask else "lesion: empty" if not lesion.any() else "lesion: outlined"


def preview_figure(preview: dict[str, np.ndarray], stem: Path) -> list[Path] | None:
    """Rows: pneumonia, then normal; columns: up to PREVIEW_PER_LABEL test images of that label, each
    titled with its id and lesion mask state, the lesion contour green and the lung contour orange."""
    labels = preview["labels"]
    rows = [label for label in (1, 0) if (labels == label).any()]
    if not rows:
        return None
    ncols = max(int((labels == label).sum()) for label in rows)
    theme()
    fig, axes = plt.subplots(len(rows), ncols, figsize=(2.0 * ncols, 2.45 * len(rows)), squeeze=False)
    for r, label in enumerate(rows):
        members = np.flatnonzero(labels == label)
        for c in range(ncols):
            ax = axes[r][c]
            if c >= len(members):
                ax.axis("off")
                continue
            k = members[c]
            ax.imshow(preview["images"][k], cmap="gray", vmin=0, vmax=255)
            if preview["lung_masks"][k].any():
                ax.contour(preview["lung_masks"][k], [0.5], colors=LUNG_COLOUR, linewidths=0.8)
            if preview["lesion_masks"][k].any():
                ax.contour(preview["lesion_masks"][k], [0.5], colors=EXPERT_COLOUR, linewidths=0.9)
            ax.set_title(f"{preview['ids'][k]}\n{_mask_state(bool(preview['has_mask'][k]), preview['lesion_masks'][k])}",
                         fontsize=6)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(LABEL_NAMES.get(int(label), str(label)), fontsize=8)
    titled(fig, "Test images per class\ngreen: lesion mask, orange: lung mask")
    fig.subplots_adjust(hspace=0.28)  # room for the two-line panel titles under the row above
    return save(fig, stem)


def _row(name: str, roles: dict[str, dict], cell) -> str:
    return f"| {name} | " + " | ".join(str(cell(s)) for s in roles.values()) + " |"


def summary_markdown(summary: dict[str, Any]) -> list[str]:
    """The table of the data summary (one column per role) and the ids worth a look."""
    given = summary.get("roles", {})
    # manifest.json sorts its keys: put the roles back in the order a run uses them
    roles = {r: given[r] for r in sorted(given, key=lambda r: (ROLE_ORDER.index(r) if r in ROLE_ORDER else 3, r))}
    if not roles:
        return []
    def size(s: dict, axis: str) -> str:
        lo, hi = s["original_size"][f"min_{axis}"], s["original_size"][f"max_{axis}"]
        return (str(lo) if lo == hi else f"{lo}–{hi}") + SIZE_NOTE.get(s["original_size"]["source"], "")

    lines = ["| | " + " | ".join(roles) + " |", "|---|" + "---|" * len(roles),
             _row("split", roles, lambda s: f"`{s['split']}`"),
             _row("images", roles, lambda s: s["images"]),
             _row("pneumonia / normal", roles, lambda s: f"{s['labels']['pneumonia']} / {s['labels']['normal']}"),
             _row("lesion masks non-empty / empty / unannotated", roles,
                  lambda s: "{non_empty} / {empty} / {unannotated}".format(**s["lesion_masks"])),
             _row("pneumonia with an empty lesion mask", roles, lambda s: s["lesion_masks"]["empty_on_pneumonia"]),
             _row("lung masks", roles, lambda s: s["lung_masks"]["present"]),
             _row("original height (px)", roles, lambda s: size(s, "h")),
             _row("original width (px)", roles, lambda s: size(s, "w")),
             _row("bit depth", roles, lambda s: ", ".join(map(str, s["bit_depths"]))),
             _row("skipped files", roles, lambda s: s["skipped"]), ""]
    for role, s in roles.items():
        ids = s["lesion_masks"]["empty_on_pneumonia_ids"]
        if ids:
            more = f", … ({len(ids) - REPORT_IDS} more in `manifest.json`)" if len(ids) > REPORT_IDS else ""
            lines.append(f"- {role}: pneumonia images with an empty lesion mask (legal, not scored for localisation): "
                         + ", ".join(f"`{i}`" for i in ids[:REPORT_IDS]) + more)
    return lines + [""] if lines[-1] != "" else lines


def data_lines(run_dir: Path, rep: Path, manifest: dict, pool, notes: list[str]) -> list[str]:
    """The "## Data" section of report.md: the summary table (the older `data_counts` table for a run
    folder without one) and the preview figure, drawn through the report's figure pool."""
    lines = ["## Data\n"]
    summary = manifest.get("data_summary")
    if summary:
        lines += [f"What the run loaded from `{summary.get('dataset', '?')}`, per split role (train: trains the "
                  "models; val: selects; test: scored).\n", *summary_markdown(summary)]
    else:
        counts = manifest.get("data_counts", {})
        lines += ["| " + " | ".join(counts) + " |", "|" + "---|" * len(counts),
                  "| " + " | ".join(str(v) for v in counts.values()) + " |", ""]
    preview = read_preview(run_dir)
    drawn = pool.submit(preview_figure, preview, rep / "data-preview").result() if preview is not None else None
    if drawn:
        lines += ["![test images per class](data-preview.png)  \n[PDF](data-preview.pdf)\n"]
    else:
        notes.append(f"- data preview: not drawn, the run folder has no `{PREVIEW_FILE}`.")
    return lines
