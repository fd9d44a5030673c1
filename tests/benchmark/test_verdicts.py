"""Issue 29, items 4-6: baselines are reference rows (never best, bold, dagger, first, nor in the
agreement), declared Holm families (adding an unrelated method moves no method-vs-baseline verdict),
and exact Clopper-Pearson intervals for binary metrics."""
import numpy as np
import pandas as pd
import pytest

from benchmark.report import reliability as rel
from benchmark.report.findings import comparisons
from benchmark.report.latex import leaderboard_tex
from benchmark.report.stats import paired_tests, summarise
from benchmark.report.combined import combined_markdown
from benchmark.report.tables import leaderboard_markdown, significant_leads


def _long(values: dict[tuple[str, str], np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame([dict(dataset="d", split="s", model="m", explainer=e, metric=m, image_id=f"i{i}", value=v)
                         for (e, m), vs in values.items() for i, v in enumerate(vs)])


def _oracle_best() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    base = rng.random(20)
    return _long({("oracle", "relevance_mass"): base + 2.0, ("gradcam", "relevance_mass"): base + 1.0,
                  ("lrp", "relevance_mass"): base, ("random", "relevance_mass"): base - 1.0})


def test_a_baseline_is_never_bold_and_sits_in_its_own_block():
    scores = _oracle_best()
    summary, tests = summarise(scores, 100), paired_tests(scores, 100)
    md = leaderboard_markdown(summary, 0.95, tests)
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    names = [r.split("|")[1].strip() for r in rows[1:]]
    # methods first, then the separator row, then the baselines
    assert names == ["Grad-CAM", "LRP", "*Baselines (reference)*", "Oracle (expert mask)", "Random"]
    assert "**" in rows[1] and "†" in rows[1]  # gradcam: the best method, a significant lead over lrp
    assert "**" not in rows[4] and "†" not in rows[4]  # oracle is higher, but a reference row
    assert significant_leads(summary, tests) == {("d", "m", "relevance_mass")}
    assert "*Baselines (reference)*" in combined_markdown(summary, tests)
    tex = leaderboard_tex(summary, tests).split("\\midrule", 1)[1]
    body = [line for line in tex.split("\\bottomrule")[0].splitlines() if line.strip()]
    assert body[0].startswith("Grad-CAM") and "\\textbf" in body[0] and "\\dagger" in body[0]
    assert body[1].startswith("LRP") and body[2] == "\\midrule" and body[3].startswith("Oracle (expert mask)")
    assert body[4].startswith("Random")  # one rule only: between the methods and the baselines
    assert "\\textbf" not in body[3] and "\\dagger" not in body[3]


def test_rank_first_leaves_every_baseline_out():
    first = rel.rank_first(_oracle_best(), 200)
    assert set(first.explainer) == {"gradcam", "lrp"} and first.set_index("explainer").loc["gradcam", "p_first"] == 1


def test_agreement_among_methods_with_and_without_baselines():
    # three methods fully reversed between two metrics; three baselines that agree (floor low, oracle high)
    means = {"relevance_mass": {"gradcam": 0.5, "lrp": 0.6, "lime": 0.7, "random": 0.0, "center": 0.1, "oracle": 1.0},
             "iou": {"gradcam": 0.7, "lrp": 0.6, "lime": 0.5, "random": 0.0, "center": 0.1, "oracle": 1.0}}
    summary = pd.DataFrame([dict(dataset="d", model="m", explainer=e, metric=m, mean=v, n=5)
                            for m, d in means.items() for e, v in d.items()])
    methods = rel.agreement(summary)
    assert methods["tau"].iloc[0] == pytest.approx(-1.0) and methods["n_explainers"].iloc[0] == 3
    both = rel.agreement(summary, with_baselines=True)
    assert both["tau"].iloc[0] > 0.3 and both["n_explainers"].iloc[0] == 6


def test_an_unrelated_method_does_not_move_a_verdict_against_random():
    rng = np.random.default_rng(3)
    n = 12
    base = rng.random(n)
    # gradcam above random on 10 of 12 images: p ~ 0.03 alone, not after Holm over every pair of the cell
    d = np.array([0.2, 0.3, 0.25, 0.15, 0.1, 0.35, 0.2, 0.3, 0.05, 0.4, -0.02, -0.03])
    values = {("gradcam", "pointing_game"): base + d, ("random", "pointing_game"): base}
    before = comparisons(paired_tests(_long(values), 100)).set_index("explainer")
    more = {**values, **{(f"m{k}", "pointing_game"): rng.random(n) for k in range(8)}}
    after = comparisons(paired_tests(_long(more), 100)).set_index("explainer")
    assert before.loc["gradcam", "beats"]
    assert after.loc["gradcam", "beats"] and after.loc["gradcam", "p_holm"] == before.loc["gradcam", "p_holm"]


@pytest.mark.parametrize("hits, low, high", [(0, 0.0, 0.128), (27, 0.872, 1.0)])
def test_binary_metric_takes_the_exact_interval(hits, low, high):
    values = np.array([1.0] * hits + [0.0] * (27 - hits))
    s = summarise(_long({("gradcam", "pointing_game"): values, ("lrp", "pointing_game"): values}), 100)
    r = s.iloc[0]
    assert round(r.ci_low, 3) == low and round(r.ci_high, 3) == high
