"""The whole benchmark at a tiny size, through the command line, from a folder outside the project.

One smoke run is shared by the tests of this module, read only: a test that reruns, rescores or
deletes in it works on its own copy (`smoke_copy`)."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _cli(args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "benchmark", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})


def test_help_runs_our_package_from_any_folder(tmp_path):
    """lime installs a stray top-level `benchmark` package: ours must still be the one that runs."""
    r = _cli(["--help"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "cxr-xai-bench" in r.stdout
    r = _cli(["run", "--help"], tmp_path)
    for option in ("--config", "--set", "--out", "--device", "--preset"):
        assert option in r.stdout


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The smoke run and its CLI result: read only (use smoke_copy to change anything)."""
    out = tmp_path_factory.mktemp("run") / "smoke"
    r = _cli(["run", "--preset", "smoke", "--out", str(out)], out.parent)
    assert r.returncode == 0, r.stderr[-3000:]
    return out, r


@pytest.fixture
def smoke_copy(smoke_run, tmp_path):
    """This test's own copy of the smoke run (mtimes kept), run from tmp_path like the original."""
    out = tmp_path / "smoke"
    shutil.copytree(smoke_run[0], out)
    return out


def test_run_writes_report_with_numbers(smoke_run):
    out, r = smoke_run
    for f in ("config.toml", "manifest.json", "scores.csv", "report/leaderboard.md", "report/leaderboard.csv",
              "report/main-figure.png", "report/overlay-vgg16_bn.png", "report/overlay-resnet50.png", "report/report.md",
              "report/leaderboard.tex", "report/paired_tests.csv", "report/cases-vgg16_bn.png"):
        assert (out / f).exists() and (out / f).stat().st_size > 0, f
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns) == ["dataset", "split", "model", "explainer", "metric", "image_id", "value"]
    assert set(scores.explainer) == {"gradcam", "lrp", "lime", "sobel", "random", "center", "lung_prior",
                                     "mask_prior", "oracle"}
    oracle = scores[(scores.explainer == "oracle") & (scores.metric == "pointing_game")]["value"].dropna()
    assert len(oracle) and (oracle == 1).all(), "the true mask always points into itself"
    assert set(scores.model) == {"vgg16_bn", "resnet50"}
    faith = scores[(scores.metric == "deletion_auc") & (scores.explainer != "oracle")]["value"]
    assert faith.notna().all() and faith.between(0, 1).all()
    # the oracle is not applicable where there is no lesion: NaN there, scored on every lesion image
    pred = pd.read_csv(out / "predictions.csv", dtype={"image_id": str})
    oracle_del = scores[(scores.metric == "deletion_auc") & (scores.explainer == "oracle")].astype({"image_id": str})
    lesion = set(pred[pred.lesion_share > 0].image_id)
    assert oracle_del[oracle_del.image_id.isin(lesion)].value.notna().all()
    assert oracle_del[~oracle_del.image_id.isin(lesion)].value.isna().all() and len(lesion) < len(set(pred.image_id))
    loc = scores[scores.metric == "pointing_game"]
    assert loc["value"].notna().any() and loc["value"].isna().any()  # normals are NaN, pneumonia scored
    board = (out / "report/leaderboard.md").read_text()
    assert "Pointing game" in board and "[" in board
    assert "report.md" in r.stdout and "gradcam" in r.stdout


def test_the_manifest_records_every_stage_with_its_declaration_and_time(smoke_run):
    from benchmark.run.pipeline import PIPELINE
    stages = json.loads((smoke_run[0] / "manifest.json").read_text())["stages"]
    assert set(stages) == {s.name for s in PIPELINE}
    for s in PIPELINE:
        got = stages[s.name]
        assert got["reads"] == list(s.reads) and got["consumes"] == list(s.consumes), s.name
        assert got["produces"] == list(s.produces) and got["seconds"] >= 0, s.name


def _stored(out):
    return {p: p.stat().st_mtime_ns for p in out.rglob("*")
            if p.is_file() and p.parent.parent.name in ("maps", "scores") or p.suffix == ".pt"}


def test_rerun_reuses_every_stage(smoke_copy):
    out = smoke_copy
    before = _stored(out)
    report = (out / "report" / "report.md").stat().st_mtime_ns
    r = _cli(["run", "--preset", "smoke", "--out", str(out)], out.parent)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _stored(out) == before
    assert (out / "report" / "report.md").stat().st_mtime_ns == report, "nothing the report reads changed"
    # no training progress bar ("train resnet50: ..."): the checkpoints were reused (the data summary's
    # "train (split train): ..." line is not one)
    assert not re.search(r"train \w+:", r.stderr), r.stderr[-2000:]
    work = json.loads((out / "manifest.json").read_text())["work"]
    assert all(w["computed"] == 0 and w["reused"] > 0 for w in work.values()), work


def test_changed_metric_rescored_without_reexplaining_and_compared(smoke_run, smoke_copy, tmp_path):
    out = smoke_copy
    maps = {p: p.stat().st_mtime_ns for p in (out / "maps").rglob("*")}
    r = _cli(["run", "--preset", "smoke", "--out", str(out), "--set", "metrics.params.pointing_game.tolerance=1"],
             out.parent)
    assert r.returncode == 0, r.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in (out / "maps").rglob("*")} == maps
    work = json.loads((out / "manifest.json").read_text())["work"]
    assert work["explain"]["computed"] == 0 and work["train"]["computed"] == 0
    n_pointing = 2 * 9  # models x explainers, one shard each
    assert work["score"]["computed"] == n_pointing, work
    assert any("pointing_game" in p.name for p in (out / "scores").iterdir()
               if p.stat().st_mtime_ns > max(maps.values()))
    # python -m benchmark compare: the same maps, so every other metric pairs every scored image, with no difference
    r = _cli(["compare", str(smoke_run[0]), str(out), "--out", str(tmp_path / "cmp")], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "# " in r.stdout and "pointing_game" in r.stdout
    cmp = pd.read_csv(tmp_path / "cmp" / "compare.csv").set_index(["model", "explainer", "metric"])
    scores = pd.read_csv(out / "scores.csv")
    assert set(cmp.index.get_level_values("metric")) == set(scores.metric)
    scored = scores.dropna(subset=["value"]).groupby(["model", "explainer", "metric"]).size()
    same = cmp[~cmp.index.get_level_values("metric").isin(["pointing_game", "seconds_per_image", "peak_memory_mb"])]
    assert len(same) and (same.delta.dropna() == 0).all(), same
    assert (same.n_paired == scored.reindex(same.index).fillna(0)).all(), same
    r = _cli(["compare", str(out), str(tmp_path / "nothing")], tmp_path)
    assert r.returncode == 2 and "run folder" in r.stderr


def test_list_names_everything_registered(tmp_path):
    from benchmark.metrics import METRICS
    from benchmark.run.presets import PRESETS
    from cxr_xai_bench.datasets import DATASETS
    from cxr_xai_bench.explainers import EXPLAINERS
    from cxr_xai_bench.models import MODELS
    r = _cli(["list"], tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for label, names in (("datasets:", DATASETS), ("models:", MODELS), ("presets:", PRESETS)):
        line = next(l for l in lines if l.startswith(label))
        assert sorted(line.removeprefix(label).replace(",", " ").split()) == sorted(names), line
    explainers = next(l for l in lines if l.startswith("explainers:"))
    assert all(f"{n} (" in explainers for n in EXPLAINERS)
    listed = {l.split()[0] for l in lines[lines.index("metrics:") + 1:] if l.startswith("  ")}
    assert listed == set(METRICS)


def test_bad_config_is_a_clear_error(tmp_path):
    r = _cli(["run", "--preset", "smoke", "--set", "train.epoch=1", "--out", str(tmp_path / "x")], tmp_path)
    assert r.returncode == 2 and "unknown config key 'train.epoch'" in r.stderr


def test_unknown_explainer_fails_before_any_work(tmp_path):
    r = _cli(["run", "--preset", "smoke", "--set", "explain.names=['gradcan']", "--out", str(tmp_path / "x")], tmp_path)
    assert r.returncode == 2 and "explain.names: unknown name 'gradcan'" in r.stderr
    assert not (tmp_path / "x" / "checkpoints").exists()


def test_covid_qu_ex_config_runs_on_real_data(tmp_path, covid_root):
    """configs/covid-qu-ex.toml, cut down to CPU seconds, on ../shared/data."""
    root = covid_root
    out = tmp_path / "covid"
    r = _cli(["run", "--config", str(ROOT / "configs" / "covid-qu-ex.toml"), "--out", str(out),
              "--set", f"data.root='{root}'", "--set", "data.size=32", "--set", "data.limit={train=24, val=12, test=12}",
              "--set", "train.epochs=1", "--set", "models.params.vgg16_bn.head='compact'",
              "--set", "explain.names=['gradcam','random']", "--set", "metrics.names=['pointing_game','deletion_auc']",
              "--set", f"data.cache_dir='{tmp_path / 'cache'}'"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores.dataset) == {"covid_qu_ex"} and len(scores) == 2 * 2 * 2 * 12
    pointing = scores[scores.metric == "pointing_game"]
    ids = pointing["image_id"].astype(str)
    assert pointing[ids.str.startswith("Non-COVID")]["value"].isna().all(), "Non-COVID has no mask: never scored"
    assert any((tmp_path / "cache").iterdir()), "the preprocessed split was cached"


def test_report_rebuilds_tables_from_the_score_table(smoke_copy, tmp_path):
    out = smoke_copy
    before = (out / "report" / "leaderboard.md").read_text()
    for f in ("leaderboard.md", "leaderboard.tex", "paired_tests.csv", "main-figure.png"):
        (out / "report" / f).unlink()
    r = _cli(["report", str(out)], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "report" / "leaderboard.md").read_text() == before
    for f in ("leaderboard.tex", "paired_tests.csv", "main-figure.png"):
        assert (out / "report" / f).stat().st_size > 0
    r = _cli(["report", str(tmp_path / "nothing")], tmp_path)
    assert r.returncode == 2 and "is" in r.stderr and "run folder" in r.stderr


def test_tuned_iou_threshold_is_chosen_on_validation_and_stored(tmp_path):
    out = tmp_path / "tuned"
    args = ["score", "--preset", "smoke", "--out", str(out), "--set", "explain.names=['oracle','random']",
            "--set", "metrics.names=['iou']", "--set", "metrics.params={iou={threshold='tuned'}}"]
    r = _cli(args, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    tuned = {p.name.split("-")[1]: json.loads(p.read_text())["threshold"] for p in (out / "thresholds").glob("vgg16_bn-*.json")}
    assert tuned["oracle"] == 0.2, "a binary true mask segments exactly at the lowest threshold of the grid"
    assert 0.2 <= tuned["random"] <= 0.8
    scores = pd.read_csv(out / "scores.csv")
    assert (scores[scores.explainer == "oracle"]["value"].dropna() == 1).all()
    r = _cli(args, tmp_path)
    assert json.loads((out / "manifest.json").read_text())["work"]["score"]["computed"] == 0, "tuned keys are stable"


def test_seed_repeatability_compares_maps_across_training_seeds(tmp_path):
    out = tmp_path / "seeds"
    r = _cli(["score", "--preset", "smoke", "--out", str(out), "--set", "run.repeat_seeds=[1]",
              "--set", "explain.names=['oracle','random','gradcam']",
              "--set", "metrics.names=['seed_repeatability','pointing_game']"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    s = pd.read_csv(out / "scores.csv")
    rep = s[s.metric == "seed_repeatability"].groupby("explainer")["value"]
    assert rep.size().to_dict() == {"gradcam": 8, "oracle": 8, "random": 8}, "4 images x 2 models each"
    assert (rep.get_group("random") == 1).all(), "random maps are seeded by the image, not the model"
    assert rep.get_group("oracle").dropna().eq(1).all()
    assert not rep.get_group("gradcam").dropna().eq(1).all(), "a model trained with another seed explains differently"
    assert len(list((out / "checkpoints").glob("*.pt"))) == 4, "each model trained with both seeds"
    r = _cli(["run", "--preset", "smoke", "--out", str(tmp_path / "x"), "--set", "run.repeat_seeds=[1]"], tmp_path)
    assert r.returncode == 2 and "seed_repeatability and run.repeat_seeds go together" in r.stderr
