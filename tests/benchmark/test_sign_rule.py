"""One declared sign rule (issue 29, item 1): every localisation metric and the segmentation route read
a signed map one way, `metrics.sign` in runs and `sign=` in score / score_maps, by default its positive
part (the evidence for the target). The constructed case: a positive Gaussian on the lesion scores
IoU 0.71; a negative blob elsewhere, as large as the peak, dropped it to 0.05 when the signed range was
min-max normalised before Otsu, while relevance mass and the pointing game did not move."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.metrics import METRICS, score, score_maps
from benchmark.metrics.segmentation import segment

SIZE = 64
LOCALISATION = sorted(n for n, s in METRICS.items() if s.category == "localisation" and s.needs_mask and s.fn)


def _gaussian(cy: float, cx: float, sigma: float = 6.0) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    return torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2))


@pytest.fixture
def case():
    """(positive Gaussian on the lesion, the same with a negative blob as large as its peak elsewhere,
    the lesion mask): (1,64,64) each."""
    yy, xx = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    mask = (((yy - 20) ** 2 + (xx - 20) ** 2) <= 8 ** 2)[None]
    positive = _gaussian(20, 20)[None]
    return positive, positive - _gaussian(46, 46)[None], mask


def _score(name, maps, masks, **kw):
    n = len(maps)
    return score(name, None, torch.zeros(n, 1, *maps.shape[1:]), torch.zeros(n, dtype=torch.long), maps, masks,
                 torch.ones(n, dtype=torch.bool), **kw)


def test_negative_blob_elsewhere_moves_no_localisation_score(case):
    """Deliberate bug caught: min-max normalising the signed map before Otsu (IoU 0.71 -> 0.05)."""
    positive, blob, mask = case
    iou_plain = float(_score("iou", positive, mask)[0])
    assert iou_plain == pytest.approx(0.71, abs=0.01), "the constructed case: a good map"
    for name in ("iou", "dice"):  # the default rule: the positive part, as if the blob were not there
        assert float(_score(name, blob, mask)[0]) == pytest.approx(float(_score(name, positive, mask)[0]), abs=1e-6)
    for name in ("pointing_game", "relevance_rank", "top_k_intersection", "pixel_auroc", "pixel_auprc"):
        assert float(_score(name, blob, mask)[0]) == float(_score(name, positive, mask)[0]) == 1.0, name
    # relevance mass already dropped negative relevance: the same value as before the rule
    mass = float(_score("relevance_mass", blob, mask)[0])
    assert mass == pytest.approx(float((blob.clamp(min=0) * mask).sum() / blob.clamp(min=0).sum()), rel=1e-6)
    assert mass == pytest.approx(float(_score("relevance_mass", positive, mask)[0]), abs=0.005)
    assert float(_score("iou", blob, mask, sign="raw")[0]) < 0.1, "read raw, the blob wrecks IoU (the old rule)"


@pytest.mark.parametrize("name", LOCALISATION + ["lung_mass"])
def test_each_rule_reads_the_map_it_names(name, case):
    """positive = the clamped map read raw, absolute = |map| read raw, raw = the map as returned;
    the default is positive. Deliberate bug caught: a metric reading the map its own way."""
    positive, blob, mask = case
    maps = torch.cat([blob, -blob, positive, blob * 0.5 - 0.2])
    masks = mask.expand(4, -1, -1).clone()
    kw = {"lung_masks": masks} if name == "lung_mass" else {}
    raw = lambda m: _score(name, m, masks, sign="raw", **kw)  # noqa: E731
    torch.testing.assert_close(_score(name, maps, masks, **kw), raw(maps.clamp(min=0)), equal_nan=True)
    torch.testing.assert_close(_score(name, maps, masks, sign="positive", **kw), raw(maps.clamp(min=0)), equal_nan=True)
    torch.testing.assert_close(_score(name, maps, masks, sign="absolute", **kw), raw(maps.abs()), equal_nan=True)


def test_absolute_and_raw_do_what_they_say(case):
    positive, blob, mask = case
    stronger = positive - 1.2 * _gaussian(46, 46)[None]  # counter-evidence larger than the evidence
    assert _score("pointing_game", stronger, mask)[0] == 1, "positive: the evidence for the target is on the lesion"
    assert _score("pointing_game", stronger, mask, sign="absolute")[0] == 0, "absolute: the larger |relevance| is off it"
    assert _score("pointing_game", blob, mask, sign="absolute")[0] == 0.5, "absolute: two tied maxima, one inside"
    iou_abs = float(_score("iou", blob, mask, sign="absolute")[0])
    assert 0.3 < iou_abs < 0.45, "absolute segments both blobs: about half the plain IoU"
    # raw relevance mass sums signed relevance (Quantus' RelevanceMassAccuracy), by hand:
    m = torch.zeros(1, 4, 4)
    m[0, :2, :3] = torch.tensor([[1.0, 2.0, 0.0], [3.0, -5.0, 0.0]])
    m[0, 1, 3] = 4.0
    lesion = torch.zeros(1, 4, 4, dtype=torch.bool)
    lesion[0, :2, :2] = True
    assert float(_score("relevance_mass", m, lesion, sign="raw")[0]) == pytest.approx((1 + 2 + 3 - 5) / 5)
    assert float(_score("relevance_mass", m, lesion)[0]) == pytest.approx(6 / 10)
    assert float(_score("relevance_mass", m, lesion, sign="absolute")[0]) == pytest.approx(11 / 15)


def test_other_categories_ignore_the_rule():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16 * 16, 2)).eval()
    images, maps = torch.rand(2, 1, 16, 16), torch.randn(2, 16, 16)
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    a = score("deletion_auc", model, images, torch.tensor([0, 1]), maps, masks, torch.ones(2, dtype=torch.bool), steps=4)
    b = score("deletion_auc", model, images, torch.tensor([0, 1]), maps, masks, torch.ones(2, dtype=torch.bool), steps=4,
              sign="absolute")
    torch.testing.assert_close(a, b)


def test_score_maps_takes_the_same_rule(case):
    positive, blob, mask = case
    model = nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE, 2)).eval()
    args = (model, torch.zeros(1, 1, SIZE, SIZE), [1], blob, mask)
    default = score_maps(*args, metrics=["iou"]).value.iloc[0]
    assert default == pytest.approx(float(_score("iou", positive, mask)[0]), abs=1e-6)
    assert score_maps(*args, metrics=["iou"], sign="raw").value.iloc[0] < 0.1
    with pytest.raises(ValueError, match="sign"):
        score_maps(*args, metrics=["iou"], sign="signed")


def test_a_bad_sign_is_refused_naming_the_key():
    from benchmark.run.config import ConfigError, load_config
    from benchmark.run.validate import validate
    assert load_config().metrics.sign == "positive"
    cfg = load_config(overrides=["metrics.sign=negative"])
    with pytest.raises(ConfigError, match=r"metrics\.sign: 'negative' is not one of \['positive', 'absolute', 'raw'\]"):
        validate(cfg)
    validate(load_config(overrides=["metrics.sign=absolute"]))
    with pytest.raises(ValueError, match="sign = 'negative'"):
        _score("iou", torch.rand(1, 8, 8), torch.ones(1, 8, 8, dtype=torch.bool), sign="negative")


def test_the_rule_is_part_of_the_localisation_score_keys(tmp_path):
    """Changing metrics.sign re-scores the localisation metrics, and only them (their maps stay)."""
    from benchmark.run.config import load_config
    from benchmark.run.context import RunContext
    keys = {}
    for sign in ("positive", "raw"):
        ctx = RunContext(load_config(overrides=[f"metrics.sign={sign}"]), tmp_path, torch.device("cpu"))
        keys[sign] = {m: ctx.scores_dir("resnet50", "lrp", m, "mapskey").name for m in ("iou", "lung_mass", "deletion_auc")}
    assert keys["positive"]["iou"] != keys["raw"]["iou"]
    assert keys["positive"]["lung_mass"] != keys["raw"]["lung_mass"]
    assert keys["positive"]["deletion_auc"] == keys["raw"]["deletion_auc"]


def test_the_run_scores_through_the_rule(case):
    """The one scoring loop hands cfg.metrics.sign to every localisation metric."""
    from benchmark.run import scoring
    from benchmark.run.config import load_config
    from benchmark.store.files import MapShard
    from cxr_xai_bench.datasets import Batch
    positive, blob, mask = case
    test = Batch(torch.zeros(1, 1, SIZE, SIZE), torch.ones(1, dtype=torch.long), mask, torch.tensor([True]),
                 torch.ones(1, SIZE, SIZE, dtype=torch.bool), ["a"])
    values = {}
    for sign in ("positive", "raw"):
        cfg = load_config(overrides=[f"metrics.sign={sign}"])
        task = scoring.ScoreTask(cfg, torch.device("cpu"), "m", "lrp", "iou", {}, None, test, test.images,
                                 np.arange(1), (0, 1), MapShard(blob.numpy(), ["a"], np.zeros(1), np.zeros(1)),
                                 lambda idx, x: test.labels[idx], None, "")
        values[sign] = float(scoring.score_images(task).values[0])
    assert values["positive"] == pytest.approx(float(_score("iou", positive, mask)[0]), abs=1e-6)
    assert values["raw"] < 0.1


def test_the_cheXlocalize_export_segments_by_the_rule(tmp_path, case):
    """Deliberate bug caught: the exported segmentations reading the signed range."""
    from benchmark.report.chexlocalize import export_segmentations
    positive, blob, mask = case
    seg = export_segmentations(tmp_path / "e.json", blob, ["a"])
    assert np.array_equal(seg, segment(blob.clamp(min=0)).numpy())
    assert np.array_equal(seg, segment(positive).numpy())


def test_the_report_header_states_the_rule():
    from benchmark.report.sections import settings_lines
    from benchmark.run.config import load_config
    text = "\n".join(settings_lines(load_config()))
    assert "Localisation metrics read the positive part of each map" in text and 'metrics.sign = "positive"' in text
    text = "\n".join(settings_lines(load_config(overrides=["metrics.sign=raw"])))
    assert "as the explainer returned it" in text and 'metrics.sign = "raw"' in text
    old = load_config()
    old.metrics = SimpleNamespace(**{k: v for k, v in vars(old.metrics).items() if k != "sign"})
    assert "predates `metrics.sign`" in "\n".join(settings_lines(old))
