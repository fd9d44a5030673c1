"""The two reliability checks built on re-explained maps, checked by hand on small tables: trained
against fully randomised maps (paired difference, shares, effect, Wilcoxon p) and the stability of the
methods' ranking under noise (Kendall tau, per-image rank changes); the fully randomised model is
the sanity cascade's last stage; the noise is seeded; the report section with and without the tables."""
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as sps
from torch import nn

from benchmark.metrics.sanity import cascade_maps
from benchmark.report import reliability_checks as checks
from benchmark.report import trust
from benchmark.run.perturbed_maps import perturbed_images
from benchmark.run.randomised_maps import fully_randomised


def _long(values: dict[tuple[str, str], list[float]], model: str = "m") -> pd.DataFrame:
    """{(explainer, metric): per-image values} as the long score table."""
    return pd.DataFrame([dict(dataset="d", split="s", model=model, explainer=e, metric=m, image_id=f"i{i}", value=v)
                         for (e, m), vs in values.items() for i, v in enumerate(vs)])


BASE = list(np.linspace(0.1, 0.9, 10))


def _tables():
    trained = _long({("gradcam", "relevance_mass"): [v + 0.1 for v in BASE],
                     ("gradcam", "pointing_game"): BASE,
                     ("gradcam", "iou"): BASE,
                     ("gradcam", "deletion_auc"): [v - 0.05 for v in BASE],
                     ("lrp", "relevance_mass"): [v + 0.3 for v in BASE]})
    randomised = _long({("gradcam", "relevance_mass"): BASE,
                        ("gradcam", "pointing_game"): BASE,            # blind to the map: the same scores
                        ("gradcam", "iou"): [v + 0.2 for v in BASE],   # reversed: the randomised map wins
                        ("gradcam", "deletion_auc"): BASE,             # lower is better: trained lower is better
                        ("lrp", "relevance_mass"): BASE})
    return trained, randomised


def test_randomised_discrimination_by_hand():
    trained, randomised = _tables()
    d = checks.randomised_discrimination(trained, randomised).set_index(["metric", "explainer"])
    rm = d.loc[("relevance_mass", "gradcam")]
    assert (rm.n, rm.trained_better, rm.tie, rm.effect) == (10, 1.0, 0.0, 1.0)
    assert rm.mean_diff == pytest.approx(0.1)
    assert rm.p == pytest.approx(2 / 2 ** 10)  # exact two-sided signed-rank p: all ten differences positive
    pooled = d.loc[("relevance_mass", "all")]  # gradcam's +0.1 and lrp's +0.3 on 20 pairs
    assert pooled.n == 20 and pooled.mean_diff == pytest.approx(0.2) and pooled.trained_better == 1.0
    blind = d.loc[("pointing_game", "gradcam")]
    assert (blind.mean_diff, blind.trained_better, blind.tie, blind.randomised_better, blind.effect, blind.p) == (
        0.0, 0.0, 1.0, 0.0, 0.0, 1.0)
    rev = d.loc[("iou", "gradcam")]
    assert rev.mean_diff == pytest.approx(-0.2) and rev.randomised_better == 1.0 and rev.effect == -1.0
    assert rev.p == pytest.approx(2 / 2 ** 10)
    dele = d.loc[("deletion_auc", "gradcam")]
    assert dele.mean_diff == pytest.approx(0.05) and dele.trained_better == 1.0 and dele.effect == 1.0
    assert ("pointing_game", "all") not in d.index  # one explainer: no pooled row
    # the pooled view keeps the `all` row, or the only explainer's
    pooled_view = checks.pooled(checks.randomised_discrimination(trained, randomised)).set_index("metric")
    assert pooled_view.loc["relevance_mass", "explainer"] == "all" and pooled_view.loc["iou", "explainer"] == "gradcam"
    assert "cannot tell trained from randomised maps: trained maps of gradcam beat randomised maps on 0% of 10" in (
        checks.randomised_sentence(pooled_view.reset_index().set_index("metric", drop=False).loc["pointing_game"]))
    assert checks.randomised_sentence(pooled_view.reset_index().iloc[
        list(pooled_view.index).index("iou")]).startswith("scores randomised maps above trained ones (reversed)")


def test_randomised_discrimination_drops_unpaired_and_nan():
    trained, randomised = _tables()
    trained.loc[(trained.metric == "iou") & (trained.image_id == "i0"), "value"] = np.nan  # a normal image
    randomised = randomised[~((randomised.metric == "iou") & (randomised.image_id == "i1"))]  # not scored
    d = checks.randomised_discrimination(trained, randomised).set_index(["metric", "explainer"])
    assert d.loc[("iou", "gradcam"), "n"] == 8


def _ranked(clean: dict[str, list[float]], noisy: dict[str, list[float]], metric: str = "relevance_mass"):
    return (_long({(e, metric): v for e, v in clean.items()}),
            _long({(e, metric): v for e, v in noisy.items()}).assign(sigma=0.01))


# three methods and two baselines; the baselines keep their order (oracle first, random last) under the noise
CLEAN = {"gradcam": [0.6, 0.7, 0.5, 0.6], "lrp": [0.4, 0.5, 0.3, 0.4], "lime": [0.2, 0.3, 0.1, 0.2],
         "oracle": [1.0] * 4, "random": [0.0] * 4}


def test_ranking_stability_holds_and_reverses_with_baselines_left_out():
    """Bug caught: the old check measured how far each explainer's scores move against the gaps between
    explainers (padded by the baselines) and could not say whether the metric's ranking of the methods
    holds; here the ranking is fully reversed while every score moves by at most 0.4."""
    held = {**CLEAN, "gradcam": [v + 0.01 for v in CLEAN["gradcam"]]}  # the order of the methods holds
    reversed_ = {"gradcam": CLEAN["lime"], "lrp": CLEAN["lrp"], "lime": CLEAN["gradcam"],
                 "oracle": CLEAN["oracle"], "random": CLEAN["random"]}  # gradcam and lime swap: lrp stays in the middle
    for noisy, tau, changed in ((held, 1.0, 0.0), (reversed_, -1.0, 1.0)):
        scores, perturbed = _ranked(CLEAN, noisy)
        r = checks.stability(scores, perturbed).iloc[0]
        assert (r.methods, r.n_methods, r.n) == ("gradcam, lime, lrp", 3, 4), "baselines are not ranked"
        assert r.tau == tau and r.changed == changed
        means = [np.mean(CLEAN[e]) for e in ("gradcam", "lime", "lrp")]
        assert r.tau == pytest.approx(sps.kendalltau(means, [np.mean(noisy[e]) for e in ("gradcam", "lime", "lrp")]).statistic)
    assert "reverses its ranking of the methods (gradcam, lime, lrp)" in checks.stability_sentence(r, 0.01)
    assert "changes on 100% of them [40%, 100%]" in checks.stability_sentence(r, 0.01)  # exact CI of 4 of 4
    # with the baselines ranked too, the same full reversal would read tau 0.4 (oracle and random stay put)
    with_baselines = [np.mean(reversed_[e]) for e in ("gradcam", "lime", "lrp", "oracle", "random")]
    assert sps.kendalltau([np.mean(CLEAN[e]) for e in ("gradcam", "lime", "lrp", "oracle", "random")],
                          with_baselines).statistic == pytest.approx(0.4)


def test_ranking_stability_by_hand_against_scipy_and_per_image_ranks():
    """Four methods, lower is better (deletion_auc): a partial change of the ranking; per image, the
    image whose two methods swap counts as changed, the noise-free ones not; images a method lacks
    (prediction changed, or NaN) leave the common set."""
    clean = {"a": [0.1, 0.1, 0.1, 0.1, 0.1], "b": [0.2, 0.2, 0.2, 0.2, 0.2], "c": [0.3, 0.3, 0.3, 0.3, 0.3],
             "d": [0.4, 0.4, 0.4, 0.4, np.nan], "sobel": [0.9] * 5}
    noisy = {"a": [0.25, 0.1, 0.1, 0.1, 0.1], "b": [0.2, 0.2, 0.2, 0.2, 0.2], "c": [0.3, 0.3, 0.3, 0.3, 0.3],
             "d": [0.4, 0.4, 0.05, 0.4, 0.4], "sobel": [0.0] * 5}  # d's mean drops below c's: one pair of 6 swaps
    scores, perturbed = _ranked(clean, noisy, "deletion_auc")
    perturbed = perturbed[perturbed.image_id != "i3"]  # the noise changed the prediction of image 3: not kept
    r = checks.stability(scores, perturbed).iloc[0]
    assert (r.n_methods, r.n, r.n_changed) == (4, 3, 2)  # images 0, 1, 2; image 0 (a, b swap) and 2 (d moves up)
    keep = ["i0", "i1", "i2"]
    mean = lambda t, e: -np.mean([v for i, v in enumerate(t[e]) if f"i{i}" in keep])  # noqa: E731 (direction)
    expected = sps.kendalltau([mean(clean, e) for e in "abcd"], [mean(noisy, e) for e in "abcd"]).statistic
    assert r.tau == pytest.approx(expected) == pytest.approx(2 / 3)
    assert (r.changed_ci_low, r.changed_ci_high) == pytest.approx(sps.binomtest(2, 3).proportion_ci(0.95, "exact"))
    # one method only (or none): no ranking to keep
    one = checks.stability(*_ranked({"a": [0.1, 0.2], "random": [0.0, 0.0]}, {"a": [0.2, 0.1], "random": [0.0, 0.0]}))
    assert one.iloc[0].n_methods == 1 and np.isnan(one.iloc[0].tau)
    assert checks.stability_sentence(one.iloc[0], 0.01).startswith("has no ranking stability measured")


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 2)).eval()


def test_fully_randomised_is_the_last_cascade_stage():
    model = _net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []
    x, t = torch.rand(2, 1, 8, 8), torch.tensor([0, 1])
    cascade_maps(model, lambda m, x, t: (seen.append({k: v.clone() for k, v in m.state_dict().items()}),
                                         torch.zeros(len(x), 8, 8))[1], x, t, seed=3, max_layers=2)
    rng = torch.get_rng_state()
    full = fully_randomised(model, seed=3).state_dict()
    assert torch.equal(torch.get_rng_state(), rng), "the caller's RNG is untouched"
    assert all(torch.equal(full[k], seen[-1][k]) for k in full)
    assert all(torch.equal(model.state_dict()[k], before[k]) for k in before), "the trained model is untouched"
    assert not torch.equal(full["0.weight"], before["0.weight"]) and not torch.equal(full["6.weight"], before["6.weight"])
    assert not fully_randomised(model, seed=4).state_dict()["0.weight"].equal(full["0.weight"])
    only = fully_randomised(model, seed=3, layers=["6"]).state_dict()
    assert torch.equal(only["0.weight"], before["0.weight"]) and not torch.equal(only["6.weight"], before["6.weight"])
    with pytest.raises(KeyError, match="not re-initialisable"):
        fully_randomised(model, layers=["nope"])


def test_perturbed_images_are_seeded_small_and_clipped():
    x = torch.rand(5, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    x[0] = 0.0  # an image at the bottom of the range: clipped, never below 0
    a, b = perturbed_images(x, 0.01, 0), perturbed_images(x, 0.01, 0)
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1
    assert not torch.equal(a, perturbed_images(x, 0.01, 1))
    noise = (a - x)[1:]
    assert float(noise.std()) == pytest.approx(0.01, rel=0.1) and float(noise.abs().max()) < 0.06
    # image i's noise hangs on its position only, not on the other images
    assert torch.equal(perturbed_images(x[:2], 0.01, 0), a[:2])


def _section(run_dir, scores, monkeypatch):
    rep = run_dir / "report"
    rep.mkdir(parents=True, exist_ok=True)
    from benchmark.report import stats
    summary = stats.summarise(scores, 50, 0.95, 0)
    monkeypatch.setattr(trust, "agreement_figure", lambda table, stem: None)  # no figure needed here
    return "\n".join(trust.trust_section(summary, scores, rep, 50, 0)), rep


def test_section_without_tables_is_unchanged_and_with_them_has_numbers(tmp_path, monkeypatch):
    trained, randomised = _tables()
    scores = pd.concat([trained, _long({("random", "relevance_mass"): BASE, ("oracle", "relevance_mass"): [1.0] * 10,
                                        ("random", "iou"): BASE, ("oracle", "iou"): [1.0] * 10})], ignore_index=True)
    run = tmp_path / "run"
    text, rep = _section(run, scores, monkeypatch)
    assert trust.CAVEAT in text and "Trained against randomised" not in text and " It " not in text
    assert not (rep / "randomised_discrimination.csv").exists() and not (rep / "stability.csv").exists()
    randomised.to_csv(run / "randomised_scores.csv", index=False)
    perturbed = trained[trained.metric.isin(["relevance_mass", "iou"])].assign(value=lambda d: d.value + 0.01, sigma=0.02)
    perturbed.to_csv(run / "stability.csv", index=False)
    text, rep = _section(run, scores, monkeypatch)
    assert trust.CAVEAT not in text and "### Trained against randomised maps" in text
    assert "### Stability of the ranking under noise (sigma 0.02)" in text
    assert ("`relevance_mass`:" in text and "It tells trained from randomised maps: trained maps beat randomised maps "
            "on 100% of 20 image pairs" in text)
    assert "keeps its ranking of the methods (gradcam, lrp) under noise of sigma 0.02: Kendall tau +1.00" in text
    assert "It cannot tell trained from randomised maps" not in text.split("`iou`")[0].split("`relevance_mass`")[-1]
    disc = pd.read_csv(rep / "randomised_discrimination.csv")
    assert set(disc.explainer) == {"gradcam", "lrp", "all"}
    assert set(pd.read_csv(rep / "stability.csv").metric) == {"relevance_mass", "iou"}
    # a later build without the tables (checks turned off) drops the stale CSVs and restores the caveat
    (run / "randomised_scores.csv").unlink()
    (run / "stability.csv").unlink()
    text, rep = _section(run, scores, monkeypatch)
    assert trust.CAVEAT in text and not (rep / "stability.csv").exists()
