"""Faithfulness metrics (deletion / insertion variants, faithfulness correlation, ROAD): by hand and
against Quantus 0.6 on the same inputs."""
import warnings

import numpy as np
import pytest
import quantus
import torch
from quantus.functions import perturb_func

from benchmark.metrics import get_metric, score
from benchmark.metrics.perturbation import (fill_image, linear_imputation, noisy_linear_imputation, patch_ranks,
                                            pixel_ranks)


class MeanModel(torch.nn.Module):
    """Logit of class 1 is 8 * (mean pixel - 0.5); class 0 is 0: outputs computable by hand."""

    def forward(self, x):
        z = 8 * (x.mean((1, 2, 3)) - 0.5)
        return torch.stack([torch.zeros_like(z), z], 1)


class TinyNet(torch.nn.Module):
    """A deterministic two-layer conv net: non-linear, so perturbations interact."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv1 = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 2)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x):
        h = torch.relu(self.conv1(x))
        h = torch.relu(self.conv2(h))
        return self.fc(h.mean((2, 3)))


def _fn(name):
    return get_metric(name).fn


def _inputs(n=6, size=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g), torch.rand(n, size, size, generator=g)


def _no_mask(n, size):
    return torch.zeros(n, size, size, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)


# --- hand-computed ----------------------------------------------------------------------------

def _reference_curve(image, order, fill, counts, insert):
    """Plain numpy: delete (or insert) the first c of `order` pixels; MeanModel's class-1 probability."""
    flat, base = image.flatten(), fill.flatten()
    out = []
    for c in counts:
        x = flat.copy() if not insert else base.copy()
        x[order[:c]] = base[order[:c]] if not insert else flat[order[:c]]
        out.append(1 / (1 + np.exp(-8 * (x.mean() - 0.5))))
    return np.array(out)


@pytest.mark.parametrize("metric,insert,fill", [("deletion_auc", False, "mean"), ("insertion_auc", True, "blur"),
                                                ("deletion_auc", False, "zero")])
def test_lerf_curves_by_hand(metric, insert, fill):
    from benchmark.metrics.perturbation import tie_order
    images, maps = _inputs(3, 8)
    maps[0, 0, :4] = maps[0, 0, 4]  # ties: in the seeded tie order
    perm = tie_order(64, 0).numpy()
    t = torch.ones(3, dtype=torch.long)
    sink = {}
    v = _fn(metric)(model=MeanModel(), images=images, targets=t, maps=maps, steps=8, fill=fill, order="lerf",
                    batch_size=5, sink=sink)
    base = fill_image(images, fill)
    assert sink["curve"].shape == (3, 9) and torch.allclose(sink["fraction"], torch.linspace(0, 1, 9))
    for i in range(3):
        order = perm[np.argsort(maps[i].flatten().numpy()[perm], kind="stable")]
        ref = _reference_curve(images[i, 0].double().numpy(), order, base[i, 0].double().numpy(),
                               [round(k * 64 / 8) for k in range(9)], insert)
        assert np.allclose(sink["curve"][i].numpy(), ref, atol=1e-6)
        assert v[i].item() == pytest.approx(np.trapezoid(ref, dx=1 / 8), abs=1e-6)


def test_patch_ranks_by_hand():
    m = torch.tensor([[[1.0, 1.0, 0.0, 0.0],
                       [1.0, 1.0, 0.0, 5.0],
                       [2.0, 0.0, 0.0, 0.0],
                       [0.0, 0.0, 0.0, 1.0]]])
    # patch sums: top-left 4, top-right 5, bottom-left 2, bottom-right 1
    r, n = patch_ranks(m, 2)
    assert n == 4
    assert r[0, ::2, ::2].tolist() == [[1, 0], [2, 3]]
    assert r[0].tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [2, 2, 3, 3], [2, 2, 3, 3]]
    r, _ = patch_ranks(m, 2, "lerf")
    assert r[0, ::2, ::2].tolist() == [[2, 3], [1, 0]]
    # 5 px with patch 2: the grid is padded to 6 with a zero row / column after (a floor / ceil split of 1)
    m5 = torch.zeros(1, 5, 5)
    m5[0, 4, 4] = 1.0
    r, n = patch_ranks(m5, 2)
    assert n == 9 and r[0, 4, 4] == 0 and (r[0] == 0).sum() == 1  # the last patch holds one real pixel


def test_patch_deletion_by_hand():
    images, maps = _inputs(2, 8)
    t = torch.ones(2, dtype=torch.long)
    sink = {}
    _fn("deletion_auc")(model=MeanModel(), images=images, targets=t, maps=maps, steps=4, unit="patch", patch_size=4,
                        fill="zero", sink=sink)
    for i in range(2):
        sums = maps[i].view(2, 4, 2, 4).sum((1, 3)).flatten()
        patch_order = torch.argsort(-sums).tolist()
        x = images[i, 0].clone()
        ref = [torch.sigmoid(8 * (x.mean() - 0.5)).item()]
        for p in patch_order:
            x[4 * (p // 2):4 * (p // 2) + 4, 4 * (p % 2):4 * (p % 2) + 4] = 0
            ref.append(torch.sigmoid(8 * (x.mean() - 0.5)).item())
        assert np.allclose(sink["curve"][i].numpy(), ref, atol=1e-6)


def test_curves_do_not_depend_on_batch_size():
    images, maps = _inputs(3, 12)
    args = dict(model=TinyNet(), images=images, targets=torch.tensor([0, 1, 1]), maps=maps, steps=6)
    a = _fn("insertion_auc")(**args, batch_size=4)
    b = _fn("insertion_auc")(**args, batch_size=1000)
    assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("param,value,match", [("order", "best", "unknown order 'best'"),
                                               ("unit", "superpixel", "unknown unit 'superpixel'"),
                                               ("fill", "noise", "unknown fill 'noise'"),
                                               ("steps", 0, "steps must be a positive int")])
def test_bad_curve_parameters_are_named(param, value, match):
    images, maps = _inputs(1, 8)
    with pytest.raises(ValueError, match=match):
        score("deletion_auc", MeanModel(), images, torch.ones(1, dtype=torch.long), maps, *_no_mask(1, 8),
              **{param: value})


def test_faithfulness_correlation_by_hand():
    """MeanModel's logit drop with a zero fill is 8/HW times the removed pixels' sum, so a map equal to
    the image correlates perfectly, its negation at -1, and a constant map predicts nothing (0); a
    model whose output never moves leaves the correlation undefined (NaN) for every map."""
    images, _ = _inputs(4, 8)
    t = torch.ones(4, dtype=torch.long)
    args = dict(model=MeanModel(), images=images, targets=t, nr_runs=20, subset_size=0.1)
    assert torch.allclose(_fn("faithfulness_correlation")(maps=images[:, 0], **args), torch.ones(4), atol=1e-5)
    assert torch.allclose(_fn("faithfulness_correlation")(maps=-images[:, 0], **args), -torch.ones(4), atol=1e-5)
    flat = torch.full((4, 8, 8), 0.3)
    flat[1] = torch.rand(8, 8)
    flat[3] = 0.0  # an all-zero map, as Grad-CAM gives when every weighted activation is negative
    v = _fn("faithfulness_correlation")(maps=flat, **args)
    assert torch.equal(v[[0, 2, 3]], torch.zeros(3)) and 0 < abs(v[1].item()) <= 1
    deaf = dict(args, targets=torch.zeros(4, dtype=torch.long))  # MeanModel's class-0 logit never moves
    assert torch.isnan(_fn("faithfulness_correlation")(maps=images[:, 0], **deaf)).all()
    assert torch.isnan(_fn("faithfulness_correlation")(maps=flat, **deaf)).all()


def test_faithfulness_correlation_subsets():
    images, maps = _inputs(2, 16)
    sink = {}
    args = dict(model=TinyNet(), images=images, targets=torch.zeros(2, dtype=torch.long), maps=maps, nr_runs=10)
    a = _fn("faithfulness_correlation")(**args, seed=3, sink=sink)
    assert torch.equal(a, _fn("faithfulness_correlation")(**args, seed=3))
    assert not torch.equal(a, _fn("faithfulness_correlation")(**args, seed=4))
    assert sink["attribution_sum"].shape == (2, 10)
    # default share 1/224 of 256 pixels rounds to 1 pixel; an int counts pixels
    idx = torch.stack([torch.arange(5).expand(2, 5)] * 10)
    s2 = {}
    _fn("faithfulness_correlation")(**args, indices=idx, sink=s2)
    assert torch.allclose(s2["attribution_sum"], maps.flatten(1)[:, :5].sum(1, keepdim=True).expand(2, 10))
    with pytest.raises(ValueError, match="indices must be"):
        _fn("faithfulness_correlation")(**args, indices=idx[:, :1])
    with pytest.raises(ValueError, match="subset_size"):
        _fn("faithfulness_correlation")(**args, subset_size=256)


def test_linear_imputation_by_hand():
    img = torch.arange(9.0).view(1, 1, 3, 3)
    removed = torch.zeros(1, 3, 3, dtype=torch.bool)
    removed[0, 1, 1] = removed[0, 0, 0] = True
    out = linear_imputation(img, removed)
    # two unknowns: the centre (all 8 neighbours, weights sum 1) and the corner (3 neighbours, 5/12)
    c, k = out[0, 0, 1, 1].item(), out[0, 0, 0, 0].item()
    v = img[0, 0]
    assert c == pytest.approx(((v[0, 1] + v[1, 0] + v[1, 2] + v[2, 1]) / 6 + (k + v[0, 2] + v[2, 0] + v[2, 2]) / 12).item(), abs=1e-6)
    assert k == pytest.approx(((v[0, 1] + v[1, 0]) / 6 + c / 12).item() / (5 / 12), abs=1e-6)
    assert torch.equal(out[~removed[:, None]], img[~removed[:, None]])


def test_noisy_imputation_adds_noise_to_removed_pixels_only():
    images, maps = _inputs(4, 16)
    removed = pixel_ranks(maps) < 100
    g = torch.Generator().manual_seed(0)
    noisy = noisy_linear_imputation(images, removed, noise=0.05, generator=g)
    diff = (noisy - linear_imputation(images, removed))[:, 0]
    assert torch.equal(diff[~removed], torch.zeros_like(diff[~removed]))
    assert diff[removed].std().item() == pytest.approx(0.05, rel=0.15)


def test_road_orders_and_sink_by_hand():
    """MeanModel predicts class 1 while the mean exceeds 0.5: removing the brightest pixels first
    (map = image) loses it sooner than removing the darkest first."""
    g = torch.Generator().manual_seed(0)
    images = 0.45 + 0.2 * torch.rand(4, 1, 16, 16, generator=g)
    t = torch.ones(4, dtype=torch.long)
    sink = {}
    args = dict(model=MeanModel(), images=images, targets=t, maps=images[:, 0], noise=0.0)
    morf = _fn("road_morf")(**args, sink=sink)
    lerf = _fn("road_lerf")(**args)
    assert sink["curve"].shape == (4, 50) and sink["fraction"][0] == pytest.approx(0.01)
    assert (morf < lerf).all() and torch.equal(morf, sink["curve"].mean(1))
    prob = _fn("road_morf")(**args, output="probability")
    assert ((prob > 0) & (prob < 1)).all()
    with pytest.raises(ValueError, match="unknown output"):
        _fn("road_morf")(**args, output="auc")


# --- ties and the RISE blur -----------------------------------------------------------------------

def test_pixel_ranks_order_ties_by_a_seeded_permutation_shared_by_every_map():
    """Tied pixels go in tie_order(H*W, tie_seed) order, whatever else the map holds (so every
    explainer meets the same tie order), distinct values by value; the global RNG is not used."""
    from benchmark.metrics.perturbation import tie_order
    g = torch.Generator().manual_seed(0)
    maps = (torch.rand(4, 6, 6, generator=g) * 3).floor()  # 3 levels: large tied groups
    maps[3] = 0.0  # a constant map
    position = torch.empty(36, dtype=torch.long)
    position[tie_order(36, 5)] = torch.arange(36)  # where each pixel stands in the tie order
    state = torch.get_rng_state()
    torch.manual_seed(123)
    for order, sign in (("morf", -1), ("lerf", 1)):
        r = pixel_ranks(maps, order, tie_seed=5).flatten(1)
        for i in range(4):
            expected = sorted(range(36), key=lambda p: (sign * maps[i].flatten()[p].item(), position[p].item()))
            assert r[i].argsort().tolist() == expected
    torch.manual_seed(7)
    assert torch.equal(r, pixel_ranks(maps, "lerf", tie_seed=5).flatten(1)), "independent of the global RNG"
    torch.set_rng_state(state)
    assert not torch.equal(pixel_ranks(maps, tie_seed=5), pixel_ranks(maps, tie_seed=6))
    distinct = torch.rand(2, 6, 6, generator=g)
    assert torch.equal(pixel_ranks(distinct, tie_seed=5), pixel_ranks(distinct, tie_seed=6)), "only ties move"
    with pytest.raises(ValueError, match="tie_seed"):
        pixel_ranks(maps, tie_seed=-1)


def test_patch_ranks_order_tied_patches_by_the_seeded_permutation():
    from benchmark.metrics.perturbation import tie_order
    m = torch.zeros(1, 8, 8)
    m[0, 4:, 4:] = 1.0  # the last of 4 patches first, the 3 tied patches in the tie order
    r, n = patch_ranks(m, 4, tie_seed=3)
    tied = [p for p in tie_order(4, 3).tolist() if p != 3]
    assert n == 4 and r[0, ::4, ::4].flatten().tolist() == [0 if p == 3 else 1 + tied.index(p) for p in range(4)]


def _split_image_and_block_map(size=32):
    """Top half bright (0.9), bottom half dark (0.1); the map is 1 on a 6x6 block in the dark half and
    tied (0) everywhere else: a binary prior, or Grad-CAM's ReLU zeros."""
    img = torch.full((1, 1, size, size), 0.1)
    img[..., :size // 2, :] = 0.9
    m = torch.zeros(1, size, size)
    m[0, 20:26, 4:10] = 1.0
    return img, m


def _expected_deletion_auc(img, m, steps):
    """MeanModel's deletion AUC (zero fill) with the block first and the tied rest in a uniformly random
    order: the removed sum at c pixels is the block's and then c - 36 pixels of the rest's mean."""
    x, block = img[0, 0].double(), m[0] > 0
    b, total = int(block.sum()), x.sum()
    block_sum, rest_mean = x[block].sum(), x[~block].mean()
    curve = []
    for k in range(steps + 1):
        c = round(k * x.numel() / steps)
        removed = block_sum * min(c, b) / b + rest_mean * max(c - b, 0)
        curve.append(torch.sigmoid(8 * ((total - removed) / x.numel() - 0.5)).item())
    return np.trapezoid(curve, dx=1 / steps)


@pytest.mark.parametrize("metric,params,tol", [
    ("deletion_auc", {"fill": "zero"}, 0.03),
    ("insertion_auc", {"fill": "zero"}, 0.03),
    ("deletion_auc", {"fill": "zero", "unit": "patch", "patch_size": 4}, 0.03),
    ("road_morf", {"output": "probability", "noise": 0.0, "percentages": list(range(5, 100, 10))}, 0.1),
])
def test_tied_units_are_not_perturbed_in_raster_order(metric, params, tol):
    """The same image and map flipped upside down or transposed score alike: a stable sort in raster
    order removed the bright top rows of the tied region first in one and last in the other
    (deletion AUC 0.12 against 0.29, ROAD 0.27 against 0.73)."""
    img, m = _split_image_and_block_map()
    t = torch.ones(1, dtype=torch.long)

    def run(x, mp):
        return _fn(metric)(model=MeanModel(), images=x, targets=t, maps=mp, **params).item()

    a = run(img, m)
    assert abs(a - run(img.flip(-2), m.flip(-2))) < tol
    assert abs(a - run(img.transpose(-1, -2), m.transpose(-1, -2))) < tol
    if metric == "deletion_auc" and "unit" not in params:
        assert a == pytest.approx(_expected_deletion_auc(img, m, 16), abs=0.02)


def test_tie_seeds_average_to_the_expected_deletion_auc():
    """Each tie seed is one random tie order: the AUCs spread a little around the expected value."""
    img, m = _split_image_and_block_map()
    t = torch.ones(1, dtype=torch.long)
    aucs = np.array([_fn("deletion_auc")(model=MeanModel(), images=img, targets=t, maps=m, tie_seed=s, fill="zero").item()
                     for s in range(16)])
    expected = _expected_deletion_auc(img, m, 16)
    assert aucs.std() < 0.01 and abs(aucs.mean() - expected) < 0.005
    assert len(np.unique(aucs)) > 1


def _rise_gkern(klen, nsig):
    """RISE evaluation.py's gkern, one channel: a centred delta smoothed by scipy's gaussian_filter."""
    from scipy.ndimage import gaussian_filter
    inp = np.zeros((klen, klen))
    inp[klen // 2, klen // 2] = 1
    return gaussian_filter(inp, nsig)


def test_blur_fill_is_rises_blur_at_224():
    """RISE blurs with gkern(klen=11, nsig=5) by conv2d with zero padding klen // 2."""
    images = torch.rand(1, 1, 40, 224, generator=torch.Generator().manual_seed(0))  # the width sets the kernel
    ref = torch.nn.functional.conv2d(images, torch.from_numpy(_rise_gkern(11, 5)).float()[None, None], padding=5)
    assert torch.allclose(fill_image(images, "blur"), ref, atol=1e-6)
    from benchmark.metrics.perturbation import rise_kernel
    assert rise_kernel(224).shape == (11, 11)
    np.testing.assert_allclose(rise_kernel(224).numpy(), _rise_gkern(11, 5), atol=1e-15, rtol=0)


@pytest.mark.parametrize("size,klen", [(16, 1), (64, 3), (112, 7), (448, 21)])
def test_blur_kernel_scales_with_the_image(size, klen):
    from benchmark.metrics.perturbation import rise_kernel
    k = rise_kernel(size).numpy()
    assert k.shape == (klen, klen) and k.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(k, _rise_gkern(klen, 5 * size / 224), atol=1e-15, rtol=0)
    if size <= 112:  # a 2-D convolution with a 21 x 21 kernel is slow on a CPU
        x = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(1))
        assert torch.allclose(fill_image(x, "blur"), torch.nn.functional.conv2d(
            x, torch.from_numpy(k).float()[None, None], padding=klen // 2), atol=1e-6)


# --- agreement with Quantus 0.6 -----------------------------------------------------------------

@pytest.fixture
def net_inputs():
    images, maps = _inputs(6, 12, seed=1)
    model = TinyNet().eval()
    with torch.no_grad():
        targets = model(images).argmax(1)
    return model, images, targets, maps


def _quantus(metric_cls, model, images, targets, maps, call_kwargs=None, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # abs=False, normalise=False: our metrics take the map as given (normalising by the
        # maximum would not change a ranking or a correlation anyway)
        m = getattr(quantus, metric_cls)(abs=False, normalise=False, disable_warnings=True, **kwargs)
        return m(model=model, x_batch=images.numpy(), y_batch=targets.numpy(), a_batch=maps[:, None].numpy(),
                 device="cpu", **(call_kwargs or {}))


def test_deletion_curve_equals_quantus_pixel_flipping(net_inputs, np_trapz):
    """Quantus' curve starts after the first step; ours has the unperturbed point first. Quantus'
    'black' baseline is the image minimum, so it gets the value 0.0 to match fill='zero'."""
    model, images, targets, maps = net_inputs
    steps = 16
    ref = np.asarray(_quantus("PixelFlipping", model, images, targets, maps, features_in_step=144 // steps,
                              perturb_baseline=0.0, call_kwargs={"softmax": True}))
    sink = {}
    ours = _fn("deletion_auc")(model=model, images=images, targets=targets, maps=maps, steps=steps, fill="zero",
                               sink=sink)
    assert ref.shape == (6, steps)
    assert np.abs(sink["curve"][:, 1:].numpy() - ref).max() < 1e-5
    ref_auc = _quantus("PixelFlipping", model, images, targets, maps, features_in_step=144 // steps,
                       perturb_baseline=0.0, return_auc_per_sample=True, call_kwargs={"softmax": True})
    assert np.allclose(np.trapezoid(sink["curve"][:, 1:].numpy(), dx=1, axis=1), ref_auc, atol=1e-5)
    # and our AUC is the same curve with its first point, on [0, 1]
    full = np.concatenate([sink["curve"][:, :1].numpy(), ref], 1)
    assert np.allclose(ours.numpy(), np.trapezoid(full, dx=1 / steps, axis=1), atol=1e-6)


@pytest.mark.parametrize("order,size", [("morf", 12), ("lerf", 12), ("morf", 13)])
def test_patch_deletion_equals_quantus_region_perturbation(net_inputs, order, size, np_trapz):
    """RegionPerturbation returns the drop from the unperturbed output after each patch; 13 px with
    4 px patches exercises the padding of the grid (1 before, 2 after)."""
    model, _, _, _ = net_inputs
    images, maps = _inputs(6, size, seed=2)
    with torch.no_grad():
        targets = model(images).argmax(1)
    n_patches = ((size + 3) // 4) ** 2
    ref = np.asarray(_quantus("RegionPerturbation", model, images, targets, maps, patch_size=4, order=order,
                              regions_evaluation=n_patches, perturb_baseline=0.0, call_kwargs={"softmax": True}))
    sink = {}
    _fn("deletion_auc")(model=model, images=images, targets=targets, maps=maps, steps=n_patches, unit="patch",
                        patch_size=4, order=order, fill="zero", sink=sink)  # Quantus' perturb_baseline 0.0
    drop = (sink["curve"][:, :1] - sink["curve"][:, 1:]).numpy()
    assert ref.shape == drop.shape
    assert np.abs(drop - ref).max() < 1e-5


def test_faithfulness_correlation_equals_quantus(net_inputs, monkeypatch, np_trapz):
    """The same subsets go to Quantus through np.random.choice (called run by run, image by image);
    logits as Quantus' default softmax=False; baseline 0.0 as our fill='zero'."""
    model, images, targets, maps = net_inputs
    runs, k = 12, 10
    idx = torch.stack([torch.stack([torch.randperm(144, generator=torch.Generator().manual_seed(100 * r + i))[:k]
                                    for i in range(6)]) for r in range(runs)])
    it = iter(idx.reshape(-1, k).numpy())
    monkeypatch.setattr(np.random, "choice", lambda *a, **kw: next(it))
    ref = np.asarray(_quantus("FaithfulnessCorrelation", model, images, targets, maps, nr_runs=runs, subset_size=k,
                              perturb_baseline=0.0, return_aggregate=False, call_kwargs={"softmax": False}))
    ours = _fn("faithfulness_correlation")(model=model, images=images, targets=targets, maps=maps, indices=idx,
                                           batch_size=7).numpy()
    assert np.isfinite(ref).all() and np.abs(ours - ref).max() < 1e-5
    # and the probabilities when asked
    it = iter(idx.reshape(-1, k).numpy())
    ref = np.asarray(_quantus("FaithfulnessCorrelation", model, images, targets, maps, nr_runs=runs, subset_size=k,
                              perturb_baseline=0.0, return_aggregate=False, call_kwargs={"softmax": True}))
    ours = _fn("faithfulness_correlation")(model=model, images=images, targets=targets, maps=maps, indices=idx,
                                           softmax=True).numpy()
    assert np.abs(ours - ref).max() < 1e-5


@pytest.mark.parametrize("size", [8, 16, 32, 64])
def test_imputation_equals_quantus(size, np_trapz):
    """All images x percentages in one batched solve, against Quantus' scipy sparse solve per image
    (from 16 px the solve starts from the half-resolution guess: it must not change the answer)."""
    images, maps = _inputs(3, size, seed=size)
    maps[1] = torch.linspace(0, 1, size * size).view(size, size)  # one contiguous removed region
    pcts = [1, 30, 70, 99]
    ranks = pixel_ranks(maps)
    removed = torch.cat([ranks < int(size * size * p / 100) for p in pcts])
    ours = linear_imputation(images.repeat(len(pcts), 1, 1, 1), removed)
    worst = 0.0
    for j in range(len(removed)):
        idx = removed[j].flatten().nonzero().flatten().numpy()
        ref = perturb_func.noisy_linear_imputation(images[j % 3].numpy(), idx, noise=0.0)
        worst = max(worst, np.abs(ours[j].numpy() - ref).max())
    assert worst < 1e-4


def test_road_equals_quantus(net_inputs, np_trapz):
    """Quantus' ROAD (MoRF) returns the per-percentage accuracy over the images; noise 0 on both sides."""
    model, _, _, _ = net_inputs
    images, maps = _inputs(12, 12, seed=5)
    with torch.no_grad():
        # move the decision boundary to the middle of these images, so that imputation flips some
        d = model(images) @ torch.tensor([-1.0, 1.0])
        model.fc.bias[1] -= d.median()
        targets = model(images).argmax(1)
    pcts = list(range(5, 100, 10))
    ref = _quantus("ROAD", model, images, targets, maps, percentages=pcts, noise=0.0, return_aggregate=False)
    sink = {}
    _fn("road_morf")(model=model, images=images, targets=targets, maps=maps, percentages=pcts, noise=0.0, sink=sink)
    ours = sink["curve"].mean(0).numpy()
    assert np.allclose(ours, [ref[p] for p in pcts], atol=1e-6)  # shares of 12 images: k/12 apart
    assert ours.min() < 1, "the fixture must change some predictions"
