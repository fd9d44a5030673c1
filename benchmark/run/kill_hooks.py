"""Test-only kill points, so the resume tests kill a run at an exact place instead of racing a
timer: no-ops unless CXR_TEST_KILL_AFTER or CXR_TEST_KILL_JOB is set in the environment."""
from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any, Iterator

KILL_AFTER, KILL_JOB, _finished = "CXR_TEST_KILL_AFTER", "CXR_TEST_KILL_JOB", {}


def kill_point(stage: str) -> None:
    """CXR_TEST_KILL_AFTER="STAGE:N": SIGKILL this process right after its N-th finished piece of STAGE:
    `epoch` (an epoch state stored: every epoch but a model's last), `train` (a checkpoint stored),
    `explain` / `score` (a shard stored and logged by the runner)."""
    name, _, n = os.environ.get(KILL_AFTER, "").partition(":")
    _finished[stage] = _finished.get(stage, 0) + (name == stage)
    if name == stage and _finished[stage] >= int(n):
        os.kill(os.getpid(), signal.SIGKILL)  # as a crash would: no cleanup, no exit handlers


@contextlib.contextmanager
def epoch_kill_point() -> Iterator[None]:
    """Around training: kill_point("epoch") after every epoch state that models.training stores."""
    from cxr_xai_bench.models import training
    save = training._save_state
    if os.environ.get(KILL_AFTER, "").startswith("epoch:"):
        training._save_state = lambda path, state: (save(path, state), kill_point("epoch"))
    try:
        yield
    finally:
        training._save_state = save


def kill_in_job(job: Any) -> None:
    """CXR_TEST_KILL_JOB="TEXT": the first job (a run.jobs.ShardJob) whose label holds TEXT kills its process after computing,
    before writing. Once per run folder: the marker it leaves there (pid and label; a temp file, swept at
    the next start) lets the retry run through."""
    text = os.environ.get(KILL_JOB, "")
    if text and text in job.label:
        try:
            fd = os.open(Path(job.out_path).parents[2] / ".killed-job.tmp", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, f"{os.getpid()} {job.label}".encode()), os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)
