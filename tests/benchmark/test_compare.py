import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from benchmark.report.compare import compare_scores


def _scores(values, ids):
    return pd.DataFrame({"dataset": "d", "split": "s", "model": "m", "explainer": "gradcam", "metric": "relevance_mass",
                         "image_id": ids, "value": values})


def test_compare_pairs_on_common_images_and_matches_scipy():
    rng = np.random.default_rng(0)
    a = rng.random(20)
    b = a + rng.normal(0.1, 0.05, 20)
    ids = [str(i) for i in range(20)]
    out = compare_scores(_scores(a, ids), _scores(b, ids), 200).iloc[0]
    assert out["n_paired"] == 20 and out["delta"] == pytest.approx(b.mean() - a.mean())
    assert out["p"] == pytest.approx(sps.wilcoxon(b, a).pvalue) and out["p_holm"] == pytest.approx(out["p"])
    assert out["delta_ci_low"] < out["delta"] < out["delta_ci_high"] and out["rank_biserial"] > 0.8


def test_compare_without_common_images_has_no_test():
    out = compare_scores(_scores([0.1, 0.2], ["a", "b"]), _scores([0.3, 0.4], ["c", "d"]), 50).iloc[0]
    assert out["n_paired"] == 0 and np.isnan(out["p"]) and np.isnan(out["p_holm"])
    assert out["delta"] == pytest.approx(0.2)


def test_compare_runs_writes_markdown_and_csv(tmp_path):
    from benchmark.report.compare import compare_runs
    for name, v in (("A", [0.1, 0.2, 0.3]), ("B", [0.2, 0.4, 0.5])):
        (tmp_path / name).mkdir()
        _scores(v, ["x", "y", "z"]).to_csv(tmp_path / name / "scores.csv", index=False)
    md = compare_runs(tmp_path / "A", tmp_path / "B", tmp_path / "out")
    assert "# B against A" in md and "| d | m | gradcam | relevance_mass ↑ |" in md
    assert len(pd.read_csv(tmp_path / "out" / "compare.csv")) == 1


def test_compare_keeps_zero_differences_and_counts_an_image_once():
    # B - A = 0, 1, 2, 3, -4: Pratt's Wilcoxon by hand (see test_stats_by_hand) gives p = 0.75; dropping
    # the zero would give 0.875. Run B scored image x twice (two seeds, 0 and 2): one value, their mean 1.
    ids = ["v", "w", "x", "y", "z"]
    a = _scores([1.0, 2, 3, 4, 5], ids)
    b = pd.concat([_scores([1.0, 3, 0, 7, 1], ids), _scores([2.0], ["x"])], ignore_index=True)
    b.loc[b.image_id == "x", "value"] = [4.0, 6.0]
    out = compare_scores(a, b, 50).iloc[0]
    assert out["n_paired"] == 5 and out["p"] == pytest.approx(0.75)
    assert out["n_b"] == 5 and out["mean_b"] == pytest.approx((1 + 3 + 5 + 7 + 1) / 5)
