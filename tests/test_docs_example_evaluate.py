"""docs/examples/evaluate-your-model/, run as its README says: make_files.py writes a user's inputs (a
ResNet50 saved as a DataParallel state_dict, a manifest with only a test split and masks, a folder of
maps) into a fresh folder, then `python -m benchmark evaluate --config .../config.toml` runs from
that folder. Nothing may be trained; the folder's maps are scored; the report says the model was
evaluated, not trained, and names the checkpoint's SHA-256."""
from __future__ import annotations

import hashlib
import json
import runpy
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchmark.cli import main
from cxr_xai_bench.explainers import EXPLAINERS

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "evaluate-your-model"
pytestmark = pytest.mark.integration


@pytest.fixture
def registry_restored():
    """The run registers the folder as explainer `my_maps`; later tests see the registry as it was."""
    saved = dict(EXPLAINERS)
    yield
    EXPLAINERS.clear()
    EXPLAINERS.update(saved)


def test_the_evaluate_your_model_example_runs(tmp_path, monkeypatch, registry_restored):
    monkeypatch.chdir(tmp_path)  # the config's paths are relative to the folder the user runs from
    monkeypatch.setattr(sys, "argv", ["make_files.py", "my-evaluation"])
    runpy.run_path(str(EXAMPLE / "make_files.py"), run_name="__main__")
    files = tmp_path / "my-evaluation"
    checkpoint = files / "resnet50.pt"
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert all(k.startswith("module.") for k in state) and state["module.fc.weight"].shape == (2, 2048)
    ids = pd.read_csv(files / "manifest.csv").image.map(lambda p: Path(p).stem)
    assert sorted(p.stem for p in (files / "maps").glob("*.npy")) == sorted(ids)

    out = tmp_path / "results" / "evaluate-your-model"
    assert main(["evaluate", "--config", str(EXAMPLE / "config.toml"), "--out", str(out)]) == 0

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["work"]["train"]["computed"] == 0 and manifest["work"]["train"]["loaded"] == 1
    assert manifest["evaluate_only"] and set(manifest["data_summary"]["roles"]) == {"test"}
    sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert manifest["classifiers"]["resnet50"]["loaded"]["sha256"] == sha

    scores = pd.read_csv(out / "scores.csv", dtype={"image_id": str})
    mine = scores[scores.explainer == "my_maps"]
    assert set(mine.image_id) == set(ids)
    assert {"pointing_game", "relevance_mass", "deletion_auc"} <= set(mine.metric)
    assert {"gradcam", "sobel", "random"} <= set(scores.explainer)
    # the stand-in maps are a blurred lesion mask: they point into every lesion
    hits = mine[mine.metric == "pointing_game"].value.dropna()
    assert len(hits) == 4 and (hits == 1).all()

    report = (out / "report" / "report.md").read_text()
    assert "Evaluated, not trained" in report and sha in report
