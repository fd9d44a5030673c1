"""One run at a time per run folder: `results/<run>/.lock`, held with flock for the whole run.

Two runs on one folder would compute every stage side by side (each finds nothing stored yet) and sweep
each other's temp files, so a second run refuses at once, before it reads or writes anything, naming the
run that holds the folder (pid, host, start time from the lock file). The kernel drops a flock when its
process dies (SIGKILL included), so the lock of a run that died is free and the next run takes it over;
the file itself stays, holding the last holder's details. flock locks belong to an open file
description: the descriptor is opened non-inheritable (no exec'd child keeps the folder locked).
flock on NFS depends on the server (Linux NFSv4 maps it to a POSIX lock); run folders shared between
machines are for the Ray workers, which never take this lock: only the driver does.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

LOCK_NAME = ".lock"


class RunFolderBusy(RuntimeError):
    """Another run holds this run folder."""


def _holder(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 65536).decode() or "{}")
    except (OSError, ValueError):
        return {}


class RunLock:
    """`with RunLock(run_dir):` holds the folder's lock, or raises RunFolderBusy naming its holder."""

    def __init__(self, run_dir: Path | str):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> "RunLock":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            h = _holder(fd)
            os.close(fd)
            who = (f"pid {h.get('pid', '?')} on {h.get('host', '?')}, started {h.get('started', '?')}" if h
                   else "a process that has not written its details yet")
            raise RunFolderBusy(f"run folder {self.run_dir} is in use by another run ({who}): wait for it to "
                                f"finish, or give this run another --out") from None
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S %z")}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(me) + "\n").encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
