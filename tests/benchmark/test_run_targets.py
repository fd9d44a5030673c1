"""explain.target decides the class every map explains: a test-only explainer whose map is its target
(plus one) shows, from the stored maps, which targets the run handed it."""
import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.run.config import load_config
from benchmark.run.runner import Runner
from benchmark.store.files import read_map_shard
from cxr_xai_bench.explainers import EXPLAINERS, register_explainer
from cxr_xai_bench.explainers.registry import Explainer

pytestmark = pytest.mark.integration


class TargetEcho(Explainer):
    """Test-only: every pixel of a map is its target + 1."""

    def _explain(self, model, images, targets, **context):
        return (targets.float() + 1)[:, None, None].expand(len(images), *images.shape[2:]).contiguous()


@pytest.fixture
def target_echo():
    register_explainer("target_echo")(TargetEcho)
    yield "target_echo"
    EXPLAINERS.pop("target_echo")


def _explained_targets(run_dir, target):
    cfg = load_config(None, ["models.names=['vgg16_bn']", "explain.names=['target_echo']", "metrics.names=['iou']",
                             f"explain.target='{target}'", "run.shard_size=3",
                             f"data.cache_dir='{run_dir.parent / 'cache'}'"], "smoke")
    before = set((run_dir / "maps").glob("*")) if (run_dir / "maps").exists() else set()
    Runner(cfg, run_dir, torch.device("cpu")).run(until="explain")
    [folder] = set((run_dir / "maps").glob("vgg16_bn-target_echo-*")) - before  # each target: its own maps
    parts = [read_map_shard(p) for p in sorted(folder.glob("shard-*.npy"))]
    maps = np.concatenate([s.maps for s in parts])
    assert (maps == maps[:, :1, :1]).all(), "one value per map"
    return dict(zip(sum((s.ids for s in parts), []), maps[:, 0, 0].astype(int) - 1))


def test_targets_are_label_prediction_or_pneumonia(target_echo, tmp_path):
    run = tmp_path / "run"
    label = _explained_targets(run, "label")
    pred = pd.read_csv(run / "predictions.csv", dtype={"image_id": str}).set_index("image_id")
    assert label == pred["label"].to_dict() and set(label.values()) == {0, 1}
    # the lesion share the focal-lesion table reads: the phantom draws every mask
    assert (pred.loc[pred["label"] == 0, "lesion_share"] == 0).all() and pred.loc[pred["label"] == 1, "lesion_share"].between(0, 1, inclusive="right").all()
    predicted = _explained_targets(run, "predicted")
    assert predicted == (pred["prob_pneumonia"] > 0.5).astype(int).to_dict()
    pneumonia = _explained_targets(run, "pneumonia")
    assert set(pneumonia.values()) == {1} and pneumonia.keys() == label.keys()
