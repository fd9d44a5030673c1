import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from benchmark.stats import bootstrap_ci, summarise


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


def test_summarise_counts_nans_per_cell():
    df = pd.DataFrame({"dataset": "d", "split": "s", "model": "m", "explainer": ["a"] * 4 + ["b"] * 4,
                       "metric": "pointing_game", "image_id": list("wxyz") * 2,
                       "value": [1, 0, np.nan, 1, 0, 0, 0, np.nan]})
    out = summarise(df, 200).set_index("explainer")
    assert out.loc["a", "n"] == 3 and out.loc["a", "n_nan"] == 1
    assert out.loc["a", "mean"] == pytest.approx(2 / 3) and out.loc["b", "mean"] == 0
    assert out.loc["b", "ci_low"] == out.loc["b", "ci_high"] == 0


def test_holm_by_hand():
    from benchmark.stats import holm
    # sorted p 0.01, 0.02, 0.04 with m=3: 0.03, 0.04 (max of 0.04, 0.03), 0.04
    assert np.allclose(holm(np.array([0.04, 0.01, 0.02])), [0.04, 0.03, 0.04])
    assert np.allclose(holm(np.array([0.5, 0.6])), [1.0, 1.0])


def test_paired_tests_match_scipy_and_skip_nans():
    from benchmark.stats import paired_tests
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=30), rng.normal(0.5, 1, size=30)
    b[3] = np.nan
    df = pd.DataFrame({"dataset": "d", "model": "m", "metric": "x", "image_id": [str(i) for i in range(30)] * 2,
                       "explainer": ["a"] * 30 + ["b"] * 30, "value": np.concatenate([a, b])})
    out = paired_tests(df).iloc[0]
    keep = ~np.isnan(b)
    assert out["n"] == 29 and out["p"] == pytest.approx(sps.wilcoxon(a[keep], b[keep]).pvalue)
    assert out["p_holm"] == pytest.approx(out["p"])  # one pair: nothing to correct
