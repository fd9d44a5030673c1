"""A config that determines its numbers (issue 31, items 1 and 6): the presets that make records pin every
precision; "auto" is resolved once, in the driver, recorded in the manifest and carried by the stage keys
and the shard jobs, so no worker resolves it again for its own CPU; Ray workers take the driver's torch
settings (threads, determinism, denormals, matmul precision, oneDNN, cuDNN/TF32)."""
import json
import subprocess
import sys

import pytest
import torch

from benchmark.run.config import load_config
from benchmark.run.runner import Runner

RECORD_PRESETS = {"paper": "bf16", "paper-cpu": "fp32"}


@pytest.mark.parametrize("preset", sorted(RECORD_PRESETS))
def test_presets_that_make_records_pin_every_precision(preset):
    cfg = load_config(preset=preset)
    assert cfg.train.precision == RECORD_PRESETS[preset]
    assert cfg.run.forward_precision == "fp32"
    for model, t in cfg.models.train.items():
        assert t.get("precision", cfg.train.precision) != "auto", model


def _amx(monkeypatch):
    """This CPU as one with AMX tiles: "auto" resolves to bf16 here."""
    import cxr_xai_bench.models.precision as precision
    monkeypatch.setattr(precision, "fast_bf16", lambda device: True)


def test_auto_is_resolved_once_in_the_driver_and_keyed(tmp_path, monkeypatch):
    cfg = load_config(preset="smoke", overrides=["explain.names=['lime','random']", "metrics.names=['deletion_auc']",
                                                 "models.train={resnet50={precision='auto'}}"])
    fp32 = Runner(load_config(preset="smoke", overrides=["run.forward_precision='fp32'", "train.precision='fp32'"]),
                  tmp_path / "a", torch.device("cpu"))
    _amx(monkeypatch)
    runner = Runner(cfg, tmp_path / "b", torch.device("cpu"))
    resolved = runner.precision["resolved"]
    assert runner.precision["asked"] == {"run.forward_precision": "auto", "train.precision": "auto",
                                         "models.train.resnet50.precision": "auto"}
    assert resolved == {"run.forward_precision": "bf16", "train.precision": "bf16", "models.train.resnet50.precision": "bf16"}
    assert cfg.run.forward_precision == "auto", "the caller's config is left as asked"
    # what a shard job (and so a Ray worker) gets: the resolved value, nothing left to resolve on its CPU
    job_config = runner.ctx.cfg.to_dict()
    assert job_config["run"]["forward_precision"] == "bf16" and job_config["train"]["precision"] == "bf16"
    monkeypatch.undo()  # a worker without AMX: the job's config still says bf16
    from cxr_xai_bench.models.precision import pass_precision
    assert pass_precision(True, job_config["run"]["forward_precision"], "cpu") == "bf16"
    # the maps key of a forward-only explainer carries it (fp32 adds nothing: the keys of older runs)
    assert runner.ctx.maps_dir("vgg16_bn", "k", "lime")[1] != fp32.ctx.maps_dir("vgg16_bn", "k", "lime")[1]
    assert runner.ctx.maps_dir("vgg16_bn", "k", "random")[1] == fp32.ctx.maps_dir("vgg16_bn", "k", "random")[1]


def test_the_manifest_records_the_resolved_precision(tmp_path):
    cfg = load_config(preset="smoke", overrides=["models.names=['vgg16_bn']", "data.limit={train=8, val=4, test=4}",
                                                 f"data.cache_dir='{tmp_path / 'cache'}'"])
    Runner(cfg, tmp_path / "run", torch.device("cpu")).run("train")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    from cxr_xai_bench.models.precision import resolve_precision
    here = resolve_precision("auto", "cpu")
    assert manifest["precision"] == {"asked": {"run.forward_precision": "auto", "train.precision": "auto"},
                                     "resolved": {"run.forward_precision": here, "train.precision": here}}
    assert 'precision = "auto"' in (tmp_path / "run" / "config.toml").read_text(), "config.toml: the config as asked"


MIRROR = """
import json, torch
from benchmark.run.ray_executor import driver_settings, _mirror_settings
fresh = driver_settings()
torch.set_num_threads(1); torch.set_flush_denormal(True); torch.use_deterministic_algorithms(True, warn_only=True)
torch.set_float32_matmul_precision("medium"); torch.backends.mkldnn.enabled = False
driver = driver_settings()
print(json.dumps([fresh, driver]))
"""
WORKER = """
import json, sys, torch
from benchmark.run.ray_executor import driver_settings, _mirror_settings
_mirror_settings(json.loads(sys.argv[1]))
print(json.dumps(driver_settings()))
"""


@pytest.mark.ray  # ray_executor imports Ray
def test_a_worker_takes_the_drivers_torch_settings():
    """Two fresh processes: the driver changes every setting from torch's defaults; a worker that
    mirrors what driver_settings read ends with the same settings."""
    out = subprocess.run([sys.executable, "-c", MIRROR], capture_output=True, text=True, timeout=300, check=True)
    fresh, driver = json.loads(out.stdout.strip().splitlines()[-1])
    changed = {k for k in driver if driver[k] != fresh[k]}
    assert {"flush_denormal", "deterministic", "deterministic_warn_only", "matmul_precision", "mkldnn"} <= changed
    out = subprocess.run([sys.executable, "-c", WORKER, json.dumps(driver)], capture_output=True, text=True, timeout=300,
                         check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == driver
