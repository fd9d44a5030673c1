"""One run per run folder (issue 31, item 7): a second run on a folder another run holds refuses at once,
before it reads or writes anything, naming the holder (pid, host, start time); the lock of a run that is
gone (released, or its process dead) is taken over."""
import fcntl
import json
import os
import subprocess
import sys
import time

import pytest
import torch

from benchmark.run.config import load_config
from benchmark.run.run_lock import LOCK_NAME, RunFolderBusy, RunLock
from benchmark.run.runner import Runner

HOLDER = {"pid": 424242, "host": "node-7", "started": "2026-12-05 10:00:00 +0000"}


def _tiny(tmp_path):
    return load_config(preset="smoke", overrides=["models.names=['vgg16_bn']", "explain.names=['random']",
                                                  "metrics.names=['pointing_game']", "data.limit={train=8, val=4, test=4}",
                                                  f"data.cache_dir='{tmp_path / 'cache'}'"])


def _hold(run_dir, holder=HOLDER):
    """The folder's lock held through a descriptor of this test (flock locks belong to an open file
    description: the Runner's own open of the file conflicts with it as another process's would)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, json.dumps(holder).encode())
    return fd


def test_a_second_run_refuses_before_any_work_and_names_the_holder(tmp_path):
    run = tmp_path / "run"
    fd = _hold(run)
    (run / "scores.csv.tmp").write_text("the other run's temp file")  # a resuming run would sweep it
    try:
        with pytest.raises(RunFolderBusy) as err:
            Runner(_tiny(tmp_path), run, torch.device("cpu")).run("train")
        msg = str(err.value)
        assert "\n" not in msg and "pid 424242 on node-7, started 2026-12-05 10:00:00" in msg and "--out" in msg
        assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME, "scores.csv.tmp"], "nothing read or written"
        assert not (tmp_path / "cache").exists(), "no data loaded"
    finally:
        os.close(fd)
    # released: the next run takes the lock over, records itself, and runs
    Runner(_tiny(tmp_path), run, torch.device("cpu")).run("train")
    assert (run / "predictions.csv").exists()
    assert json.loads((run / LOCK_NAME).read_text())["pid"] == os.getpid()
    # and gives it back when it ends: a lock of this process is free again
    with RunLock(run):
        pass


def _hold_in_another_process(run):
    """A process that takes the run folder's lock and sleeps; returns once it holds it."""
    holder = subprocess.Popen([sys.executable, "-c", "import time; from benchmark.run.run_lock import RunLock; "
                               f"RunLock({str(run)!r}).acquire(); print('held', flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_the_lock_of_a_dead_run_is_taken_over(tmp_path):
    """A run killed with SIGKILL leaves its lock file behind, but the kernel dropped its flock."""
    run = tmp_path / "run"
    holder = _hold_in_another_process(run)
    try:
        with pytest.raises(RunFolderBusy, match=f"pid {holder.pid} on "):
            RunLock(run).acquire()
    finally:
        holder.kill()
        holder.wait()
    assert json.loads((run / LOCK_NAME).read_text())["pid"] == holder.pid, "the dead run's details are still there"
    with RunLock(run):
        assert json.loads((run / LOCK_NAME).read_text())["pid"] == os.getpid()


@pytest.mark.integration
def test_the_cli_refuses_in_one_line_while_another_process_holds_the_folder(tmp_path):
    run = tmp_path / "run"
    holder = _hold_in_another_process(run)
    try:
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "benchmark", "run", "--preset", "smoke", "--out", str(run)],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300,
                           env={**os.environ, "TQDM_DISABLE": "1"})
        took = time.perf_counter() - t0
    finally:
        holder.kill()
        holder.wait()
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-2000:]
    assert f"pid {holder.pid} on " in lines[0] and "--out" in lines[0]
    assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME]
    assert took < 120, took  # the start-up imports only: no data, no training
