"""Split roles (issue 13, item 1): the run trains on one split, selects (best epoch, tuned
thresholds) on another and scores a third that takes no part in selection. With data.holdout the
selection split is a seeded, label-stratified hold-out of the training split: disjoint from what
trains, deterministic for a seed, and part of the data key."""
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.run.config import load_config
from benchmark.run.data import data_key, holdout_mask, load_split
from benchmark.run.validate import validate

ROOT = Path(__file__).resolve().parents[2]
COVID_CONFIG = ROOT / "configs" / "covid-qu-ex.toml"


def _phantom(tmp_path, *extra):
    """The phantom with 80 images per split, the selection role a quarter of the training split."""
    return load_config(preset="smoke", overrides=[
        "data.splits={train='train', val='train', test='test'}", "data.holdout=0.25", "data.params={n=80}",
        "data.limit={train=0, val=0, test=0}", f"data.cache_dir='{tmp_path / 'cache'}'", *extra])


def _roles(cfg):
    return {role: load_split(cfg, role) for role in ("train", "val", "test")}


# --- the hold-out ------------------------------------------------------------------------------

def test_phantom_holdout_is_disjoint_stratified_and_limited_after_carving(tmp_path):
    cfg = _phantom(tmp_path)
    validate(cfg)
    b = _roles(cfg)
    train, val, test = (set(b[r].ids) for r in ("train", "val", "test"))
    assert len(train) == 60 and len(val) == 20 and len(test) == 80
    assert not train & val, "no image both trains and selects"
    assert not val & test and not train & test, "the scored images take no part in training or selection"
    # stratified: a quarter of each class (the phantom alternates normal / pneumonia)
    assert torch.bincount(b["val"].labels).tolist() == [10, 10]
    assert torch.bincount(b["train"].labels).tolist() == [30, 30]
    # `limit` applies after carving: a subset of each role's own part
    small = _roles(_phantom(tmp_path, "data.limit={train=8, val=6, test=4}"))
    assert len(small["val"]) == 6 and set(small["val"].ids) <= val
    assert len(small["train"]) == 8 and set(small["train"].ids) <= train
    assert torch.bincount(small["val"].labels).tolist() == [3, 3]


def test_holdout_is_deterministic_for_a_seed_and_differs_for_another(tmp_path):
    labels = np.repeat([0, 1], [30, 70])
    a = holdout_mask(labels, 0.2, 0, "phantom", "train")
    assert a.sum() == 20 and a[labels == 0].sum() == 6 and a[labels == 1].sum() == 14, "stratified by label"
    assert np.array_equal(a, holdout_mask(labels, 0.2, 0, "phantom", "train")), "a pure function of its inputs"
    for other in (holdout_mask(labels, 0.2, 1, "phantom", "train"), holdout_mask(labels, 0.2, 0, "phantom", "val"),
                  holdout_mask(labels, 0.2, 0, "covid_qu_ex", "train")):
        assert not np.array_equal(a, other), "seed, split and dataset each change the draw"
    # a tiny class keeps one image for training and gives one to selection
    assert holdout_mask(np.array([0, 0, 1, 1, 1, 1]), 0.1, 0, "d", "s").tolist().count(True) == 2
    # through the loader: the same seed gives the same ids (cache or not), another seed others
    first = load_split(_phantom(tmp_path), "val").ids
    assert load_split(_phantom(tmp_path, "data.cache_dir=''"), "val").ids == first
    assert load_split(_phantom(tmp_path, "run.seed=1"), "val").ids != first


def test_holdout_is_part_of_the_data_key(tmp_path):
    cfg = _phantom(tmp_path)
    assert data_key(cfg, "train") != data_key(cfg, "val"), "same source split, different parts"
    assert data_key(cfg, "val")["holdout"] == {"fraction": 0.25, "part": "held out"}
    assert data_key(cfg, "train")["holdout"] == {"fraction": 0.25, "part": "rest"}
    other = _phantom(tmp_path, "data.holdout=0.2")
    assert data_key(other, "val") != data_key(cfg, "val") and data_key(other, "train") != data_key(cfg, "train")
    assert data_key(other, "test") == data_key(cfg, "test"), "the scored split does not change"
    assert "holdout" not in data_key(load_config(preset="smoke"), "val"), "runs without a hold-out keep their keys"


def test_covid_qu_ex_roles_never_overlap(tmp_path, covid_root):
    root = covid_root
    cfg = load_config(COVID_CONFIG, [f"data.root='{root}'", "data.size=32", "data.limit={train=24, val=12, test=12}",
                                     f"data.cache_dir='{tmp_path / 'cache'}'"])
    validate(cfg)
    assert cfg.data.splits == {"train": "train", "val": "train", "test": "val"} and cfg.data.holdout == 0.1
    b = _roles(cfg)
    train, val, test = (set(b[r].ids) for r in ("train", "val", "test"))
    assert len(train) == 24 and len(val) == 12 and len(test) == 12
    assert not train & val and not val & test and not train & test
    # the selection images are Train images, the scored ones Val images
    from cxr_xai_bench.datasets import build_dataset
    ds_train = build_dataset("covid_qu_ex", split="train", size=32, root=str(root))
    ds_val = build_dataset("covid_qu_ex", split="val", size=32, root=str(root))
    train_ids = {f"{c}/{Path(n).stem}" for c, n in ds_train.items}
    val_ids = {f"{c}/{Path(n).stem}" for c, n in ds_val.items}
    assert val <= train_ids and train <= train_ids and test <= val_ids and not train_ids & val_ids
    # the whole hold-out: a stratified tenth of Train (1864 COVID-19 + 932 Non-COVID pneumonia, 932 normal)
    labels = np.asarray(ds_train.labels())
    held = holdout_mask(labels, 0.1, 0, "covid_qu_ex", "train")
    assert held[labels == 1].sum() == round(0.1 * (labels == 1).sum()) and held[labels == 0].sum() == 93


# --- validate -----------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    (["data.splits={train='train', val='test', test='test'}"], "data.splits.val and data.splits.test both name"),
    (["data.splits={train='train', val='train', test='test'}"], "data.splits.train and data.splits.val both name"),
    (["data.splits={train='train', val='val', test='train'}"], "data.splits.train and data.splits.test both name"),
    (["data.holdout=0.1"], "data.holdout = 0.1 carves the selection split"),
    (["data.splits={train='train', val='train', test='test'}", "data.holdout=1.0"], "data.holdout must be a fraction"),
])
def test_validate_refuses_selection_on_the_scored_or_training_split(overrides, message):
    with pytest.raises(ValueError, match=message):
        validate(load_config(preset="smoke", overrides=overrides))


def test_validate_refuses_the_old_covid_protocol():
    cfg = load_config(COVID_CONFIG, ["data.splits={train='train', val='val', test='val'}", "data.holdout=0.0"])
    with pytest.raises(ValueError, match="data.splits.val and data.splits.test"):
        validate(cfg)


def test_paper_preset_with_the_covid_config_keeps_the_protocol():
    cfg = load_config(COVID_CONFIG, preset="paper")
    validate(cfg)
    assert cfg.data.splits == {"train": "train", "val": "train", "test": "val"} and cfg.data.holdout == 0.1
    assert cfg.data.size == 224 and "lung_mass" in cfg.metrics.names


# --- a run: what trains, what selects, what is scored ------------------------------------------

def test_thresholds_are_tuned_and_models_selected_on_the_holdout(tmp_path, monkeypatch):
    import json

    from benchmark.run import pipeline
    from benchmark.run.runner import Runner
    seen = {}
    tune, train_models = pipeline.tune_thresholds, pipeline.train_models

    def spy_tune(ctx, models, val, prior):
        seen["tuned_on"] = list(val.ids)
        return tune(ctx, models, val, prior)

    def spy_train(ctx, train, val, test):
        seen["trained_on"], seen["selected_on"] = list(train.ids), list(val.ids)
        return train_models(ctx, train, val, test)

    monkeypatch.setattr(pipeline, "tune_thresholds", spy_tune)
    monkeypatch.setattr(pipeline, "train_models", spy_train)
    cfg = _phantom(tmp_path, "data.limit={train=16, val=8, test=4}", "models.names=['resnet50']",
                   "explain.names=['oracle','random']", "metrics.names=['iou']", "metrics.params={iou={threshold='tuned'}}")
    result = Runner(cfg, tmp_path / "run", torch.device("cpu")).run(until="score")
    scored = set(result.scores["image_id"])
    assert len(seen["tuned_on"]) > 0 and set(seen["tuned_on"]) <= set(seen["selected_on"])
    assert not set(seen["selected_on"]) & scored and not set(seen["selected_on"]) & set(seen["trained_on"])
    assert not set(seen["trained_on"]) & scored
    assert any((tmp_path / "run" / "thresholds").glob("resnet50-*.json")), "thresholds were tuned"
    roles = json.loads((tmp_path / "run" / "manifest.json").read_text())["split_roles"]
    assert roles["train"] == {"split": "train", "images": 16, "holdout": 0.25, "part": "rest"}
    assert roles["select"]["split"] == "train" and roles["select"]["part"] == "held out"
    assert roles["select"]["images"] == 8 and roles["select"]["holdout"] == 0.25
    assert roles["score"] == {"split": "test", "images": 4, "holdout": None, "part": "all"}


def test_report_says_which_split_trained_selected_and_scored(tmp_path):
    from benchmark.report.sections import settings_lines
    text = "\n".join(settings_lines(_phantom(tmp_path)))
    assert "trained on `train` less a hold-out, selected on that hold-out (25% of `train`" in text
    assert "scored on `test` (never used for selection)" in text
    plain = "\n".join(settings_lines(load_config(preset="smoke")))
    assert "trained on `train`, selected on `val` (best epoch, tuned thresholds), scored on `test`" in plain
