"""Report sections: the settings header, the faithfulness breakdown by class and the
critical-difference diagrams drawn only where the Friedman test rejects."""
import numpy as np
import pandas as pd
import pytest


def test_settings_lines_name_output_target_perturbations_and_splits():
    from benchmark.report.sections import settings_lines
    from benchmark.run.config import load_config
    cfg = load_config(preset="smoke")
    cfg.models.names = ["vgg16_bn", "resnet50"]
    cfg.models.params = {"vgg16_bn": {"output": "centred"}, "resnet50": {}}
    cfg.explain.target = "predicted"
    cfg.metrics.names = ["deletion_auc", "insertion_auc", "road_morf", "relevance_mass"]
    cfg.metrics.params = {"deletion_auc": {"fill": "blur", "order": "lerf"}}
    cfg.data.splits = {"train": "tr", "val": "va", "test": "te"}
    text = "\n".join(settings_lines(cfg))
    assert "`vgg16_bn` centred" in text and "`resnet50` raw" in text
    assert "explain target: `predicted`" in text
    # config over the metric's defaults: deletion blur / lerf, insertion its default mean / morf
    assert "`deletion_auc` fill `blur`, order `lerf`" in text and "`insertion_auc` fill `mean`, order `morf`" in text
    assert "`road_morf` noisy linear imputation" in text and "relevance_mass" not in text
    assert "trained on `tr`, selected on `va`" in text and "scored on `te`" in text


def test_per_class_breakdown_on_the_common_set():
    from benchmark.report.sections import per_class, per_class_markdown
    ids = ["p1", "p2", "n1", "n2", "n3"]
    scores = pd.DataFrame({"dataset": "d", "split": "test", "model": "m", "metric": "deletion_auc",
                           "explainer": ["a"] * 5 + ["b"] * 5, "image_id": ids * 2,
                           "value": [0.1, 0.3, 0.5, 0.7, np.nan, 0.2, 0.2, 0.4, 0.4, 0.9]})
    scores = pd.concat([scores, scores.assign(metric="relevance_mass")])  # not faithfulness: left out
    preds = pd.DataFrame({"dataset": "d", "split": "test", "model": "m", "image_id": ids, "label": [1, 1, 0, 0, 0],
                          "prob_pneumonia": 0.5})
    t = per_class(scores, preds, 50).set_index(["explainer", "class"])
    assert set(t["metric"]) == {"deletion_auc"}
    # n3: a failed, so it is out of both explainers' normal-class means
    assert t.loc[("a", "pneumonia"), "mean"] == pytest.approx(0.2) and t.loc[("a", "normal"), "mean"] == pytest.approx(0.6)
    assert t.loc[("b", "normal"), "mean"] == pytest.approx(0.4) and t.loc[("b", "normal"), "n"] == 2
    md = per_class_markdown(per_class(scores, preds, 50))
    assert "on the pneumonia images" in md and "on the normal images" in md
    assert "| explainer | Deletion AUC ↓ |" in md and "| a | 0.600 [" in md and "(n=2)" in md


@pytest.mark.parametrize("workers", [1, 2])
def test_cd_diagram_only_where_friedman_rejects(tmp_path, workers):
    from benchmark.report.report_sections import cd_lines
    from benchmark.report.figure_pool import FigurePool
    from benchmark.report.figures import cd_diagram
    fried = pd.DataFrame({"dataset": "d", "model": "m", "metric": ["relevance_mass", "deletion_auc", "iou"],
                          "k": [3, 3, 2], "n": [10, 10, 10], "n_dropped": 0, "statistic": [12.0, 1.0, np.nan],
                          "p": [0.002, 0.5, np.nan], "cd": 1.0, "alpha": 0.05})
    ranks = pd.DataFrame({"dataset": "d", "model": "m", "metric": np.repeat(["relevance_mass", "deletion_auc", "iou"], 3),
                          "explainer": ["a", "b", "c"] * 3, "avg_rank": [1.0, 2.0, 3.0] * 3, "n": 10})
    with FigurePool(workers) as pool:
        lines = "\n".join(cd_lines(fried, ranks, tmp_path, False, pool)[0])
    assert "![critical difference m](cd-m.png)" in lines and (tmp_path / "cd-m.png").exists()
    assert "deletion_auc: Friedman test does not reject (p=0.500): no critical-difference diagram" in lines
    assert "iou: Friedman test not run" in lines and "relevance_mass" not in lines
    # nothing rejects: no figure
    assert cd_diagram(fried.assign(p=0.5), ranks, "d", "m", tmp_path / "none") is None
    assert not (tmp_path / "none.png").exists()
