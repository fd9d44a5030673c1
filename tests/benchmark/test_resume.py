"""Runs that survive: SIGKILL during training, explaining and scoring, then resume with the same command.

Each killed run must keep the work it finished (no stored piece rewritten, the manifest's work
counts add up) and end with the score table of an uninterrupted run. Runtime metrics are
measurements, not results, so they are left out of the equality.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from benchmark.store import map_shard_complete

# long enough stages to land a kill inside each: several epochs, one image per shard, LIME
ARGS = ["--preset", "smoke", "--set", "run.shard_size=1", "--set", "data.limit={train=24, val=8, test=4}",
        "--set", "train.epochs=2", "--set", "models.train={vgg16_bn={epochs=2}, resnet50={epochs=2}}",
        "--set", "explain.names=['gradcam','lime','random']", "--set", "explain.params.lime.num_samples=40",
        "--set", "metrics.names=['deletion_auc','insertion_auc','pointing_game','relevance_mass','seconds_per_image']"]
N_SHARDS = 2 * 3 * 4  # models x explainers x images


def _cmd(out):
    return [sys.executable, "-m", "benchmark", "run", *ARGS, "--out", str(out)]


def _run(out, cwd):
    r = subprocess.run(_cmd(out), cwd=cwd, capture_output=True, text=True, timeout=900,
                       env={**os.environ, "TQDM_DISABLE": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _results(out):
    s = pd.read_csv(out / "scores.csv", dtype={"image_id": str})
    return s[s.metric != "seconds_per_image"].reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    _run(out, out.parent)
    return out


def _copy_stage(reference, out, *folders):
    """Start a run folder from the reference's finished stages (so a test can kill a later stage)."""
    import shutil
    for f in folders:
        shutil.copytree(reference / f, out / f)


def _kill_when(out, cwd, ready, timeout=600):
    """Start the run, SIGKILL it as soon as ready(out) holds; return the stored files at that moment."""
    proc = subprocess.Popen(_cmd(out), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "TQDM_DISABLE": "1"})
    t0 = time.time()
    try:
        while not ready(out):
            assert proc.poll() is None, "the run finished before the kill point"
            assert time.time() - t0 < timeout
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    # a map shard is complete once its .json is written (the .npy goes first): count only those
    return {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and not p.name.endswith(".tmp")
            and (p.suffix == ".npy" and map_shard_complete(p) or p.suffix == ".csv" and p.parent.parent.name == "scores"
                 or p.suffix == ".pt")}


def _done_lines(out, stage):
    log = out / "progress.log"
    return [l for l in log.read_text().splitlines() if f" {stage} " in l and l.endswith("done")] if log.exists() else []


def _resume_and_check(out, cwd, kept, reference):
    r = _run(out, cwd)
    for p, mtime in kept.items():
        assert p.exists() and p.stat().st_mtime_ns == mtime, f"{p} was recomputed after the kill"
    pd.testing.assert_frame_equal(_results(out), _results(reference))
    return json.loads((out / "manifest.json").read_text())["work"], r


def test_kill_during_training_resumes_after_the_last_epoch(reference, tmp_path):
    out = tmp_path / "run"
    kept = _kill_when(out, tmp_path, lambda o: any((o / "checkpoints").glob("*.state.pt")) if (o / "checkpoints").exists() else False)
    assert not any(p.suffix == ".pt" and not p.name.endswith(".state.pt") for p in kept), "killed before any model finished"
    work, _ = _resume_and_check(out, tmp_path, {}, reference)
    assert "resume" in (out / "progress.log").read_text(), "training continued from the saved epoch state"
    assert work["train"]["computed"] == 2
    assert not list((out / "checkpoints").glob("*.state.pt")), "the epoch state is removed once a model is done"


def test_kill_during_explaining_keeps_finished_shards(reference, tmp_path):
    out = tmp_path / "run"
    _copy_stage(reference, out, "checkpoints")
    kept = _kill_when(out, tmp_path, lambda o: len(_done_lines(o, "explain")) >= 3)
    maps = [p for p in kept if p.suffix == ".npy"]
    assert 3 <= len(maps) < N_SHARDS, len(maps)
    work, _ = _resume_and_check(out, tmp_path, kept, reference)
    assert work["train"] == {"computed": 0, "reused": 2}
    assert work["explain"]["reused"] == len(maps) and work["explain"]["computed"] == N_SHARDS - len(maps)


def test_kill_during_scoring_keeps_finished_shards(reference, tmp_path):
    out = tmp_path / "run"
    _copy_stage(reference, out, "checkpoints", "maps")
    kept = _kill_when(out, tmp_path, lambda o: len(_done_lines(o, "score")) >= 5)
    scores = [p for p in kept if p.suffix == ".csv"]
    assert 5 <= len(scores) < N_SHARDS * 5, len(scores)
    work, _ = _resume_and_check(out, tmp_path, kept, reference)
    assert work["explain"] == {"computed": 0, "reused": N_SHARDS}
    assert work["score"]["reused"] == len(scores) and work["score"]["computed"] == N_SHARDS * 5 - len(scores)


def test_a_finished_run_does_no_work(reference, tmp_path):
    """(Same config, same numbers across processes is shown by the kill tests: each resumed run
    equals the reference run, which ran in another process.)"""
    import shutil
    out = tmp_path / "again"
    shutil.copytree(reference, out)
    t0 = time.time()
    _run(out, tmp_path)
    work = json.loads((out / "manifest.json").read_text())["work"]
    assert all(w["computed"] == 0 and w["reused"] > 0 for w in work.values()), work
    pd.testing.assert_frame_equal(_results(out), _results(reference))
    assert time.time() - t0 < 120


def test_corrupted_map_is_detected_and_recomputed(reference, tmp_path):
    import shutil
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    shard = sorted((out / "maps").rglob("shard-*.npy"))[5]
    data = bytearray(shard.read_bytes())
    data[-7] ^= 0xFF
    shard.write_bytes(bytes(data))
    for p in (out / "scores").rglob("*.csv"):  # make the scores depend on reading the maps again
        p.unlink()
    _run(out, tmp_path)
    assert "corrupt" in (out / "progress.log").read_text()
    work = json.loads((out / "manifest.json").read_text())["work"]
    assert work["explain"]["computed"] == 1
    pd.testing.assert_frame_equal(_results(out), _results(reference))
