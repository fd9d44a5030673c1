"""The default run's headline conclusions, in CI (issue 31): the README's first command, `python -m benchmark
run` with no preset (the phantom default), run once per test session (about 800 s on CI's 2-core CPU; an
integration test, not a slow one, so tox runs it), and its promises checked on what it writes: both
models at least 0.9 accurate on the scored test split (predictions.csv, and the manifest agrees), and
Grad-CAM and LRP above the `random` baseline at pointing game (scores.csv) for both models."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from benchmark.run.config import load_config

EXPLAINERS_ABOVE_RANDOM = ("gradcam", "lrp")


def accuracy_of(predictions: pd.DataFrame) -> dict[str, float]:
    """Per model: the accuracy of its test-split predictions at p >= 0.5."""
    hit = (predictions["prob_pneumonia"] >= 0.5).astype(int) == predictions["label"]
    return hit.groupby(predictions["model"]).mean().to_dict()


def headline_failures(scores: pd.DataFrame, predictions: pd.DataFrame, models) -> list[str]:
    """The default run's conclusions that do not hold: [] when every one does."""
    failures = []
    accuracy = accuracy_of(predictions)
    for model in models:
        if not accuracy.get(model, 0.0) >= 0.9:
            failures.append(f"{model}: test accuracy {accuracy.get(model)} < 0.9")
    pg = scores[scores.metric == "pointing_game"].groupby(["model", "explainer"])["value"].mean()
    for model in models:
        for explainer in EXPLAINERS_ABOVE_RANDOM:
            mine, floor = pg.get((model, explainer), np.nan), pg.get((model, "random"), np.nan)
            if not mine > floor:  # NaN (missing rows) fails too
                failures.append(f"{model}: {explainer} pointing game {mine:.3f} not above random's {floor:.3f}")
    return failures


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The README's command in a fresh folder (its own preprocessing cache): once per session."""
    cwd = tmp_path_factory.mktemp("default")
    r = subprocess.run([sys.executable, "-m", "benchmark", "run", "--out", str(cwd / "run")], cwd=cwd,
                       capture_output=True, text=True, timeout=5400, env={**os.environ, "TQDM_DISABLE": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    return cwd / "run"


@pytest.mark.integration
def test_default_run_headline_conclusions(default_run):
    cfg = load_config()
    scores = pd.read_csv(default_run / "scores.csv", dtype={"image_id": str})
    predictions = pd.read_csv(default_run / "predictions.csv", dtype={"image_id": str})
    assert sorted(predictions.model.unique()) == sorted(cfg.models.names)
    assert headline_failures(scores, predictions, cfg.models.names) == []
    manifest = json.loads((default_run / "manifest.json").read_text())
    for model, acc in accuracy_of(predictions).items():
        assert manifest["classifiers"][model]["test"]["accuracy"] == pytest.approx(acc), model
    for f in ("report/leaderboard.md", "report/main-figure.png", "report/report.md"):
        assert (default_run / f).stat().st_size > 0


def test_the_headline_check_fails_on_a_run_that_breaks_it():
    """headline_failures on a made-up run where every conclusion holds, then on each way it can break."""
    rng = np.random.default_rng(0)
    ids = [f"{i:03d}" for i in range(40)]
    labels = np.arange(40) % 2
    predictions = pd.concat([pd.DataFrame({"model": m, "image_id": ids, "label": labels,
                                           "prob_pneumonia": np.where(labels == 1, 0.9, 0.1)}) for m in ("a", "b")])
    pointing = {"gradcam": 0.8, "lrp": 0.5, "random": 0.1}
    scores = pd.DataFrame([{"model": m, "explainer": e, "metric": "pointing_game", "image_id": i,
                            "value": float(rng.random() < p)} for m in ("a", "b") for e, p in pointing.items() for i in ids])
    assert headline_failures(scores, predictions, ["a", "b"]) == []
    # a random explainer swapped for gradcam: random's rows scored as gradcam's
    swapped = scores.copy()
    swapped.loc[swapped.explainer == "gradcam", "value"] = swapped.loc[swapped.explainer == "random", "value"].to_numpy()
    assert any("gradcam" in f for f in headline_failures(swapped, predictions, ["a", "b"]))
    # LRP missing for one model
    assert headline_failures(scores[~((scores.model == "b") & (scores.explainer == "lrp"))], predictions, ["a", "b"])
    # a model at chance on the test split
    chance = predictions.copy()
    chance.loc[chance.model == "b", "prob_pneumonia"] = 0.6
    assert headline_failures(scores, chance, ["a", "b"]) == ["b: test accuracy 0.5 < 0.9"]
