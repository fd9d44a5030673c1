"""Reduced precision (models/precision.py): bf16 autocast for training and for the model passes that
only classify images (LIME's and occlusion's samples; deletion, insertion and ROAD), float32 for
gradients and for faithfulness correlation. "auto" resolves by the hardware; the paper preset is
float32 throughout its scores; a score's key holds the precision its passes ran at."""
import pytest
import torch
from torch import nn

from benchmark import metrics as M
from benchmark.run.config import load_config
from benchmark.run.context import RunContext
from benchmark.run.validate import validate
from cxr_xai_bench.explainers import EXPLAINERS
from cxr_xai_bench.models import precision as P


def test_auto_follows_the_hardware(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert P.resolve_precision("auto", "cpu") == "fp32"
    assert isinstance(P.autocast("auto", "cpu"), type(P.autocast("fp32", "cpu")))
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert P.resolve_precision("auto", "cpu") == "bf16"
    assert P.resolve_precision("fp32", "cpu") == "fp32" and P.resolve_precision("bf16", "cpu") == "bf16"
    with P.autocast("bf16", "cpu"):
        assert torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3)).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="fp16"):
        P.resolve_precision("fp16", "cpu")


def test_only_declared_forward_metrics_and_explainers_take_bf16():
    bf16 = {name for name, spec in M.METRICS.items() if spec.precision("bf16", "cpu") == "bf16"}
    assert bf16 == {"deletion_auc", "insertion_auc", "road_morf", "road_lerf"}
    assert all(spec.precision("fp32", "cpu") == "fp32" for spec in M.METRICS.values())
    assert {name for name, cls in EXPLAINERS.items() if getattr(cls, "forward_only", False)} == {"lime", "lime_package", "occlusion"}


def test_precision_is_checked_and_part_of_the_keys(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="run.forward_precision"):
        validate(load_config(preset="smoke", overrides=["run.forward_precision='fp16'"]))
    with pytest.raises(ValueError, match="models.train.vgg16_bn.precision"):
        validate(load_config(preset="smoke", overrides=["models.train.vgg16_bn.precision='half'"]))
    assert load_config(preset="paper").run.forward_precision == "fp32"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)

    def keys(precision):
        ctx = RunContext(load_config(preset="smoke", overrides=[f"run.forward_precision='{precision}'"]), tmp_path,
                         torch.device("cpu"))
        return {m: ctx.scores_dir("vgg16_bn", "gradcam", m, "k").name for m in ("deletion_auc", "pointing_game")} | {
            e: ctx.maps_dir("vgg16_bn", "k", e)[1] for e in ("lime", "gradcam")}

    auto, fp32, bf16 = keys("auto"), keys("fp32"), keys("bf16")
    assert auto == bf16
    assert fp32["deletion_auc"] != bf16["deletion_auc"] and fp32["lime"] != bf16["lime"]
    assert fp32["pointing_game"] == bf16["pointing_game"] and fp32["gradcam"] == bf16["gradcam"]


class _Opacity(nn.Module):
    """A fixed classifier whose evidence is the brightness its filters see, its logit scaled so
    that the probability runs from about 0.05 (black) through 0.5 (half the evidence) to 0.95: the
    probabilities along a deletion curve spread over (0, 1), so bf16 rounding shows where it matters."""

    def __init__(self, calibration: torch.Tensor):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(1, 8, 5, padding=2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.rand(8, 1, 5, 5, generator=g) * 0.2)
            self.conv.bias.copy_(torch.randn(8, generator=g) * 0.05)
            full = self._evidence(calibration).mean()
        self.centre, self.scale = float(full) / 2, 6.0 / float(full)

    def _evidence(self, x):
        return torch.relu(self.conv(x)).mean((1, 2, 3))

    def forward(self, x):
        z = (self._evidence(x) - self.centre) * self.scale
        return torch.stack([-z, z], 1) / 2


def test_bf16_scores_stay_within_the_stated_tolerance():
    """The README's tolerance for run.forward_precision = bf16: deletion and insertion AUC within 0.01
    of float32 per image, ROAD's accuracy share within one percentage step on at most one image in
    ten (measured on the default run's trained models: 0.0025, 0.0 and none)."""
    torch.manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.rand(24, 1, 64, 64), 9, 1, 4)
    model = _Opacity(x).eval()
    x = (x * torch.linspace(0.5, 1.6, 24).view(-1, 1, 1, 1)).clamp(0, 1)  # dim to bright: scores spread
    t = model(x).argmax(1)
    maps = torch.nn.functional.avg_pool2d(torch.rand(24, 1, 64, 64), 9, 1, 4)[:, 0]
    for metric, params in (("deletion_auc", {"steps": 8}), ("insertion_auc", {"steps": 8}),
                           ("road_morf", {"percentages": [10, 50, 90]}), ("road_lerf", {"percentages": [10, 50, 90]})):
        with torch.no_grad():
            ref = M.score(metric, model, x, t, maps, None, None, **params)
            with P.autocast("bf16", "cpu"):
                low = M.score(metric, model, x, t, maps, None, None, **params)
        assert ref.std() > 0.01, metric  # the scores vary: a wrong precision would show
        diff = (ref - low).abs()
        if metric.startswith("road"):
            assert (diff > 1e-6).float().mean() <= 0.1 and diff.max() <= 1 / 3 + 1e-6, (metric, diff)
        else:
            assert diff.max() < 0.01, (metric, diff.max())
