"""Executors run shard jobs. The runner only hands them a list of jobs and waits; where a job runs
(this process, a Ray worker on another machine) is the executor's business, and neither metric nor
explainer code knows.
"""
from __future__ import annotations

from typing import Callable, Protocol, Sequence

from tqdm.auto import tqdm

from .jobs import ShardJob, WorkerState, run_job

EXECUTORS = ("local", "ray")


class Executor(Protocol):
    name: str

    def run(self, jobs: Sequence[ShardJob], desc: str, on_done: Callable[[ShardJob], None] | None = None,
            state: WorkerState | None = None) -> list[str]:
        """Run every job (each writes its own piece of the store); return the written paths in job order.
        `state`: the run's loaded data and models (RunContext.state), which jobs run in this process use;
        jobs run elsewhere load their own."""
        ...

    def close(self) -> None:
        ...


class LocalExecutor:
    """Runs the jobs one after another in this process, with the run's loaded data and models (the
    `state` handed to run; a fresh one, loading everything, when none is). Holds nothing itself."""

    name = "local"

    def run(self, jobs: Sequence[ShardJob], desc: str, on_done: Callable[[ShardJob], None] | None = None,
            state: WorkerState | None = None) -> list[str]:
        state = WorkerState() if state is None else state
        out = []
        for job in tqdm(jobs, desc=desc, unit="shard", leave=False, disable=not jobs):
            out.append(run_job(job, state))
            if on_done is not None:
                on_done(job)
        return out

    def close(self) -> None:
        pass


def make_executor(name: str, address: str = "", **options) -> Executor:
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        try:
            from .ray_executor import RayExecutor
        except ImportError as err:
            raise RuntimeError(f"--executor ray needs Ray, which is not installed ({err}); "
                               f"install the optional extra: pip install '.[ray]'") from None
        return RayExecutor(address=address, **options)
    raise ValueError(f"unknown executor {name!r}; allowed: {list(EXECUTORS)}")
