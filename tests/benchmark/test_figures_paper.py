"""The paper's leaderboard figures (benchmark/report/paper_figures.py) and the method colours
(figure_style.explainer_styles): size in inches, methods as rows with display names, baselines as
reference lines, no-headroom panels, one scale per figure, distinct colours, byte-identical rebuilds."""
from __future__ import annotations

import itertools
import struct
from concurrent.futures import Future
from pathlib import Path

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest

METHODS = {"gradcam": 0.6, "lrp": 0.5, "lime": 0.3}
BASELINES = {"random": 0.2, "sobel": 0.35, "oracle": 0.95}
METRICS = ("pointing_game", "relevance_mass", "iou", "deletion_auc", "insertion_auc", "randomisation_spearman",
           "seconds_per_image")


def _summary() -> pd.DataFrame:
    """Two models; LIME without the sanity metric; the oracle without runtime; deletion without headroom."""
    rows = []
    for model, shift in (("vgg16_bn", 0.0), ("resnet50", 0.05)):
        for metric in METRICS:
            for e, level in {**METHODS, **BASELINES}.items():
                if (e == "lime" and metric == "randomisation_spearman") or (e == "oracle" and metric == "seconds_per_image"):
                    continue
                mean = level + shift if metric != "seconds_per_image" else 10 ** (-4 + 4 * level)
                rows.append(dict(dataset="phantom", model=model, explainer=e, metric=metric, n=20, mean=mean,
                                 ci_low=mean * 0.9, ci_high=mean * 1.1, judged=metric != "deletion_auc"))
    return pd.DataFrame(rows)


@pytest.fixture
def drawn(monkeypatch):
    """{stem name: the Figure} of every figure paper_figures saves, saved as well."""
    from benchmark.report import paper_figures
    figs, save = {}, paper_figures.save

    def recording_save(fig, stem, **kw):
        figs[Path(stem).name] = fig
        return save(fig, stem, **kw)

    monkeypatch.setattr(paper_figures, "save", recording_save)
    return figs


def _png_size(path: Path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])  # the IHDR chunk: width, height


def test_main_figure_keeps_its_size_in_inches(tmp_path):
    """Seen failing when save() cropped to the content (tight=True): 1434 px wide, not 1400."""
    from benchmark.report import paper_figures as pf
    from benchmark.report.figure_style import DPI
    pf.main_figure(_summary(), tmp_path / "main-figure")
    pf.main_figure(_summary(), tmp_path / "main-figure-column", width=pf.COLUMN_WIDTH)
    assert _png_size(tmp_path / "main-figure.png")[0] == round(7.0 * DPI)
    assert _png_size(tmp_path / "main-figure-column.png")[0] == round(3.4 * DPI)
    assert b"/MediaBox [ 0 0 504 " in (tmp_path / "main-figure.pdf").read_bytes()  # 7.0 in = 504 pt


def test_main_figure_methods_are_rows_baselines_are_lines(tmp_path, drawn):
    """Seen failing when every explainer was a row (roles.split dropped: baselines among the tick
    labels) and when rows showed internal names (`gradcam`)."""
    from benchmark.report import paper_figures as pf
    from benchmark.report.figure_style import explainer_styles
    summary = _summary()
    pf.main_figure(summary, tmp_path / "main-figure")
    fig = drawn["main-figure"]
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    # localisation then faithfulness (the sanity and runtime metrics are in their category figures)
    assert [ax.get_title() for ax in axes[:6]] == ["Pointing game ↑", "Relevance mass ↑", "IoU ↑", "Deletion AUC ↓",
                                                   "Insertion AUC ↑", "Pointing game ↑"]
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["Grad-CAM", "LIME", "LRP"]
    assert [ax.get_ylabel() for ax in axes[::5]] == ["ResNet50", "VGG16-BN"]
    styles = explainer_styles(list(METHODS) + list(BASELINES))
    first = summary[(summary.model == "resnet50") & (summary.metric == "pointing_game")].set_index("explainer")["mean"]
    vertical = {round(line.get_xdata()[0], 6): line.get_color() for line in axes[0].get_lines()
                if len(line.get_xdata()) == 2 and line.get_xdata()[0] == line.get_xdata()[1]}
    for b in BASELINES:  # a grey vertical line at the baseline's mean
        assert mcolors.to_rgb(vertical[round(first[b], 6)]) == mcolors.to_rgb(styles[b]["color"]), b
    points = {round(float(line.get_xdata()[0]), 6): mcolors.to_rgb(line.get_color()) for line in axes[0].get_lines()
              if len(line.get_xdata()) == 1 and line.get_marker() not in ("None", None)}
    for m in METHODS:  # each method's point in its own colour
        assert points[round(first[m], 6)] == mcolors.to_rgb(styles[m]["color"]), m
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["Oracle (expert mask)", "Random", "Sobel edges"]


def test_no_headroom_panels_are_greyed_and_labelled(tmp_path, drawn):
    """Seen failing when _panel ignored `judged` (every panel white, no label)."""
    from benchmark.report import paper_figures as pf
    pf.main_figure(_summary(), tmp_path / "main-figure")
    for ax in drawn["main-figure"].axes:
        if not ax.axison:
            continue
        unjudged = ax.get_title().startswith("Deletion AUC")
        assert (ax.get_xlabel() == pf.NO_HEADROOM) == unjudged, ax.get_title()
        assert (mcolors.to_rgb(ax.get_facecolor()) != (1.0, 1.0, 1.0)) == unjudged, ax.get_title()


def test_main_metrics_prefer_the_fixed_list_and_fall_back_to_a_categorys_first():
    """Seen failing when the fallback returned nothing for a category without a preferred metric."""
    from benchmark.report.paper_figures import main_metrics
    assert main_metrics(["dice", "iou", "pixel_auroc", "relevance_rank", "faithfulness_correlation", "deletion_auc",
                         "seconds_per_image"]) == ["iou", "pixel_auroc", "dice", "deletion_auc",
                                                   "faithfulness_correlation"]
    assert main_metrics(["relevance_rank", "top_k_intersection", "lung_mass", "pixel_auprc"]) == [
        "relevance_rank", "top_k_intersection", "lung_mass"]
    assert main_metrics(["seconds_per_image"]) == []  # runtime only: no main figure


def test_category_figures_one_scale_each_and_no_empty_rows(tmp_path, drawn):
    """Seen failing when runtime's panels were linear (LOG_CATEGORIES emptied) and when every figure
    took its rows from all methods of the summary (an empty LIME row in the sanity figure)."""
    from benchmark.report import paper_figures as pf
    summary = _summary()
    cats = pf.categories(summary)
    assert cats == ["faithfulness", "localisation", "sanity", "runtime"]
    for cat in cats:
        pf.category_figure(summary, cat, tmp_path / f"leaderboard-{cat}")
        axes = [ax for ax in drawn[f"leaderboard-{cat}"].axes if ax.axison]
        assert {ax.get_xscale() for ax in axes} == ({"log"} if cat == "runtime" else {"linear"}), cat
        rows = [t.get_text() for t in axes[0].get_yticklabels()]
        assert rows == (["Grad-CAM", "LRP"] if cat == "sanity" else ["Grad-CAM", "LIME", "LRP"]), cat
    assert _png_size(tmp_path / "leaderboard-runtime.png")[0] == round(7.0 * 200)


def test_figures_rebuild_byte_identical(tmp_path, monkeypatch):
    """Seen failing when save() dropped PDF_METADATA: the PDF then carries SOURCE_DATE_EPOCH's date."""
    from benchmark.report import paper_figures as pf
    for k, epoch in enumerate(("0", "86400")):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)  # a creation date would differ between the two
        (tmp_path / str(k)).mkdir()
        pf.main_figure(_summary(), tmp_path / str(k) / "main-figure")
        pf.category_figure(_summary(), "runtime", tmp_path / str(k) / "leaderboard-runtime")
    for name in ("main-figure.png", "main-figure.pdf", "leaderboard-runtime.png", "leaderboard-runtime.pdf"):
        assert (tmp_path / "0" / name).read_bytes() == (tmp_path / "1" / name).read_bytes(), name


def test_markdown_puts_the_main_figure_first_then_categories():
    """Seen failing when the figures were listed in the order drawn (a category before the main figure)."""
    from benchmark.report.paper_figures import markdown

    def done(paths):
        f = Future()
        f.set_result(paths)
        return f
    figures = {"leaderboard-localisation": done([Path("leaderboard-localisation.png")]), "curves": done([Path("c.png")]),
               "main-figure": done([Path("main-figure.png")]), "main-figure-column": done([Path("main-figure-column.png")]),
               "leaderboard-runtime": None}
    files: list[Path] = []
    lines = markdown(figures, files)
    assert lines[0].startswith("![main figure") and "(leaderboard-localisation.png)" in lines[2] and len(lines) == 3
    assert [p.name for p in files] == ["main-figure.png", "main-figure-column.png", "leaderboard-localisation.png"]


# --- colours ---------------------------------------------------------------------------------------------

def _lab(rgb) -> np.ndarray:
    """CIE L*a*b* (D65) of an sRGB colour."""
    c = np.asarray(rgb, dtype=float)
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ lin
    f = np.cbrt(xyz / np.array([0.95047, 1.0, 1.08883]))
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


# Machado, Oliveira and Fernandes (2009), severity 1, in linear RGB
PROTANOPIA = np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]])
DEUTERANOPIA = np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]])


def _seen(rgb, matrix) -> np.ndarray:
    c = np.asarray(rgb, dtype=float)
    lin = np.clip(matrix @ np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4), 0, 1)
    return np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)


def _closest(colours, matrix=None) -> float:
    see = (lambda c: c) if matrix is None else (lambda c: _seen(c, matrix))
    return min(float(np.linalg.norm(_lab(see(a)) - _lab(see(b)))) for a, b in itertools.combinations(colours, 2))


def test_every_method_has_its_own_colour_also_for_colour_blind_readers():
    """Seen failing with seaborn's "colorblind" palette: EigenCAM's and LRP's oranges 12.6 apart under
    deuteranopia, two pinks 20.7 apart in normal vision."""
    from cxr_xai_bench.explainers import EXPLAINERS

    from benchmark.report.figure_style import GREYS, METHOD_COLOURS, explainer_styles
    from benchmark.report.roles import is_baseline
    registered = sorted(EXPLAINERS)
    methods = [n for n in registered if not is_baseline(n)]
    styles = explainer_styles(registered + ["smoothgrad"])  # a typical plug-in fills the palette's ninth colour
    colours = [styles[m]["color"] for m in methods + ["smoothgrad"]]
    assert len(colours) <= len(METHOD_COLOURS) and _closest(colours) >= 30  # CIE76: clearly different hues
    builtin = [styles[m]["color"] for m in methods]
    assert min(_closest(builtin, PROTANOPIA), _closest(builtin, DEUTERANOPIA)) >= 20
    headline = [styles[m]["color"] for m in ("gradcam", "lrp", "lime")]
    assert min(_closest(headline, PROTANOPIA), _closest(headline, DEUTERANOPIA)) >= 35
    assert not {tuple(c) for c in colours} & {tuple(g) for g in GREYS}  # greys are the baselines'
    many = explainer_styles(methods + [f"plugin_{k}" for k in range(6)])  # past the palette: a new marker
    assert len({(tuple(s["color"]), s["marker"]) for s in many.values()}) == len(many)


def test_a_plugin_never_moves_a_built_in_colour():
    """Seen failing when plug-ins sorted among the built-ins: `aaa_plugin` took EigenCAM's colour."""
    from benchmark.report.figure_style import explainer_styles
    alone = explainer_styles(["eigencam", "gradcam_pp", "occlusion"])
    with_plugin = explainer_styles(["aaa_plugin", "eigencam", "gradcam_pp", "occlusion"])
    for name in alone:
        assert alone[name] == with_plugin[name], name
