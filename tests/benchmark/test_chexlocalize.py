import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from skimage.filters import threshold_otsu

from benchmark.chexlocalize import LOCALIZATION_TASKS, decode, encode, export_ground_truth, export_segmentations, read_segmentations


def test_encode_decode_round_trip_matches_pycocotools_single_mask():
    rng = np.random.default_rng(0)
    masks = rng.random((3, 9, 13)) > 0.6
    rles = encode(masks)
    for m, r in zip(masks, rles):
        assert np.array_equal(decode(json.loads(json.dumps(r))), m)
        ref = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))  # cheXlocalize's encode_segmentation
        assert r["counts"] == ref["counts"].decode() and r["size"] == [9, 13]


def test_export_segmentations_is_otsu_on_minmax_maps_and_readable_as_chexlocalize(tmp_path):
    rng = np.random.default_rng(1)
    maps = rng.random((4, 16, 16)).astype(np.float32) * 3 - 1
    seg = export_segmentations(tmp_path / "pred.json", maps, ["a", "b", "c", "d"])
    for m, s in zip(maps, seg):
        norm = (m - m.min()) / (m.max() - m.min())
        assert np.array_equal(s, norm > threshold_otsu(norm))
    doc = json.loads((tmp_path / "pred.json").read_text())
    assert set(doc) == {"a", "b", "c", "d"} and set(doc["a"]) == set(LOCALIZATION_TASKS)
    # the way cheXlocalize's eval.py reads it
    assert np.array_equal(mask_utils.decode(doc["b"]["Airspace Opacity"]), seg[1].astype(np.uint8))
    assert mask_utils.decode(doc["b"]["Edema"]).sum() == 0
    back = read_segmentations(tmp_path / "pred.json")
    assert all(np.array_equal(back[i], s) for i, s in zip("abcd", seg))


def test_ground_truth_export_and_bad_input(tmp_path):
    masks = np.zeros((2, 8, 8), bool)
    masks[0, 2:5, 3:6] = True
    export_ground_truth(tmp_path / "gt.json", masks, ["x", "y"], task="Consolidation", all_tasks=False)
    back = read_segmentations(tmp_path / "gt.json", "Consolidation")
    assert np.array_equal(back["x"], masks[0]) and not back["y"].any()
    with pytest.raises(KeyError, match="Pneumonia"):
        export_ground_truth(tmp_path / "g.json", masks, ["x", "y"], task="Pneumonia")
    with pytest.raises(ValueError, match="2 image ids for 3"):
        export_ground_truth(tmp_path / "g.json", np.zeros((3, 8, 8), bool), ["x", "y"])
    with pytest.raises(FloatingPointError, match="NaN"):
        export_segmentations(tmp_path / "p.json", np.full((1, 4, 4), np.nan), ["x"])
