"""Test-only kill points, so the resume tests kill a run at an exact place instead of racing a
timer: no-ops unless CXR_TEST_KILL_AFTER or CXR_TEST_KILL_JOB is set in the environment.

Nothing here is module-wide: a run holds its own KillPoints (RunContext.kills, read from the
environment when the run starts), counts its finished pieces there and hands the training loop a
plain callback (train_classifier's on_epoch_saved) instead of patching it."""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, Callable, Mapping

KILL_AFTER, KILL_JOB = "CXR_TEST_KILL_AFTER", "CXR_TEST_KILL_JOB"


class KillPoints:
    """CXR_TEST_KILL_AFTER="STAGE:N": SIGKILL this process right after its N-th finished piece of STAGE:
    `epoch` (an epoch state stored: every epoch but a model's last), `train` (a checkpoint stored),
    `explain` / `score` (a shard stored and logged by the runner). The count is this object's, so two
    runs in one process count apart."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        name, _, n = (os.environ if environ is None else environ).get(KILL_AFTER, "").partition(":")
        self.stage, self.after = name, int(n) if name else 0
        self.finished: dict[str, int] = {}

    def point(self, stage: str) -> None:
        """One more finished piece of `stage`; kills the process when it is the N-th of the named stage."""
        if stage != self.stage:
            return
        self.finished[stage] = self.finished.get(stage, 0) + 1
        if self.finished[stage] >= self.after:
            os.kill(os.getpid(), signal.SIGKILL)  # as a crash would: no cleanup, no exit handlers

    def on_epoch_saved(self) -> Callable[[int], None] | None:
        """train_classifier's on_epoch_saved: point("epoch") after each stored epoch state; None (no
        callback at all) unless epochs are what kills."""
        if self.stage != "epoch":
            return None
        return lambda epoch: self.point("epoch")


def kill_in_job(job: Any) -> None:
    """CXR_TEST_KILL_JOB="TEXT": the first job (a run.jobs.ShardJob) whose label holds TEXT kills its process after computing,
    before writing. Once per run folder: the marker it leaves there (pid and label; a temp file, swept at
    the next start) lets the retry run through. Keeps no state in the process: the marker is on disk."""
    text = os.environ.get(KILL_JOB, "")
    if text and text in job.label:
        try:
            fd = os.open(Path(job.out_path).parents[2] / ".killed-job.tmp", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, f"{os.getpid()} {job.label}".encode()), os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)
