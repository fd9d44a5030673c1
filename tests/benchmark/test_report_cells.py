"""Leaderboard cells against the summary statistics: bold in the metric's direction, the † only for a
lead the paired test supports, failures shown, empty and one-explainer cells."""
import numpy as np
import pandas as pd

from benchmark.report.stats import paired_tests, summarise
from benchmark.report.latex import combined_tex as combined_latex, leaderboard_tex as leaderboard_latex
from benchmark.report.combined import combined_markdown
from benchmark.report.tables import leaderboard_markdown


def _long(values: dict[str, np.ndarray], metric: str = "relevance_mass") -> pd.DataFrame:
    n = len(next(iter(values.values())))
    return pd.DataFrame({"dataset": "d", "split": "s", "model": "m", "metric": metric,
                         "image_id": [f"i{k:02d}" for k in range(n)] * len(values),
                         "explainer": np.repeat(list(values), n), "value": np.concatenate(list(values.values()))})


def _row(md: str, explainer: str) -> str:
    return next(line for line in md.splitlines() if line.startswith(f"| {explainer} |"))


def _tables(scores: pd.DataFrame) -> tuple[str, str, pd.DataFrame]:
    summary, tests = summarise(scores, 100), paired_tests(scores, 100)
    return leaderboard_markdown(summary, tests=tests), leaderboard_latex(summary, tests), summary


def test_dagger_follows_the_common_set_not_the_unpaired_means():
    # a scores 0.9 on 20 images b failed on; on the 30 images both scored, b beats a on every one.
    # Unpaired means favour a (0.68 vs 0.55); paired, b leads: the † (and the bold) go to b, not to a.
    rng = np.random.default_rng(0)
    base = rng.random(30) * 0.5
    a = np.concatenate([base, np.full(20, 0.9)])
    b = np.concatenate([base + 0.1, np.full(20, np.nan)])
    md, tex, summary = _tables(_long({"a": a, "b": b}))
    assert "**" not in _row(md, "a") and "†" not in _row(md, "a")
    assert "**" in _row(md, "b") and "†" in _row(md, "b")
    assert "(n=30, 20 failed)" in _row(md, "b") and "(n=30)" in _row(md, "a")
    b_tex = next(line for line in tex.splitlines() if line.startswith("b & "))
    assert "}$^{\\dagger\\ast}${\\scriptsize\\,$\\pm$" in b_tex and "\\textbf" in b_tex  # bold, dagger, failures marked
    assert "b (Relevance mass): 20" in tex  # the LaTeX footnote of the failures
    assert summary.set_index("explainer")["n_failed"].to_dict() == {"a": 0, "b": 20}


def test_dagger_refused_when_the_paired_differences_favour_the_runner_up():
    # b is above a by 0.01 on 29 images, a above b by 1 on one: a's mean is higher (by 0.71 / 30), but the
    # signed ranks favour b (R- = 29 * 15 = 435 against R+ = 30) and the Wilcoxon test rejects at p << 0.05.
    # a stays bold (best mean) without the †: a significant difference in b's favour is no lead of a's.
    b = np.linspace(0.1, 0.8, 30)
    a = b - 0.01
    a[0] = b[0] + 1.0
    scores = _long({"a": a, "b": b})
    tests = paired_tests(scores, 100)
    assert tests.iloc[0]["p_holm"] < 1e-4 and tests.iloc[0]["mean_diff"] > 0 and tests.iloc[0]["rank_biserial"] < 0
    md, tex, _ = _tables(scores)
    assert "**" in _row(md, "a") and "†" not in md.split("\n", 1)[1]
    assert "\\dagger" not in tex.split("\\toprule")[1]


def test_dagger_in_a_lower_is_better_metric():
    # deletion_auc: lower is better; a is below b on every image, so a is bold and leads significantly
    rng = np.random.default_rng(1)
    b = rng.random(25) + 0.2
    md, _, _ = _tables(_long({"a": b - 0.1, "b": b, "c": b + 0.3}, "deletion_auc"))
    assert "**" in _row(md, "a") and "†" in _row(md, "a")
    assert "**" not in _row(md, "b") + _row(md, "c")


def test_bold_is_direction_aware():
    lower = _long({"a": np.array([0.5, 0.6]), "b": np.array([0.2, 0.3]), "c": np.array([0.9, 0.8])}, "deletion_auc")
    higher = _long({"a": np.array([0.5, 0.6]), "b": np.array([0.2, 0.3]), "c": np.array([0.9, 0.8])}, "insertion_auc")
    md, tex, _ = _tables(pd.concat([lower, higher]))
    cells = {e: _row(md, e) for e in "abc"}
    # one table (faithfulness) with deletion_auc then insertion_auc: b bold in the first, c in the second
    assert cells["b"].split("|")[2].strip().startswith("**0.250")
    assert cells["c"].split("|")[3].strip().startswith("**0.850")
    assert "**" not in cells["a"] and "**" not in cells["b"].split("|")[3] and "**" not in cells["c"].split("|")[2]
    assert "\\textbf{0.250}" in tex and "\\textbf{0.850}" in tex and "\\textbf{0.550}" not in tex


def test_all_nan_metric_is_listed_not_scored():
    scores = pd.concat([_long({"a": np.array([np.nan, np.nan]), "b": np.array([np.nan, np.nan])}, "iou"),
                        _long({"a": np.array([0.1, 0.2]), "b": np.array([0.3, 0.4])}, "dice")])
    md, tex, summary = _tables(scores)
    assert (summary[summary.metric == "iou"]["n"] == 0).all() and (summary[summary.metric == "iou"]["n_failed"] == 0).all()
    for e in "ab":
        assert _row(md, e).split("|")[3].strip() == "not scored (n=0)"  # iou column, after dice
    assert "IoU" in tex and "--" in tex
    assert "not scored" in combined_markdown(summary, paired_tests(scores)) and "--" in combined_latex(summary, None)


def test_single_explainer_is_bold_without_dagger():
    scores = _long({"only": np.array([0.1, 0.4, 0.3])})
    md, tex, summary = _tables(scores)
    assert _row(md, "only").split("|")[2].strip() == f"**0.267 [{_ci(summary)}] (n=3)**"
    assert "†" not in md.split("\n", 1)[1] and "\\textbf{0.267}" in tex and "\\dagger" not in tex.split("\\toprule")[1]


def _ci(summary: pd.DataFrame) -> str:
    r = summary.iloc[0]
    return f"{r.ci_low:.3f}, {r.ci_high:.3f}"
