"""Evaluate what you have (issue 28): runs without a training split (`benchmark evaluate`), maps made
elsewhere read from a folder (`explain.folders`), and explainers left out per model (`explain.per_model`)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.store.files import read_map_shard

BASE = ["--preset", "smoke", "--set", "data.cache_dir=''", "--set", "run.maps_dtype='float32'",
        "--set", "explain.names=['gradcam','random','oracle','mask_prior']",
        "--set", "metrics.names=['pointing_game','relevance_mass','deletion_auc']",
        "--set", "metrics.reliability=false", "--set", "data.limit={train=16, val=8, test=6}"]
KEYS = ["model", "explainer", "metric", "image_id"]
RUNTIME = ("seconds_per_image", "peak_memory_mb")


@pytest.fixture(autouse=True)
def _registry_restored():
    """The folder explainers these tests register (explain.folders) leave the registry as it was."""
    from cxr_xai_bench.explainers import EXPLAINERS
    before = dict(EXPLAINERS)
    yield
    EXPLAINERS.clear()
    EXPLAINERS.update(before)


def _scores(out: Path) -> pd.DataFrame:
    s = pd.read_csv(out / "scores.csv", dtype={"image_id": str})
    return s[~s.metric.isin(RUNTIME)]


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """A run that trains both models, with random left out for resnet50 (explain.per_model)."""
    out = tmp_path_factory.mktemp("full") / "run"
    assert main(["run", *BASE, "--out", str(out), "--set", "explain.per_model.resnet50={exclude=['random']}"]) == 0
    return out


def _checkpoints(run: Path) -> str:
    ck = {p.name.split("-")[0]: str(p) for p in (run / "checkpoints").glob("*.pt")}
    return "models.checkpoints={" + ", ".join(f"{m}='{p}'" for m, p in sorted(ck.items())) + "}"


def test_per_model_exclusion_leaves_the_pair_out_and_the_leaderboards_say_not_run(full):
    s = _scores(full)
    assert s[(s.model == "resnet50") & (s.explainer == "random")].empty
    assert len(s[(s.model == "vgg16_bn") & (s.explainer == "random")])
    work = json.loads((full / "manifest.json").read_text())["work"]
    assert work["explain"]["computed"] == 4 + 3  # vgg16_bn all four, resnet50 three
    board = (full / "report" / "leaderboard.md").read_text()
    resnet = board[board.index("### ResNet50 on phantom: Localisation"):].split("###")[1]
    assert "| Random | not run | not run |" in resnet
    side = (full / "report" / "leaderboard_all.md").read_text()
    row = " ".join(line for line in side.splitlines() if line.startswith("| Random |"))  # a row per category table
    assert row.count("not run") == 3 and row.count("[") == 3, row  # resnet50's three metrics; vgg16_bn's scored


def test_per_model_names_are_checked_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", *BASE, "--out", str(out), "--set", "explain.per_model.densenet121={exclude=['lrp']}"]) == 2
    assert "explain.per_model.densenet121: 'densenet121' is not in models.names" in capsys.readouterr().err
    assert main(["run", *BASE, "--out", str(out), "--set", "explain.per_model.resnet50={exclude=['lrp']}"]) == 2
    assert "explain.per_model.resnet50.exclude: ['lrp'] not in explain.names" in capsys.readouterr().err
    assert not (out / "scores.csv").exists() and not (out / "checkpoints").exists()


def test_evaluate_trains_nothing_and_scores_exactly_as_the_run_that_trained_the_checkpoints(full, tmp_path):
    out = tmp_path / "eval"
    args = ["evaluate", *BASE, "--out", str(out), "--set", _checkpoints(full),
            "--set", "explain.per_model.resnet50={exclude=['random']}"]
    assert main(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["work"]["train"] == {"computed": 0, "reused": 0, "loaded": 2}
    assert manifest["evaluate_only"] and manifest["split_roles"]["train"] is None and manifest["split_roles"]["select"] is None
    assert set(manifest["data_summary"]["roles"]) == {"test"}
    a, b = _scores(full), _scores(out)
    a = a[a.explainer != "mask_prior"]  # left out: it needs the training split
    assert set(b.explainer) == {"gradcam", "random", "oracle"}
    both = a.merge(b, on=KEYS, how="outer", indicator=True)
    assert (both["_merge"] == "both").all() and len(both) == len(a)
    np.testing.assert_array_equal(both["value_x"].to_numpy(), both["value_y"].to_numpy())
    report = (out / "report" / "report.md").read_text()
    assert "Evaluated, not trained" in report and "mask_prior left out" in report
    for name in ("resnet50", "vgg16_bn"):
        assert manifest["classifiers"][name]["loaded"]["sha256"] in report
        assert manifest["classifiers"][name]["val"] is None


def test_evaluate_with_a_given_prior_runs_mask_prior(full, tmp_path):
    prior = np.zeros((32, 32), np.float32)
    prior[8:20, 4:14] = 0.5
    np.save(tmp_path / "prior.npy", prior)
    out = tmp_path / "eval"
    assert main(["evaluate", *BASE, "--out", str(out), "--set", _checkpoints(full),
                 "--set", "explain.names=['mask_prior']", "--set", f"data.prior_file='{tmp_path / 'prior.npy'}'"]) == 0
    s = _scores(out)
    assert set(s.explainer) == {"mask_prior"} and s[s.metric == "relevance_mass"].value.notna().any()
    assert "mask_prior left out" not in (out / "report" / "report.md").read_text()


def test_evaluate_refuses_models_without_a_checkpoint_before_loading_anything(tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", *BASE, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "evaluate-only run" in err and "['vgg16_bn', 'resnet50'] have no file in models.checkpoints" in err
    assert not (out / "checkpoints").exists() and not (out / "manifest.json").exists()


def _write_maps(full: Path, model: str, explainer: str, folder: Path, fmt: str) -> None:
    folder.mkdir()
    mdir = next((full / "maps").glob(f"{model}-{explainer}-*"))
    for shard in sorted(mdir.glob("shard-*.npy")):
        got = read_map_shard(shard)
        for image_id, m in zip(got.ids, got.maps):
            if fmt == "npy":
                np.save(folder / f"{image_id}.npy", m)
            else:
                np.savez(folder / f"{image_id}.npz", saliency=m)


@pytest.mark.parametrize("fmt", ["npy", "npz"])
def test_maps_from_a_folder_score_exactly_what_the_run_scored_for_the_same_maps(full, tmp_path, fmt):
    folder = tmp_path / "maps"
    _write_maps(full, "vgg16_bn", "gradcam", folder, fmt)
    out = tmp_path / "run"
    shutil.copytree(full, out)
    args = ["run", *BASE, "--out", str(out), "--set", "models.names=['vgg16_bn']",
            "--set", "explain.names=['gradcam']", "--set", f"explain.folders={{elsewhere='{folder}'}}"]
    if fmt == "npz":
        args += ["--set", "explain.params.elsewhere={key='saliency'}"]
    assert main(args) == 0
    s = _scores(out)
    mine = s[s.explainer == "elsewhere"].drop(columns="explainer")
    theirs = s[s.explainer == "gradcam"].drop(columns="explainer")
    assert len(mine) == len(theirs) > 0
    pd.testing.assert_frame_equal(mine.sort_values(KEYS[::2]).reset_index(drop=True),
                                  theirs.sort_values(KEYS[::2]).reset_index(drop=True))
    work = json.loads((out / "manifest.json").read_text())["work"]
    assert work["train"]["computed"] == 0 and work["explain"]["computed"] == 1  # only the folder was read


@pytest.mark.parametrize("bad, message", [
    ("missing", r"no map for image '[\w-]+'"),
    ("size", r"is \(16, 16\), the run's images are \(32, 32\)"),
    ("nan", "holds non-finite or non-numeric values"),
])
def test_bad_folder_maps_are_named_before_any_training(full, tmp_path, capsys, bad, message):
    folder = tmp_path / "maps"
    _write_maps(full, "vgg16_bn", "gradcam", folder, "npy")
    victim = sorted(folder.glob("*.npy"))[0]
    if bad == "missing":
        victim.unlink()
    elif bad == "size":
        np.save(victim, np.zeros((16, 16), np.float32))
    else:
        m = np.load(victim)
        m[0, 0] = np.nan
        np.save(victim, m)
    out = tmp_path / "run"
    assert main(["run", *BASE, "--out", str(out), "--set", f"explain.folders={{elsewhere='{folder}'}}"]) == 2
    err = capsys.readouterr().err
    assert "explainer 'elsewhere'" in err
    import re
    assert re.search(message, err), err
    assert not (out / "checkpoints").exists(), "checked before training"


def test_misclassified_images_are_explained_and_scored_for_the_other_target_too(full):
    """explain.target = "label": the misclassified test images are explained again for the predicted
    class (target_scores.csv); the stored maps are Grad-CAM of the prediction, computed here by hand."""
    import torch
    from cxr_xai_bench.explainers import build_explainer
    from cxr_xai_bench.models import build_model, load_checkpoint
    from benchmark.metrics import score_maps
    from benchmark.run.config import load_config
    from benchmark.run.data import load_split
    pred = pd.read_csv(full / "predictions.csv", dtype={"image_id": str})
    pred = pred[pred.model == "resnet50"]
    wrong = pred[(pred.prob_pneumonia > 0.5).astype(int) != pred.label]
    assert len(wrong), "the smoke model misclassifies some test images"
    other = pd.read_csv(full / "target_scores.csv", dtype={"image_id": str})
    mine = other[(other.model == "resnet50") & (other.explainer == "gradcam")]
    assert set(mine.image_id) == set(wrong.image_id) and set(mine.target) == {"predicted"}
    assert set(other.explainer) == {"gradcam"}, "model-free baselines are not re-explained"
    cfg = load_config(None, BASE[3::2], "smoke")
    test = load_split(cfg, "test")
    index = [list(test.ids).index(i) for i in mine.image_id.drop_duplicates()]
    model = build_model("resnet50", **cfg.models.params["resnet50"])
    load_checkpoint(model, next((full / "checkpoints").glob("resnet50-*.pt")))
    model.eval()
    x = test.images[index]
    predicted = model(x).argmax(1)
    maps = build_explainer("gradcam", seed=cfg.run.seed, **cfg.explain.params.get("gradcam", {})).explain(model, x, predicted)
    stored = read_map_shard(next((full / "reliability" / "maps").glob("resnet50-gradcam-target-*")) / "shard-00000.npy")
    assert list(stored.ids) == [test.ids[i] for i in index]
    np.testing.assert_allclose(stored.maps, maps.numpy(), rtol=1e-5, atol=1e-6)
    by_hand = score_maps(model, x, predicted, maps, test.lesion_masks[index], metrics=["relevance_mass"],
                         image_ids=[test.ids[i] for i in index])
    got = mine[mine.metric == "relevance_mass"].set_index("image_id")["value"]
    want = by_hand.set_index("image")["value"]
    np.testing.assert_allclose(got.loc[want.index].to_numpy(), want.to_numpy(), rtol=1e-5, equal_nan=True)
    report = (full / "report" / "report.md").read_text()
    assert "## What was explained" in report and "Misclassified test images" in report
    assert "| resnet50 | gradcam | relevance_mass |" in report


def test_score_maps_scores_localisation_without_a_model_and_refuses_faithfulness_naming_why():
    import torch
    from benchmark.metrics import score_maps
    masks = torch.zeros(3, 16, 16, dtype=torch.bool)
    masks[:, 4:8, 4:8] = True
    maps = torch.rand(3, 16, 16)
    maps[:, 5, 5] = 2.0
    got = score_maps(None, torch.rand(3, 1, 16, 16), [1, 1, 1], maps, masks, metrics=["pointing_game", "relevance_mass"])
    assert (got[got.metric == "pointing_game"].value == 1).all()
    inside = (maps * masks).flatten(1).sum(1) / maps.flatten(1).sum(1)
    np.testing.assert_allclose(got[got.metric == "relevance_mass"].value.to_numpy(), inside.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="metric 'deletion_auc' \\(faithfulness\\) asks the model .* pass model="):
        score_maps(None, torch.rand(3, 1, 16, 16), [1, 1, 1], maps, masks, metrics=["deletion_auc"])


def test_a_maps_folder_without_a_model_is_refused_naming_why(tmp_path, capsys):
    folder = tmp_path / "maps"
    folder.mkdir()
    out = tmp_path / "run"
    assert main(["run", *BASE, "--out", str(out), "--set", "models.names=[]",
                 "--set", f"explain.folders={{elsewhere='{folder}'}}"]) == 2
    err = capsys.readouterr().err
    assert "models.names is empty" in err and "faithfulness metrics ask it" in err and "score_maps(None" in err
