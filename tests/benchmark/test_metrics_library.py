"""score_maps: the metrics as a library for any torch classifier returning logits, and the docs
example that uses it (run as a user would, from a temporary working folder)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.metrics import score, score_maps

ROOT = Path(__file__).resolve().parents[2]


def _inputs(n=3, size=16):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(size * size, 3)).eval()  # three classes, any classifier
    images = torch.rand(n, 1, size, size)
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    masks[:, 4:10, 4:10] = True
    masks[1] = False
    return model, images, torch.tensor([0, 2, 1]), torch.rand(n, size, size), masks


def test_one_row_per_image_and_metric_equal_to_the_registry():
    model, images, targets, maps, masks = _inputs()
    table = score_maps(model, images, targets, maps, masks, metrics=["deletion_auc", "pointing_game"],
                       params={"deletion_auc": {"steps": 4}}, batch_size=2, image_ids=["a", "b", "c"])
    assert list(table.columns) == ["image", "metric", "category", "higher_is_better", "value"]
    assert len(table) == 6 and table.image.tolist() == ["a", "b", "c"] * 2
    assert np.isnan(table.value[(table.metric == "pointing_game") & (table.image == "b")]).all()
    direct = score("deletion_auc", model, images, targets, maps, masks, torch.ones(3, dtype=torch.bool), steps=4)
    np.testing.assert_allclose(table[table.metric == "deletion_auc"].value, direct.numpy(), rtol=1e-6)
    assert not table[table.metric == "deletion_auc"].higher_is_better.any()


def test_numpy_inputs_defaults_and_errors():
    model, images, targets, maps, masks = _inputs()
    table = score_maps(model, images[:, 0].numpy(), targets.numpy(), maps.numpy(),
                       metrics=["insertion_auc"], params={"insertion_auc": {"steps": 4}})
    assert len(table) == 3 and table.value.notna().all()
    with pytest.raises(ValueError, match="needs lesion masks"):
        score_maps(model, images, targets, maps, metrics=["pointing_game"])
    with pytest.raises(ValueError, match="measured by the benchmark runner"):
        score_maps(model, images, targets, maps, metrics=["seconds_per_image"])
    with pytest.raises(ValueError, match="same N images"):
        score_maps(model, images, targets[:2], maps, metrics=["insertion_auc"])
    with pytest.raises(KeyError, match="unknown metric"):
        score_maps(model, images, targets, maps, metrics=["no_such_metric"])


def test_docs_example_runs(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "docs" / "examples" / "metrics_as_a_library.py")], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "deletion_auc" in r.stdout and "pointing_game" in r.stdout and "NaN" in r.stdout
