"""The sanity verdict (report/findings.py: sanity_cell, sanity_outcome): the last cascade stage's
|similarity| per image against the null (the same explainer's maps of two different images), degenerate
maps counted as failures, the verdict with its CI. Constructed explainers through the real metric on a
tiny model, and constructed similarity tables for the cases the old mean-over-stages verdict passed."""
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.metrics import score
from benchmark.metrics.sanity import degenerate, null_partners, null_similarities
from benchmark.report.artifacts import load_sanity_images, sanity_image_rows, write_sanity_images
from benchmark.report.findings import (SANITY_MARGIN, findings, findings_markdown, sanity_cell, sanity_outcome,
                                       sanity_table, with_sanity)
from benchmark.report.stats import paired_tests, summarise

SIZE = 16


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * SIZE * SIZE, 2)).eval()


def _images(n: int = 24, seed: int = 1) -> torch.Tensor:
    """Grey images with one bright blob each, somewhere else in each image (a phantom in miniature)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    out = []
    for _ in range(n):
        cy, cx = torch.randint(3, SIZE - 3, (2,), generator=g).float()
        blob = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8)
        out.append((0.3 + 0.5 * blob + 0.05 * torch.rand(SIZE, SIZE, generator=g)).clamp(0, 1))
    return torch.stack(out)[:, None]


class Gradient:
    """|d logit / d input|: depends on every weight of the model."""

    def explain(self, model, images, targets, **context):
        x = images.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(x).gather(1, targets.view(-1, 1)).sum(), x)
        return grad[:, 0].abs().detach()


class Sobel:
    """An edge detector: the image's gradient magnitude, whatever the model."""

    def explain(self, model, images, targets, **context):
        k = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
        gx = F.conv2d(images, k.view(1, 1, 3, 3), padding=1)
        gy = F.conv2d(images, k.t().reshape(1, 1, 3, 3), padding=1)
        return (gx ** 2 + gy ** 2).sqrt()[:, 0]


class BrokenOnTheTrainedModel:
    """A broken explainer: an all-zero map for the model it is asked about (e.g. a saturated gradient),
    the gradient once the weights are randomised. The old check counted the constant map as "shares
    nothing with the randomised map" (similarity 0 at every stage): fully model-dependent, passed."""

    def __init__(self, model):
        self.trained = [p.detach().clone() for p in model.parameters()]

    def explain(self, model, images, targets, **context):
        if all(torch.equal(p, q) for p, q in zip(model.parameters(), self.trained)):
            return torch.zeros(len(images), SIZE, SIZE)
        return Gradient().explain(model, images, targets)


class Constant:
    def explain(self, model, images, targets, **context):
        return torch.ones(len(images), SIZE, SIZE)


def _rows(explainer, name: str, model=None, images=None) -> pd.DataFrame:
    """sanity_images.csv rows of one explainer and randomisation metric, through the registered metric."""
    model = _net() if model is None else model
    x = _images() if images is None else images
    t = torch.tensor([i % 2 for i in range(len(x))])
    maps = explainer.explain(model, x, t)
    sink = {}
    # seed 1: seed 0 would re-initialise the first conv exactly as _net() built it
    score(name, model, x, t, maps, torch.zeros(len(x), SIZE, SIZE, dtype=torch.bool), torch.zeros(len(x), dtype=torch.bool),
          explainer=explainer, sink=sink, seed=1)
    assert sink["null"].shape == (len(x), 1) and sink["degenerate"].shape == (len(x), 2)
    return sanity_image_rows("d", "s", "m", type(explainer).__name__, name, [f"i{i:02d}" for i in range(len(x))],
                             sink["curve"].numpy(), sink["null"].numpy(), sink["degenerate"].numpy())


METRICS = ["randomisation_spearman", "randomisation_ssim"]


@pytest.mark.parametrize("name", METRICS)
def test_a_model_dependent_explainer_passes(name):
    r = sanity_cell(_rows(Gradient(), name), 500)
    assert r["verdict"] == "passes", r
    assert r["diff_ci_high"] < SANITY_MARGIN and r["last_ci_high"] < 1 - SANITY_MARGIN
    assert r["degenerate_map"] == r["degenerate_last"] == r["no_null"] == 0 and r["n"] == 24


@pytest.mark.parametrize("name", METRICS)
def test_an_edge_detector_that_ignores_the_model_fails(name):
    """Sobel's randomised map is its original (|sim| 1), while its maps of two images differ (null < 1)."""
    r = sanity_cell(_rows(Sobel(), name), 500)
    assert r["verdict"] == "fails", r
    assert r["abs_last"] == pytest.approx(1.0) and r["abs_null"] < 0.7 and r["diff_ci_low"] >= SANITY_MARGIN


@pytest.mark.parametrize("name", METRICS)
def test_a_constant_map_fails_and_is_counted(name):
    """Bug caught: a map constant on the trained model scored similarity 0 to every randomised map
    (map_similarity's convention) and passed the old check as fully model-dependent."""
    model = _net()
    rows = _rows(BrokenOnTheTrainedModel(model), name, model)
    assert (rows["last"] == 0).all(), "the metric's stored similarity is kept: the convention's 0"
    r = sanity_cell(rows, 500)
    assert r["verdict"] == "fails" and r["degenerate_map"] == 24 and r["diff"] == 1.0, r
    always = sanity_cell(_rows(Constant(), name), 500)
    assert always["verdict"] == "fails" and always["degenerate_map"] == 24
    text = sanity_outcome(*_summary_tests(rows), "d", "m", "BrokenOnTheTrainedModel", images=rows)
    assert text.startswith("fails (") and "24 degenerate trained maps counted as failures)" in text


def test_null_partners_skip_degenerate_maps_and_single_images():
    bad = torch.tensor([False, True, False, False, True])
    assert null_partners(bad).tolist() == [2, -1, 3, 0, -1]
    assert null_partners(torch.tensor([False])).tolist() == [-1]  # one image: no other image's map
    maps = torch.rand(4, 8, 8, generator=torch.Generator().manual_seed(0))
    maps[1] = 0.0
    assert degenerate(maps).tolist() == [False, True, False, False]
    maps[2, 0, 0] = float("nan")
    assert degenerate(maps).tolist() == [False, True, True, False]
    null = null_similarities(maps, "spearman")
    assert torch.isnan(null[1]) and torch.isnan(null[2]) and torch.isfinite(null[[0, 3]]).all()


def _table(last, null, metric: str = "randomisation_spearman", explainer: str = "e", deg_map=None,
           deg_last=None) -> pd.DataFrame:
    n = len(last)
    zeros = np.zeros(n)
    return pd.DataFrame(dict(dataset="d", split="s", model="m", explainer=explainer, metric=metric,
                             image_id=[f"i{i:02d}" for i in range(n)], last=last, null=null,
                             degenerate_map=zeros if deg_map is None else deg_map,
                             degenerate_last=zeros if deg_last is None else deg_last))


def _summary_tests(rows: pd.DataFrame, stage_means=None):
    """The score table the old verdict read (the metric's value: the mean over stages; `center` at 1)."""
    values = rows["last"].to_numpy(float) if stage_means is None else stage_means
    e = rows["explainer"].iloc[0]
    metric = rows["metric"].iloc[0]
    scores = pd.concat([pd.DataFrame(dict(dataset="d", split="s", model="m", explainer=x, metric=metric,
                                          image_id=rows["image_id"], value=v))
                        for x, v in ((e, values), ("center", np.ones(len(rows))))], ignore_index=True)
    return summarise(scores, 100), paired_tests(scores, 100)


def test_signed_similarities_that_cancel_do_not_pass():
    """Bug caught: per image the stages' Spearman similarities are +0.9 and -0.9 (the randomised maps
    keep or invert the original's ranks): the old verdict averaged them to 0 and passed."""
    n = 20
    last = np.tile([0.9, -0.9], n // 2)
    rows = _table(last, np.full(n, 0.2))
    r = sanity_cell(rows, 500)
    assert r["verdict"] == "fails" and r["abs_last"] == pytest.approx(0.9) and r["diff"] == pytest.approx(0.7)
    summary, tests = _summary_tests(rows, stage_means=np.zeros(n))  # (+0.9 - 0.9) / 2 per image
    assert sanity_outcome(summary, tests, "d", "m", "e", images=rows).startswith("fails (randomisation_spearman: Δ +0.700")


def test_a_map_that_half_survives_randomisation_fails_against_the_null():
    """Bug caught: last-stage |similarity| 0.45, below the old threshold 0.5 and significantly below
    `center` (1), passed; but the explainer's maps of two different images are only 0.1 alike, so the
    randomised model's map is far more like the original than an unrelated map is."""
    rng = np.random.default_rng(0)
    rows = _table(0.45 + 0.02 * rng.standard_normal(30), 0.1 + 0.02 * rng.standard_normal(30))
    summary, tests = _summary_tests(rows)
    assert sanity_outcome(summary, tests, "d", "m", "e", images=rows).startswith("fails")
    # the same last-stage values with a null as high (an explainer whose maps all look alike): passes
    alike = _table(rows["last"], rows["last"] + 0.05)
    assert sanity_cell(alike, 500)["verdict"] == "passes"


def test_an_image_independent_map_fails_although_it_matches_its_null():
    """`center` is one map for every image: randomised or not, and for another image, similarity 1;
    D = 0 would pass the difference alone, the last stage's |similarity| >= 0.9 fails it."""
    r = sanity_cell(_table(np.ones(10), np.ones(10), explainer="center"), 500)
    assert r["diff"] == 0.0 and r["verdict"] == "fails"


def test_inconclusive_when_the_interval_straddles_the_margin_and_degenerate_randomised_maps_count():
    rng = np.random.default_rng(1)
    wide = _table(np.abs(0.3 + 0.3 * rng.standard_normal(8)), np.abs(0.25 + 0.3 * rng.standard_normal(8)))
    r = sanity_cell(wide, 500)
    assert r["diff_ci_low"] < SANITY_MARGIN <= r["diff_ci_high"] and r["verdict"] == "inconclusive"
    # 3 of 20 randomised maps collapsed to a constant (the trained maps did not): the map changed as
    # much as it can, similarity 0 (d = 0 - null), counted and named, never a failure
    n = 20
    deg = np.zeros(n)
    deg[:3] = 1
    rows = _table(np.where(deg > 0, np.nan, 0.05), np.full(n, 0.5), deg_last=deg)
    r = sanity_cell(rows, 500)
    assert r["degenerate_last"] == 3 and r["diff"] == pytest.approx((3 * -0.5 + 17 * -0.45) / 20)
    assert r["last"] == pytest.approx(17 * 0.05 / 20) and r["verdict"] == "passes"
    assert r["abs_last"] == pytest.approx(0.05), "the means of |sim| are over the non-degenerate images"
    text = sanity_outcome(*_summary_tests(rows), "d", "m", "e", images=rows)
    assert "3 randomised maps collapsed to a constant (counted as changed)" in text


def test_a_grad_cam_whose_randomised_maps_all_collapse_passes_and_a_broken_one_fails():
    """Grad-CAM of a fully randomised network is often all zero (its ReLU): every randomised map
    collapsed while every trained map varies is a complete change; a constant trained map still fails."""
    n = 20
    rows = _table(np.full(n, np.nan), np.full(n, 0.6), deg_last=np.ones(n))
    r = sanity_cell(rows, 500)
    assert r["verdict"] == "passes" and r["degenerate_last"] == n and r["last"] == 0.0
    broken = _table(np.full(n, np.nan), np.full(n, np.nan), deg_map=np.ones(n), deg_last=np.ones(n))
    assert sanity_cell(broken, 500)["verdict"] == "fails"


def test_report_overview_and_files(tmp_path):
    good = _table(np.full(10, 0.05) + np.linspace(0, 0.02, 10), np.full(10, 0.5), explainer="gradcam")
    bad = _table(np.ones(10), np.linspace(0.3, 0.5, 10), explainer="lrp")
    images = pd.concat([good, bad, _table(np.ones(10), np.linspace(0.3, 0.5, 10), explainer="sobel")])
    write_sanity_images(tmp_path / "sanity_images.csv", [images])
    loaded = load_sanity_images(tmp_path / "sanity_images.csv")
    assert len(loaded) == 30 and loaded["image_id"].iloc[0] == "i00"
    sanity_rows = [pd.DataFrame(dict(dataset="d", split="s", model="m", explainer=e, metric="randomisation_spearman",
                                     image_id=g["image_id"], value=g["last"])) for e, g in images.groupby("explainer")]
    other = [pd.DataFrame(dict(dataset="d", split="s", model="m", explainer=e, metric="relevance_mass",
                               image_id=good["image_id"], value=v))
             for e, v in (("gradcam", 0.6), ("lrp", 0.5), ("random", 0.1), ("sobel", 0.2))]
    scores = pd.concat(sanity_rows + other, ignore_index=True)
    summary, tests = summarise(scores, 100), paired_tests(scores, 100)
    _, overview = findings(summary, tests)
    assert overview.set_index("explainer").loc["gradcam", "sanity"].startswith("not judged")  # no per-image values
    judged = with_sanity(overview, summary, tests, loaded).set_index("explainer")
    assert judged.loc["gradcam", "sanity"].startswith("passes (randomisation_spearman: Δ -0.440 [")
    assert judged.loc["lrp", "sanity"].startswith("fails (randomisation_spearman: Δ +0.600 [")
    assert "|" not in judged.loc["gradcam", "sanity"] + judged.loc["lrp", "sanity"], "a Markdown table cell"
    md = findings_markdown(judged.reset_index())
    assert "| passes (randomisation_spearman: Δ -0.440 [" in md
    table = sanity_table(loaded).set_index("explainer")
    assert table.loc["sobel", "verdict"] == "fails" and table.loc["gradcam", "verdict"] == "passes"
    write_sanity_images(tmp_path / "sanity_images.csv", [])
    assert load_sanity_images(tmp_path / "sanity_images.csv") is None, "no frames: no stale file"


@pytest.mark.integration
def test_a_run_stores_the_per_image_values_and_reports_the_verdicts(tmp_path):
    """A real (tiny) run: sanity_images.csv from the metric's stored pieces (no extra model pass), the
    verdicts in report/sanity_verdicts.csv and the findings table; the edge detector fails."""
    from benchmark.cli import main
    out = tmp_path / "run"
    assert main(["run", "--preset", "smoke", "--out", str(out), "--set", "models.names=['vgg16_bn']",
                 "--set", "explain.names=['gradcam','sobel','random']",
                 "--set", "metrics.names=['randomisation_spearman','relevance_mass']",
                 "--set", "metrics.reliability=false"]) == 0
    images = load_sanity_images(out / "sanity_images.csv")
    scores = pd.read_csv(out / "scores.csv", dtype={"image_id": str})
    assert set(images.explainer) == {"gradcam", "sobel", "random"}
    assert len(images) == (scores.metric == "randomisation_spearman").sum()
    assert set(images.image_id) == set(scores.image_id)
    assert (images["null"].notna() | (images["degenerate_map"] == 1)).all(), "a null for every usable map"
    verdicts = pd.read_csv(out / "report" / "sanity_verdicts.csv").set_index("explainer")
    assert verdicts.loc["sobel", "verdict"] == "fails" and verdicts.loc["sobel", "abs_last"] == pytest.approx(1.0)
    report = (out / "report" / "report.md").read_text()
    assert "| vgg16_bn | gradcam |" in report and "(randomisation_spearman: Δ " in report
