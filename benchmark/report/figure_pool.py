"""Report figures drawn in worker processes while the main process computes the statistics.

matplotlib draws on one core, and the report's figures depend on each other in nothing; their
number does not grow with the images, so they dominate small runs. Drawn by two workers on the
2-core AMD EPYC, the default run's report took 25.6 s instead of 46.8 s (2026-12-04). Workers are forked: they inherit the imported modules and every
registration (plug-in metrics included) at no import cost, as torch's DataLoader workers do after
torch has started its threads; the figures use no torch. Where fork does not exist, or with one
worker, figures are drawn in this process. A figure is a pure function of its arguments, so a
worker writes the same bytes as the main process (tested).
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Callable


def cores() -> int:
    """CPU cores this process may use (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def auto_workers(requested: int) -> int:
    """`requested` worker processes; 0: one per core, at most 4 (a report has about a dozen
    figures); 1, or a platform without fork: none (this process draws)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return requested if requested > 0 else max(1, min(4, cores()))


class FigurePool:
    """`submit(fn, *args)` returns a Future of fn(*args), drawn by a worker, or at once in this
    process when the pool has one worker. A context manager: leaving it waits for every figure."""

    def __init__(self, workers: int = 0):
        self.workers = auto_workers(workers)
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> "FigurePool":
        if self.workers > 1:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("fork"))
        return self

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        if self._pool is not None:
            return self._pool.submit(fn, *args)
        done: Future = Future()
        done.set_result(fn(*args))  # an exception propagates here, as it did before the pool
        return done

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=exc[0] is not None)
