"""Runs that survive: SIGKILL during training, explaining and scoring, then resume with the same command.

Each kill lands at an exact point (the test-only hook CXR_TEST_KILL_AFTER="STAGE:N" makes the run
SIGKILL itself after its N-th finished piece of STAGE), so the pieces stored at the kill are known.
A killed run must leave every finished piece untouched (same bytes, same mtime), make the manifest's
work counts add up, and end with exactly the numbers of an uninterrupted run: the same score table
(check_exact) and the same bytes in every map and score shard. Runtime metrics are measurements,
not results, so they are left out of the equality.

The reference run is shared by the tests of this module and only read: a test that runs in it
works on a copy (`_copy`), and `ref` checks after each test that the reference is unchanged.
"""
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.integration

ARGS = ["--preset", "smoke", "--set", "run.shard_size=2", "--set", "data.limit={train=24, val=8, test=4}",
        "--set", "train.epochs=2", "--set", "models.train={vgg16_bn={epochs=2}, resnet50={epochs=2}}",
        "--set", "explain.names=['gradcam','random']",
        "--set", "metrics.names=['deletion_auc','faithfulness_correlation','pointing_game','relevance_mass',"
                 "'seconds_per_image']"]
N_EXPLAIN = 2 * 2 * 2  # models x explainers x two-image shards
N_SCORE = N_EXPLAIN * 5
# reliability pieces (gradcam only: baselines are not re-explained, LIME is skipped by metrics.skip), per
# model and two-image shard: the randomised model's map shard and its 4 metric scores (seconds_per_image
# needs its own explainer), the perturbed input's map shard and its 2 localisation scores
N_RELIABILITY = 2 * 2 * ((1 + 4) + (1 + 2))


def _run(out, *extra, kill="", args=ARGS, expect=0):
    env = {**os.environ, "TQDM_DISABLE": "1"}
    env.pop("CXR_TEST_KILL_AFTER", None)
    if kill:
        env["CXR_TEST_KILL_AFTER"] = kill
    r = subprocess.run([sys.executable, "-m", "benchmark", "run", *args, *extra, "--out", str(out)], cwd=out.parent,
                       capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == expect, (r.returncode, r.stderr[-3000:])
    return r


def _killed(run_store, out, kill):
    """Run until the hook kills the run at `kill`; returns the finished pieces stored at that moment."""
    _run(out, kill=kill, expect=-signal.SIGKILL)
    return run_store.pieces(out)


def _copy(reference, out, *folders):
    """A run folder holding the reference's `folders` (all of it without), mtimes kept."""
    if not folders:
        shutil.copytree(reference, out)
    for f in folders:
        shutil.copytree(reference / f, out / f)


@pytest.fixture(scope="module")
def _reference(tmp_path_factory, run_store):
    out = tmp_path_factory.mktemp("ref") / "run"
    _run(out)
    return out, run_store.pieces(out)


@pytest.fixture
def ref(_reference, run_store):
    """The uninterrupted run, read only: checked unchanged after every test."""
    out, pieces = _reference
    yield out
    run_store.assert_untouched(out, pieces)
    assert set(run_store.pieces(out)) == set(pieces)


def test_kill_during_training_resumes_after_the_last_epoch(ref, tmp_path, run_store):
    out = tmp_path / "run"
    # epoch states are stored after every epoch but a model's last: the 2nd is resnet50's first epoch,
    # after vgg16_bn finished
    kept = _killed(run_store, out, "epoch:2")
    assert sorted(rel.name.split("-")[0] for rel in kept if rel.suffix == ".pt") == ["vgg16_bn"]
    assert len(list((out / "checkpoints").glob("resnet50-*.state.pt"))) == 1 and not (out / "maps").exists()
    _run(out)
    run_store.assert_untouched(out, kept)
    assert "train resnet50 resume" in (out / "progress.log").read_text(), "training continued from the epoch state"
    assert run_store.work(out)["train"] == {"computed": 1, "reused": 1}
    assert not list((out / "checkpoints").glob("*.state.pt")), "the epoch state is removed once a model is done"
    for p in (out / "checkpoints").glob("*.pt"):  # the resumed model has the uninterrupted one's weights
        mine, theirs = (torch.load(q, weights_only=True)["model"] for q in (p, ref / "checkpoints" / p.name))
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs), p.name
    run_store.assert_same_numbers(out, ref)


def test_kill_during_explaining_keeps_finished_shards(ref, tmp_path, run_store):
    out = tmp_path / "run"
    _copy(ref, out, "checkpoints")
    kept = _killed(run_store, out, "explain:3")
    maps = [rel for rel in kept if rel.parts[0] == "maps" and rel.suffix == ".npy"]
    assert len(maps) == 3, maps
    _run(out)
    run_store.assert_untouched(out, kept)
    work = run_store.work(out)
    assert work["train"] == {"computed": 0, "reused": 2}
    assert work["explain"] == {"computed": N_EXPLAIN - 3, "reused": 3}
    run_store.assert_same_numbers(out, ref)


def test_kill_during_scoring_keeps_finished_shards(ref, tmp_path, run_store):
    out = tmp_path / "run"
    _copy(ref, out, "checkpoints", "maps")
    kept = _killed(run_store, out, "score:5")
    assert len([rel for rel in kept if rel.suffix == ".csv"]) == 5
    _run(out)
    run_store.assert_untouched(out, kept)
    work = run_store.work(out)
    assert work["explain"] == {"computed": 0, "reused": N_EXPLAIN}
    assert work["score"] == {"computed": N_SCORE - 5, "reused": 5}
    run_store.assert_same_numbers(out, ref)


def _rerun_computes_nothing(run_store, ref, out, *extra, args=ARGS):
    _copy(ref, out)
    kept = run_store.pieces(out)
    folders = sorted(p.name for d in ("checkpoints", "maps", "scores") for p in (out / d).iterdir())
    _run(out, *extra, args=args)
    work = run_store.work(out)
    assert all(w["computed"] == 0 and w["reused"] > 0 for w in work.values()), work
    run_store.assert_untouched(out, kept)
    assert sorted(p.name for d in ("checkpoints", "maps", "scores") for p in (out / d).iterdir()) == folders
    run_store.assert_same_numbers(out, ref)


def test_rerun_with_the_same_command_computes_nothing(ref, tmp_path, run_store):
    _rerun_computes_nothing(run_store, ref, tmp_path / "again")


def test_rerun_from_the_written_config_computes_nothing(ref, tmp_path, run_store):
    """config.toml carries run.resolved = true, so its tables load as written: models.train.resnet50,
    which --set replaced whole with {epochs=2}, does not get the default lr back (another training key)."""
    out = tmp_path / "again"
    # the file and nothing else
    _rerun_computes_nothing(run_store, ref, out, "--config", str(out / "config.toml"), args=())


def test_no_resume_recomputes_everything_with_the_same_numbers(ref, tmp_path, run_store):
    out = tmp_path / "fresh"
    _copy(ref, out)
    kept = run_store.pieces(out)
    _run(out, "--no-resume")
    work = run_store.work(out)
    other = work.pop("other_target")  # the misclassified images explained for the other target
    assert other == {"computed": sum(run_store.work(ref)["other_target"].values()), "reused": 0}
    assert work == {"train": {"computed": 2, "reused": 0},
                    "explain": {"computed": N_EXPLAIN, "reused": 0},
                    "score": {"computed": N_SCORE, "reused": 0},
                    "reliability": {"computed": N_RELIABILITY, "reused": 0}}
    now = run_store.pieces(out)
    assert set(now) == set(kept)
    stages = [rel for rel in kept if rel.parts[0] != "context"]
    assert [rel for rel in stages if now[rel][0] == kept[rel][0]] == [], "every stage piece is written again"
    prior = [rel for rel in kept if rel.parts[0] == "context" and rel.name.startswith("train-prior-")]
    assert len(prior) == 1 and now[prior[0]][0] != kept[prior[0]][0], "the training prior is written again"
    run_store.assert_same_numbers(out, ref)  # recomputed in another process: the same bits


def test_fresh_runs_equal_with_the_same_seed_and_differ_with_another(ref, tmp_path, run_store):
    _run(tmp_path / "seed0")  # its own folder and data cache (cwd tmp_path), nothing shared with ref
    run_store.assert_same_numbers(tmp_path / "seed0", ref)
    _run(tmp_path / "seed1", "--set", "run.seed=1")  # other test images, models and maps
    assert not run_store.results(tmp_path / "seed1").equals(run_store.results(ref))
    for d in ("checkpoints", "maps", "scores"):
        assert not set(os.listdir(tmp_path / "seed1" / d)) & set(os.listdir(ref / d)), f"a {d} key ignores the seed"


def test_corrupted_map_is_detected_and_recomputed(ref, tmp_path, run_store):
    out = tmp_path / "run"
    _copy(ref, out)
    shard = sorted((out / "maps").rglob("shard-*.npy"))[5]
    data = bytearray(shard.read_bytes())
    data[-7] ^= 0xFF
    shard.write_bytes(bytes(data))
    for p in (out / "scores").rglob("*.csv"):  # make the scores depend on reading the maps again
        p.unlink()
    _run(out)
    assert "corrupt" in (out / "progress.log").read_text()
    assert run_store.work(out)["explain"] == {"computed": 1, "reused": N_EXPLAIN - 1}
    run_store.assert_same_numbers(out, ref)
