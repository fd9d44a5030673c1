"""Known truth (issue 30, item 1): the phantom's exact counterfactuals, the lesion-reliance stage and
the report's known-truth checks of explainers and faithfulness metrics."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from benchmark.cli import main
from benchmark.report import known_truth
from cxr_xai_bench.datasets import build_dataset
from cxr_xai_bench.datasets.phantom import render


def test_the_counterfactual_is_the_same_xray_without_its_lesion():
    ds = build_dataset("phantom", split="test", size=64, seed=0)
    for index in (1, 7, 165):
        sample = ds[index]
        cf = ds.counterfactual(sample.id)
        assert torch.equal(cf, render(0, "test", index, 64, 0)["image"][None])
        diff = (sample.image - cf).abs()[0]
        near = torch.nn.functional.max_pool2d(sample.lesion_mask[None, None].float(), 5, 1, 2)[0, 0] > 0
        # the lesion's soft edge reaches a little past its mask: 98% of the change lies within 2 px of it
        assert diff[~near].sum() < 0.02 * diff.sum(), "only the lesion (and its soft rim) changes"
        assert (diff[sample.lesion_mask] > 0.01).all(), "every lesion pixel changes"
    assert ds.counterfactual(ds[0].id) is None, "a normal image has no lesion to remove"
    assert ds.counterfactual("phantom-val-00001") is None


def _rel(reliant):
    return pd.DataFrame(dict(dataset="d", split="s", model="m", image_id=[f"i{k}" for k in range(len(reliant))],
                             p_image=0.9, p_counterfactual=[0.1 if r else 0.8 for r in reliant], drop=0.0,
                             reliant=reliant))


def test_known_truth_scores_by_hand_on_reliant_images_only():
    rng = np.random.default_rng(0)
    n = 12
    reliant = [True] * 10 + [False] * 2
    rows = []
    oracle_del, random_del = rng.uniform(0.1, 0.4, n), rng.uniform(0.3, 0.9, n)
    pg = rng.integers(0, 2, n).astype(float)
    for k in range(n):
        for e, m, v in (("oracle", "deletion_auc", oracle_del[k]), ("random", "deletion_auc", random_del[k]),
                        ("gradcam", "pointing_game", pg[k]), ("gradcam", "deletion_auc", 0.5)):
            rows.append(dict(dataset="d", split="s", model="m", explainer=e, metric=m, image_id=f"i{k}", value=v))
    scores = pd.DataFrame(rows)
    rel = _rel(reliant)
    expl = known_truth.explainer_table(scores, rel)
    got = expl[(expl.explainer == "gradcam") & (expl.metric == "pointing_game")].iloc[0]
    assert got["n"] == 10 and got["mean"] == pytest.approx(pg[:10].mean())
    valid = known_truth.metric_validity(scores, rel).iloc[0]
    assert valid["metric"] == "deletion_auc" and valid["n"] == 10
    assert valid["oracle"] == pytest.approx(oracle_del[:10].mean()) and valid["random"] == pytest.approx(random_del[:10].mean())
    assert valid["oracle_better"] == pytest.approx(np.mean(oracle_del[:10] < random_del[:10]))  # lower is better
    assert valid["p"] == pytest.approx(stats.wilcoxon(-oracle_del[:10], -random_del[:10]).pvalue)
    assert valid["sees_evidence"]
    summ = known_truth.reliance_summary(rel).iloc[0]
    assert summ["reliant"] == 10 and summ["n"] == 12
    ci = stats.binomtest(10, 12).proportion_ci(method="exact")
    assert (summ["ci_low"], summ["ci_high"]) == pytest.approx((ci.low, ci.high))
    # a metric that scores the known evidence like random does not see it
    blind = scores.copy()
    blind.loc[blind.explainer == "oracle", "value"] = blind.loc[blind.explainer == "random", "value"].to_numpy()
    assert not known_truth.metric_validity(blind, rel).iloc[0]["sees_evidence"]
    lines = "\n".join(known_truth.known_truth_lines(rel, expl, known_truth.metric_validity(blind, rel)))
    assert "| m | 12 | 10 (83%" in lines and "| **no** |" in lines


@pytest.mark.integration
def test_a_phantom_run_measures_lesion_reliance(tmp_path):
    out = tmp_path / "run"
    args = ["run", "--preset", "smoke", "--out", str(out), "--set", "models.names=['resnet50']",
            "--set", "explain.names=['gradcam','random','oracle']", "--set", "data.cache_dir=''",
            "--set", "metrics.names=['pointing_game','deletion_auc']", "--set", "metrics.reliability=false"]
    assert main(args) == 0
    rel = pd.read_csv(out / "reliance.csv", dtype={"image_id": str})
    pred = pd.read_csv(out / "predictions.csv", dtype={"image_id": str}).set_index("image_id")
    assert len(rel) == int((pred.label == 1).sum()) > 0, "every pneumonia test image with a lesion"
    np.testing.assert_allclose(rel.p_image.to_numpy(), pred.loc[rel.image_id, "prob_pneumonia"].to_numpy(), rtol=1e-5)
    assert (rel.reliant == ((rel.p_image > 0.5) & (rel.p_counterfactual <= 0.5))).all()
    report = (out / "report" / "report.md").read_text()
    assert "## Known truth: what the models use" in report and "relies on it |" in report
    assert json.loads((out / "manifest.json").read_text())["stages"]["reliance"]["seconds"] >= 0


def test_counterfactuals_of_the_phantom_and_none_of_real_x_rays():
    from benchmark.run.config import load_config
    from benchmark.run.data import load_split
    from benchmark.run.reliance import counterfactuals
    from cxr_xai_bench.datasets import DATASETS
    cfg = load_config(None, ["data.size=32", "data.limit.test=4", "data.cache_dir=''"])
    test = load_split(cfg, "test")
    index, images = counterfactuals(cfg, test)
    assert index == test.labels.nonzero().flatten().tolist() and images.shape == (len(index), 1, 32, 32)
    assert not hasattr(DATASETS["covid_qu_ex"], "counterfactual"), "real X-rays have none: no reliance.csv"


def _case_scores(n, values):
    """Score rows of one model on images i0..i{n-1}: values = {(explainer, metric): array of n}."""
    return pd.DataFrame([dict(dataset="d", split="s", model="m", explainer=e, metric=m, image_id=f"i{k}", value=v[k])
                         for (e, m), v in values.items() for k in range(n)])


def test_a_metric_must_also_put_the_known_evidence_above_the_priors():
    """The oracle beats random but not the lung prior: the metric sees *some* evidence, yet cannot tell
    the known evidence from a map that knows nothing of the image (beats_priors False, its Holm p shown)."""
    rng = np.random.default_rng(1)
    n = 15
    oracle = rng.uniform(0.1, 0.3, n)
    values = {("oracle", "deletion_auc"): oracle, ("random", "deletion_auc"): oracle + rng.uniform(0.2, 0.4, n),
              ("lung_prior", "deletion_auc"): oracle + rng.normal(0, 0.05, n),
              ("center", "deletion_auc"): oracle + rng.uniform(0.1, 0.3, n)}
    rel = _rel([True] * n)
    row = known_truth.metric_validity(_case_scores(n, values), rel).iloc[0]
    assert row["sees_evidence"] and not row["beats_priors"]
    assert row["priors"] == "center, lung_prior"
    p = [stats.wilcoxon(-oracle, -values[(e, "deletion_auc")]).pvalue for e in ("center", "lung_prior")]
    holm = np.minimum(1, np.maximum.accumulate(np.array([2, 1]) * np.sort(p)))
    assert row["p_priors"] == pytest.approx(holm.max())
    values[("lung_prior", "deletion_auc")] = oracle + rng.uniform(0.1, 0.3, n)
    assert known_truth.metric_validity(_case_scores(n, values), rel).iloc[0]["beats_priors"]


def test_ranking_agreement_with_the_known_truth_by_hand():
    """Three methods whose relevance mass on the known evidence orders them a > b > c: a deletion
    metric (lower is better) ordering them c, b, a is fully reversed (tau -1); baselines never enter."""
    n = 6
    ones = np.ones(n)
    values = {("oracle", "deletion_auc"): 0.1 * ones, ("random", "deletion_auc"): 0.9 * ones,
              ("a", "relevance_mass"): 0.8 * ones, ("b", "relevance_mass"): 0.5 * ones,
              ("c", "relevance_mass"): 0.2 * ones, ("oracle", "relevance_mass"): 1.0 * ones,
              ("a", "deletion_auc"): 0.7 * ones, ("b", "deletion_auc"): 0.5 * ones, ("c", "deletion_auc"): 0.3 * ones}
    rel = _rel([True] * n)
    row = known_truth.metric_validity(_case_scores(n, values), rel).iloc[0]
    assert row["ranking_tau"] == pytest.approx(-1.0)
    # deletion, lower is better: oracle 0.1 first of the five maps (c 0.3, b 0.5, a 0.7, random 0.9)
    assert (row["oracle_rank"], row["maps"]) == (1, 5)
    values[("a", "deletion_auc")], values[("c", "deletion_auc")] = 0.3 * ones, 0.7 * ones
    row = known_truth.metric_validity(_case_scores(n, values), rel).iloc[0]
    assert row["ranking_tau"] == pytest.approx(1.0)
    # with the oracle's relevance mass ranked among the methods, the oracle (1.0) would lead: tau unchanged
    # only because baselines stay out; and failing() lists what does not see the evidence
    blind = values.copy()
    blind[("oracle", "deletion_auc")] = 0.9 * ones
    valid = known_truth.metric_validity(_case_scores(n, blind), rel)
    assert known_truth.failing(valid) == frozenset({("d", "m", "deletion_auc")})
    # at 0.9 the oracle ties random and trails a, b, c (0.3, 0.5, 0.7): fourth of five, the tie in its favour
    assert (valid.iloc[0]["oracle_rank"], valid.iloc[0]["maps"]) == (4, 5)
    assert "| 0.900 (4 of 5) |" in "\n".join(known_truth.known_truth_lines(rel, pd.DataFrame(), valid))


@pytest.mark.integration
def test_a_model_trained_with_a_planted_marker_relies_on_it(tmp_path):
    """q = 1: every pneumonia training image carries the marker. The trained model relies on it: on the
    test images (all marked, both classes) removing the marker flips the prediction, and without the
    marker its accuracy falls to chance."""
    out = tmp_path / "planted"
    args = ["score", "--preset", "smoke", "--out", str(out), "--set", 'data.dataset="planted"',
            "--set", "data.params={base='phantom', q=1.0, test_share=1.0, extent=0.25}",
            "--set", "data.limit={train=96, val=8, test=8}", "--set", "models.names=['resnet50']",
            "--set", "models.train={resnet50={lr=2e-3, epochs=3}}", "--set", "explain.names=['random','oracle']",
            "--set", "metrics.names=['pointing_game']", "--set", "metrics.reliability=false",
            "--set", "data.cache_dir=''"]
    assert main(args) == 0
    rel = pd.read_csv(out / "reliance.csv", dtype={"image_id": str})
    pred = pd.read_csv(out / "predictions.csv", dtype={"image_id": str}).set_index("image_id")
    assert len(rel) == 8, "every test image carries the marker and has its counterfactual"
    assert rel["reliant"].mean() >= 0.75, rel
    without = (rel["p_counterfactual"] > 0.5).astype(int).to_numpy()
    labels = pred.loc[rel["image_id"], "label"].to_numpy()
    assert (without == labels).mean() <= 0.625, "without the marker: chance (4 of 8 a class)"
    # the oracle is the marker's mask here: it points into it on every image
    scores = pd.read_csv(out / "scores.csv", dtype={"image_id": str})
    assert scores[(scores.explainer == "oracle") & (scores.metric == "pointing_game")]["value"].eq(1.0).all()


def test_with_planted_evidence_the_oracle_is_named_the_marker_mask():
    """The known-evidence map of a planted run is the marker's mask: no table may call it an expert's."""
    from benchmark.report.labels import label, run_labels
    from benchmark.run.config import load_config
    planted = load_config(None, ["data.dataset='planted'"], "smoke")
    assert label("oracle", run_labels(planted)) == "Oracle (marker mask)"
    assert label("oracle", run_labels(load_config(None, [], "smoke"))) == "Oracle (expert mask)"
    mine = load_config(None, ["data.dataset='planted'", "report.labels={oracle='Marker'}"], "smoke")
    assert label("oracle", run_labels(mine)) == "Marker", "report.labels still wins"
