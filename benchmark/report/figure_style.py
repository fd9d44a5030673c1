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
# the overlay and case grids (many small X-ray panels): their PNG at 120 dpi is a third of the bytes
# and still shows each panel at least at a 64-px run's resolution; their PDF keeps the full image
GRID_DPI = 120
MARKERS = ("o", "s", "^", "D")
HEADLINE = ("gradcam", "lrp", "lime")
BASE_MARKERS = ("s", "^", "D", "v", "P", "X")
GREYS = ((0.0, 0.0, 0.0), (0.33, 0.33, 0.33), (0.55, 0.55, 0.55))
LINESTYLES = ("-", "--", "-.", ":")
# Okabe-Ito and Paul Tol colours, no grey (greys mark the baselines) and none lighter than sand (markers
# on white), ordered greedily so each next colour is as far as possible (CIE Lab distance, also under
# simulated protanopia and deuteranopia) from all before it: the default run's three methods get blue,
# orange and dark green; the package's eight methods stay apart for colour-blind readers too (tested in
# tests/benchmark/test_figures_paper.py). Seaborn's "colorblind" palette gave EigenCAM and LRP two oranges
# that deuteranopes cannot tell apart. A tenth method repeats a colour with another marker.
METHOD_COLOURS = ("#0072B2", "#E69F00", "#117733", "#882255", "#332288", "#88CCEE", "#44AA99", "#DDCC77",
                  "#D55E00")
# no timestamps or software versions in the files: same tables, same bytes
PNG_METADATA = {"Software": None}
PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}
EXPERT_COLOUR, REGION_COLOUR = "#00ff00", "#00e5ff"


def explainer_styles(names) -> dict[str, dict]:
    """{name: {"color", "marker", "linestyle"}}, fixed per name across all figures and runs.

    Explanation methods take METHOD_COLOURS by their position among the method names: gradcam, lrp,
    lime first, then the package's other explainers sorted, then plug-ins sorted (so a plug-in never
    moves a built-in's colour); solid lines, round markers; past the palette's length colours repeat
    with another marker and line style. The baselines (roles.is_baseline: the floor and ceiling a reader
    compares against) take shades of grey with their own markers and dashed or dotted lines."""
    from cxr_xai_bench.explainers import EXPLAINERS

    from .roles import is_baseline as baseline  # one rule for tables, verdicts and figures

    universe = set(EXPLAINERS) | set(names)
    # the default run's methods first, so they get the three most distinct colours
    methods = sorted((n for n in universe if not baseline(n)), key=lambda n: (
        n not in HEADLINE, HEADLINE.index(n) if n in HEADLINE else 0, not _built_in(EXPLAINERS.get(n)), n))
    bases = sorted(n for n in universe if baseline(n))
    palette = [matplotlib.colors.to_rgb(c) for c in METHOD_COLOURS]
    out = {}
    for name in names:
        if baseline(name):
            j = bases.index(name)
            out[name] = {"color": GREYS[j % len(GREYS)], "marker": BASE_MARKERS[j % len(BASE_MARKERS)],
                         "linestyle": ("--", ":")[j % 2]}
        else:
            i = methods.index(name)
            lap = i // len(palette)
            out[name] = {"color": palette[i % len(palette)], "marker": MARKERS[lap % len(MARKERS)],
                         "linestyle": LINESTYLES[lap % len(LINESTYLES)]}
    return out


def _built_in(cls) -> bool:
    """Whether an explainer class is one of this package's (a plug-in's module lives elsewhere)."""
    return cls is not None and cls.__module__.startswith("cxr_xai_bench.")


def theme() -> None:
    sns.set_theme(style="whitegrid", context="paper", font_scale=0.9)
    plt.rcParams["svg.hashsalt"] = "cxr-xai-bench"
    plt.rcParams["pdf.fonttype"] = 42


def save(fig, stem: Path, formats: tuple[str, ...] = ("png", "pdf"), tight: bool = True, dpi: int = DPI) -> list[Path]:
    """Save `fig` as stem.png and stem.pdf (atomically, fixed metadata) and close it; `tight` crops to
    the drawn content, else the file keeps the figure's size in inches (a paper's column or page);
    `dpi` of the PNG (the PDF keeps every image at its own resolution)."""
    stem = Path(stem)
    paths = []
    for ext in formats:
        path = stem.with_suffix("." + ext)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight" if tight else None, format=ext,
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
