import pytest

from benchmark.config import ConfigError, load_config


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

    from benchmark.runner import Runner, validate
    cfg = load_config(overrides=["metrics.names=['deletion_auc','iou','randomisation_ssim']"])
    runner = Runner(cfg, tmp_path, torch.device("cpu"))
    assert runner._metrics_for("gradcam") == ["deletion_auc", "iou", "randomisation_ssim"]
    assert runner._metrics_for("lime") == ["deletion_auc", "iou"], "no randomisation for LIME by default"
    assert runner._metrics_for("lung_prior") == ["iou"], "priors: localisation only"
    cfg = load_config(overrides=["metrics.skip={}"])
    assert Runner(cfg, tmp_path, torch.device("cpu"))._metrics_for("lime") == cfg.metrics.names
    with pytest.raises(KeyError, match="metrics.skip.iou: unknown explainer 'gradcan'"):
        validate(load_config(overrides=["metrics.skip={iou=['gradcan']}"]))
