"""The focal-lesion table: which images it keeps (lesion under half the lung, normals; unknown masks
out), means by hand, and the lesion share the run writes into predictions.csv."""
import numpy as np
import pandas as pd
import pytest
import torch


def _inputs():
    ids = ["big", "small", "normal", "unknown"]
    share = [0.8, 0.2, 0.0, np.nan]
    rows = []
    for e, values in (("a", [0.9, 0.1, np.nan, np.nan]), ("b", [0.7, 0.5, np.nan, np.nan])):
        rows += [dict(dataset="d", split="test", model="m", explainer=e, metric="relevance_mass", image_id=i, value=v)
                 for i, v in zip(ids, values)]
    for e, values in (("a", [0.2, 0.4, 0.6, 0.8]), ("b", [0.3, 0.3, 0.3, 0.3])):
        rows += [dict(dataset="d", split="test", model="m", explainer=e, metric="deletion_auc", image_id=i, value=v)
                 for i, v in zip(ids, values)]
        rows += [dict(dataset="d", split="test", model="m", explainer=e, metric="seconds_per_image", image_id=i, value=1.0)
                 for i in ids]
    preds = pd.DataFrame({"dataset": "d", "split": "test", "model": "m", "image_id": ids, "label": [1, 1, 0, 1],
                          "prob_pneumonia": 0.5, "lesion_share": share})
    return pd.DataFrame(rows), preds


def test_focal_scores_keep_focal_lesions_and_normals_only():
    from benchmark.report.focal import focal_scores
    scores, preds = _inputs()
    sub = focal_scores(scores, preds)
    assert set(sub["image_id"]) == {"small", "normal"}, "the large lesion and the unknown mask are out"
    assert set(sub["metric"]) == {"relevance_mass", "deletion_auc"}, "runtime is not a focal question"


def test_focal_section_means_by_hand(tmp_path):
    from benchmark.report.focal import focal_section
    scores, preds = _inputs()
    notes = []
    lines = focal_section(scores, preds, tmp_path, 50, 0.95, 0, "textwidth", notes)
    assert not notes and lines[0] == "## Focal lesions\n"
    assert "(1 of 2 lesion images) and the normals (1)" in lines[1]
    table = pd.read_csv(tmp_path / "focal_leaderboard.csv").set_index(["explainer", "metric"])
    # relevance_mass on the one focal lesion image; deletion on it and the normal
    assert table.loc[("a", "relevance_mass"), "mean"] == pytest.approx(0.1)
    assert table.loc[("b", "relevance_mass"), "mean"] == pytest.approx(0.5)
    assert table.loc[("a", "deletion_auc"), "mean"] == pytest.approx(0.5) and table.loc[("a", "deletion_auc"), "n"] == 2
    tex = (tmp_path / "focal_leaderboard.tex").read_text()
    assert "tabular" in tex and "Relevance" in tex


def test_no_lesion_share_no_table_and_a_note(tmp_path):
    from benchmark.report.focal import focal_section
    scores, preds = _inputs()
    notes = []
    assert focal_section(scores, preds.assign(lesion_share=np.nan), tmp_path, 50, 0.95, 0, "textwidth", notes) == []
    assert "focal-lesion table: not reported" in notes[0] and not (tmp_path / "focal_leaderboard.csv").exists()


def test_lesion_share_by_hand():
    from benchmark.report.artifacts import lesion_share
    lesion = torch.zeros(3, 4, 4, dtype=torch.bool)
    lesion[0, :2, :2] = True           # 4 lesion pixels
    lung = torch.zeros(3, 4, 4, dtype=torch.bool)
    lung[0, :, :2] = True              # 8 lung pixels
    lung[1] = True                     # a normal: known empty mask
    has = torch.tensor([True, True, True])
    share = lesion_share(lesion, has, lung)
    assert share[0] == pytest.approx(0.5) and share[1] == 0.0
    assert np.isnan(share[2]), "no lung drawn: unknown"
    assert np.isnan(lesion_share(lesion, torch.tensor([False, True, True]), lung)[0]), "unknown lesion mask"
