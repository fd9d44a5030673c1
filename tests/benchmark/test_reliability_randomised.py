"""The two reliability checks built on re-explained maps, checked by hand on small tables: trained
against fully randomised maps (paired difference, shares, effect, Wilcoxon p) and stability under
noise (mean absolute change against the spread between explainers); the fully randomised model is
the sanity cascade's last stage; the noise is seeded; the report section with and without the tables."""
import numpy as np
import pandas as pd
import pytest
import torch
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


def test_stability_by_hand():
    scores = _long({("a", "relevance_mass"): [0.2] * 4, ("b", "relevance_mass"): [0.4] * 4,
                    ("c", "relevance_mass"): [0.6] * 4, ("oracle", "relevance_mass"): [1.0] * 4,  # left out
                    ("a", "iou"): [0.1, 0.2, 0.3, 0.4], ("b", "iou"): [0.2, 0.3, 0.4, 0.5]})
    perturbed = _long({("a", "relevance_mass"): [0.22, 0.18, 0.22, 0.18],  # moves by 0.02 on every image
                       ("b", "relevance_mass"): [0.4, 0.4, 0.4, 0.4],      # does not move
                       ("a", "iou"): [0.5, 0.6, 0.7, 0.8]})                # moves by 0.4, explainers 0.1 apart
    perturbed = perturbed[perturbed.image_id != "i3"]  # the noise changed the prediction of image 3: not kept
    spread = checks.explainer_spread(scores).set_index("metric")["spread"]
    assert spread["relevance_mass"] == pytest.approx((0.2 + 0.4 + 0.2) / 3)  # pairs of a, b, c; oracle out
    assert spread["iou"] == pytest.approx(0.1)
    s = checks.stability(scores, perturbed).set_index(["metric", "explainer"])
    assert s.loc[("relevance_mass", "a"), "mean_abs_change"] == pytest.approx(0.02)
    assert s.loc[("relevance_mass", "a"), "n"] == 3
    assert s.loc[("relevance_mass", "b"), "mean_abs_change"] == pytest.approx(0.0)
    pooled = s.loc[("relevance_mass", "all")]
    assert pooled.n == 6 and pooled.mean_abs_change == pytest.approx(0.01)
    assert pooled.ratio == pytest.approx(0.01 / (0.8 / 3))
    iou = s.loc[("iou", "a")]
    assert iou.mean_abs_change == pytest.approx(0.4) and iou.ratio == pytest.approx(4.0)
    assert "more than explainers differ, so it cannot rank them" in checks.stability_sentence(iou, 0.01)
    text = checks.stability_sentence(pooled, 0.01)
    assert text.startswith("scores move by 0.01 under noise of sigma 0.01 (6 image pairs), 4% of the spread")
    assert "cannot rank" not in text


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
    assert "### Stability under noise (sigma 0.02)" in text
    assert ("`relevance_mass`:" in text and "It tells trained from randomised maps: trained maps beat randomised maps "
            "on 100% of 20 image pairs" in text)
    assert "scores move by 0.01 under noise of sigma 0.02" in text
    assert "It cannot tell trained from randomised maps" not in text.split("`iou`")[0].split("`relevance_mass`")[-1]
    disc = pd.read_csv(rep / "randomised_discrimination.csv")
    assert set(disc.explainer) == {"gradcam", "lrp", "all"}
    assert set(pd.read_csv(rep / "stability.csv").metric) == {"relevance_mass", "iou"}
    # a later build without the tables (checks turned off) drops the stale CSVs and restores the caveat
    (run / "randomised_scores.csv").unlink()
    (run / "stability.csv").unlink()
    text, rep = _section(run, scores, monkeypatch)
    assert trust.CAVEAT in text and not (rep / "stability.csv").exists()
