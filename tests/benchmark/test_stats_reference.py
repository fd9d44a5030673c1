"""Leaderboard statistics of benchmark.report.stats against formulas written out here in numpy
(no scipy call with the code's arguments): the Wilcoxon signed-rank normal approximation with
Pratt's zeros and ties at n >= 20, Holm's step-down on the p-values of one cell, the Friedman
statistic with its tie correction and p-value, the Nemenyi critical difference, and the paired
percentile bootstrap CI of a mean difference reproduced draw for draw.

What the code claims (module docstring of stats.py and its calls):
- `stats.wilcoxon(d, zero_method="pratt", method="auto")`, scipy's default correction=False (no
  continuity correction). With zeros or ties and more than 13 pairs, "auto" is the normal
  approximation; Pratt's zeros are ranked with |d| but left out of R+ and R-, and the null mean and
  variance get Cureton's (1967) correction: with n pairs, n0 zeros,
      E = n(n+1)/4 - n0(n0+1)/4,
      Var = [n(n+1)(2n+1) - n0(n0+1)(2n0+1)] / 24 - sum over tie groups of non-zero |d| (t^3 - t) / 48,
  z = (R+ - E) / sqrt(Var), two-sided p = erfc(|z| / sqrt 2); the statistic is min(R+, R-).
- `stats.friedmanchisquare`: chi2_F = 12 / (n k (k+1)) sum_j R_j^2 - 3 n (k+1), divided by the tie
  correction 1 - sum (t^3 - t) / (n k (k^2 - 1)); p from chi2 with k - 1 degrees of freedom.
- Nemenyi: q_alpha sqrt(k(k+1) / (6n)), q_alpha from Demsar (2006), Table 5.
- `stats.bootstrap(..., method="percentile", rng=np.random.default_rng(seed))` on the paired
  differences: B resamples of n indices drawn at once as rng.integers(0, n, (B, n)), the mean of each,
  and the linear (type 7) 2.5 % and 97.5 % quantiles of those means.
"""
import math

import numpy as np
import pandas as pd
import pytest

from benchmark.report.stats import friedman, paired_tests, wilcoxon


def _long(values: dict[str, np.ndarray], metric: str = "relevance_mass") -> pd.DataFrame:
    n = len(next(iter(values.values())))
    ids = [f"i{k:03d}" for k in range(n)]  # sortable: the code sorts image ids
    return pd.DataFrame({"dataset": "d", "split": "s", "model": "m", "metric": metric, "image_id": ids * len(values),
                         "explainer": np.repeat(list(values), n),
                         "value": np.concatenate([np.asarray(v, float) for v in values.values()])})


def average_ranks(x: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """1-based ranks of x with ties sharing their mean rank, and the sizes of the tie groups (by hand)."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    ranks = np.empty(len(x))
    groups, i = [], 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + 1 + j + 1) / 2
        groups.append(j - i + 1)
        i = j + 1
    return ranks, groups


def wilcoxon_pratt_by_hand(d: np.ndarray) -> tuple[float, float]:
    n = len(d)
    r, _ = average_ranks(np.abs(d))
    r_plus, r_minus = r[d > 0].sum(), r[d < 0].sum()
    n0 = int((d == 0).sum())
    _, ties = average_ranks(np.abs(d[d != 0]))  # tie groups among the non-zero |d| (zeros are their own group)
    mean = n * (n + 1) / 4 - n0 * (n0 + 1) / 4
    var = (n * (n + 1) * (2 * n + 1) - n0 * (n0 + 1) * (2 * n0 + 1)) / 24 - sum(t ** 3 - t for t in ties) / 48
    z = (r_plus - mean) / math.sqrt(var)
    return min(r_plus, r_minus), math.erfc(abs(z) / math.sqrt(2))


# n = 24 paired differences: 4 zeros, and tied magnitudes (0.5 three times, 1 four times, 2 twice, 3 twice)
D24 = np.array([0, 0, 0, 0, 0.5, -0.5, 0.5, 1, 1, -1, 1, 2, -2, 3, 3, 1.5, 2.5, -0.25, 4, 5, 0.75, 6, -7, 8])


def test_wilcoxon_normal_approximation_with_pratt_zeros_and_ties_by_hand():
    assert len(D24) >= 20 and (D24 == 0).sum() == 4
    rng = np.random.default_rng(1)
    b = rng.integers(0, 5, len(D24)).astype(float)  # integer scores: a - b is exact in floating point
    a = b + D24
    stat, p = wilcoxon(a, b)
    ref_stat, ref_p = wilcoxon_pratt_by_hand(D24)
    assert stat == pytest.approx(ref_stat, abs=1e-12)
    assert p == pytest.approx(ref_p, rel=0, abs=1e-10)
    assert 0.001 < ref_p < 0.5  # a p-value in the range where the corrections matter (|z| about 2)
    # the zeros change p (dropping them, Wilcoxon's default, or keeping their ranks in the variance
    # would not give ref_p): check the hand formula is sensitive to what it claims to reproduce
    assert abs(wilcoxon_pratt_by_hand(D24[D24 != 0])[1] - ref_p) > 1e-3


def test_wilcoxon_normal_approximation_ties_without_zeros_by_hand():
    d = np.array([1, 1, 1, -1, 2, 2, -2, 3, 3, 3, 3, -3, 4, 5, 5, 6, -6, 7, 8, 8, 9])  # n = 21, ties, no zero
    stat, p = wilcoxon(d.astype(float), np.zeros(len(d)))
    ref_stat, ref_p = wilcoxon_pratt_by_hand(d.astype(float))
    assert stat == pytest.approx(ref_stat, abs=1e-12)
    assert p == pytest.approx(ref_p, rel=0, abs=1e-10)


def test_paired_tests_p_and_holm_by_hand_on_one_cell():
    """Three explainers, 24 images: three pairs, each p by the hand formula, then Holm by hand:
    p sorted ascending, times (m - i), running maximum, capped at 1, back in the pairs' order."""
    rng = np.random.default_rng(7)
    base = rng.integers(0, 6, 24).astype(float)
    values = {"a": base + D24, "b": base, "c": base - 0.3 * np.roll(D24, 5)}
    out = paired_tests(_long(values)).set_index(["a", "b"])
    hand = {}
    for x, y in [("a", "b"), ("a", "c"), ("b", "c")]:
        d = values[x] - values[y]
        hand[(x, y)] = wilcoxon_pratt_by_hand(d)[1]
        assert out.loc[(x, y), "p"] == pytest.approx(hand[(x, y)], rel=0, abs=1e-10)
        assert out.loc[(x, y), "n"] == 24
        assert out.loc[(x, y), "mean_diff"] == pytest.approx(d.mean(), abs=1e-12)
    keys = sorted(hand, key=hand.get)
    running, holm_hand = 0.0, {}
    for i, k in enumerate(keys):
        running = max(running, (len(keys) - i) * hand[k])
        holm_hand[k] = min(1.0, running)
    for k, q in holm_hand.items():
        assert out.loc[k, "p_holm"] == pytest.approx(q, rel=0, abs=1e-10)
    # the family exercises the running maximum: the largest p (times 1) is lifted to the one before it
    assert holm_hand[keys[2]] == holm_hand[keys[1]] > hand[keys[2]]
    assert holm_hand[keys[0]] == pytest.approx(3 * hand[keys[0]]) and holm_hand[keys[0]] < holm_hand[keys[1]]


def chi2_sf_3dof(x: float) -> float:
    """Survival function of chi2 with 3 degrees of freedom in closed form."""
    return math.erfc(math.sqrt(x / 2)) + math.sqrt(2 * x / math.pi) * math.exp(-x / 2)


def test_friedman_statistic_tie_correction_p_and_nemenyi_cd_by_hand():
    # 10 images x 4 explainers, with ties inside rows (0/1-like scores and repeated values)
    values = np.array([[0.9, 0.5, 0.5, 0.1],
                       [0.8, 0.8, 0.2, 0.2],
                       [0.7, 0.6, 0.3, 0.6],
                       [0.6, 0.1, 0.4, 0.2],
                       [1.0, 1.0, 1.0, 0.0],
                       [0.3, 0.4, 0.2, 0.1],
                       [0.9, 0.2, 0.7, 0.7],
                       [0.5, 0.5, 0.5, 0.5],  # a fully tied image: stays in, as friedmanchisquare keeps it
                       [0.6, 0.3, 0.1, 0.2],
                       [0.4, 0.6, 0.1, 0.0]])
    n, k = values.shape
    names = ["a", "b", "c", "d"]
    tests, ranks = friedman(_long({e: values[:, j] for j, e in enumerate(names)}))  # higher is better
    t = tests.iloc[0]
    assert (t["n"], t["k"]) == (n, k)
    row_ranks, ties = [], []
    for row in values:
        r, g = average_ranks(row)  # ascending: for the statistic the direction does not matter
        row_ranks.append(r)
        ties += g
    R = np.sum(row_ranks, axis=0)
    chi2 = 12 / (n * k * (k + 1)) * np.sum(R ** 2) - 3 * n * (k + 1)
    correction = 1 - sum(g ** 3 - g for g in ties) / (n * k * (k * k - 1))
    assert correction < 0.95  # the ties matter here
    chi2 /= correction
    assert t["statistic"] == pytest.approx(chi2, rel=1e-12)
    assert t["p"] == pytest.approx(chi2_sf_3dof(chi2), rel=1e-9)
    # average ranks, 1 = best (highest): the hand ranks of the negated scores
    best_first = np.mean([average_ranks(-row)[0] for row in values], axis=0)
    got = ranks.set_index("explainer")["avg_rank"]
    assert [got[e] for e in names] == pytest.approx(best_first, abs=1e-12)
    # Nemenyi CD, Demsar (2006) Table 5: q_0.05 = 2.569 for k = 4 (three decimals)
    assert t["cd"] == pytest.approx(2.569 * math.sqrt(k * (k + 1) / (6 * n)), abs=1e-3)
    assert t["alpha"] == 0.05


def paired_percentile_bootstrap_by_hand(diff: np.ndarray, n_resamples: int, confidence: float, seed: int):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), (n_resamples, len(diff)))
    means = diff[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    return np.quantile(means, [alpha, 1 - alpha])  # numpy's default is the linear (type 7) quantile


@pytest.mark.parametrize("seed,n_resamples", [(0, 1000), (3, 400)])
def test_paired_bootstrap_ci_of_mean_difference_reproduced_exactly(seed, n_resamples):
    """Exact reproduction (same generator, same draws, same quantile): tolerance 1e-12 absolute.
    The CI is of the paired differences (images resampled jointly for a and b), not of two
    independent resamples."""
    rng = np.random.default_rng(11)
    b = rng.normal(size=30)
    a = b + 0.3 + rng.normal(scale=0.5, size=30)
    out = paired_tests(_long({"a": a, "b": b}), n_resamples=n_resamples, confidence=0.95, seed=seed).iloc[0]
    ids_sorted_diff = a - b  # ids i000..i029 are already in sorted order
    low, high = paired_percentile_bootstrap_by_hand(ids_sorted_diff, n_resamples, 0.95, seed)
    assert out["diff_ci_low"] == pytest.approx(low, rel=0, abs=1e-12)
    assert out["diff_ci_high"] == pytest.approx(high, rel=0, abs=1e-12)
    # unpaired resampling (a and b resampled independently) would be much wider here
    r = np.random.default_rng(seed)
    ia, ib = r.integers(0, 30, (n_resamples, 30)), r.integers(0, 30, (n_resamples, 30))
    unpaired = np.quantile(a[ia].mean(1) - b[ib].mean(1), [0.025, 0.975])
    assert (unpaired[1] - unpaired[0]) > 1.5 * (high - low)


def test_paired_bootstrap_ci_close_to_the_normal_interval_at_large_n():
    """Large-sample check independent of the resampling scheme: at n = 400 the percentile interval of
    a mean is within 10 % of the normal interval mean +- 1.96 s / sqrt(n) at each end's half-width."""
    rng = np.random.default_rng(5)
    b = rng.normal(size=400)
    a = b + 0.1 + rng.normal(size=400)
    out = paired_tests(_long({"a": a, "b": b})).iloc[0]
    d = a - b
    half = 1.959964 * d.std(ddof=1) / math.sqrt(len(d))
    assert out["diff_ci_low"] == pytest.approx(d.mean() - half, abs=0.1 * half)
    assert out["diff_ci_high"] == pytest.approx(d.mean() + half, abs=0.1 * half)
