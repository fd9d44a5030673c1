"""Component parameters are checked before any work (issue 27, item 6): a typo in a params table stops
the run before data loading and training with a message naming the key, the component and the
allowed keys, and no legitimate key of a preset, a dataset config or a component's own defaults is refused."""
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import benchmark.run.data as run_data
import benchmark.run.pipeline as runner_module
import benchmark.run.train as run_train
from benchmark.metrics import METRICS
from benchmark.run.config import ConfigError, load_config
from benchmark.run.param_check import accepted_keys, check_params, dataset_set_by
from benchmark.run.presets import PRESETS
from benchmark.run.runner import Runner, validate
from cxr_xai_bench.explainers import EXPLAINERS, Explainer, build_explainer, register_explainer

ROOT = Path(__file__).resolve().parents[2]


def _written(run_dir: Path) -> list[str]:
    """What a run left in its folder, the run lock's file aside (it is taken before the check)."""
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.name != ".lock") if run_dir.exists() else []


@pytest.fixture
def no_work(monkeypatch):
    """Loading data or training a model fails the test: the check must come before both."""
    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the params were checked")
    monkeypatch.setattr(runner_module, "load_split", forbidden)
    monkeypatch.setattr(runner_module, "train_models", forbidden)
    monkeypatch.setattr(run_train, "train_classifier", forbidden)


@pytest.mark.parametrize("override, message", [
    ("data.params.nn=3", r"data\.params: unknown parameter 'nn' for dataset 'phantom'; allowed: n\b"),
    ("models.params.resnet50.gradcam_layr='layer3'",
     r"models\.params\.resnet50: unknown parameter 'gradcam_layr' for model 'resnet50'; allowed: gradcam_layer, head"),
    ("models.train.vgg16_bn.epoch=2",
     r"models\.train\.vgg16_bn: unknown parameter 'epoch' for model 'vgg16_bn'; allowed: augment, batch_size, epochs"),
    ("explain.params.lime.num_sample=5",
     r"explain\.params\.lime: unknown parameter 'num_sample' for explainer 'lime'; allowed: batch_size, num_samples"),
    ("metrics.params.deletion_auc.step=3",
     r"metrics\.params\.deletion_auc: unknown parameter 'step' for metric 'deletion_auc'; allowed: batch_size, fill"),
])
def test_an_unknown_parameter_stops_the_run_before_any_work(override, message, tmp_path, no_work):
    cfg = load_config(overrides=[override], preset="smoke")
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError, match=message):
        Runner(cfg, run_dir, torch.device("cpu")).run()
    assert _written(run_dir) == [], "refused before anything (config.toml, checkpoints, maps) was written"


@pytest.mark.parametrize("override, message", [
    ("explain.params.limee.num_samples=5", r"explain\.params\.limee: no explainer 'limee' is registered; .*'lime'"),
    ("models.params.resnet5.head='compact'", r"models\.params\.resnet5: no model 'resnet5' is registered"),
    ("models.train.resnet5.epochs=1", r"models\.train\.resnet5: no model 'resnet5' is registered"),
    ("metrics.params.pointing_gam.tolerance=1", r"metrics\.params\.pointing_gam: no metric 'pointing_gam' is registered"),
])
def test_a_params_table_naming_no_registered_component_is_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        validate(load_config(overrides=[override], preset="smoke"))


@pytest.mark.parametrize("override, message", [
    ("explain.params.gradcam.seed=3", r"explain\.params\.gradcam: parameter 'seed' .* is set by run\.seed"),
    ("data.params.size=16", r"data\.params: parameter 'size' of dataset 'phantom' is set by data\.size"),
    ("data.params.split='val'", r"data\.params: parameter 'split' .* is set by data\.splits"),
    ("models.train.resnet50.seed=1", r"models\.train\.resnet50: parameter 'seed' .* is set by run\.seed"),
])
def test_a_key_the_runner_sets_itself_is_refused_with_where_to_set_it(override, message):
    with pytest.raises(ConfigError, match=message):
        validate(load_config(overrides=[override], preset="smoke"))


def test_the_keys_read_split_passes_itself_are_the_ones_refused_in_data_params(monkeypatch):
    """dataset_set_by must list every keyword read_split adds to data.params, or a user setting one of
    them in data.params passes the check and then collides with it."""
    seen = {}

    class Stop(Exception):
        pass

    def spy(name, **kwargs):
        seen.update(kwargs)
        raise Stop
    monkeypatch.setattr(run_data, "build_dataset", spy)
    cfg = load_config(overrides=["data.root='somewhere'", "data.params={n=80}"], preset="smoke")
    with pytest.raises(Stop):
        run_data.read_split(cfg, "test")
    assert set(seen) - set(cfg.data.params) <= set(dataset_set_by())
    assert {"split", "size", "seed", "root"} <= set(dataset_set_by())


@pytest.mark.parametrize("preset", [None, *PRESETS])
@pytest.mark.parametrize("config", [None, ROOT / "configs" / "covid-qu-ex.toml"])
def test_every_preset_and_dataset_config_passes(preset, config):
    check_params(load_config(config, preset=preset))


def test_every_registered_component_accepts_its_own_defaults():
    """Each explainer's keyword defaults and each metric's registered defaults, set explicitly for all
    of them at once, pass the check, and the explainers really build with them."""
    explain = {}
    for name, cls in EXPLAINERS.items():
        sig = inspect.signature(cls).parameters
        explain[name] = {k: sig[k].default for k in accepted_keys(cls) - {"seed"}
                         if sig[k].default not in (None, inspect.Parameter.empty)}
        build_explainer(name, seed=0, **explain[name])
    assert explain["lime"] and explain["lrp"], "the check sees the parameters LIME and LRP take"
    cfg = load_config(preset="paper")
    cfg.explain.params = explain
    cfg.metrics.params = {name: dict(spec.defaults) for name, spec in METRICS.items()}
    check_params(cfg)


def test_a_plug_in_taking_kwargs_accepts_any_key_and_one_without_is_checked():
    @register_explainer("test_param_check_open")
    class Open(Explainer):
        def __init__(self, seed: int = 0, **options):
            super().__init__(seed)

    @register_explainer("test_param_check_closed")
    class Closed(Explainer):
        def __init__(self, seed: int = 0, width: int = 3):
            super().__init__(seed)
    try:
        cfg = load_config(preset="smoke")
        cfg.explain.params = {"test_param_check_open": {"anything": 1}}
        check_params(cfg)
        cfg.explain.params = {"test_param_check_closed": {"widht": 1}}
        with pytest.raises(ConfigError, match="unknown parameter 'widht' .*allowed: width"):
            check_params(cfg)
    finally:
        del EXPLAINERS["test_param_check_open"], EXPLAINERS["test_param_check_closed"]


@pytest.mark.integration
def test_the_cli_prints_a_params_typo_as_one_line_without_traceback(tmp_path):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "benchmark", "run", "--preset", "smoke", "--set",
                        "explain.params.lime.bogus=1", "--out", str(out)], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300, env={**os.environ})
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert lines[0].startswith("error: explain.params.lime: unknown parameter 'bogus' for explainer 'lime'; allowed:")
    assert _written(out) == []
