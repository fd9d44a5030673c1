"""train.seeds in a whole (tiny) run: an instance that fails to train stops the run naming it and keeps
the instance already trained; the rerun trains only the missing one; the two instances have
different weights, distinct keys and files, each its own rows, and the report compares them."""
import json

import pandas as pd
import pytest
import torch

from benchmark.cli import main
from benchmark.run import train as train_module

pytestmark = pytest.mark.integration


def test_two_seeds_give_two_instances_and_a_failed_one_is_reported(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    sets = ["models.names=['vgg16_bn']", "models.train.vgg16_bn.epochs=1", "train.seeds=[0, 1]",
            "explain.names=['gradcam', 'random']", "metrics.names=['relevance_mass', 'pointing_game']",
            "metrics.reliability=false", f"data.cache_dir='{tmp_path / 'cache'}'"]
    args = ["run", "--preset", "smoke", "--out", str(out)] + [a for s in sets for a in ("--set", s)]
    real = train_module.train_classifier

    def diverges_at_seed_1(model, *a, **kw):
        if a[4].seed == 1:  # train_classifier(model, x, y, x_val, y_val, tcfg, ...)
            raise FloatingPointError("loss is NaN")
        return real(model, *a, **kw)

    monkeypatch.setattr(train_module, "train_classifier", diverges_at_seed_1)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "train vgg16_bn@s1 (architecture vgg16_bn, training seed 1) failed: FloatingPointError: loss is NaN" in err, err
    assert "instances trained and kept: vgg16_bn@s0" in err, err
    assert [p.name.split("-")[0] for p in (out / "checkpoints").glob("*.pt")] == ["vgg16_bn@s0"]

    monkeypatch.undo()
    assert main(args) == 0  # the rerun reuses seed 0's checkpoint and trains seed 1's
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["work"]["train"] == {"computed": 1, "reused": 1}
    ckpts = sorted((out / "checkpoints").glob("*.pt"))
    assert [p.name.split("-")[0] for p in ckpts] == ["vgg16_bn@s0", "vgg16_bn@s1"]
    keys = {p.stem.split("-", 1)[1] for p in ckpts}
    assert len(keys) == 2
    w0, w1 = (torch.load(p, map_location="cpu", weights_only=True)["model"] for p in ckpts)
    assert any(not torch.equal(w0[k], w1[k]) for k in w0 if w0[k].is_floating_point())
    cls = manifest["classifiers"]
    assert {m: (c["architecture"], c["train_seed"]) for m, c in cls.items()} == {
        "vgg16_bn@s0": ("vgg16_bn", 0), "vgg16_bn@s1": ("vgg16_bn", 1)}
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores["model"]) == {"vgg16_bn@s0", "vgg16_bn@s1"}
    maps = sorted(p.name for p in (out / "maps").iterdir())
    assert len(maps) == 4 and {m.split("-")[0] for m in maps} == {"vgg16_bn@s0", "vgg16_bn@s1"}
    assert len({m.rsplit("-", 1)[1] for m in maps}) == 4  # every (instance, explainer) its own maps key
    report = (out / "report" / "report.md").read_text()
    assert "## Across training runs" in report and "### VGG16-BN: 2 instances" in report
    assert "several trained instances per architecture (`vgg16_bn` 2" in report
    assert (out / "report" / "across_instances.csv").exists()
    data = json.loads((out / "report" / "html" / "data.js").read_text().split("=", 1)[1].rstrip().rstrip(";"))
    assert "Across training runs" in [s["title"] for s in data["sections"]], "the HTML report carries the section"


def _table(path, models):
    df = pd.read_csv(path, dtype={"image_id": str})
    return df[df["model"].isin(models)].sort_values(list(df.columns[:6])).reset_index(drop=True)


def test_a_seeds_run_in_the_single_seed_runs_folder_adopts_its_work(tmp_path):
    """The run.seed instance has the single-seed model's keys: a seeds run in that run's folder trains,
    explains and scores only the other seeds, and its run.seed instance's numbers are a fresh seeds
    run's, bit for bit, under the instance's name."""
    sets = ["models.names=['vgg16_bn']", "models.train.vgg16_bn.epochs=1",
            "explain.names=['gradcam', 'random']", "metrics.names=['relevance_mass', 'deletion_auc']",
            f"data.cache_dir='{tmp_path / 'cache'}'"]

    def run(out, *extra):
        args = ["run", "--preset", "smoke", "--out", str(out)] + [a for s in sets + list(extra) for a in ("--set", s)]
        assert main(args) == 0
        return json.loads((out / "manifest.json").read_text())["work"]

    single, fresh = tmp_path / "single", tmp_path / "fresh"
    run(single)
    work = run(single, "train.seeds=[0, 1]")
    assert work["train"] == {"computed": 1, "reused": 1}, work
    assert work["explain"]["reused"] == 2 and work["explain"]["computed"] == 2, work
    assert work["score"]["reused"] == work["score"]["computed"] > 0, work
    assert "adopt vgg16_bn:" in (single / "progress.log").read_text()
    run(fresh, "train.seeds=[0]")
    for table in ("scores.csv", "target_scores.csv", "curve_ends.csv"):
        if not (fresh / table).exists():
            continue
        adopted, computed = _table(single / table, ["vgg16_bn@s0"]), _table(fresh / table, ["vgg16_bn@s0"])
        assert len(adopted) > 0
        pd.testing.assert_frame_equal(adopted, computed, check_exact=True)
    preds = pd.read_csv(single / "predictions.csv")
    assert set(preds["model"]) == {"vgg16_bn@s0", "vgg16_bn@s1"}
    assert not (pd.read_csv(single / "scores.csv")["model"] == "vgg16_bn").any()


def test_a_seeds_run_adopts_nothing_from_a_single_seed_run_made_with_other_settings(tmp_path):
    """Adopting is for the same keys only: a single-seed run trained with another learning rate (or by
    other code) has another checkpoint key, so the seeds run trains its run.seed instance and takes none
    of that run's files under the instance's name."""
    sets = ["models.names=['vgg16_bn']", "models.train.vgg16_bn.epochs=1",
            "explain.names=['random']", "metrics.names=['relevance_mass']", "metrics.reliability=false",
            f"data.cache_dir='{tmp_path / 'cache'}'"]
    out = tmp_path / "run"

    def run(*extra):
        args = ["run", "--preset", "smoke", "--out", str(out)] + [a for s in sets + list(extra) for a in ("--set", s)]
        assert main(args) == 0
        return json.loads((out / "manifest.json").read_text())["work"]

    run("models.train.vgg16_bn.lr=0.01")
    work = run("train.seeds=[0]")
    assert work["train"] == {"computed": 1, "reused": 0}, work
    log = (out / "progress.log").read_text()
    assert "adopt vgg16_bn: not adopted, the single-seed run's checkpoint has another key" in log, log
    single_key = next((out / "checkpoints").glob("vgg16_bn-*.pt")).stem.split("-", 1)[1]
    assert not list(out.rglob(f"vgg16_bn@s0-{single_key}*")), "a file of the other run under the instance's name"
    run("train.seeds=[0]")  # resumed once the instance has its own checkpoint: nothing more to say
    assert (out / "progress.log").read_text().count("not adopted") == 1
