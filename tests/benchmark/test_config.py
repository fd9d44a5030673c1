import pytest

from benchmark.run.config import ConfigError, load_config


def test_defaults_and_overrides():
    cfg = load_config(overrides=["train.epochs=2", "explain.names=['gradcam','random']", "run.name=abc",
                                 "metrics.params.pointing_game.tolerance=2"])
    assert cfg.train.epochs == 2 and cfg.explain.names == ["gradcam", "random"] and cfg.run.name == "abc"
    assert cfg.metrics.params["pointing_game"]["tolerance"] == 2
    assert cfg.data.dataset == "phantom"


def test_file_then_override(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[data]\nsize = 48\n[train]\nlr = 1\n')
    cfg = load_config(p, ["data.size=40"])
    assert cfg.data.size == 40 and cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)


def test_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'train.epoch'.*allowed.*epochs"):
        load_config(overrides=["train.epoch=2"])
    with pytest.raises(ConfigError, match="'train.epochs' must be int"):
        load_config(overrides=["train.epochs='two'"])
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nepochs=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="unknown preset"):
        load_config(preset="huge")


def test_metrics_skip_leaves_out_pairs_and_names_unknown_ones(tmp_path):
    import torch

    from benchmark.run.runner import Runner, validate
    cfg = load_config(overrides=["metrics.names=['deletion_auc','iou','randomisation_ssim']"])
    runner = Runner(cfg, tmp_path, torch.device("cpu"))
    assert runner._metrics_for("gradcam") == ["deletion_auc", "iou", "randomisation_ssim"]
    assert runner._metrics_for("lime") == ["deletion_auc", "iou"], "no randomisation for LIME by default"
    assert runner._metrics_for("lung_prior") == ["iou"], "priors: localisation only"
    cfg = load_config(overrides=["metrics.skip={}"])
    assert Runner(cfg, tmp_path, torch.device("cpu"))._metrics_for("lime") == cfg.metrics.names
    with pytest.raises(KeyError, match="metrics.skip.iou: unknown explainer 'gradcan'"):
        validate(load_config(overrides=["metrics.skip={iou=['gradcan']}"]))


def test_set_of_a_nested_key_keeps_its_siblings():
    cfg = load_config(overrides=["data.limit.test=10", "metrics.params.pointing_game.tolerance=2",
                                 "models.params.resnet50.gradcam_layer=layer3"])
    default = load_config()
    assert cfg.data.limit == {**default.data.limit, "test": 10}
    assert cfg.data.limit["train"] == default.data.limit["train"] > 0, "training must not silently use every image"
    assert cfg.metrics.params == {**default.metrics.params, "pointing_game": {"tolerance": 2}}
    assert cfg.models.params["vgg16_bn"] == default.models.params["vgg16_bn"]
    assert cfg.models.params["resnet50"] == {**default.models.params["resnet50"], "gradcam_layer": "layer3"}


def test_precedence_defaults_preset_file_set(tmp_path, caplog):
    from benchmark.run.presets import PRESETS
    p = tmp_path / "c.toml"
    p.write_text('[data]\nsize = 48\n[data.limit]\ntest = 7\n[train]\nepochs = 5\n')
    default = load_config()
    only_preset = load_config(preset="smoke")
    assert only_preset.data.size == PRESETS["smoke"]["data"]["size"] != default.data.size
    assert only_preset.train.lr == default.train.lr, "keys the preset does not set keep their defaults"
    with caplog.at_level("WARNING"):
        cfg = load_config(p, ["train.epochs=9"], preset="smoke")
    assert cfg.data.size == 48, "the file beats the preset"
    assert cfg.data.limit == {**PRESETS["smoke"]["data"]["limit"], "test": 7}, "file keys merge into the preset's table"
    assert cfg.train.epochs == 9, "--set beats the file"
    assert cfg.train.batch_size == PRESETS["smoke"]["train"]["batch_size"]
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "overrides 3 key(s) of preset 'smoke'" in warned and "data.size" in warned and "data.limit.test" in warned


def _leaves(table: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in table.items():
        out |= _leaves(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v}
    return out


@pytest.mark.parametrize("preset", ["paper", "paper-cpu"])
def test_a_preset_on_the_dataset_file_holds_every_budget_of_the_preset(preset, caplog):
    """configs/covid-qu-ex.toml describes data; --preset gives budgets: every key the preset sets
    arrives in the resolved config, nothing is reported as overridden, the dataset's protocol stays."""
    from pathlib import Path

    from benchmark.run.presets import PRESETS
    path = Path(__file__).resolve().parents[2] / "configs" / "covid-qu-ex.toml"
    with caplog.at_level("WARNING"):
        cfg = load_config(path, preset=preset)
    assert "overrides" not in " ".join(r.getMessage() for r in caplog.records)
    resolved = _leaves(cfg.to_dict())
    for key, value in _leaves(PRESETS[preset]).items():
        if key != "run.name":
            assert resolved[key] == value, key
    assert cfg.run.name == f"covid-qu-ex-{preset}", "the file names the run, the preset its budget"
    assert cfg.data.dataset == "covid_qu_ex" and cfg.data.splits["test"] == "val" and cfg.data.holdout == 0.1
    assert set(cfg.explain.names) >= {"gradcam", "gradcam_pp", "eigencam", "lrp", "lime", "integrated_gradients",
                                       "occlusion", "random", "sobel", "center", "lung_prior", "mask_prior"}
    assert cfg.explain.params["lime"]["num_samples"] == 1000
    assert cfg.metrics.names == load_config().metrics.names, "every metric"


@pytest.mark.parametrize("preset", ["paper", "paper-cpu"])
def test_no_per_model_default_leaks_into_a_preset(preset):
    """Per-model tables merge key by key: a preset must set each model's epochs, or the phantom's
    (ResNet50: 3) silently cut a 40-epoch run."""
    from benchmark.run.presets import PRESETS
    cfg = load_config(preset=preset)
    for name in cfg.models.names:
        assert cfg.models.train[name] == PRESETS[preset]["models"]["train"][name], name
        assert cfg.models.params[name] == PRESETS[preset]["models"]["params"][name], name


def test_the_cpu_record_skips_what_the_defaults_skip_and_occlusion():
    from benchmark.run.config import SANITY_SKIP
    cfg = load_config(preset="paper-cpu")
    for metric in ("randomisation_ssim", "randomisation_spearman"):
        assert set(cfg.metrics.skip[metric]) == {*SANITY_SKIP, "occlusion"}


def test_a_run_config_file_is_loaded_as_written(tmp_path):
    """The config.toml a run writes (run.resolved = true) loads back to the same config, also where
    --set replaced a table whole: no default entries are merged back. A user's file still merges."""
    import tomli_w
    cfg = load_config(overrides=["models.train={resnet50={epochs=2}}", "data.limit={train=24, val=8, test=4}",
                                 "metrics.skip={}"], preset="smoke")
    assert cfg.run.resolved and cfg.models.train == {"resnet50": {"epochs": 2}} and cfg.metrics.skip == {}
    p = tmp_path / "config.toml"
    p.write_text(tomli_w.dumps(cfg.to_dict()))
    assert load_config(p) == cfg
    assert load_config(p, ["models.train.resnet50.lr=0.5"]).models.train == {"resnet50": {"epochs": 2, "lr": 0.5}}
    data = cfg.to_dict()
    data["run"]["resolved"] = False  # the same file without the marker merges into the defaults
    p.write_text(tomli_w.dumps(data))
    merged = load_config(p)
    assert merged.models.train["resnet50"] == {**load_config().models.train["resnet50"], "epochs": 2}
    assert merged.metrics.skip == load_config().metrics.skip and merged.run.resolved
