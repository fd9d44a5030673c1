"""Cascading model-parameter randomisation against skimage, scipy and Quantus 0.6 MPRT."""
import warnings

import numpy as np
import pytest
import quantus
import torch
from torch import nn

from benchmark.metrics import get_metric, score
from benchmark.metrics.sanity import (cascade_maps, cascading_randomisation, map_similarity, preprocess,
                                     randomisable_layers)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * 10 * 10, 2)).eval()


def gradient_x_input(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    x = images.clone().requires_grad_(True)
    out = model(x).gather(1, targets.view(-1, 1)).sum()
    (grad,) = torch.autograd.grad(out, x)
    return (grad * x)[:, 0].detach()


class GradXInput:
    """Anything with the Explainer call: the metric needs nothing else."""

    def explain(self, model, images, targets, **context):
        assert context == {"lung_masks": None}
        return gradient_x_input(model, images, targets)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(6, 1, 10, 10, generator=g), torch.tensor([0, 1, 0, 1, 1, 0])


def _pairs(n=6, size=12, ties=False):
    g = torch.Generator().manual_seed(2)
    a = torch.rand(n, size, size, generator=g)
    b = a + 0.3 * torch.rand(n, size, size, generator=g)
    b[0] = -a[0]  # anti-correlated
    b[1] = torch.rand(size, size, generator=g)  # unrelated
    if ties:
        a, b = (a * 3).floor(), (b * 3).floor()
    return a, b


@pytest.mark.parametrize("ties", [False, True])
def test_ssim_equals_skimage_with_quantus_settings(ties, np_trapz):
    from skimage.metrics import structural_similarity
    a, b = _pairs(ties=ties)
    ours = map_similarity(a, b, "ssim").numpy()
    for i in range(len(a)):
        x, y = a[i].double().numpy(), b[i].double().numpy()
        rng = float(max(x.max(), y.max()) - min(x.min(), y.min()))
        ref = structural_similarity(x, y, win_size=7, data_range=rng, gaussian_weights=False)
        assert ours[i] == pytest.approx(ref, abs=1e-12)
        assert ours[i] == pytest.approx(quantus.functions.similarity_func.ssim(x, y), abs=1e-12)
    assert ours.min() < 0.5 < ours.max()


@pytest.mark.parametrize("ties", [False, True])
def test_spearman_equals_scipy(ties):
    from scipy.stats import spearmanr
    a, b = _pairs(ties=ties)
    ours = map_similarity(a, b, "spearman").numpy()
    ref = [spearmanr(a[i].ravel().numpy(), b[i].ravel().numpy())[0] for i in range(len(a))]
    np.testing.assert_allclose(ours, ref, atol=1e-12, rtol=0)
    assert ours[0] < -0.9


def test_similarity_of_a_map_with_itself_is_one_and_bad_kind_is_named():
    a, _ = _pairs()
    assert torch.allclose(map_similarity(a, a, "ssim"), torch.ones(6, dtype=torch.float64))
    assert torch.allclose(map_similarity(a, a, "spearman"), torch.ones(6, dtype=torch.float64))
    with pytest.raises(KeyError, match="unknown similarity 'pearson'"):
        map_similarity(a, a, "pearson")
    with pytest.raises(ValueError, match="smaller than the 7x7 window"):
        map_similarity(a[:, :5, :5], a[:, :5, :5], "ssim")


def test_constant_maps_are_scored_not_nan():
    """A constant map (a map that collapsed, e.g. an all-zero Grad-CAM) shares nothing with a
    non-constant one: 0 for both similarities (Spearman is 0/0, scipy gives NaN; raw SSIM scores the
    flat windows they share). Two constant maps: Spearman 1; SSIM 1 when equal, else its luminance term."""
    from scipy.stats import spearmanr
    from benchmark.metrics.sanity import spearman, ssim
    a, _ = _pairs(4)
    a[1, :9] = 0.0  # zero on most of its pixels, like a ReLU'd map
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns that the input is constant
        assert np.isnan(spearmanr(a[0].ravel().numpy(), zero[0].ravel().numpy())[0])
    assert torch.isnan(spearman(a, zero)).all()
    assert ssim(a, zero)[1] > 0.1, "raw SSIM counts the zero windows both maps share"
    for kind in ("ssim", "spearman"):
        for x, y in ((a, zero), (zero, a), (one, a)):
            assert torch.equal(map_similarity(x, y, kind), torch.zeros(4, dtype=torch.float64))
        assert torch.equal(map_similarity(zero, zero, kind), torch.ones(4, dtype=torch.float64))
        assert torch.equal(map_similarity(one, one, kind), torch.ones(4, dtype=torch.float64))
    assert torch.equal(map_similarity(zero, one, "spearman"), torch.ones(4, dtype=torch.float64))
    assert torch.allclose(map_similarity(zero, one, "ssim"), torch.full((4,), 1e-4 / (1 + 1e-4), dtype=torch.float64))


class CollapsingExplainer:
    """The image's lower rows as its map (it ignores the model; zero on the top 7 rows, like a ReLU'd
    map) until the first layer is randomised, then all zeros: the explanation collapses at the last
    cascade stage, which the check should count as a change."""

    def __init__(self, model):
        self.first = model[0].weight.detach().clone()

    def explain(self, model, images, targets, **context):
        collapsed = not torch.equal(model[0].weight, self.first)
        out = images[:, 0] * 2
        out[:, :7] = 0.0
        return torch.zeros_like(out) if collapsed else out


@pytest.mark.parametrize("name", ["randomisation_ssim", "randomisation_spearman"])
def test_a_map_that_collapses_under_randomisation_counts_as_dissimilar(name, batch):
    """Stages: the logits layer (map unchanged, 1), the middle conv (unchanged, 1), the first conv
    (collapsed, 0): mean 2/3. Left out as NaN (Spearman: mean 1) or scored by the zero windows it
    shares with the original (raw SSIM: a quarter of the windows, mean 0.75), the collapse would
    leave the explainer looking as model-independent as before."""
    x, t = batch
    model = _net()
    explainer = CollapsingExplainer(model)
    masks, has = torch.zeros(6, 10, 10, dtype=torch.bool), torch.zeros(6, dtype=torch.bool)
    sink = {}
    # seed 1: seed 0 would re-initialise the first conv exactly as _net() built it
    original = explainer.explain(model, x, t)
    v = score(name, model, x, t, original, masks, has, explainer=explainer, sink=sink, seed=1)
    assert sink["layers"] == ["5", "2", "0"]
    assert torch.equal(sink["curve"][:, -1], torch.zeros(6)) and torch.allclose(sink["curve"][:, :2], torch.ones(6, 2))
    assert torch.allclose(v, torch.full((6,), 2 / 3))
    # every stage collapsed: 0, not NaN
    explainer.first = torch.zeros_like(explainer.first)
    v = score(name, model, x, t, original, masks, has, explainer=explainer, seed=1)
    assert torch.equal(v, torch.zeros(6))


def test_cascade_never_touches_the_callers_model_or_rng(batch):
    x, t = batch
    model = _net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    layers, curve = cascading_randomisation(model, gradient_x_input, x, t, "spearman", seed=3)
    assert layers == ["5", "2", "0"] == randomisable_layers(model)
    assert curve.shape == (6, 3) and curve.dtype == torch.float32
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert torch.equal(rng, torch.get_rng_state())
    again = cascading_randomisation(model, gradient_x_input, x, t, "spearman", seed=3)[1]
    assert torch.equal(curve, again), "seeded: the same curve twice"
    assert not torch.equal(curve, cascading_randomisation(model, gradient_x_input, x, t, "spearman", seed=4)[1])


def test_cascade_separates_a_model_dependent_map_from_one_that_ignores_the_model(batch):
    x, t = batch
    model = _net()
    _, dependent = cascading_randomisation(model, gradient_x_input, x, t, "ssim", seed=0)
    _, edge = cascading_randomisation(model, lambda m, im, tt: im[:, 0] * 2, x, t, "ssim", seed=0)
    assert torch.allclose(edge, torch.ones_like(edge)), "a map that ignores the model stays identical"
    assert (dependent[:, -1] < 0.9).all()


def test_max_layers_spaces_stages_but_randomises_every_layer(batch):
    x, t = batch
    model = nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1) for _ in range(6)], nn.Flatten(), nn.Linear(100, 2)).eval()
    full_names, full = cascading_randomisation(model, gradient_x_input, x, t, "spearman", seed=0)
    names, part = cascading_randomisation(model, gradient_x_input, x, t, "spearman", seed=0, max_layers=3)
    assert len(full_names) == 7 and names == [full_names[0], full_names[3], full_names[6]]
    assert torch.equal(part, full[:, [0, 3, 6]]), "the cascade is the same, only fewer stages are explained"
    with pytest.raises(KeyError, match="not re-initialisable"):
        cascading_randomisation(model, gradient_x_input, x, t, "spearman", seed=0, layers=["7", "nope"])
    names, _ = cascading_randomisation(model, gradient_x_input, x, t, "spearman", seed=0, layers=["7", "0"])
    assert names == ["7", "0"]
    assert cascading_randomisation(model, gradient_x_input, x, t, "spearman", seed=0, max_layers=0)[0] == full_names


def test_one_cascade_serves_both_similarities(batch):
    x, t = batch
    model = _net()
    stages = cascade_maps(model, gradient_x_input, x, t, seed=5, max_layers=2)
    original = preprocess(gradient_x_input(model, x, t))
    for kind in ("ssim", "spearman"):
        names, curve = cascading_randomisation(model, gradient_x_input, x, t, kind, seed=5, max_layers=2)
        assert names == [n for n, _ in stages]
        expected = torch.stack([map_similarity(original, preprocess(m), kind) for _, m in stages], 1).float()
        assert torch.equal(curve, expected)


@pytest.mark.parametrize("name", ["randomisation_ssim", "randomisation_spearman"])
def test_registered_metric_and_sink(name, batch):
    x, t = batch
    model = _net()
    spec = get_metric(name)
    assert spec.category == "sanity" and not spec.higher_is_better and spec.needs_explainer and spec.needs_model
    maps = gradient_x_input(model, x, t)
    masks, has = torch.zeros(6, 10, 10, dtype=torch.bool), torch.zeros(6, dtype=torch.bool)
    sink = {}
    v = score(name, model, x, t, maps, masks, has, explainer=GradXInput(), context={"lung_masks": None}, sink=sink)
    kind = name.split("_")[1]
    names, curve = cascading_randomisation(model, gradient_x_input, x, t, kind, seed=0, max_layers=5)
    assert sink["layers"] == names and torch.equal(sink["curve"], curve)
    assert torch.allclose(v, curve.mean(1))
    one = score(name, model, x, t, maps, masks, has, explainer=GradXInput(), context={"lung_masks": None},
                layers=["2"], seed=1)
    _, only = cascading_randomisation(model, gradient_x_input, x, t, kind, seed=1, layers=["2"])
    assert torch.allclose(one, only[:, 0])
    with pytest.raises(ValueError, match="pass explainer="):
        score(name, model, x, t, maps, masks, has)


def test_equals_quantus_mprt_top_down(batch, np_trapz):
    """Quantus MPRT re-initialises the same modules in the same order with torch seeded to seed + 1
    before each reset, on a deep copy: seeding ours with Quantus' seed + 1 randomises identically,
    so the per-layer Spearman correlations agree (Quantus' batch-wide normalisation does not change
    ranks)."""
    x, t = batch
    model = _net()

    def explain_func(model, inputs, targets, **kwargs):
        xt = torch.as_tensor(inputs, dtype=torch.float32)
        return gradient_x_input(model, xt, torch.as_tensor(targets).long())[:, None].numpy()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mprt = quantus.MPRT(seed=41, layer_order="top_down", disable_warnings=True)
        ref = mprt(model=model, x_batch=x.numpy(), y_batch=t.numpy(), a_batch=None, explain_func=explain_func,
                   device="cpu")
    names, ours = cascading_randomisation(model, gradient_x_input, x, t, "spearman", seed=42)
    assert names == [k for k in ref if k != "original"]
    np.testing.assert_allclose(ours.numpy(), np.array([ref[k] for k in names]).T, atol=1e-6, rtol=0)
    assert ours[:, -1].mean() < 0.9


class CountingGradXInput:
    """GradXInput that counts its calls (one per explained cascade stage) on the class: an explainer's
    own attributes are part of the cascade key, and the runner builds a fresh one per job."""
    calls = 0

    def explain(self, model, images, targets, **context):
        type(self).calls += 1
        return gradient_x_input(model, images, targets)


def _calls(fn) -> int:
    CountingGradXInput.calls = 0
    fn()
    return CountingGradXInput.calls


def test_ssim_and_spearman_share_one_cascade_and_never_a_stale_one(batch):
    from benchmark.metrics.sanity import CASCADES
    x, t = batch
    model, masks, has = _net(), torch.zeros(6, 10, 10, dtype=torch.bool), torch.ones(6, dtype=torch.bool)
    original = gradient_x_input(model, x, t)
    args = (model, x, t, original, masks, has)

    def run(name, *a, **kw):
        return score(name, *(a or args), explainer=CountingGradXInput(), context={}, **({"seed": 2, "max_layers": 2} | kw))
    CASCADES.clear()
    got = {}
    assert _calls(lambda: got.update(ssim=run("randomisation_ssim"))) == 2
    assert _calls(lambda: got.update(spearman=run("randomisation_spearman"))) == 0, "the second reuses the stages"
    assert CASCADES.hits == 1
    # the shared stages give the numbers each metric gives alone
    for kind, shared in got.items():
        CASCADES.clear()
        assert torch.equal(shared, run(f"randomisation_{kind}"))
    # anything the stages depend on changed: recomputed
    changes = {"seed": ((), dict(seed=3)), "stages": ((), dict(max_layers=3)), "layers": ((), dict(layers=("5",))),
               "images": ((model, x + 0.1, t, original, masks, has), {}),
               "targets": ((model, x, 1 - t, original, masks, has), {})}
    for what, (new_args, kw) in changes.items():
        CASCADES.clear()
        run("randomisation_ssim")
        assert _calls(lambda: run("randomisation_spearman", *new_args, **kw)) > 0, what
    CASCADES.clear()
    run("randomisation_ssim")
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] += 1e-3  # the same model object, trained further in place
    assert _calls(lambda: run("randomisation_spearman")) == 2, "weights changed in place"
    CASCADES.clear()


def test_the_memo_keeps_every_batch_of_a_shard_within_its_byte_budget(batch):
    from benchmark.metrics.cascade_memo import CascadeMemo
    x, t = batch
    model = _net()

    def stages(memo, xs, ts):
        exp = CountingGradXInput()
        return memo.stages_of(model, exp, xs, ts, {}, 0, None, 2,
                              lambda: cascade_maps(model, lambda m, im, tt: exp.explain(m, im, tt), xs, ts, 0, None, 2))
    memo = CascadeMemo()
    halves = [(x[:3], t[:3]), (x[3:], t[3:])]
    for xs, ts in halves:  # the first metric over a shard's batches
        stages(memo, xs, ts)
    assert _calls(lambda: [stages(memo, xs, ts) for xs, ts in halves]) == 0 and memo.hits == 2, \
        "the second metric, batch by batch"
    one = 2 * 3 * 10 * 10 * 4  # 2 stages of 3 float32 maps of 10x10
    memo = CascadeMemo(max_bytes=one)
    for xs, ts in halves:
        stages(memo, xs, ts)
    assert len(memo.entries) == 1, "over budget: the least recently used batch goes"
    assert _calls(lambda: stages(memo, *halves[1])) == 0
    assert _calls(lambda: stages(memo, *halves[0])) == 2
