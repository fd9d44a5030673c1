"""Metrics against hand-computed values and against Quantus 0.6 on the same inputs."""
import warnings

import numpy as np
import pytest
import quantus
import torch

from benchmark.metrics import METRICS, get_metric, score
from benchmark.metrics.faithfulness import fill_image, pixel_ranks


class MeanModel(torch.nn.Module):
    """Logit of class 1 is 8 * (mean pixel - 0.5); class 0 is 0: probabilities computable by hand."""

    def forward(self, x):
        z = 8 * (x.mean((1, 2, 3)) - 0.5)
        return torch.stack([torch.zeros_like(z), z], 1)


def _masks(n=2, size=4):
    m = torch.zeros(n, size, size, dtype=torch.bool)
    m[:, :2, :2] = True
    return m


def test_pointing_game_hit_miss_ties_and_undefined():
    maps = torch.zeros(4, 4, 4)
    maps[0, 0, 1] = 1.0  # inside the mask
    maps[1, 3, 3] = 1.0  # outside
    maps[3, 0, 0] = 1.0
    masks = _masks(4)
    masks[3] = False  # a normal image: empty mask
    has = torch.tensor([True, True, True, True])
    v = score("pointing_game", None, torch.zeros(4, 1, 4, 4), torch.zeros(4, dtype=torch.long), maps, masks, has)
    assert v[0] == 1 and v[1] == 0
    assert v[2] == pytest.approx(4 / 16)  # constant map: expected hit under random tie breaking
    assert torch.isnan(v[3])
    v = score("pointing_game", None, torch.zeros(4, 1, 4, 4), torch.zeros(4, dtype=torch.long), maps, _masks(4),
              torch.tensor([True, False, True, True]))
    assert torch.isnan(v[1]), "an unannotated image is not scored"


def test_pointing_game_tolerance():
    maps = torch.zeros(1, 4, 4)
    maps[0, 2, 2] = 1.0  # one pixel diagonal from the mask corner (1,1)
    args = (None, torch.zeros(1, 1, 4, 4), torch.zeros(1, dtype=torch.long), maps, _masks(1), torch.tensor([True]))
    assert score("pointing_game", *args)[0] == 0
    assert score("pointing_game", *args, tolerance=1)[0] == 1


def test_relevance_mass_by_hand():
    maps = torch.tensor([[[1.0, 2.0, 0.0, 0.0], [3.0, -5.0, 0.0, 4.0], [0.0] * 4, [0.0] * 4]])
    args = (None, torch.zeros(1, 1, 4, 4), torch.zeros(1, dtype=torch.long))
    v = score("relevance_mass", *args, maps, _masks(1), torch.tensor([True]))
    assert v[0] == pytest.approx((1 + 2 + 3) / (1 + 2 + 3 + 4))  # negative relevance ignored
    v = score("relevance_mass", *args, -maps.abs(), _masks(1), torch.tensor([True]))
    assert v[0] == 0, "no positive relevance: no mass inside the lesion, scored 0 (not dropped as NaN)"


def test_pixel_ranks_break_ties_in_the_seeded_order():
    from benchmark.metrics.perturbation import tie_order
    maps = torch.tensor([[[0.0, 2.0], [2.0, 1.0]]])
    first = tie_order(4, 0).tolist().index(1) < tie_order(4, 0).tolist().index(2)  # which 2.0 comes first
    assert pixel_ranks(maps).tolist() == [[[3, 0 if first else 1], [1 if first else 0, 2]]]
    orders = {tuple(pixel_ranks(maps, tie_seed=s).flatten().tolist()) for s in range(20)}
    assert orders == {(3, 0, 1, 2), (3, 1, 0, 2)}, "other seeds put the other tied pixel first"


def _reference_curve(image, order, fill, steps, insert):
    """Plain numpy: delete (or insert) the first k of `order` pixels, probability of class 1."""
    flat, base = image.flatten(), fill.flatten()
    out = []
    for k in range(steps + 1):
        c = round(k * flat.size / steps)
        x = flat.copy() if not insert else base.copy()
        x[order[:c]] = base[order[:c]] if not insert else flat[order[:c]]
        z = 8 * (x.mean() - 0.5)
        out.append(1 / (1 + np.exp(-z)))
    return np.trapezoid(out, dx=1 / steps)


@pytest.mark.parametrize("metric,insert,fill", [("deletion_auc", False, "zero"), ("insertion_auc", True, "blur"),
                                                ("deletion_auc", False, "mean")])
def test_perturbation_auc_by_hand(metric, insert, fill):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 1, 8, 8, generator=g)
    maps = torch.rand(3, 8, 8, generator=g)
    targets = torch.ones(3, dtype=torch.long)
    v = score(metric, MeanModel(), images, targets, maps, _masks(3, 8), torch.ones(3, dtype=torch.bool), steps=8, fill=fill)
    base = fill_image(images, fill)
    for i in range(3):
        order = np.argsort(-maps[i].flatten().numpy(), kind="stable")
        ref = _reference_curve(images[i, 0].double().numpy(), order, base[i, 0].double().numpy(), 8, insert)
        assert v[i].item() == pytest.approx(ref, abs=1e-5)


def test_deletion_ranks_a_faithful_map_above_its_inverse():
    # 32 px: RISE's blur (the insertion start) scaled to the image is the identity below 23 px
    images = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    t = torch.ones(2, dtype=torch.long)
    good = images[:, 0]  # for MeanModel the brightest pixels matter most
    args = (MeanModel(), images, t)
    rest = (_masks(2, 32), torch.ones(2, dtype=torch.bool))
    assert (score("deletion_auc", *args, good, *rest) < score("deletion_auc", *args, -good, *rest)).all()
    assert (score("insertion_auc", *args, good, *rest) > score("insertion_auc", *args, -good, *rest)).all()


def test_registry_entries_declare_category_direction_and_needs():
    for name, spec in METRICS.items():
        assert spec.category in ("faithfulness", "localisation", "sanity", "runtime"), name
        assert isinstance(spec.higher_is_better, bool)
    assert get_metric("pointing_game").needs_mask and get_metric("deletion_auc").needs_model
    with pytest.raises(KeyError, match="unknown metric 'pointing'"):
        get_metric("pointing")
    with pytest.raises(KeyError, match="unknown parameters"):
        score("pointing_game", None, torch.zeros(1, 1, 4, 4), torch.zeros(1, dtype=torch.long), torch.zeros(1, 4, 4),
              _masks(1), torch.tensor([True]), tol=2)


def test_nan_in_a_map_is_named():
    maps = torch.zeros(2, 4, 4)
    maps[1, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"images \[1\]"):
        score("pointing_game", None, torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long), maps, _masks(2),
              torch.ones(2, dtype=torch.bool))


# --- agreement with Quantus 0.6 on the same inputs --------------------------------------------

@pytest.fixture
def random_inputs():
    rng = np.random.default_rng(0)
    x = rng.random((16, 1, 12, 12)).astype(np.float32)
    a = rng.random((16, 1, 12, 12)).astype(np.float32)  # continuous: the maximum is unique
    s = np.zeros((16, 1, 12, 12), dtype=np.float32)
    for i in range(16):
        r, c = rng.integers(0, 8, size=2)
        s[i, 0, r:r + 4, c:c + 4] = 1
    return x, a, s


def _ours(name, x, a, s):
    s_t = torch.from_numpy(s[:, 0]).bool()
    return score(name, None, torch.from_numpy(x), torch.zeros(len(x), dtype=torch.long), torch.from_numpy(a[:, 0]),
                 s_t, torch.ones(len(x), dtype=torch.bool)).numpy()


def test_pointing_game_equals_quantus(random_inputs, np_trapz):
    x, a, s = random_inputs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = quantus.PointingGame(disable_warnings=True)(model=None, x_batch=x, y_batch=np.zeros(len(x), int), a_batch=a, s_batch=s)
    assert np.array_equal(_ours("pointing_game", x, a, s), np.asarray(ref, dtype=float))
    assert 0 < np.mean(ref) < 1  # the fixture exercises both outcomes


def test_pointing_game_differs_from_quantus_on_tied_maxima(random_inputs, np_trapz):
    """Quantus counts a hit when any tied maximum is inside the mask; one maximum inside and one
    outside is a hit there, and an expected hit of 1/2 here (random tie breaking). Taken to the
    limit, Quantus scores a flat map as a perfect hit (it refuses exactly flat maps outright)."""
    x, a, s = random_inputs
    a = a * 0.5
    for i in range(len(a)):
        inside = np.argwhere(s[i, 0] == 1)[0]
        outside = np.argwhere(s[i, 0] == 0)[0]
        a[i, 0, inside[0], inside[1]] = a[i, 0, outside[0], outside[1]] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = quantus.PointingGame(disable_warnings=True)(model=None, x_batch=x, y_batch=np.zeros(len(x), int), a_batch=a, s_batch=s)
    assert np.all(np.asarray(ref))
    assert np.allclose(_ours("pointing_game", x, a, s), 0.5)


def test_relevance_mass_equals_quantus(random_inputs, np_trapz):
    x, a, s = random_inputs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = quantus.RelevanceMassAccuracy(disable_warnings=True)(model=None, x_batch=x, y_batch=np.zeros(len(x), int),
                                                                   a_batch=a, s_batch=s)
    assert np.allclose(_ours("relevance_mass", x, a, s), np.asarray(ref, dtype=float), rtol=1e-5)
