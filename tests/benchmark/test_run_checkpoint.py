"""Bring a trained classifier: models.checkpoints loads a model instead of training it. A run on the
checkpoint that another run trained computes no training and gives the same scores; the file's
SHA-256 is in the model key (and so in every downstream key)."""
import json

import pandas as pd
import pytest
import torch

from benchmark.run.config import load_config
from benchmark.run.runner import Runner

pytestmark = pytest.mark.integration

SETS = ['models.names=["resnet50"]', 'explain.names=["gradcam","random"]',
        'metrics.names=["pointing_game","deletion_auc"]']


def _run(run_dir, *extra):
    cfg = load_config(None, [*SETS, f"data.cache_dir='{run_dir.parent / 'cache'}'", *extra], "smoke")
    result = Runner(cfg, run_dir, torch.device("cpu")).run(until="score")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return result, manifest


def _sorted(scores: pd.DataFrame) -> pd.DataFrame:
    keys = ["model", "explainer", "metric", "image_id"]
    return scores.sort_values(keys).reset_index(drop=True)[keys + ["value"]]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ckpt") / "trained"
    result, manifest = _run(run_dir)
    assert manifest["work"]["train"]["computed"] == 1
    [ckpt] = [p for p in (run_dir / "checkpoints").glob("resnet50-*.pt") if not p.name.endswith(".state.pt")]
    return result, manifest, ckpt


def test_given_checkpoint_is_loaded_not_trained_and_scores_equal(trained, tmp_path):
    first, first_manifest, ckpt = trained
    result, manifest = _run(tmp_path / "loaded", f"models.checkpoints.resnet50='{ckpt}'")
    assert manifest["work"]["train"]["computed"] == 0 and manifest["work"]["train"]["loaded"] == 1
    entry = manifest["classifiers"]["resnet50"]
    assert entry["trained"] is False and entry["loaded"]["format"] == "ours"
    assert len(entry["loaded"]["sha256"]) == 64 and entry["best_epoch"] == "loaded"
    assert entry["test"] == first_manifest["classifiers"]["resnet50"]["test"]
    pd.testing.assert_frame_equal(_sorted(result.scores), _sorted(first.scores))
    # the loaded model's key differs from the trained one's: maps were explained again, not shared
    assert manifest["work"]["explain"]["computed"] > 0
    again, manifest2 = _run(tmp_path / "loaded", f"models.checkpoints.resnet50='{ckpt}'")
    assert manifest2["work"]["train"] == {"computed": 0, "reused": 0, "loaded": 1}
    assert manifest2["work"]["explain"]["computed"] == 0 and manifest2["work"]["score"]["computed"] == 0


def test_torchvision_state_dict_and_pickled_model(trained, tmp_path):
    """A plain torchvision state_dict loads; a whole pickled model needs models.allow_pickle."""
    first, _, ckpt = trained
    state = torch.load(ckpt, weights_only=True)["model"]
    net_state = {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    plain = tmp_path / "torchvision_state.pt"
    torch.save(net_state, plain)
    result, manifest = _run(tmp_path / "plain", f"models.checkpoints.resnet50='{plain}'")
    assert manifest["classifiers"]["resnet50"]["loaded"]["format"] == "state_dict"
    pd.testing.assert_frame_equal(_sorted(result.scores), _sorted(first.scores))

    from cxr_xai_bench.models import build_model
    whole = build_model("resnet50", gradcam_layer="layer2")
    whole.load_state_dict(state)
    pickled = tmp_path / "whole.pt"
    torch.save(whole, pickled)
    with pytest.raises(ValueError, match="allow_pickle"):
        _run(tmp_path / "pickled", f"models.checkpoints.resnet50='{pickled}'")
    _, manifest = _run(tmp_path / "pickled", f"models.checkpoints.resnet50='{pickled}'", 'models.allow_pickle=["resnet50"]')
    assert manifest["classifiers"]["resnet50"]["loaded"]["format"] == "pickled_model"


def test_bad_given_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="models.checkpoints.resnet50"):
        _run(tmp_path / "missing", f"models.checkpoints.resnet50='{tmp_path / 'nope.pt'}'")
    with pytest.raises(KeyError, match="cxr_xai_bench.models.checkpoints"):
        _run(tmp_path / "unknown", f"models.checkpoints.vgg16='{tmp_path / 'nope.pt'}'")
    wrong = tmp_path / "wrong.pt"
    torch.save({"fc.weight": torch.zeros(1000, 2048)}, wrong)
    with pytest.raises(ValueError, match="does not fit model resnet50"):
        _run(tmp_path / "wrong", f"models.checkpoints.resnet50='{wrong}'")
