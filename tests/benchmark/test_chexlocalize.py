import json

import numpy as np
import pandas as pd
import pytest
from pycocotools import mask as mask_utils
from skimage.filters import threshold_otsu

from benchmark.report.chexlocalize import LOCALIZATION_TASKS, decode, encode, export_ground_truth, export_segmentations, read_segmentations


def test_encode_counts_worked_out_by_hand():
    # COCO RLE reads the mask column by column (Fortran order) and starts with a run of zeros:
    #   1 0 0
    #   1 0 0      columns: (1, 1, 0), (0, 0, 0), (0, 0, 1) -> 1 1 0 0 0 0 0 0 1
    #   0 0 1      runs: 0 zeros, 2 ones, 6 zeros, 1 one -> counts [0, 2, 6, 1]
    # pycocotools' string: each count from the third on minus the count two before (1 - 2 = -1), in
    # 5-bit groups plus 48 ('0' = 0, '2' = 2, '6' = 6; -1 -> 31 with the sign bit and no continuation:
    # 31 + 48 = 'O'). Read row by row it would be 1 0 0 1 0 0 0 0 1 -> [0, 1, 2, 1, 4, 1].
    m = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1]], bool)
    assert encode(m[None]) == [{"size": [3, 3], "counts": "026O"}]
    # 0 1 1 / 0 0 1 -> columns (0, 0), (1, 0), (1, 1) -> runs 2, 1, 1, 2 -> "2111" (1 - 1 = 0 is not sent as
    # a delta from the fourth count: 2 - 1 = 1)
    m2 = np.array([[0, 1, 1], [0, 0, 1]], bool)
    assert encode(m2[None]) == [{"size": [2, 3], "counts": "2111"}]
    assert np.array_equal(decode({"size": [3, 3], "counts": "026O"}), m)
    assert np.array_equal(decode({"size": [2, 3], "counts": "2111"}), m2)


def test_encode_decode_round_trip_of_a_stack():
    masks = np.random.default_rng(0).random((3, 9, 13)) > 0.6
    rles = encode(masks)
    assert all(r["size"] == [9, 13] for r in rles)
    for m, r in zip(masks, rles):
        assert np.array_equal(decode(json.loads(json.dumps(r))), m)


def test_export_segmentations_is_otsu_on_minmax_maps_and_readable_as_chexlocalize(tmp_path):
    rng = np.random.default_rng(1)
    maps = rng.random((4, 16, 16)).astype(np.float32) * 3 - 1
    # signed maps compared with skimage on their whole range: read raw (the default rule segments the
    # positive part: tests/benchmark/test_sign_rule.py)
    seg = export_segmentations(tmp_path / "pred.json", maps, ["a", "b", "c", "d"], sign="raw")
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


def test_unannotated_images_are_left_out_of_every_export(tmp_path):
    # x annotated with a lesion, y annotated normal (empty mask: a negative), z not annotated (unknown)
    masks = np.zeros((3, 8, 8), bool)
    masks[0, 2:5, 3:6] = True
    has_mask = np.array([True, True, False])
    export_ground_truth(tmp_path / "gt.json", masks, ["x", "y", "z"], has_mask=has_mask)
    gt = json.loads((tmp_path / "gt.json").read_text())
    assert set(gt) == {"x", "y"}
    assert decode(gt["y"]["Airspace Opacity"]).sum() == 0  # the normal image stays, as a negative
    seg = export_segmentations(tmp_path / "pred.json", np.random.default_rng(0).random((3, 8, 8)), ["x", "y", "z"],
                               has_mask=has_mask)
    assert set(json.loads((tmp_path / "pred.json").read_text())) == {"x", "y"} and seg.shape == (3, 8, 8)
    with pytest.raises(ValueError, match="has_mask"):
        export_ground_truth(tmp_path / "g.json", masks, ["x", "y", "z"], has_mask=np.array([True]))


def test_report_stage_exports_annotated_images_only(tmp_path, monkeypatch):
    """The run's report stage passes the test batch's has_mask to both exports."""
    import torch
    from cxr_xai_bench.datasets import Batch
    from benchmark.run import report_stage

    n = 4
    masks = torch.zeros(n, 8, 8, dtype=torch.bool)
    masks[0, 2:5, 2:5] = True
    test = Batch(torch.rand(n, 1, 8, 8), torch.tensor([1, 0, 1, 1]), masks, torch.tensor([True, True, False, False]),
                 torch.zeros(n, 8, 8, dtype=torch.bool), ["a", "b", "c", "d"])

    class Ctx:
        run_dir = tmp_path
        cfg = type("Cfg", (), {"metrics": type("M", (), {"names": ["relevance_mass"], "sign": "positive"}),
                                "explain": type("E", (), {"names": ["random"], "for_model": staticmethod(lambda m: ["random"])}),
                                "report": type("R", (), {"overlay_images": 1})})

        def load_maps(self, model, key, explainer, n_test):
            return np.random.default_rng(0).random((n_test, 8, 8)).astype(np.float32)

    monkeypatch.setattr(report_stage, "build_report", lambda run_dir: "")  # the exports only
    scores = pd.DataFrame({"dataset": "d", "split": "test", "model": "m", "explainer": "random",
                           "metric": "relevance_mass", "image_id": list("abcd"), "value": [0.5, np.nan, np.nan, np.nan]})
    report_stage.write_report(Ctx(), scores, test, {"m": ("k", tmp_path / "m.pt")})
    assert set(json.loads((tmp_path / "chexlocalize" / "gt.json").read_text())) == {"a", "b"}
    assert set(json.loads((tmp_path / "chexlocalize" / "m-random.json").read_text())) == {"a", "b"}
