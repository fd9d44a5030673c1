"""The Ray executor on a local Ray instance (CPU): same score table as the in-process run, a worker
killed mid-shard retried by Ray, a killed driver resumed by the same command.

Skipped when Ray is not installed, unless CXR_REQUIRE_RAY is set (CI's Ray step), where a missing
Ray fails. Runtime metrics are measurements, not results, so they are left out of the equality.
All runs use one torch thread (run.threads=1), the thread count Ray gives a one-CPU task: the same
config then gives the same bits in both executors (with different thread counts, float sums are
ordered differently and values differ in the last digits).
"""
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

HAVE_RAY = importlib.util.find_spec("ray") is not None
if os.environ.get("CXR_REQUIRE_RAY") and not HAVE_RAY:
    raise ImportError("CXR_REQUIRE_RAY is set but Ray is not installed: pip install '.[ray]'")


def needs_ray(test):
    return pytest.mark.ray(pytest.mark.skipif(not HAVE_RAY, reason="Ray is not installed (pip install '.[ray]')")(test))


OVERRIDES = ["run.threads=1", "run.shard_size=1", "data.limit={train=16, val=8, test=4}",
             "explain.names=['gradcam','lime','random']", "explain.params.lime.num_samples=40",
             "metrics.names=['deletion_auc','insertion_auc','pointing_game','relevance_mass','seconds_per_image']"]
ARGS = ["--preset", "smoke"] + [a for o in OVERRIDES for a in ("--set", o)]
N_EXPLAIN = 2 * 3 * 4  # models x explainers x one-image shards
N_SCORE = N_EXPLAIN * 5
RUNTIME = ("seconds_per_image", "peak_memory_mb")
ENV = {**os.environ, "TQDM_DISABLE": "1"}


def _cmd(out, *extra):
    return [sys.executable, "-m", "benchmark", "run", *ARGS, *extra, "--out", str(out)]


def _run(out, *extra):
    r = subprocess.run(_cmd(out, *extra), cwd=out.parent, capture_output=True, text=True, timeout=900, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _results(out):
    s = pd.read_csv(out / "scores.csv", dtype={"image_id": str})
    return s[~s.metric.isin(RUNTIME)].reset_index(drop=True)


def _work(out):
    return json.loads((out / "manifest.json").read_text())["work"]


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int(next(l for l in (p / "status").read_text().splitlines() if l.startswith("PPid:")).split()[1])
            except (OSError, StopIteration, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(p.name))
    return kids


def _descendants(pid: int) -> list[int]:
    kids, out, todo = _children(), [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped by a parent that is gone."""
    try:
        state = next(l for l in Path(f"/proc/{pid}/status").read_text().splitlines() if l.startswith("State:"))
    except (OSError, StopIteration):
        return False
    return state.split()[1] != "Z"


def _title(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The in-process run of the same config."""
    out = tmp_path_factory.mktemp("ref") / "run"
    _run(out)
    return out


def test_without_ray_the_message_names_the_extra(monkeypatch):
    from benchmark.executor import make_executor
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as on an install without the extra
    monkeypatch.delitem(sys.modules, "benchmark.ray_executor", raising=False)
    with pytest.raises(RuntimeError, match=r"pip install '\.\[ray\]'"):
        make_executor("ray")


@pytest.mark.parametrize("kw", [{"max_retries": -1}, {"gpus_per_job": 1.5}, {"gpus_per_job": 0}])
@needs_ray
def test_bad_options_are_named(kw):
    from benchmark.ray_executor import RayExecutor
    with pytest.raises(ValueError, match=next(iter(kw))):
        RayExecutor(**kw)


@needs_ray
def test_ray_run_equals_the_in_process_run(reference, tmp_path):
    out = tmp_path / "run"
    _run(out, "--executor", "ray")
    pd.testing.assert_frame_equal(_results(out), _results(reference), check_exact=True)
    assert json.loads((out / "manifest.json").read_text())["executor"] == "ray"
    assert _work(out) == {"train": {"computed": 2, "reused": 0}, "explain": {"computed": N_EXPLAIN, "reused": 0},
                          "score": {"computed": N_SCORE, "reused": 0}}
    # every shard is the same bytes as the in-process one (maps and per-shard scores, not only the table)
    for folder in ("maps", "scores"):
        mine = sorted(p.relative_to(out) for p in (out / folder).rglob("shard-*") if p.suffix in (".npy", ".csv"))
        assert mine == sorted(p.relative_to(reference) for p in (reference / folder).rglob("shard-*")
                              if p.suffix in (".npy", ".csv"))
        for rel in mine:
            if "seconds_per_image" in str(rel) or folder == "maps":
                continue  # map shards carry their measured seconds; compared through the scores
            assert (out / rel).read_bytes() == (reference / rel).read_bytes(), rel


@needs_ray
def test_a_killed_driver_resumes_submitting_only_missing_shards(reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference / "checkpoints", out / "checkpoints")
    proc = subprocess.Popen(_cmd(out, "--executor", "ray"), cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=ENV, start_new_session=True)
    log, t0, family = out / "progress.log", time.time(), []
    try:
        while not (log.exists() and sum(" explain " in l and l.endswith("done") for l in log.read_text().splitlines()) >= 3):
            assert proc.poll() is None, "the run finished before the kill point"
            assert time.time() - t0 < 600
            time.sleep(0.005)
        family = _descendants(proc.pid)  # its local Ray instance: a dead driver's machine takes it along
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
        for pid in family:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.time() + 30
    while any(_alive(p) for p in family) and time.time() < deadline:
        time.sleep(0.1)
    from benchmark.store import map_shard_complete
    # a map shard is complete once its .json is written (after the .npy): a kill between the two
    # leaves a shard that the resumed run rightly computes again
    kept = {p: p.stat().st_mtime_ns for p in (out / "maps").rglob("shard-*.npy") if map_shard_complete(p)}
    assert 3 <= len(kept) < N_EXPLAIN, len(kept)
    _run(out, "--executor", "ray")
    for p, mtime in kept.items():
        assert p.stat().st_mtime_ns == mtime, f"{p} was explained again after the driver was killed"
    work = _work(out)
    assert work["train"] == {"computed": 0, "reused": 2}
    assert work["explain"] == {"computed": N_EXPLAIN - len(kept), "reused": len(kept)}
    assert work["score"] == {"computed": N_SCORE, "reused": 0}
    pd.testing.assert_frame_equal(_results(out), _results(reference), check_exact=True)


# -- in this process, on a local Ray instance of 2 workers it starts (and the executors join)

@pytest.fixture(scope="module")
def local_ray():
    import ray
    old = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()
    if old is None:
        os.environ.pop("TQDM_DISABLE")
    else:
        os.environ["TQDM_DISABLE"] = old


class _Killer(threading.Thread):
    """SIGKILLs the first Ray worker of this process seen running a LIME explain shard."""

    def __init__(self):
        super().__init__(daemon=True)
        self.killed: tuple[int, str] | None = None
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set() and self.killed is None:
            for pid in _descendants(os.getpid()):
                title = _title(pid)
                if title.startswith("ray::explain") and "/lime" in title:
                    os.kill(pid, signal.SIGKILL)
                    self.killed = (pid, title)
                    return
            self.stop.wait(0.01)


def _ray_runner(reference, out, max_retries):
    import torch

    from benchmark.config import load_config
    from benchmark.ray_executor import RayExecutor
    from benchmark.runner import Runner
    shutil.copytree(reference / "checkpoints", out / "checkpoints")  # train reused: the kill lands in explain
    executor = RayExecutor(max_retries=max_retries)
    return Runner(load_config(None, OVERRIDES, "smoke"), out, torch.device("cpu"), executor=executor), executor


@needs_ray
def test_a_worker_killed_mid_shard_is_retried(reference, local_ray, tmp_path):
    # control: without retries the same kill fails the run, naming the shard: the killer hits a running task
    runner, _ = _ray_runner(reference, tmp_path / "no-retry", max_retries=0)
    killer = _Killer()
    killer.start()
    with pytest.raises(RuntimeError, match=r"explain \w+/lime \[\d:\d\] failed on Ray"):
        runner.run()
    killer.join(5)
    assert killer.killed is not None

    runner, executor = _ray_runner(reference, tmp_path / "retried", max_retries=2)
    killer = _Killer()
    killer.start()
    result = runner.run(until="score")
    killer.join(5)
    assert killer.killed is not None, "no LIME shard was seen running"
    pid, title = killer.killed
    label = title.removeprefix("ray::")
    assert executor.worker_pids[label] != pid, "the killed shard was finished by another worker"
    assert result.work["explain"] == {"computed": N_EXPLAIN, "reused": 0}
    pd.testing.assert_frame_equal(_results(tmp_path / "retried"), _results(reference), check_exact=True)


@needs_ray
def test_a_failing_job_names_its_shard(local_ray, tmp_path):
    from benchmark.ray_executor import RayExecutor
    from benchmark.stages import ShardJob
    job = ShardJob("bogus", {}, "vgg16_bn", "", "gradcam", "", 0, 1, "", str(tmp_path / "x.csv"), "", "cpu", False)
    executor = RayExecutor()
    with pytest.raises(RuntimeError, match=r"bogus vgg16_bn/gradcam \[0:1\] failed on a Ray worker: ValueError: "
                                           r"unknown stage 'bogus'"):
        executor.run([job], desc="test")
    executor.close()
    assert local_ray.is_initialized(), "an executor leaves running an instance it joined"


@needs_ray
def test_a_worker_with_other_code_is_refused(local_ray):
    from benchmark.ray_executor import RayExecutor
    executor = RayExecutor()
    assert executor.call(os.getpid) != os.getpid()
    executor.fingerprint = "0" * 12  # as a node with another version of the package installed would compute
    with pytest.raises(RuntimeError, match="runs other benchmark code than the driver"):
        executor.call(os.getpid)


@needs_ray
def test_training_as_a_ray_task_gives_the_driver_checkpoint(reference, local_ray, tmp_path):
    import torch

    from benchmark.config import load_config
    from benchmark.ray_executor import RayExecutor, train_on_worker
    cfg = load_config(None, OVERRIDES, "smoke")
    got = RayExecutor().call(train_on_worker, cfg.to_dict(), str(tmp_path / "run"), "vgg16_bn", "cpu")
    assert got["computed"]
    path = Path(got["checkpoint"])
    ref = reference / "checkpoints" / path.name
    assert path.parent == tmp_path / "run" / "checkpoints" and ref.exists(), "same stage key as the driver's"
    mine, theirs = (torch.load(p, weights_only=True)["model"] for p in (path, ref))
    assert mine.keys() == theirs.keys()
    for k in mine:
        assert torch.equal(mine[k], theirs[k]), k

