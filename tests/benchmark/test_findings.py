"""The findings table the report opens with, on a constructed case."""
import numpy as np
import pandas as pd

from benchmark.report.findings import comparisons, findings, findings_markdown, with_sanity
from benchmark.report.stats import paired_tests, summarise


def _case() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 16
    base = rng.random(n)
    noise = lambda: 0.01 * rng.standard_normal(n)  # noqa: E731
    values = {
        # relevance_mass: gradcam beats random and center clearly, ties lung_prior; lrp beats nobody
        ("gradcam", "relevance_mass"): base + 0.5, ("lung_prior", "relevance_mass"): base + 0.5 + noise(),
        ("random", "relevance_mass"): base, ("center", "relevance_mass"): base + 0.1,
        # (a zero-mean alternating difference: no evidence for lrp whatever the Holm family)
        # (noise() still drawn, times 0, so the later draws stay as they were)
        ("lrp", "relevance_mass"): base + 0.01 * np.tile([1.0, -1.0], n // 2) + 0 * noise(),
        # deletion_auc (lower is better): gradcam worse than random; lrp better than random
        ("gradcam", "deletion_auc"): base + 0.3, ("random", "deletion_auc"): base, ("lrp", "deletion_auc"): base - 0.3,
        # sanity: gradcam's maps change with the model, lrp's barely; center ignores the model (1); lime not run
        ("gradcam", "randomisation_ssim"): 0.2 + noise(), ("lrp", "randomisation_ssim"): 0.8 + noise(),
        ("center", "randomisation_ssim"): np.ones(n),
    }
    return pd.DataFrame([dict(dataset="d", split="s", model="m", explainer=e, metric=m, image_id=f"i{i}", value=v)
                         for (e, m), vs in values.items() for i, v in enumerate(vs)])


def test_findings_on_a_constructed_case():
    scores = _case()
    summary, tests = summarise(scores, 100), paired_tests(scores, 100)
    comp, overview = findings(summary, tests)
    beats = comp.set_index(["explainer", "metric", "baseline"])["beats"]
    assert beats[("gradcam", "relevance_mass", "random")] and beats[("gradcam", "relevance_mass", "center")]
    assert not beats[("gradcam", "relevance_mass", "lung_prior")]
    assert not beats[("gradcam", "deletion_auc", "random")] and beats[("lrp", "deletion_auc", "random")]
    assert not beats[("lrp", "relevance_mass", "random")]
    # no comparison with a baseline the metric did not score, nor of sanity metrics
    assert ("gradcam", "deletion_auc", "center") not in beats.index
    assert "randomisation_ssim" not in set(comp.metric)
    rows = overview.set_index("explainer")
    assert rows.loc["gradcam", "beats_all"] == ""
    # each verdict with the paired difference (method - baseline) and its CI; "not shown", not "does not beat"
    # lung_prior is gradcam plus noise of sd 0.01: the equivalence test (TOST within ±0.05) says so
    assert rows.loc["gradcam", "beats_random_only"].startswith("relevance_mass (Δ +0.500 [0.500, 0.500], n = 16; "
                                                               "equivalent to lung_prior within ±0.05")
    assert rows.loc["gradcam", "not_random"] == "deletion_auc (not shown vs random Δ +0.300 [0.300, 0.300], n = 16)"
    assert rows.loc["lrp", "beats_all"] == "deletion_auc (Δ -0.300 [-0.300, -0.300], n = 16)"
    assert rows.loc["lrp", "not_random"].startswith("relevance_mass (equivalent to random within ±0.05 (Δ ")
    assert rows.loc["lrp", "not_random"].endswith("; not shown vs center, lung_prior)"), "priors by name (Δs: findings.csv)"
    # sanity is judged from the per-image values (sanity_images.csv; test_sanity_verdict.py), not the stage means
    assert rows.loc["gradcam", "sanity"] == "not judged (randomisation_ssim: no per-image values (sanity_images.csv))"
    images = pd.DataFrame([dict(dataset="d", split="s", model="m", explainer=e, metric="randomisation_ssim",
                                image_id=f"i{i}", last=last + 0.01 * (i % 3), null=0.5, degenerate_map=0,
                                degenerate_last=0) for e, last in (("gradcam", 0.2), ("lrp", 0.8)) for i in range(16)])
    judged = with_sanity(overview, summary, tests, images, n_resamples=100).set_index("explainer")
    assert judged.loc["gradcam", "sanity"].startswith("passes (randomisation_ssim: Δ -0.291 [")
    assert judged.loc["lrp", "sanity"].startswith("fails (randomisation_ssim: Δ +0.309 [")
    assert set(overview.explainer) == {"gradcam", "lrp"}  # baselines are what the methods are measured against
    md = findings_markdown(overview)
    assert md.startswith("| model | explainer | beats random and every prior on |") and "| m | gradcam | – |" in md


def test_a_method_without_sanity_scores_is_not_run():
    scores = _case()
    extra = scores[(scores.explainer == "gradcam") & (scores.metric == "relevance_mass")].assign(explainer="lime")
    scores = pd.concat([scores, extra])
    summary, tests = summarise(scores, 50), paired_tests(scores, 50)
    _, overview = findings(summary, tests)
    assert overview.set_index("explainer").loc["lime", "sanity"] == "not run"
    # three images whose last-stage similarities straddle the null: the CI of Δ spans the margin, inconclusive
    few = scores[scores.image_id.isin(["i0", "i1", "i2"])]
    summary, few_tests = summarise(few, 50), paired_tests(few, 50)
    _, overview = findings(summary, few_tests)
    images = pd.DataFrame(dict(dataset="d", split="s", model="m", explainer="gradcam", metric="randomisation_ssim",
                               image_id=["i0", "i1", "i2"], last=[0.05, 0.3, 0.6], null=0.3, degenerate_map=0,
                               degenerate_last=0))
    judged = with_sanity(overview, summary, few_tests, images, n_resamples=100)
    assert judged.set_index("explainer").loc["gradcam", "sanity"].startswith("inconclusive")
    assert comparisons(tests.iloc[0:0]).empty


def test_a_metric_failing_its_known_truth_check_is_marked_beside_its_verdicts():
    scores = _case()
    summary, tests = summarise(scores, 100), paired_tests(scores, 100)
    _, plain = findings(summary, tests)
    _, marked = findings(summary, tests, known_false=frozenset({("d", "m", "deletion_auc")}))
    lrp = marked.set_index("explainer").loc["lrp"]
    assert "deletion_auc‡" in lrp["beats_all"] + lrp["beats_random_only"]
    assert "deletion_auc‡" not in "".join(plain.astype(str).to_numpy().ravel())
    assert "relevance_mass‡" not in "".join(marked.astype(str).to_numpy().ravel()), "only the failing metric"
    md = findings_markdown(marked)
    assert "‡ the metric fails its known-truth check" in md
    assert "known-truth" not in findings_markdown(plain)
