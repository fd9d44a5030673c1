"""Metric reliability numbers checked by hand on small tables: agreement (Kendall's tau of the
explainer rankings), discrimination (oracle against random) and the bootstrap probability of ranking
first."""
import numpy as np
import pandas as pd
import pytest

from benchmark.report import reliability as rel


def _summary(means: dict[str, list[float]], explainers=("a", "b", "c", "d")) -> pd.DataFrame:
    rows = [dict(dataset="d", model="m", explainer=e, metric=m, mean=v, n=5)
            for m, vs in means.items() for e, v in zip(explainers, vs)]
    return pd.DataFrame(rows)


def _long(values: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """{(explainer, metric): per-image values} as the long score table."""
    return pd.DataFrame([dict(dataset="d", split="s", model="m", explainer=e, metric=m, image_id=f"i{i}", value=v)
                         for (e, m), vs in values.items() for i, v in enumerate(vs)])


def _tau(table, a, b):
    r = table[((table.metric_a == a) & (table.metric_b == b)) | ((table.metric_a == b) & (table.metric_b == a))]
    return float(r["tau"].iloc[0])


def test_agreement_perfect_reversed_and_direction_applied():
    table = rel.agreement(_summary({
        "relevance_mass": [0.1, 0.2, 0.3, 0.4],
        "pointing_game": [0.5, 0.6, 0.7, 0.8],      # same order: tau 1
        "iou": [0.4, 0.3, 0.2, 0.1],                 # reversed: tau -1
        "deletion_auc": [0.4, 0.3, 0.2, 0.1],        # lower is better: the same ranking as relevance_mass
        "top_k_intersection": [0.1, 0.2, 0.4, 0.3],  # one discordant pair of six: (5 - 1) / 6
        "seconds_per_image": [1, 2, 3, 4]}))         # runtime: left out
    assert _tau(table, "relevance_mass", "pointing_game") == pytest.approx(1.0)
    assert _tau(table, "relevance_mass", "iou") == pytest.approx(-1.0)
    assert _tau(table, "relevance_mass", "deletion_auc") == pytest.approx(1.0)
    assert _tau(table, "relevance_mass", "top_k_intersection") == pytest.approx(4 / 6)
    assert "seconds_per_image" not in set(table.metric_a) | set(table.metric_b)
    assert (table.n_explainers == 4).all() and len(table) == 10  # 5 metrics: 10 pairs
    m = rel.agreement_matrix(table, "d", "m", ["relevance_mass", "iou"])
    assert m.loc["iou", "relevance_mass"] == pytest.approx(-1.0) and m.loc["iou", "iou"] == 1.0


def test_agreement_needs_three_explainers_and_a_ranking():
    table = rel.agreement(_summary({"relevance_mass": [0.1, 0.2, np.nan, np.nan], "iou": [0.2, 0.1, 0.3, 0.4],
                                    "dice": [0.5, 0.5, 0.5, 0.5]}))
    assert np.isnan(_tau(table, "relevance_mass", "iou"))  # two explainers in common
    assert np.isnan(_tau(table, "iou", "dice"))            # dice ties every explainer


def test_discrimination_by_hand():
    base = list(np.linspace(0.1, 0.9, 10))
    scores = _long({("random", "relevance_mass"): base, ("oracle", "relevance_mass"): [v + 0.1 for v in base],
                    # a metric blind to the map: the same value for both
                    ("random", "pointing_game"): base, ("oracle", "pointing_game"): base,
                    # lower is better: oracle lower on every image is oracle better
                    ("random", "deletion_auc"): base, ("oracle", "deletion_auc"): [v - 0.05 for v in base],
                    # d = oracle - random = +0.3, +0.1, -0.2, 0: ranks of |d| 4, 2, 3, 1
                    ("random", "iou"): [0.0, 0.0, 0.5, 0.5], ("oracle", "iou"): [0.3, 0.1, 0.3, 0.5],
                    ("gradcam", "iou"): [0.1, 0.1, 0.1, 0.1],
                    ("random", "randomisation_ssim"): base, ("oracle", "randomisation_ssim"): base})
    d = rel.discrimination(scores).set_index("metric")
    assert "randomisation_ssim" not in d.index  # sanity metrics are not discriminated this way
    rm = d.loc["relevance_mass"]
    assert (rm.n, rm.oracle_better, rm.tie, rm.effect) == (10, 1.0, 0.0, 1.0)
    assert rm.p == pytest.approx(2 / 2 ** 10)  # exact two-sided signed-rank p: all ten differences positive
    blind = d.loc["pointing_game"]
    assert (blind.oracle_better, blind.tie, blind.random_better, blind.effect, blind.p) == (0.0, 1.0, 0.0, 0.0, 1.0)
    assert d.loc["deletion_auc", "oracle_better"] == 1.0 and d.loc["deletion_auc", "effect"] == 1.0
    iou = d.loc["iou"]
    assert (iou.oracle_better, iou.tie, iou.random_better) == (0.5, 0.25, 0.25)
    assert iou.effect == pytest.approx((4 + 2 - 3) / 10)
    sentence = rel.sentence("pointing_game", rel.agreement(pd.DataFrame(columns=["dataset", "model", "explainer",
                                                                                 "metric", "mean"])),
                            rel.discrimination(scores), rel.rank_first(scores, 100))
    assert sentence.startswith("`pointing_game`: cannot tell oracle from random") and "ties 100%" in sentence
    assert "separates oracle from random: oracle better on 100% of 10 images" in rel.sentence(
        "relevance_mass", pd.DataFrame(columns=rel.AGREEMENT_COLUMNS), rel.discrimination(scores),
        pd.DataFrame(columns=rel.FIRST_COLUMNS))


def test_rank_first_by_hand():
    scores = _long({("a", "relevance_mass"): [1.0, 0.0], ("b", "relevance_mass"): [0.6, 0.6],
                    ("oracle", "relevance_mass"): [9.0, 9.0],  # the ceiling is left out
                    ("a", "iou"): [0.9, 0.8, 0.7], ("b", "iou"): [0.1, 0.2, 0.3],
                    ("a", "dice"): [0.5, 0.4], ("b", "dice"): [0.5, 0.4]})
    first = rel.rank_first(scores, n_resamples=20000, seed=1).set_index(["metric", "explainer"])["p_first"]
    # a leads only when both resampled images are the first one (mean 1 > 0.6): probability 1/4
    assert first[("relevance_mass", "a")] == pytest.approx(0.25, abs=0.015)
    assert first[("relevance_mass", "a")] + first[("relevance_mass", "b")] == pytest.approx(1.0)
    assert ("relevance_mass", "oracle") not in first.index
    assert first[("iou", "a")] == 1.0
    assert first[("dice", "a")] == first[("dice", "b")] == 0.5  # ties share the resample
    again = rel.rank_first(scores, n_resamples=20000, seed=1).set_index(["metric", "explainer"])["p_first"]
    assert again.equals(first)  # seeded
