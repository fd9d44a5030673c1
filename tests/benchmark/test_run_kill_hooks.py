"""The test-only kill hooks the resume and Ray tests rely on (benchmark.run.kill_hooks): they kill exactly
where they say, and do nothing when their variables are unset."""
import os
import signal
import subprocess
import sys

from benchmark.run.jobs import ShardJob
from benchmark.run.kill_hooks import KillPoints, kill_in_job

SCRIPT = r"""
import sys
from benchmark.run.jobs import ShardJob
from benchmark.run.kill_hooks import KillPoints, kill_in_job
kills = KillPoints()  # what a run holds (RunContext.kills)
job = ShardJob("explain", {}, "m", "", "lime", "", 0, 1, "", sys.argv[1], "", "cpu", False)
for stage in ["score", "explain", "epoch", "explain", "explain", "explain"]:
    kills.point(stage)
    print(stage, flush=True)
    kill_in_job(job)
    print("job", flush=True)
"""


def _run(tmp_path, **env):
    out = tmp_path / "run" / "maps" / "m-lime-key" / "shard-00000.npy"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXR_TEST_KILL")} | env
    return subprocess.run([sys.executable, "-c", SCRIPT, str(out)], capture_output=True, text=True, env=env,
                          timeout=300)


def test_kill_after_the_nth_piece_of_a_stage(tmp_path):
    r = _run(tmp_path, CXR_TEST_KILL_AFTER="explain:3")
    assert r.returncode == -signal.SIGKILL
    assert r.stdout.split() == ["score", "job", "explain", "job", "epoch", "job", "explain", "job"]


def test_kill_in_the_first_matching_job_once_per_run_folder(tmp_path):
    (tmp_path / "run").mkdir()
    r = _run(tmp_path, CXR_TEST_KILL_JOB="/lime")
    assert r.returncode == -signal.SIGKILL and r.stdout.split() == ["score"]
    pid, label = (tmp_path / "run" / ".killed-job.tmp").read_text().split(" ", 1)
    assert label == "explain m/lime [0:1]"
    r = _run(tmp_path, CXR_TEST_KILL_JOB="/lime")  # the retry: the marker is there, so it runs through
    assert r.returncode == 0 and r.stdout.split().count("job") == 6


def test_unset_hooks_do_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("CXR_TEST_KILL_AFTER", raising=False)
    monkeypatch.delenv("CXR_TEST_KILL_JOB", raising=False)
    job = ShardJob("explain", {}, "m", "", "lime", "", 0, 1, "", str(tmp_path / "a" / "b" / "c.npy"), "", "cpu", False)
    kills = KillPoints()
    for stage in ("epoch", "train", "explain", "score"):
        kills.point(stage)
    kill_in_job(job)
    assert not any(tmp_path.rglob("*"))
    assert kills.on_epoch_saved() is None  # no callback at all: training runs as it would without hooks


def test_each_run_counts_its_own_pieces():
    """The count lives in the KillPoints a run holds: a second run in the process starts from zero (a
    module-wide counter would kill it at its first piece). Read from the mapping given, not patched in."""
    first, second = KillPoints({"CXR_TEST_KILL_AFTER": "explain:3"}), KillPoints({"CXR_TEST_KILL_AFTER": "explain:3"})
    first.point("explain")
    second.point("explain")
    first.point("score")  # another stage: not counted
    assert first.finished == {"explain": 1} and second.finished == {"explain": 1}
    epoch = KillPoints({"CXR_TEST_KILL_AFTER": "epoch:5"})
    callback = epoch.on_epoch_saved()
    callback(0), callback(1)
    assert epoch.finished == {"epoch": 2}
