"""Rules of the paper tables (issue 32) on constructed summaries: display names (report.labels over the
defaults; the CSV keeps internal names), fixed decimals and runtime units without scientific notation,
Markdown tables of at most board_format.MAX_COLUMNS columns with the methods' block first, and LaTeX
without any scaling."""
import re

import numpy as np
import pandas as pd

from benchmark.metrics import METRICS
from benchmark.report import board_format as bf, latex
from benchmark.report.combined import combined_markdown
from benchmark.report.stats import friedman, paired_tests, summarise
from benchmark.report.tables import leaderboard_markdown, rank_markdown, write_tables

SCIENTIFIC = re.compile(r"\d[eE][-+]?\d")
METHODS = ("gradcam", "integrated_gradients", "lrp")
BASELINES = ("oracle", "random")


def _scores(values: dict[tuple[str, str], np.ndarray], models=("vgg16_bn",)) -> pd.DataFrame:
    rows = []
    for model in models:
        for (e, m), v in values.items():
            rows += [dict(dataset="phantom", split="test", model=model, explainer=e, metric=m, image_id=f"i{k}", value=x)
                     for k, x in enumerate(v)]
    return pd.DataFrame(rows)


def _tables(scores: pd.DataFrame, labels=None) -> tuple[str, str, str]:
    summary, tests = summarise(scores, 50), paired_tests(scores, 50)
    return (leaderboard_markdown(summary, 0.95, tests, labels=labels), combined_markdown(summary, tests, labels=labels),
            latex.leaderboard_tex(summary, tests, labels=labels) + latex.combined_tex(summary, tests, labels=labels))


def test_display_names_in_markdown_and_latex_internal_names_in_the_csv(tmp_path):
    rng = np.random.default_rng(0)
    scores = _scores({(e, "deletion_auc"): rng.random(6) for e in METHODS + BASELINES})
    md, side, tex = _tables(scores, {"gradcam": "GC (ours)"})
    for text in (md, side):
        names = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ") and "---" not in line]
        assert [n for n in names if n != "explainer"] == ["GC (ours)", "Integrated Gradients", "LRP",
                                                          "*Baselines (reference)*", "Oracle (expert mask)", "Random"]
    assert "| explainer | Deletion AUC ↓ |" in md and "VGG16-BN: Deletion AUC ↓" in side
    assert "### VGG16-BN on phantom: Faithfulness" in md
    assert "GC (ours) &" in tex and "Integrated Gradients &" in tex and "Deletion AUC" in tex and "VGG16-BN" in tex
    for internal in ("gradcam", "integrated", "deletion_auc", "vgg16_bn", "lrp"):
        assert internal not in md.split("\n", 1)[1] + side, internal
        assert internal not in tex.replace("declared width", ""), internal
    summary = summarise(scores, 50)
    write_tables(summary, tmp_path, 0.95, labels={"gradcam": "GC (ours)"})
    assert set(pd.read_csv(tmp_path / "leaderboard.csv")["explainer"]) == set(METHODS + BASELINES)


def test_fixed_decimals_runtime_units_and_no_scientific_notation():
    # means of -0.00531 (printed "%.3g" before: -0.00531) and 2.21e-05 s per image
    scores = _scores({**{(e, "relevance_mass"): np.full(4, -0.00531 + 0.001 * k) for k, e in enumerate(METHODS)},
                      **{(e, "seconds_per_image"): np.array([2.0e-05, 2.2e-05, 2.2e-05, 2.44e-05]) * (k + 1)
                         for k, e in enumerate(METHODS)}})
    md, side, tex = _tables(scores)
    for text in (md, side, tex):
        assert not SCIENTIFIC.search(text), SCIENTIFIC.search(text)
    assert "Time per image (µs) ↓" in md and "image ($\\mu$s)" in tex  # stacked head: "Time per" / "image (µs)"
    row = "".join(line for line in md.splitlines() if line.startswith("| Grad-CAM |"))  # two tables
    assert "| -0.005 [-0.005, -0.005] (n=4) |" in row and "| **22.1 [" in row  # 3 decimals; 3 digits of µs
    lrp = "".join(line for line in md.splitlines() if line.startswith("| LRP |"))
    assert "| 66.3 [" in lrp  # one unit per column
    assert "-0.005{\\scriptsize\\,$\\pm$0.000}" in tex


def _wide():
    rng = np.random.default_rng(1)
    values = {(e, m): rng.random(8) for e in METHODS + BASELINES for m in sorted(METRICS)}
    return _scores(values, models=("vgg16_bn", "resnet50"))


def _tables_of(text: str) -> list[list[str]]:
    """Each Markdown table of `text` as its lines."""
    out, cur = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            out, cur = out + [cur], []
    return out


def test_no_markdown_table_wider_than_ten_columns_and_methods_first():
    scores = _wide()
    summary, tests = summarise(scores, 20), paired_tests(scores, 20)
    fried, ranks = friedman(scores)
    side = combined_markdown(summary, tests)
    texts = {"leaderboard": leaderboard_markdown(summary, 0.95, tests), "all": side, "ranks": rank_markdown(fried, ranks)}
    for name, text in texts.items():
        tables = _tables_of(text)
        assert tables, name
        for t in tables:
            assert all(line.count("|") - 1 <= bf.MAX_COLUMNS for line in t), (name, t[0])
            names = [line.split("|")[1].strip() for line in t[2:]]
            assert names.index("Grad-CAM") < names.index("*Baselines (reference)*") < names.index("Random"), name
    # every (model, metric) column is somewhere in the side-by-side tables, once
    heads = [h.strip() for t in _tables_of(side) for h in t[0].split("|")[2:-1]]
    assert len(heads) == len(set(heads)) == 2 * len(METRICS)
    assert bf.column_chunks(range(10)) == [list(range(9)), [9]]


def test_latex_is_never_scaled():
    scores = _wide()
    summary, tests = summarise(scores, 20), paired_tests(scores, 20)
    for width in latex.WIDTHS_PT:
        for text in (latex.leaderboard_tex(summary, tests, width=width), latex.combined_tex(summary, tests, width=width)):
            assert not latex.SCALING.search(text) and "graphicx" not in text


def test_latex_caption_names_the_metrics_without_headroom():
    """A curve metric kept out of the verdicts (no headroom) is said so in the LaTeX caption, as the
    Markdown header says it: a reader of the paper table must not read its numbers as a ranking."""
    rng = np.random.default_rng(3)
    scores = _scores({(e, m): rng.random(12) for e in ("gradcam", "lrp", "random")
                      for m in ("deletion_auc", "faithfulness_correlation")})
    summary = summarise(scores, 50)
    summary["judged"] = summary["metric"] != "deletion_auc"
    tex = latex.leaderboard_tex(summary, None)
    assert "No headroom (the perturbation barely moves the output; not ranked, in no verdict): Deletion AUC." in tex
    assert "Faithfulness corr" not in tex.split("No headroom")[1].split("}")[0]
    summary["judged"] = True
    assert "No headroom" not in latex.leaderboard_tex(summary, None)
