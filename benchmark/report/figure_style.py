"""Figure style shared by every figure of the report: one colour-blind-safe style per explainer,
fixed by its name (see explainer_styles), the same in every figure and every run; PNG (dpi 200) and
vector PDF saved with fixed metadata, so rebuilding a figure from the same tables gives
byte-identical files.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from ..store.files import atomic_path  # noqa: E402

DPI = 200
MARKERS = ("o", "s", "^", "D")
HEADLINE = ("gradcam", "lrp", "lime")
BASE_MARKERS = ("s", "^", "D", "v", "P", "X")
GREYS = ((0.0, 0.0, 0.0), (0.33, 0.33, 0.33), (0.55, 0.55, 0.55))
LINESTYLES = ("-", "--", "-.", ":")
# no timestamps or software versions in the files: same tables, same bytes
PNG_METADATA = {"Software": None}
PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}
EXPERT_COLOUR, REGION_COLOUR = "#00ff00", "#00e5ff"


def explainer_styles(names) -> dict[str, dict]:
    """{name: {"color", "marker", "linestyle"}}, fixed per name across all figures and runs.

    Explanation methods take seaborn's colour-blind-safe palette by their position among the method
    names (gradcam, lrp, lime first, then sorted) (solid lines, round markers); the baselines of explainers/baselines.py (the floor and
    ceiling a reader compares against) take shades of grey with their own markers and dashed lines, so
    the ten colours suffice for the methods."""
    from cxr_xai_bench.explainers import EXPLAINERS

    from .roles import is_baseline as baseline  # one rule for tables, verdicts and figures

    universe = set(EXPLAINERS) | set(names)
    # the default run's methods first, so they get the three most distinct colours
    methods = sorted((n for n in universe if not baseline(n)), key=lambda n: (n not in HEADLINE, HEADLINE.index(n)
                                                                              if n in HEADLINE else 0, n))
    bases = sorted(n for n in universe if baseline(n))
    # grey (palette index 7) goes last: greys mark the baselines
    palette = [sns.color_palette("colorblind", 10)[k] for k in (0, 1, 2, 3, 4, 5, 6, 8, 9, 7)]
    out = {}
    for name in names:
        if baseline(name):
            j = bases.index(name)
            out[name] = {"color": GREYS[j % len(GREYS)], "marker": BASE_MARKERS[j % len(BASE_MARKERS)],
                         "linestyle": ("--", ":")[j % 2]}
        else:
            i = methods.index(name)
            out[name] = {"color": palette[i % 10], "marker": MARKERS[(i // 10) % len(MARKERS)],
                         "linestyle": LINESTYLES[(i // 10) % len(LINESTYLES)]}
    return out


def theme() -> None:
    sns.set_theme(style="whitegrid", context="paper", font_scale=0.9)
    plt.rcParams["svg.hashsalt"] = "cxr-xai-bench"
    plt.rcParams["pdf.fonttype"] = 42


def save(fig, stem: Path, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Save `fig` as stem.png and stem.pdf (atomically, fixed metadata) and close it."""
    stem = Path(stem)
    paths = []
    for ext in formats:
        path = stem.with_suffix("." + ext)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format=ext,
                        metadata=PNG_METADATA if ext == "png" else PDF_METADATA)
        paths.append(path)
    plt.close(fig)
    return paths


def legend_right_and_save(fig, axes, stem: Path) -> list[Path]:
    """One legend for all panels (every panel draws the same explainers), right of the figure."""
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=6, frameon=False)
    fig.tight_layout()
    return save(fig, stem)


def panels(keys: list, ncols: int, w: float, h: float):
    fig, axes = plt.subplots(len(keys), ncols, figsize=(w * ncols, h * len(keys)), squeeze=False)
    return fig, axes


def titled(fig, text: str) -> None:
    """Suptitle above the panels: reserve its lines so it never covers the panel titles."""
    fig.suptitle(text, fontsize=8, y=1.0, va="top")
    lines = text.count("\n") + 1
    # in inches: an 8 pt line is about 0.14 in; the rest is padding above the first panel title
    fig.tight_layout(rect=(0, 0, 1, 1 - (0.13 * lines + 0.06) / fig.get_figheight()))
