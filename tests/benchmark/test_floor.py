"""The run's pass plan (benchmark.speed.floor) against passes counted on the models themselves.

Every forward of our models (and of their deep copies: the randomisation cascade) goes through the
network's first convolution, the only one with at most 3 input channels; a backward pass reaches
the input when the gradient reaches that convolution's output. A global module hook counts both,
so nothing in the code under test is changed or wrapped differently from a real run."""
from __future__ import annotations

import contextlib
import json

import pytest
import torch
from torch import nn

from benchmark.metrics import METRICS, get_metric, score
from benchmark.metrics.sanity import CASCADES
from benchmark.run.config import load_config
from benchmark.run.runner import Runner
from benchmark.speed.floor import Passes, floor_table, format_floor, measure_throughput
from cxr_xai_bench.explainers import EXPLAINERS, build_explainer
from cxr_xai_bench.models import build_model


class PassCounter:
    def __init__(self) -> None:
        self.forward = self.backward = 0

    def hook(self, module: nn.Module, inputs, output) -> None:
        if isinstance(module, nn.Conv2d) and module.in_channels <= 3:
            self.forward += output.shape[0]
            if output.requires_grad:
                output.register_hook(self._backward)

    def _backward(self, grad: torch.Tensor) -> None:
        self.backward += grad.shape[0]

    def snapshot(self) -> tuple[int, int]:
        return self.forward, self.backward


@contextlib.contextmanager
def counting():
    counter = PassCounter()
    handle = torch.nn.modules.module.register_module_forward_hook(counter.hook)
    try:
        yield counter
    finally:
        handle.remove()


SIZE = 32


@pytest.fixture(scope="module")
def tiny_models():
    torch.manual_seed(0)
    return {"vgg16_bn": build_model("vgg16_bn", head="compact", gradcam_layer="features.32").eval(),
            "resnet50": build_model("resnet50", gradcam_layer="layer2").eval()}


def _batch(n: int = 2):
    g = torch.Generator().manual_seed(1)
    images = torch.rand(n, 1, SIZE, SIZE, generator=g)
    masks = torch.zeros(n, SIZE, SIZE, dtype=torch.bool)
    masks[:, 8:20, 6:18] = True
    context = {"lung_masks": masks, "lesion_masks": masks, "train_mean_mask": masks[0].float()}
    return images, torch.tensor([1, 0][:n]), masks, context


EXPLAINER_PARAMS = {"lime": {"num_samples": 6, "batch_size": 4}, "lime_package": {"num_samples": 6, "batch_size": 4},
                    "integrated_gradients": {"n_steps": 3, "internal_batch_size": 4},
                    "occlusion": {"window": 0.25, "stride": 0.19}}  # 25 windows at 32 px, the last overhanging


@pytest.mark.parametrize("name", sorted(EXPLAINERS))
def test_every_explainer_declares_the_passes_it_makes(name, tiny_models):
    """A new explainer is checked the moment it registers: declared passes (or None) against counted ones."""
    images, targets, _, context = _batch()
    model = tiny_models["resnet50"] if name == "lrp" else tiny_models["vgg16_bn"]
    exp = build_explainer(name, seed=0, **EXPLAINER_PARAMS.get(name, {}))
    declared = exp.passes(SIZE)
    assert declared is not None, f"built-in explainer {name} must declare its passes"
    with counting() as c:
        exp.explain(model, images, targets, **{k: context[k] for k in exp.needs})
    assert c.snapshot() == (declared[0] * len(images), declared[1] * len(images)), name


METRIC_PARAMS = {"deletion_auc": {"steps": 3}, "insertion_auc": {"steps": 5}, "faithfulness_correlation": {"nr_runs": 4},
                 "road_morf": {"percentages": [20, 50, 80]}, "road_lerf": {"percentages": [10, 90]},
                 "randomisation_ssim": {"max_layers": 2}, "randomisation_spearman": {"max_layers": 3}}


@pytest.mark.parametrize("name", sorted(n for n, s in METRICS.items() if s.fn is not None))
def test_every_metric_declares_the_passes_it_makes(name, tiny_models):
    images, targets, masks, context = _batch()
    model = tiny_models["vgg16_bn"]
    spec = get_metric(name)
    explainer = build_explainer("gradcam")
    params = METRIC_PARAMS.get(name, {})
    declared = spec.passes_per_image(params, explainer.passes(SIZE), model)
    assert declared is not None, f"built-in metric {name} must declare its passes"
    maps = explainer.explain(model, images, targets)
    extra = {"explainer": explainer, "context": {}} if spec.needs_explainer else {}
    CASCADES.clear()  # each metric alone: the randomisation metrics share a cascade computed in a row
    with counting() as c:
        score(name, model, images, targets, maps, masks, torch.ones(len(images), dtype=torch.bool),
              lung_masks=masks, **extra, **params)
    assert c.snapshot() == (declared[0] * len(images), declared[1] * len(images)), name


@pytest.mark.integration
def test_a_smoke_run_makes_exactly_the_planned_passes_per_stage(tmp_path, monkeypatch):
    """The whole plan of a tiny run (both models, every default explainer and metric, a tuned
    threshold) against the passes its stages make, attributed by wrapping the runner's stage calls."""
    from benchmark.run import pipeline
    cfg = load_config(None, ["data.limit.train=12", "data.limit.val=8", "data.limit.test=6",
                             "metrics.params.iou.threshold=\"tuned\"", "data.cache_dir=\"\""], "smoke")
    counted: dict[str, list[int]] = {}
    with counting() as c:
        def attribute(stage, fn):
            def wrapped(*args, **kwargs):
                before = c.snapshot()
                out = fn(*args, **kwargs)
                name = args[-1] if stage == "sharded" else stage
                got = counted.setdefault(name, [0, 0])
                got[0] += c.forward - before[0]
                got[1] += c.backward - before[1]
                return out
            return wrapped
        monkeypatch.setattr(pipeline, "train_models", attribute("train", pipeline.train_models))
        monkeypatch.setattr(pipeline, "tune_thresholds", attribute("tune", pipeline.tune_thresholds))
        monkeypatch.setattr(pipeline, "run_sharded", attribute("sharded", pipeline.run_sharded))
        result = Runner(cfg, tmp_path / "run", torch.device("cpu")).run("score")
    plan = {r["stage"]: r for r in result.floor["stages"]}
    train = [plan[f"train/{m}"] for m in cfg.models.names]
    assert counted["train"] == [sum(r["forward"] for r in train), sum(r["backward"] for r in train)]
    for stage in ("tune", "explain", "score"):
        assert counted[stage] == [plan[stage]["forward"], plan[stage]["backward"]], stage
        assert not plan[stage]["undeclared"]
    assert plan["tune"]["forward"] > 0 and plan["score"]["forward"] > plan["explain"]["forward"] > 0
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert [r["stage"] for r in manifest["floor"]["stages"]] == list(plan)
    assert set(manifest["floor"]["throughput"]) == set(cfg.models.names)


def test_floor_table_ratio_and_text():
    from benchmark.speed.floor import Throughput
    speed = {"a": Throughput(0.01, 0.02, 8), "b": Throughput(0.1, 0.0, 8)}
    plan = {"train": {"a": Passes(10, 10), "b": Passes(0, 0)}, "score": {"a": Passes(100, 0), "b": Passes(10, 0, ["x of y"])}}
    rows = floor_table(plan, speed, {"train/a": 0.6, "score": 4.0}, {"score": True})
    assert [r["stage"] for r in rows] == ["train/a", "score"]  # a stage without passes has no row
    assert rows[0]["floor_s"] == pytest.approx(0.3) and rows[0]["ratio"] == pytest.approx(2.0)
    assert rows[1]["floor_s"] == pytest.approx(2.0) and rows[1]["ratio"] == pytest.approx(2.0)
    assert rows[1]["reused"] and rows[1]["undeclared"] == "x of y"
    text = format_floor(rows, speed)
    assert "(reused)" in text and "undeclared: x of y" in text


def test_measured_throughput_is_positive_and_backward_costs(tiny_models):
    t = measure_throughput(tiny_models["vgg16_bn"], SIZE, torch.device("cpu"), batch_size=4)
    assert t.forward_s > 0 and t.backward_s > 0 and t.batch_size == 4
