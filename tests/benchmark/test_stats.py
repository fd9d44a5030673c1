import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from benchmark.report.stats import bootstrap_ci, summarise


def test_bootstrap_ci_matches_scipy_and_brackets_the_mean():
    x = np.random.default_rng(0).normal(size=40)
    lo, hi = bootstrap_ci(x, 500, 0.95, seed=3)
    ref = sps.bootstrap((x,), np.mean, n_resamples=500, method="percentile", rng=np.random.default_rng(3))
    assert (lo, hi) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    assert lo < x.mean() < hi


def test_bootstrap_degenerate_cases():
    assert all(np.isnan(bootstrap_ci(np.array([1.0]))))
    assert all(np.isnan(bootstrap_ci(np.array([]))))
    assert bootstrap_ci(np.array([2.0, 2.0, 2.0])) == (2.0, 2.0)


def test_summarise_uses_the_common_image_set_and_counts_failures():
    # image y: b scored it, a did not (a failed); z: a scored it, b did not (b failed); v: nobody scored
    # it (no ground truth): in no set and nobody's failure
    df = pd.DataFrame({"dataset": "d", "split": "s", "model": "m", "explainer": ["a"] * 5 + ["b"] * 5,
                       "metric": "pointing_game", "image_id": list("wxyzv") * 2,
                       "value": [1, 0, np.nan, 1, np.nan, 0, 0, 0, np.nan, np.nan]})
    out = summarise(df, 200).set_index("explainer")
    assert out.loc["a", "n"] == out.loc["b", "n"] == 2  # w and x
    assert out.loc["a", "n_failed"] == 1 and out.loc["b", "n_failed"] == 1
    assert out.loc["a", "n_nan"] == 2 and out.loc["b", "n_nan"] == 2
    assert out.loc["a", "mean"] == pytest.approx(0.5) and out.loc["b", "mean"] == 0
    # pointing_game is binary: 0 hits of 2 takes the exact Clopper-Pearson interval [0, 0.842]
    assert out.loc["b", "ci_low"] == 0 and out.loc["b", "ci_high"] == pytest.approx(1 - 0.025 ** 0.5)


def test_holm_by_hand():
    from benchmark.report.stats import holm
    # sorted p 0.01, 0.02, 0.04 with m=3: 0.03, 0.04 (max of 0.04, 0.03), 0.04
    assert np.allclose(holm(np.array([0.04, 0.01, 0.02])), [0.04, 0.03, 0.04])
    assert np.allclose(holm(np.array([0.5, 0.6])), [1.0, 1.0])


def test_paired_tests_skip_images_an_explainer_failed_on():
    from benchmark.report.stats import paired_tests
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=30), rng.normal(0.5, 1, size=30)
    b[3] = np.nan
    df = pd.DataFrame({"dataset": "d", "model": "m", "metric": "x", "image_id": [str(i) for i in range(30)] * 2,
                       "explainer": ["a"] * 30 + ["b"] * 30, "value": np.concatenate([a, b])})
    out = paired_tests(df).iloc[0]
    keep = ~np.isnan(b)
    # no zero or tied difference: Pratt's and Wilcoxon's zero handling agree with scipy's default
    assert out["n"] == 29 and out["p"] == pytest.approx(sps.wilcoxon(a[keep], b[keep]).pvalue)
    assert out["p_holm"] == pytest.approx(out["p"])  # one pair: nothing to correct


def test_rank_biserial_by_hand_keeps_zero_differences():
    from benchmark.report.stats import rank_biserial
    # differences 1, -2, 3, 0; Pratt: |d| ranked with the zero, 0 -> 1, 1 -> 2, 2 -> 3, 3 -> 4;
    # R+ = 2 + 4 = 6, R- = 3, all ranks sum to 10 -> (6 - 3) / 10 (dropping the zero gave 1/3)
    assert rank_biserial(np.array([1.0, 0, 3, 5]), np.array([0.0, 2, 0, 5])) == pytest.approx(0.3)
    assert rank_biserial(np.ones(3), np.ones(3)) == 0.0  # all ties: no effect
    assert np.isnan(rank_biserial(np.array([]), np.array([])))
    assert rank_biserial(np.array([2.0, 3]), np.array([1.0, 1])) == 1.0


def _long(values: dict[str, np.ndarray], metric: str = "relevance_mass") -> pd.DataFrame:
    n = len(next(iter(values.values())))
    return pd.DataFrame({"dataset": "d", "model": "m", "metric": metric, "image_id": [str(i) for i in range(n)] * len(values),
                         "explainer": np.repeat(list(values), n), "value": np.concatenate(list(values.values()))})


def test_paired_tests_effect_size_and_ci_on_ties():
    from benchmark.report.stats import paired_tests
    a = np.array([1.0, 2, 2, 4, 5, 5, 9, 3])
    b = np.array([0.0, 2, 1, 1, 4, 3, 5, 3])  # d = 1, 0, 1, 3, 1, 2, 4, 0: ties in |d| and two zeros
    out = paired_tests(_long({"a": a, "b": b}), 300, seed=1).iloc[0]
    # Pratt ranks of |d|: zeros 1.5, 1.5; ones 4, 4, 4; 2 -> 6; 3 -> 7; 4 -> 8. R+ = 12 + 6 + 7 + 8 = 33,
    # R- = 0, all ranks sum to 36: statistic min(R+, R-) = 0, rank-biserial 33 / 36
    assert out["statistic"] == 0 and out["rank_biserial"] == pytest.approx(33 / 36)
    # n = 8 with zeros: scipy's exact permutation over the 2^8 sign flips; only the 4 patterns with every
    # nonzero difference positive (the zeros flip freely) reach R+ = 33: one-sided 4/256, two-sided 8/256
    assert out["p"] == pytest.approx(8 / 256)
    assert out["mean_diff"] == pytest.approx(12 / 8)
    assert out["diff_ci_low"] <= out["mean_diff"] <= out["diff_ci_high"]


def test_paired_tests_n1_and_no_overlap():
    from benchmark.report.stats import paired_tests
    out = paired_tests(_long({"a": np.array([1.0, np.nan]), "b": np.array([0.5, 2.0])})).iloc[0]
    assert out["n"] == 1 and np.isnan(out["diff_ci_low"]) and out["mean_diff"] == 0.5
    out = paired_tests(_long({"a": np.array([1.0, np.nan]), "b": np.array([np.nan, 2.0])})).iloc[0]
    assert out["n"] == 0 and np.isnan(out["p"]) and np.isnan(out["p_holm"])


def test_nemenyi_cd_matches_demsar_table():
    from benchmark.report.stats import nemenyi_cd
    # Demšar (2006) Table 5: q_0.05 = 2.343 (k=3), 3.164 (k=10)
    assert nemenyi_cd(3, 10) == pytest.approx(2.343 * np.sqrt(3 * 4 / 60), abs=1e-3)
    assert nemenyi_cd(10, 50) == pytest.approx(3.164 * np.sqrt(10 * 11 / 300), abs=2e-3)


def test_friedman_matches_scipy_ranks_by_hand_and_drops_nans():
    from benchmark.report.stats import friedman
    a = np.array([0.9, 0.8, 0.7, 0.6, np.nan])
    b = np.array([0.5, 0.8, 0.2, 0.1, 0.3])
    c = np.array([0.1, 0.2, 0.3, 0.6, 0.2])
    tests, ranks = friedman(_long({"a": a, "b": b, "c": c}))  # relevance_mass: higher is better
    t = tests.iloc[0]
    assert t["n"] == 4 and t["n_dropped"] == 1 and t["k"] == 3  # image 4: a failed where b and c scored
    assert t["p"] == pytest.approx(sps.friedmanchisquare(a[:4], b[:4], c[:4]).pvalue)
    # image ranks (1 = best): a 1, 1.5, 1, 1.5; b 2, 1.5, 3, 3; c 3, 3, 2, 1.5
    r = ranks.set_index("explainer")["avg_rank"]
    assert r.to_dict() == pytest.approx({"a": 1.25, "b": 2.375, "c": 2.375})
    _, ranks = friedman(_long({"a": a, "b": b, "c": c}, metric="deletion_auc"))  # lower is better
    assert ranks.set_index("explainer")["avg_rank"]["a"] == pytest.approx(4 - 1.25)
    tests, _ = friedman(_long({"a": a, "b": b}))
    assert np.isnan(tests.iloc[0]["p"])  # two explainers: no Friedman test


def test_friedman_n1_gives_ranks_but_no_test():
    from benchmark.report.stats import friedman
    tests, ranks = friedman(_long({"a": np.array([1.0]), "b": np.array([0.0]), "c": np.array([0.5])}))
    assert np.isnan(tests.iloc[0]["p"]) and tests.iloc[0]["n"] == 1
    assert ranks.set_index("explainer")["avg_rank"].to_dict() == {"a": 1.0, "b": 3.0, "c": 2.0}


def test_bootstrap_ci_columns_brackets_means_and_keeps_constant_columns():
    from benchmark.report.stats import bootstrap_ci_columns
    x = np.random.default_rng(0).random((30, 4))
    x[:, 0] = 1.0
    lo, hi = bootstrap_ci_columns(x, 200)
    assert lo[0] == hi[0] == 1.0
    assert np.all(lo <= x.mean(0)) and np.all(x.mean(0) <= hi) and np.all(lo[1:] < hi[1:])
    assert np.isnan(bootstrap_ci_columns(x[:1])[0]).all()
