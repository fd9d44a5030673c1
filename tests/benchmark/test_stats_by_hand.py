"""Statistics against values worked out by hand on small cases (not scipy called with the code's own
arguments), and the one-common-image-set rule of benchmark.report.stats."""
import logging

import numpy as np
import pandas as pd
import pytest

from benchmark.report.stats import bootstrap_ci, friedman, holm, paired_tests, rank_biserial, summarise, wilcoxon


def _long(values: dict[str, list[float]], metric: str = "relevance_mass", ids: list[str] | None = None) -> pd.DataFrame:
    n = len(next(iter(values.values())))
    ids = ids or [f"i{k}" for k in range(n)]
    return pd.DataFrame({"dataset": "d", "split": "s", "model": "m", "metric": metric, "image_id": ids * len(values),
                         "explainer": np.repeat(list(values), n), "value": np.concatenate([np.asarray(v, float)
                                                                                           for v in values.values()])})


def test_wilcoxon_five_pairs_by_hand():
    # d = a - b = 1, 2, -3, 4, 5; ranks of |d| 1..5; R+ = 1 + 2 + 4 + 5 = 12, R- = 3, W = min = 3.
    # Exact null: the 2^5 = 32 sign patterns are equally likely; R- <= 3 for the negative sets {}, {1},
    # {2}, {3}, {1, 2}: 5 of 32, so the two-sided p = 2 * 5 / 32 = 0.3125.
    a, b = np.array([3.0, 4, 2, 9, 8]), np.array([2.0, 2, 5, 5, 3])
    assert wilcoxon(a, b) == pytest.approx((3.0, 0.3125))
    out = paired_tests(_long({"a": a, "b": b})).iloc[0]
    assert out["statistic"] == 3 and out["p"] == pytest.approx(0.3125) and out["n"] == 5
    # rank-biserial (R+ - R-) / 15 = 9 / 15
    assert out["rank_biserial"] == pytest.approx(0.6)


def test_wilcoxon_keeps_a_zero_difference_pratt():
    # d = 0, 1, 2, 3, -4. Pratt: |d| ranked with the zero: 0 -> 1, 1 -> 2, 2 -> 3, 3 -> 4, 4 -> 5;
    # R+ = 2 + 3 + 4 = 9, R- = 5, W = 5. Null: the four nonzero signs flip (the zero's flip changes
    # nothing): R+ is the sum of a subset of {2, 3, 4, 5}, 16 equally likely; R+ >= 9 for {4,5}, {2,3,4},
    # {2,3,5}, {2,4,5}, {3,4,5}, {2,3,4,5}: 6 of 16, R+ <= 9 for 12 of 16: two-sided p = 2 * 6/16 = 0.75.
    # (Dropping the zero, Wilcoxon's default, gives W = 4 and p = 0.875.)
    d = np.array([0.0, 1, 2, 3, -4])
    assert wilcoxon(d, np.zeros(5)) == pytest.approx((5.0, 0.75))
    assert rank_biserial(d, np.zeros(5)) == pytest.approx((9 - 5) / 15)


def test_wilcoxon_degenerate_cases():
    assert wilcoxon(np.ones(4), np.ones(4))[1] == 1.0  # all ties: no evidence either way
    assert all(np.isnan(wilcoxon(np.array([]), np.array([]))))


def test_percentile_bootstrap_ci_enumerated():
    # values 0, 0, 0, 1: a resample's mean is K/4, K ~ Binomial(4, 1/4): P(K=0) = 81/256 = 0.316,
    # P(K<=2) = 243/256 = 0.949, P(K<=3) = 255/256 = 0.996. The 2.5% quantile of the resampled means is 0
    # and the 97.5% quantile 3/4, so the percentile interval is [0, 0.75] (the basic interval would be
    # [2 * 0.25 - 0.75, 2 * 0.25 - 0] = [-0.25, 0.5], a normal one about [-0.17, 0.67]).
    for seed in range(3):
        assert bootstrap_ci(np.array([0.0, 0, 0, 1]), 1000, 0.95, seed) == pytest.approx((0.0, 0.75))
    # values 0, 1: means 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4: the interval is [0, 1]
    assert bootstrap_ci(np.array([0.0, 1.0]), 1000, 0.95, 0) == pytest.approx((0.0, 1.0))


def test_holm_sequence_by_hand():
    # sorted: 0.005 (4th), 0.01 (1st), 0.03 (3rd), 0.04 (2nd); times m - i = 4, 3, 2, 1: 0.02, 0.03, 0.06,
    # 0.04; running maximum: 0.02, 0.03, 0.06, 0.06; back in input order:
    assert holm(np.array([0.01, 0.04, 0.03, 0.005])) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm(np.array([0.3, 0.9])) == pytest.approx([0.6, 0.9])  # 2 * 0.3, then max(0.6, 0.9)


def test_one_common_set_for_means_tests_and_ranks():
    # i4: a failed (b and c scored it); i5: nobody scored it (no ground truth)
    nan = np.nan
    df = _long({"a": [0.9, 0.8, 0.7, 0.6, nan, nan], "b": [0.5, 0.7, 0.2, 0.1, 0.3, nan],
                "c": [0.1, 0.2, 0.3, 0.5, 0.2, nan]})
    s = summarise(df, 50).set_index("explainer")
    assert s["n"].tolist() == [4, 4, 4] and s["n_failed"].tolist() == [1, 0, 0] and s["n_nan"].tolist() == [2, 1, 1]
    assert s.loc["b", "mean"] == pytest.approx((0.5 + 0.7 + 0.2 + 0.1) / 4)  # without i4
    t = paired_tests(df, 50).set_index(["a", "b"])
    assert (t["n"] == 4).all()
    assert t.loc[("b", "c"), "mean_diff"] == pytest.approx(s.loc["b", "mean"] - s.loc["c", "mean"])
    tests, ranks = friedman(df)
    # n_dropped: only the image some explainer failed on, not the one nobody scored
    assert tests.iloc[0]["n"] == 4 and tests.iloc[0]["n_dropped"] == 1


def test_no_common_image_keeps_the_cell_with_n0():
    df = _long({"a": [1.0, np.nan], "b": [np.nan, 2.0]})
    s = summarise(df, 50).set_index("explainer")
    assert s["n"].tolist() == [0, 0] and s["n_failed"].tolist() == [1, 1] and s["mean"].isna().all()
    assert np.isnan(paired_tests(df).iloc[0]["p"])


def test_several_rows_of_one_image_count_once(caplog):
    # image i0 scored twice for a (e.g. two seeds): one value, their mean, not the first row
    df = pd.concat([_long({"a": [0.2, 0.5, 0.6], "b": [0.4, 0.1, 0.3], "c": [0.3, 0.3, 0.3]}),
                    _long({"a": [0.8]}, ids=["i0"])], ignore_index=True)
    with caplog.at_level(logging.WARNING):
        s = summarise(df, 50).set_index("explainer")
    assert "several rows" in caplog.text
    assert s.loc["a", "n"] == 3 and s.loc["a", "mean"] == pytest.approx((0.5 + 0.5 + 0.6) / 3)
    t = paired_tests(df, 50).set_index(["a", "b"])
    assert t.loc[("a", "b"), "mean_diff"] == pytest.approx((0.1 + 0.4 + 0.3) / 3)
    _, ranks = friedman(df)  # a beats b and c on i0 only with the mean 0.5 (the first row, 0.2, loses)
    assert ranks.set_index("explainer")["avg_rank"]["a"] == pytest.approx(1.0)


def test_not_applicable_images_are_neither_failures_nor_dropped_for_the_others():
    """The lesion-mask oracle on images without a mask (context_gaps) is not applicable there: the
    others keep those images; b's NaN on i1 (which it applied to) is a failure that drops i1 for all."""
    nan = np.nan
    scores = _long({"a": [1.0, 2.0, 3.0, 5.0], "b": [2.0, nan, 1.0, 1.0], "oracle": [4.0, 4.0, nan, nan]},
                   metric="deletion_auc")
    gaps = {"oracle": ["i2", "i3"]}
    s = summarise(scores, n_resamples=50, gaps=gaps).set_index("explainer")
    assert s.loc["a", "n"] == 3 and s.loc["a", "mean"] == pytest.approx((1 + 3 + 5) / 3)
    assert s.loc["b", "n"] == 3 and s.loc["b", "n_failed"] == 1 and s.loc["b", "mean"] == pytest.approx(4 / 3)
    assert s.loc["oracle", "n"] == 1 and s.loc["oracle", "n_failed"] == 0 and s.loc["oracle", "n_nan"] == 2
    assert s.loc["oracle", "mean"] == 4.0
    # without gaps the oracle's NaNs are failures and leave only i0 for everyone
    plain = summarise(scores, n_resamples=50).set_index("explainer")
    assert (plain["n"] == 1).all() and plain.loc["oracle", "n_failed"] == 2
    pairs = paired_tests(scores, n_resamples=50, gaps=gaps).set_index(["a", "b"])["n"]
    assert pairs[("a", "b")] == 3 and pairs[("a", "oracle")] == 1 and pairs[("b", "oracle")] == 1
    tests, ranks = friedman(scores, {"deletion_auc": False}, gaps=gaps)
    assert tests.iloc[0]["k"] == 2 and tests.iloc[0]["n"] == 3 and tests.iloc[0]["n_dropped"] == 1
    # deletion: lower is better; a vs b on i0, i2, i3: (1 < 2) a first, then b, b -> a 5/3, b 4/3
    assert ranks.set_index("explainer")["avg_rank"].to_dict() == pytest.approx({"a": 5 / 3, "b": 4 / 3})


def test_an_explainer_on_fewer_images_is_never_the_bold_best():
    """The oracle's mean over the images it applies to is not comparable with the column's others:
    the bold goes to the best explainer scored on every common image."""
    from benchmark.report.tables import leaderboard_markdown
    nan = np.nan
    scores = _long({"a": [1.0, 2.0, 3.0, 5.0], "b": [2.0, 3.0, 4.0, 6.0], "oracle": [9.0, 9.0, nan, nan]},
                   metric="insertion_auc")
    gaps = {"oracle": ["i2", "i3"]}
    summary = summarise(scores, n_resamples=50, gaps=gaps)
    text = leaderboard_markdown(summary, 0.95, paired_tests(scores, n_resamples=50, gaps=gaps))
    row = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}
    oracle = row["Oracle (expert mask)"]
    assert "**3.750" in row["b"] and "**" not in oracle and "(n=2)" in oracle
