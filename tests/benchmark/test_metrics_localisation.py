"""Localisation metrics and map segmentation against sklearn, skimage, scipy and Quantus 0.6 on the same inputs."""
import warnings

import numpy as np
import pytest
import quantus
import torch

from benchmark.metrics import METRICS, get_metric, score
from benchmark.metrics.localisation import average_ranks
from benchmark.metrics.segmentation import minmax_normalise, otsu_threshold, segment, tune_threshold

LOCALISATION = ["pointing_game", "relevance_mass", "relevance_rank", "top_k_intersection", "pixel_auroc",
                "pixel_auprc", "iou", "dice"]


def _score(name, maps, masks, has=None, **params):
    n = len(maps)
    has = torch.ones(n, dtype=torch.bool) if has is None else has
    return score(name, None, torch.zeros(n, 1, *maps.shape[1:]), torch.zeros(n, dtype=torch.long), maps, masks, has,
                 **params)


@pytest.fixture
def inputs():
    """16 continuous maps (no ties) at 12 px with square lesions of varied size and place."""
    rng = np.random.default_rng(0)
    a = rng.random((16, 12, 12)).astype(np.float32)
    s = np.zeros((16, 12, 12), dtype=bool)
    for i in range(16):
        r, c = rng.integers(0, 8, size=2)
        h, w = rng.integers(2, 5, size=2)
        s[i, r:r + h, c:c + w] = True
    a[::2] += 0.5 * s[::2]  # half the maps favour the lesion, so every metric sees hits and misses
    return a, s


@pytest.fixture
def tied_inputs(inputs):
    """The same maps quantised to 4 levels: many ties, also across the mask border."""
    a, s = inputs
    return np.floor(a * 4).astype(np.float32) / 4, s


def _quantus(metric_cls, a, s, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = getattr(quantus, metric_cls)(disable_warnings=True, **kw)
        x = np.zeros((len(a), 1, *a.shape[1:]), dtype=np.float32)
        return np.asarray(m(model=None, x_batch=x, y_batch=np.zeros(len(a), int), a_batch=a[:, None],
                            s_batch=s[:, None].astype(np.float32)), dtype=float)


# --- registry contract ------------------------------------------------------------------------

def test_every_localisation_metric_is_here():
    assert set(LOCALISATION) <= {n for n, s in METRICS.items() if s.category == "localisation"}


@pytest.mark.parametrize("name", sorted(n for n, s in METRICS.items() if s.category == "localisation" and s.needs_mask))  # lung_mass: test_metrics_lung.py
def test_contract_range_nan_rules(name, inputs):
    a, s = inputs
    spec = get_metric(name)
    assert spec.category == "localisation" and spec.needs_mask and spec.higher_is_better
    maps, masks = torch.from_numpy(a[:4]), torch.from_numpy(s[:4]).clone()
    masks[1] = False  # normal image
    has = torch.tensor([True, True, False, True])
    v = _score(name, maps, masks, has)
    assert v.shape == (4,) and v.dtype == torch.float32
    assert torch.isnan(v[1]) and torch.isnan(v[2]), "empty mask and unannotated image are not scored"
    assert ((v[[0, 3]] >= 0) & (v[[0, 3]] <= 1)).all()
    oracle = _score(name, masks.float() + 0.01 * maps, masks, has)
    floor = _score(name, -(masks.float() + 0.01 * maps), masks, has)
    assert (oracle[[0, 3]] > floor[[0, 3]]).all() or name == "relevance_mass", "direction: a map on the lesion wins"


def test_bad_params_are_named(inputs):
    a, s = inputs
    maps, masks = torch.from_numpy(a[:2]), torch.from_numpy(s[:2])
    with pytest.raises(ValueError, match="threshold"):
        _score("iou", maps, masks, threshold="median")
    with pytest.raises(ValueError, match="threshold"):
        _score("iou", maps, masks, threshold=1.5)
    with pytest.raises(ValueError, match="k=200 pixels"):
        _score("top_k_intersection", maps, masks, k=200)
    with pytest.raises(ValueError, match="fraction"):
        _score("top_k_intersection", maps, masks, k=1.5)
    with pytest.raises(ValueError, match="masks"):
        _score("iou", maps, masks[:, :4])


# --- exact references: sklearn, scipy, skimage -------------------------------------------------

@pytest.mark.parametrize("fixture", ["inputs", "tied_inputs"])
def test_pixel_auroc_auprc_equal_sklearn(fixture, request):
    from sklearn.metrics import average_precision_score, roc_auc_score
    a, s = request.getfixturevalue(fixture)
    auroc = _score("pixel_auroc", torch.from_numpy(a), torch.from_numpy(s)).numpy()
    auprc = _score("pixel_auprc", torch.from_numpy(a), torch.from_numpy(s)).numpy()
    ref_roc = [roc_auc_score(s[i].ravel(), a[i].ravel()) for i in range(len(a))]
    ref_ap = [average_precision_score(s[i].ravel(), a[i].ravel()) for i in range(len(a))]
    np.testing.assert_allclose(auroc, ref_roc, atol=1e-6, rtol=0)
    np.testing.assert_allclose(auprc, ref_ap, atol=1e-6, rtol=0)


def test_pixel_auroc_undefined_when_mask_covers_the_image(inputs):
    a, _ = inputs
    v = _score("pixel_auroc", torch.from_numpy(a[:1]), torch.ones(1, 12, 12, dtype=torch.bool))
    assert torch.isnan(v[0])


def test_average_ranks_equal_scipy(tied_inputs):
    from scipy.stats import rankdata
    a, _ = tied_inputs
    flat = a.reshape(len(a), -1)
    np.testing.assert_array_equal(average_ranks(torch.from_numpy(flat)).numpy(), rankdata(flat, axis=1))


@pytest.mark.parametrize("fixture", ["inputs", "tied_inputs"])
def test_otsu_equals_skimage(fixture, request):
    from skimage.filters import threshold_otsu
    a, _ = request.getfixturevalue(fixture)
    maps = torch.from_numpy(a) ** 3  # skewed histogram, so the threshold is not mid-range
    norm = minmax_normalise(maps)
    ours = otsu_threshold(norm).numpy()
    ref = [threshold_otsu(norm[i].double().numpy(), nbins=256) for i in range(len(a))]
    np.testing.assert_array_equal(ours, ref)
    raw = otsu_threshold(maps * 7 - 3).numpy()  # any range, not only [0, 1]
    np.testing.assert_array_equal(raw, [threshold_otsu((maps[i] * 7 - 3).double().numpy()) for i in range(len(a))])


def test_otsu_on_integer_levels_equals_skimage(tied_inputs):
    from skimage.filters import threshold_otsu
    a, _ = tied_inputs
    q = (torch.from_numpy(a) ** 2 * 200 + 30).to(torch.uint8)  # levels 30..230, not every level used
    ours = otsu_threshold(q).numpy()
    np.testing.assert_array_equal(ours, [threshold_otsu(q[i].numpy()) for i in range(len(q))])


def _chexlocalize_cam_to_segmentation(cam, cv2):
    """cheXlocalize's cam_to_segmentation (Otsu branch): min-max normalise in torch, np.uint8(255 * m),
    cv2 Otsu, then cv2.findContours(RETR_EXTERNAL) and every contour of more than one point drawn
    filled with PIL (imutils.grab_contours picks the contours out of cv2's return value)."""
    from PIL import Image, ImageDraw
    m = cam - cam.min()
    m = np.uint8(255 * m.div(m.max()).numpy())
    thresh = cv2.threshold(m, 0, int(m.max()), cv2.THRESH_OTSU)[1]
    cnts = cv2.findContours(thresh.copy(), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cnts = cnts[0] if len(cnts) == 2 else cnts[1]
    out = Image.new("1", (m.shape[1], m.shape[0]))
    for cnt in cnts:
        if len(cnt) > 1:
            ImageDraw.Draw(out).polygon([(int(p[0][0]), int(p[0][1])) for p in cnt], outline=1, fill=1)
    return np.array(out), thresh > 0


def test_otsu_uint8_is_chexlocalize_cam_to_segmentation():
    """cheXlocalize's whole Otsu route, contour filling included, on maps noisy enough to leave holes
    and single-pixel specks after the threshold (the filling changes most of them)."""
    import cv2  # opencv comes with grad-cam, a dependency: a missing one fails, never skips
    g = torch.Generator().manual_seed(3)
    maps = torch.nn.functional.interpolate(torch.rand(24, 1, 6, 6, generator=g), size=40, mode="bilinear")[:, 0] ** 2
    maps = maps + 0.05 * torch.rand(maps.shape, generator=g)
    ours = segment(maps, "otsu_uint8").numpy()
    filled = 0
    for i, cam in enumerate(maps):
        ref, thresholded = _chexlocalize_cam_to_segmentation(cam, cv2)
        np.testing.assert_array_equal(ours[i], ref)
        filled += (ref != thresholded).any()
    assert filled >= 12, "the fixture has holes and specks for the contour step to change"
    assert (ours != segment(maps, "otsu").numpy()).any(), "the two Otsu routes differ somewhere"


def test_fill_holes_equals_scipy_and_fill_contours_drops_single_pixels():
    """fill_holes is scipy's binary_fill_holes; fill_contours (cheXlocalize's contour step) is that
    less the 8-connected components of one pixel, on random masks with every kind of topology."""
    from scipy import ndimage
    from benchmark.metrics.segmentation import fill_contours, fill_holes
    g = torch.Generator().manual_seed(4)
    seg = torch.rand(60, 20, 20, generator=g) > torch.linspace(0.2, 0.8, 60).view(-1, 1, 1)
    ours_holes, ours = fill_holes(seg).numpy(), fill_contours(seg).numpy()
    for i, m in enumerate(seg.numpy()):
        holes = ndimage.binary_fill_holes(m)
        np.testing.assert_array_equal(ours_holes[i], holes)
        labels, _ = ndimage.label(holes, structure=np.ones((3, 3)))
        sizes = np.bincount(labels.ravel())
        np.testing.assert_array_equal(ours[i], holes & (sizes[labels] > 1))
    ring = torch.zeros(1, 9, 9, dtype=torch.bool)
    ring[0, 1:6, 1:6] = True
    ring[0, 2:5, 2:5] = False  # a 3x3 hole
    ring[0, 3, 3] = True  # a pixel inside the hole: covered by the fill
    ring[0, 7, 7] = True  # an isolated pixel: its contour has one point, dropped
    ring[0, 7, 1:3] = True  # two pixels: kept
    out = fill_contours(ring)[0]
    assert out[1:6, 1:6].all() and not out[7, 7] and out[7, 1:3].all() and out.sum() == 25 + 2


def test_otsu_on_a_constant_map_segments_nothing():
    assert otsu_threshold(torch.full((1, 8, 8), 3.0)).item() == 3.0  # skimage returns the value
    assert not segment(torch.full((1, 8, 8), 3.0)).any()
    assert not segment(torch.full((1, 8, 8), 3.0), "otsu_uint8").any()


def test_iou_dice_by_hand_and_chexlocalize_rules():
    maps = torch.zeros(3, 8, 8)
    maps[:, :4, :4] = 1.0  # segments to the top-left 4x4 block (16 px) with any threshold
    masks = torch.zeros(3, 8, 8, dtype=torch.bool)
    masks[0, :4, :2] = True  # 8 px, all inside the prediction
    masks[1, 4:, 4:] = True  # disjoint
    has = torch.ones(3, dtype=torch.bool)  # image 2 is normal: empty mask
    for threshold in ("otsu", "otsu_uint8", 0.5):
        i = _score("iou", maps, masks, has, threshold=threshold)
        d = _score("dice", maps, masks, has, threshold=threshold)
        assert i[0] == pytest.approx(8 / 16) and d[0] == pytest.approx(2 * 8 / 24)
        assert i[1] == 0 and d[1] == 0
        assert torch.isnan(i[2]) and torch.isnan(d[2])
    i = _score("iou", maps, masks, has, true_pos_only=False)
    assert i[2] == 0, "cheXlocalize with true_pos_only=False: a segmentation on a normal image is all false positive"
    flat = _score("iou", torch.ones(3, 8, 8), masks, has, true_pos_only=False)
    assert flat[0] == 0 and torch.isnan(flat[2]), "empty prediction and empty mask: union empty, undefined"
    for true_pos_only in (True, False):
        for name in ("iou", "dice"):
            v = _score(name, torch.ones(3, 8, 8), masks, has, true_pos_only=true_pos_only)
            assert v[0] == 0 and v[1] == 0, "an empty segmentation of a lesion image scores 0, not NaN"


def test_fixed_threshold_keeps_pixels_strictly_above():
    maps = torch.tensor([[[0.0, 0.5, 1.0, 0.25]]])
    assert segment(maps, 0.5).tolist() == [[[False, False, True, False]]]


def test_tune_threshold_picks_the_best_mean_iou():
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    bump = torch.exp(-((yy - 8) ** 2 + (xx - 8) ** 2) / 20)
    maps = bump.expand(4, 16, 16) + torch.rand(4, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.2
    masks = (minmax_normalise(bump[None])[0] > 0.63).expand(4, 16, 16).clone()  # what the map shows above ~0.6
    has = torch.tensor([True, True, True, False])
    t = tune_threshold(maps, masks, has)
    grid = np.arange(0.2, 0.81, 0.1)
    miou = [np.nanmean(_score("iou", maps, masks, has, threshold=float(g)).numpy()) for g in grid]
    assert t == grid[int(np.argmax(miou))] and t == pytest.approx(0.6)
    with pytest.raises(ValueError, match="no validation image"):
        tune_threshold(maps, torch.zeros_like(masks), has)
    # a constant map segments to nothing at every threshold: IoU 0 in every mean, not left out
    assert tune_threshold(torch.ones(4, 16, 16), masks, has) == pytest.approx(0.2)


# --- degenerate maps and ties: scored, never dropped, never in raster order -----------------

def test_degenerate_maps_score_what_they_achieve():
    """An explainer whose map is all zero (Grad-CAM with nothing above the ReLU), all negative or
    constant on a lesion image is scored for what that map does, so the image stays in its mean;
    NaN only for the normal and the unannotated image."""
    masks = torch.zeros(5, 10, 10, dtype=torch.bool)
    masks[:, 2:6, 3:8] = True  # 20 px of 100
    masks[3] = False  # normal image
    has = torch.tensor([True, True, True, True, False])
    maps = torch.zeros(5, 10, 10)
    maps[1] = -1.0
    maps[2] = 3.0
    maps[3:] = torch.rand(2, 10, 10, generator=torch.Generator().manual_seed(0))
    share, dilated = 20 / 100, 6 * 7 / 100  # the lesion, and the lesion dilated by 1 px
    expected = {"relevance_mass": [0, 0, share], "relevance_rank": [share] * 3, "top_k_intersection": [share] * 3,
                "pointing_game": [share] * 3, "pixel_auroc": [0.5] * 3, "pixel_auprc": [share] * 3,
                "iou": [0] * 3, "dice": [0] * 3}
    for name, want in expected.items():
        variants = [{}]
        if name in ("iou", "dice"):
            variants = [{"threshold": t, "true_pos_only": tp}
                        for t in ("otsu", "otsu_uint8", 0.5) for tp in (True, False)]
        if name == "top_k_intersection":
            variants = [{"k": 7}, {"k": 0.5}]
        for params in variants:
            v = _score(name, maps, masks, has, **params)
            np.testing.assert_allclose(v[:3].numpy(), want, rtol=1e-6, err_msg=f"{name} {params}")
            assert torch.isnan(v[4]), f"{name} {params}: the unannotated image stays NaN"
            if params.get("true_pos_only") is False:
                assert v[3] == 0, "cheXlocalize's true_pos_only=False: a segmentation of a normal image scores 0"
            else:
                assert torch.isnan(v[3]), f"{name} {params}: the normal image stays NaN"
    v = _score("pointing_game", maps, masks, has, tolerance=1)
    np.testing.assert_allclose(v[:3].numpy(), [dilated] * 3, rtol=1e-6)


def test_relevance_mass_of_an_all_zero_map_is_nan_in_quantus(np_trapz):
    """Quantus' RelevanceMassAccuracy divides 0 by 0 on an all-zero map; we score 0 (no mass inside).
    Other maps of the batch agree (test_equal_quantus_on_maps_without_ties)."""
    a, s = np.random.default_rng(1).random((3, 12, 12)).astype(np.float32), np.zeros((3, 12, 12), dtype=bool)
    s[:, 2:6, 3:9] = True
    a[0] = 0
    ref = _quantus("RelevanceMassAccuracy", a, s)
    ours = _score("relevance_mass", torch.from_numpy(a), torch.from_numpy(s)).numpy()
    assert np.isnan(ref[0]) and ours[0] == 0
    np.testing.assert_allclose(ours[1:], ref[1:], rtol=1e-5)


@pytest.mark.parametrize("name", LOCALISATION)
def test_tied_maps_do_not_score_by_raster_order(name, tied_inputs):
    """Flipping or transposing map and mask together leaves every score as it was, on maps with many
    ties and tied maxima (and on constant maps): no metric picks among ties by memory order."""
    a, s = tied_inputs
    maps, masks = torch.from_numpy(a), torch.from_numpy(s)
    maps[0], maps[1] = 0.0, 1.0
    v = _score(name, maps, masks)
    for f in (lambda t: t.flip(-2), lambda t: t.flip(-1), lambda t: t.transpose(-1, -2)):
        torch.testing.assert_close(_score(name, f(maps), f(masks)), v, rtol=1e-6, atol=1e-7)


# --- agreement with Quantus 0.6 on the same inputs ---------------------------------------------

@pytest.mark.parametrize("ours,theirs,kw", [  # maps with positive relevance: see the all-zero test above
    ("pointing_game", "PointingGame", {}),
    ("relevance_mass", "RelevanceMassAccuracy", {}),
    ("relevance_rank", "RelevanceRankAccuracy", {}),
    ("top_k_intersection", "TopKIntersection", {"k": 10}),
    ("pixel_auroc", "AUC", {}),
])
def test_equal_quantus_on_maps_without_ties(inputs, ours, theirs, kw, np_trapz):
    a, s = inputs
    ref = _quantus(theirs, a, s, **kw)
    v = _score(ours, torch.from_numpy(a), torch.from_numpy(s), **kw).numpy()
    if ours in ("relevance_mass", "pixel_auroc"):
        np.testing.assert_allclose(v, ref, rtol=1e-5, atol=1e-7)  # float32 sums vs float64
    else:
        np.testing.assert_array_equal(v, ref.astype(np.float32))  # we return float32, Quantus float64
    assert np.ptp(ref) > 0, "the fixture exercises more than one outcome"


def test_top_k_fraction_equals_quantus_count(inputs, np_trapz):
    a, s = inputs
    ref = _quantus("TopKIntersection", a, s, k=14)
    np.testing.assert_array_equal(_score("top_k_intersection", torch.from_numpy(a), torch.from_numpy(s),
                                         k=0.1).numpy(), ref.astype(np.float32))  # round(0.1 * 144) = 14


def test_rank_and_top_k_differ_from_quantus_on_ties(inputs, np_trapz):
    """Quantus takes the top K in np.argsort order, so among tied values the pixels it counts
    depend on memory order and on numpy's sort algorithm. We score the expected share under random
    tie breaking. Map: one peak outside the lesion, every other pixel tied (Quantus refuses a flat map)."""
    _, s = inputs
    flat = s.reshape(len(s), -1)
    maps = np.full(flat.shape, 0.5, dtype=np.float32)
    peak = np.argmin(flat, 1)  # first pixel outside the lesion
    maps[np.arange(len(s)), peak] = 1.0
    maps = maps.reshape(s.shape)
    size, pixels = flat.sum(1), flat.shape[1]
    for ours, theirs, k in [("relevance_rank", "RelevanceRankAccuracy", size),
                            ("top_k_intersection", "TopKIntersection", np.full(len(s), 10))]:
        kw = {} if ours == "relevance_rank" else {"k": 10}
        expected = (k - 1) * size / (pixels - 1) / k  # the peak misses; k-1 places drawn from the tied rest
        ref = _quantus(theirs, maps, s, normalise=False, **kw)
        v = _score(ours, torch.from_numpy(maps), torch.from_numpy(s), **kw).numpy()
        np.testing.assert_allclose(v, expected, rtol=1e-6)
        assert not np.allclose(ref, expected)


def test_pointing_game_empty_mask_is_a_hit_in_quantus(inputs, np_trapz):
    """Quantus' PointingGame means to return NaN on an empty mask but writes NaN into a boolean
    array, which stores True: a normal X-ray scores a hit. We return NaN."""
    a, s = inputs
    s = s.copy()
    s[0] = False
    ref = _quantus("PointingGame", a, s)
    assert ref[0] == 1.0
    assert torch.isnan(_score("pointing_game", torch.from_numpy(a), torch.from_numpy(s))[0])


def test_attribution_localisation_ratio_slices_the_batch(inputs, np_trapz):
    """Quantus' AttributionLocalisation weights by mask size / image size, with the image size from
    x_batch[2:].size: the batch from its third sample on, not the spatial size. With weighted=True
    on a batch of N images the weight is |mask| / ((N-2)*C*H*W) instead of |mask| / (H*W). Unweighted
    (positive attributions, no abs) it is our relevance_mass up to its 1e-9 guard."""
    a, s = inputs
    plain = _quantus("AttributionLocalisation", a, s, abs=False, positive_attributions=True, normalise=False)
    ours = _score("relevance_mass", torch.from_numpy(a), torch.from_numpy(s)).numpy()
    np.testing.assert_allclose(plain, ours, rtol=1e-5)
    weighted = _quantus("AttributionLocalisation", a, s, abs=False, positive_attributions=True, normalise=False,
                        weighted=True)
    size = s.reshape(len(s), -1).sum(1)
    np.testing.assert_allclose(weighted, plain * size / ((len(a) - 2) * a[0].size), rtol=1e-6)
    assert not np.allclose(weighted, plain * size / a[0].size)


# --- speed (tox -e bench; skipped by default) ---------------------------------------------------

@pytest.mark.perf
@pytest.mark.parametrize("name", LOCALISATION)
def test_localisation_speed(benchmark, name):
    """32 maps at 64 px on the CPU; on an H100 every metric took under 0.04 ms per image at 224 px."""
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(32, 64, 64, generator=g)
    masks = torch.zeros(32, 64, 64, dtype=torch.bool)
    masks[:, 16:40, 20:44] = True
    v = benchmark.pedantic(_score, args=(name, maps, masks), rounds=3, iterations=1, warmup_rounds=1)
    assert v.shape == (32,) and torch.isfinite(v).all()
