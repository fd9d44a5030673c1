"""Paper tables fit their declared width: compiled with pdflatex (booktabs, graphicx) in a minimal
document of that width, the log has no overfull box. Skipped only where pdflatex is missing and
CXR_REQUIRE_LATEX is unset (CI sets it, so a missing TeX fails there): the `pdflatex` fixture of conftest."""
import os

import numpy as np
import pandas as pd
import pytest

from benchmark.metrics import METRICS
from benchmark.report import latex
from benchmark.report.stats import paired_tests, summarise

EXPLAINERS = ("gradcam", "lrp", "lime", "integrated_gradients", "sobel", "random", "center", "lung_prior",
              "mask_prior", "oracle")


def _wide_run(metrics=None, models=("vgg16_bn", "resnet50"), n=12):
    """Every registered metric, ten explainers, two models: the widest tables a run makes."""
    rng = np.random.default_rng(0)
    rows = []
    for model in models:
        for k, e in enumerate(EXPLAINERS):
            for m in metrics or sorted(METRICS):
                scale = 100.0 if m == "peak_memory_mb" else 1.0
                v = (rng.random(n) + 0.1 * k) * scale
                if e == "lrp" and m == "iou":
                    v[0] = np.nan  # a failure: the footnote
                rows += [dict(dataset="phantom", split="test", model=model, explainer=e, metric=m, image_id=str(i),
                              value=x) for i, x in enumerate(v)]
    scores = pd.DataFrame(rows)
    return summarise(scores, 50), paired_tests(scores, 50)


@pytest.fixture(scope="module")
def wide():
    return _wide_run()


@pytest.mark.parametrize("width", ["columnwidth", "textwidth"])
def test_tables_fit_their_width_without_scaling(wide, width, tmp_path, pdflatex):
    """The width estimate alone keeps every block inside the width at \\footnotesize: nothing scaled."""
    summary, tests = wide
    for name, text in (("leaderboard", latex.leaderboard_tex(summary, tests, width=width)),
                       ("all", latex.combined_tex(summary, tests, width=width))):
        assert latex.declared_width(text) == width
        assert ("\\begin{table*}" in text) == (width == "textwidth")
        assert not latex.SCALING.search(text), name
        assert latex.compile_check(text, tmp_path / name) == [], name


def test_blocks_split_columns_and_repeat_row_labels():
    assert latex.chunks([50.0] * 5, 60.0, 240.0) == [[0, 1], [2, 3], [4]]
    assert latex.chunks([500.0, 10.0], 60.0, 240.0) == [[0], [1]]  # one too-wide column still gets a block
    summary, tests = _wide_run(["pointing_game", "relevance_mass", "iou", "dice"], ("m",))
    text = latex.leaderboard_tex(summary, tests, width="columnwidth")
    assert text.count("\\begin{tabular}{") >= 2 and "\\par\\medskip" in text
    assert "$\\pm$" in text and "\\textbf{" in text and "$^{\\ast}$" in text  # compact cell, best, failure
    with pytest.raises(ValueError, match="latex_width"):
        latex.leaderboard_tex(summary, tests, width="pagewidth")


def test_every_tex_of_a_report_compiles_without_overfull_boxes(tmp_path, pdflatex):
    """The .tex files build_report writes, at the width the config declares."""
    import sys
    sys.path.insert(0, os.path.dirname(__file__))
    from test_report import _run_dir
    from benchmark.report.build import build_report
    import tomli_w
    import tomllib
    run = _run_dir(tmp_path / "run", extras=False)
    cfg = tomllib.loads((run / "config.toml").read_text())
    cfg["report"]["latex_width"] = "columnwidth"
    cfg["report"]["labels"] = {"gradcam": "Grad-CAM (ours)", "tiny_a": "Tiny A"}  # report.labels reach every table
    (run / "config.toml").write_text(tomli_w.dumps(cfg))
    build_report(run)
    texs = sorted((run / "report").glob("*.tex"))
    assert [p.name for p in texs] == ["leaderboard.tex", "leaderboard_all.tex"]
    for p in texs:
        text = p.read_text()
        assert latex.declared_width(text) == "columnwidth"
        assert "Grad-CAM (ours) &" in text and "Tiny A" in text and "Oracle (expert mask) &" in text, p.name
        assert latex.compile_check(text, tmp_path / p.stem) == [], p.name
    for name in ("leaderboard.md", "leaderboard_all.md", "ranks.md"):
        board = (run / "report" / name).read_text()
        assert "| Grad-CAM (ours) |" in board and "| gradcam |" not in board and "Tiny A" in board, name
    assert "gradcam" in set(pd.read_csv(run / "report" / "leaderboard.csv")["explainer"])


def test_the_check_sees_a_table_wider_than_its_width_and_refuses_scaling(tmp_path, pdflatex):
    """compile_check can fail: a block 300 pt wide in a 240 pt column is an overfull box; a scaled one is refused."""
    wide = ("% declared width: \\columnwidth\n\\begin{table}\\centering\\footnotesize\n"
            "\\begin{tabular}{lc}\\toprule a & \\rule{300pt}{1pt} \\\\ \\bottomrule\\end{tabular}\n\\end{table}")
    assert latex.compile_check(wide, tmp_path / "wide") != []
    assert latex.compile_check(wide.replace("300pt", "150pt"), tmp_path / "fits") == []
    with pytest.raises(ValueError, match="scaled"):
        latex.compile_check(wide.replace("\\begin{tabular}", "\\resizebox{\\linewidth}{!}{\\begin{tabular}"),
                            tmp_path / "scaled")
