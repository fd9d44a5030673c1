"""The Ray executor: every shard job becomes one Ray task, on this machine or across a cluster.

Ray schedules, places (a GPU for the stages that use one) and retries the tasks; we only submit
them and collect the results. A task runs `benchmark.run.jobs.run_job` in a long-lived Ray worker
process, whose `WORKER` keeps the test split and the checkpoints it has loaded, so a worker loads a
model once and reuses it for all its later shards (keyed by the checkpoint's path and file signature:
a checkpoint written again under the same name is loaded again, never served stale). Each job writes its one file atomically, so a
task Ray runs twice (a retry after its worker died) writes the same bytes under the same name.

Only this module imports Ray; it is imported lazily by `executor.make_executor("ray")`.
"""
from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import Any, Callable, Sequence

import ray
import torch
from tqdm.auto import tqdm

from .jobs import ShardJob, WorkerState

log = logging.getLogger(__name__)


class WorkerProcess:
    """What one Ray worker process keeps between its tasks: the driver code fingerprints it has checked
    and its WorkerState (test splits; models and priors keyed by path and file signature)."""

    def __init__(self) -> None:
        self.checked: set[str] = set()
        self.state = WorkerState()


# The one per-process cache of benchmark.run (allow-listed in tests/benchmark/test_layout.py): only
# Ray worker processes use it (the tasks below); a driver's runs each hold their own RunContext.state.
WORKER = WorkerProcess()


def _code_fingerprint() -> str:
    """The code a worker must share with the driver for its shards to mean what their keys say: the
    import closure of the shard jobs, the training a worker may run, every registered explainer,
    metric, dataset and model builder, and every plug-in this process loaded (run.plugins, entry points)."""
    from cxr_xai_bench.datasets import DATASETS
    from cxr_xai_bench.explainers import EXPLAINERS
    from cxr_xai_bench.models.builders import MODELS

    from ..metrics import METRICS
    from ..store.code import code_closure
    from .plugins import loaded_modules
    components = [*EXPLAINERS.values(), *DATASETS.values(), *MODELS.values()]
    metrics = [s.fn for s in METRICS.values() if s.fn is not None]
    return code_closure("benchmark.run.jobs", "benchmark.run.train", *loaded_modules(),
                        *{c.__module__ for c in components + metrics})


def _check_code(fingerprint: str) -> None:
    """Once per worker process: refuse code that differs from the driver's (a stale install on a node)."""
    if fingerprint in WORKER.checked:
        return
    from . import jobs as stages
    mine = _code_fingerprint()
    if mine != fingerprint:
        raise RuntimeError(f"Ray worker on {os.uname().nodename} (pid {os.getpid()}) runs other benchmark code "
                           f"than the driver (fingerprint {mine} != {fingerprint}; its benchmark.run.jobs is "
                           f"{stages.__file__}): install the same version of cxr-xai-bench on every node")
    WORKER.checked.add(fingerprint)


def _flush_denormal() -> bool:
    """Whether this process flushes float32 denormals to zero (torch has a setter, no getter)."""
    return bool((torch.tensor([1e-39], dtype=torch.float32) * 1.0).item() == 0.0)


def driver_settings(threads: int = 0) -> dict:
    """The driver's torch settings that decide the bits of a computation, read once per submission and
    set in every worker before its job (_mirror_settings): the thread count (float sums split over
    another number of threads round differently), deterministic algorithms, flushing denormals, the
    float32 matmul precision, oneDNN on or off and the cuDNN / TF32 switches. The precision policy is
    in the job's config: the driver resolved every "auto" (runner.resolve_precisions), so a worker never
    resolves it for its own CPU. The layout needs nothing: every model is placed by models.layout."""
    return {"threads": int(threads or torch.get_num_threads()),
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
            "flush_denormal": _flush_denormal(),
            "matmul_precision": torch.get_float32_matmul_precision(),
            "mkldnn": torch.backends.mkldnn.enabled,
            "cudnn_benchmark": torch.backends.cudnn.benchmark, "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_tf32": torch.backends.cudnn.allow_tf32}  # matmul TF32: matmul_precision (mixing the APIs is an error)


def _mirror_settings(settings: dict) -> None:
    """Set the driver's settings (driver_settings) in this worker process."""
    torch.set_num_threads(int(settings["threads"]))
    torch.use_deterministic_algorithms(bool(settings["deterministic"]), warn_only=bool(settings["deterministic_warn_only"]))
    torch.set_flush_denormal(bool(settings["flush_denormal"]))
    torch.set_float32_matmul_precision(settings["matmul_precision"])
    torch.backends.mkldnn.enabled = bool(settings["mkldnn"])
    torch.backends.cudnn.benchmark = bool(settings["cudnn_benchmark"])
    torch.backends.cudnn.deterministic = bool(settings["cudnn_deterministic"])
    torch.backends.cudnn.allow_tf32 = bool(settings["cudnn_tf32"])


def _run_shard(job: ShardJob, fingerprint: str, settings: dict) -> tuple[str, int]:
    """The Ray task body: run one shard job in this worker; return its output path and the worker's pid."""
    from .folders import register_folders_of
    from .jobs import run_job
    from .plugins import load_plugins
    load_plugins(job.config.get("run", {}).get("plugins", []))  # before the check: it covers their source
    register_folders_of(job.config)
    _check_code(fingerprint)
    _mirror_settings(settings)
    if job.uses_gpu:
        # Ray hides every GPU but the one(s) it gave this task: that one is always "cuda" here,
        # whatever index the driver's device named
        job = replace(job, device="cuda")
    return run_job(job, WORKER.state), os.getpid()


def _call(fn: Callable[..., Any], fingerprint: str, args: tuple, kwargs: dict, settings: dict,
          plugins: tuple = ()) -> Any:
    from .plugins import load_plugins
    load_plugins(list(plugins))
    _check_code(fingerprint)
    _mirror_settings(settings)
    return fn(*args, **kwargs)


def _threads(config: dict) -> int:
    """The torch threads of the driver's run: run.threads, else this (driver) process's count."""
    return int(config.get("run", {}).get("threads") or torch.get_num_threads())


_run_shard_remote = ray.remote(_run_shard)
_call_remote = ray.remote(_call)


class RayExecutor:
    """Runs shard jobs as Ray tasks.

    address: a running cluster ("auto", "ray://host:10001", "host:6379"); "" joins the instance this
    process already initialised, or starts a local one with `num_workers` CPUs (default: all).
    max_retries: how often Ray re-runs a task whose worker process or node died; an exception raised
    by the job itself is deterministic and is not retried. gpus_per_job: the GPU share a job of a GPU
    stage asks for (0.5 runs two shards per GPU). Every task runs with the driver's torch thread count
    (run.threads, else torch's default in the driver), so its numbers equal an in-process run's bit for
    bit; cpus_per_job: the CPUs a task reserves (default: those threads, at most the largest node's CPUs,
    for a CPU task; 1 for a GPU task).
    """

    name = "ray"

    def __init__(self, address: str = "", num_workers: int | None = None, max_retries: int = 3,
                 gpus_per_job: float = 1.0, cpus_per_job: float | None = None, runtime_env: dict | None = None):
        if max_retries < 0:
            raise ValueError(f"max_retries must be at least 0, got {max_retries}")
        if not 0 < gpus_per_job <= 1 and not (gpus_per_job > 1 and float(gpus_per_job).is_integer()):
            raise ValueError(f"gpus_per_job must be in (0, 1] or a whole number, got {gpus_per_job}")
        self.max_retries, self.gpus_per_job, self.cpus_per_job = max_retries, gpus_per_job, cpus_per_job
        self.started = False
        self.worker_pids: dict[str, int] = {}  # job label -> pid of the worker that finished it
        if ray.is_initialized():
            if address:
                log.warning("Ray is already initialised in this process; ignoring address %r", address)
        elif address:
            ray.init(address=address, runtime_env=runtime_env, logging_level=logging.WARNING)
        else:
            ray.init(num_cpus=num_workers, include_dashboard=False, runtime_env=runtime_env,
                     logging_level=logging.WARNING)
            self.started = True
        self.fingerprint = _code_fingerprint()
        # the CPUs of the largest node: a task asking for more would wait forever
        self.max_node_cpus = max([n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")] or [1])

    @staticmethod
    def _for_workers(job: ShardJob) -> ShardJob:
        """The driver's torch thread count in run.threads (part of no stage key), and store paths as
        absolute ones: a worker's working folder need not be the driver's. (data.root is part of the stage
        keys and stays as given: use an absolute one on a cluster.)"""
        config = {**job.config, "run": {**job.config.get("run", {}), "threads": _threads(job.config)}}
        cache = config.get("data", {}).get("cache_dir", "")
        if cache:  # not part of any key: where the preprocessed splits live
            config = {**config, "data": {**config["data"], "cache_dir": os.path.abspath(cache)}}
        return replace(job, config=config, checkpoint=os.path.abspath(job.checkpoint),
                       maps_path=os.path.abspath(job.maps_path), out_path=os.path.abspath(job.out_path),
                       prior_path=os.path.abspath(job.prior_path) if job.prior_path else "")

    def _cpus(self, threads: int, uses_gpu: bool) -> float:
        if self.cpus_per_job is not None:
            return self.cpus_per_job
        return 1.0 if uses_gpu else float(max(1, min(threads, self.max_node_cpus)))

    def _options(self, job: ShardJob) -> dict:
        return {"num_cpus": self._cpus(job.config["run"]["threads"], job.uses_gpu),
                "num_gpus": self.gpus_per_job if job.uses_gpu else 0,
                "max_retries": self.max_retries, "retry_exceptions": False, "name": job.label}

    def run(self, jobs: Sequence[ShardJob], desc: str, on_done: Callable[[ShardJob], None] | None = None,
            state: WorkerState | None = None) -> list[str]:
        """Submit every job at once, then collect them as they finish (in any order); return paths in job order.
        `state` (the driver's) is not used: each worker process loads into its own (WORKER)."""
        jobs_out = [self._for_workers(job) for job in jobs]
        self.fingerprint = _code_fingerprint()  # with the plug-ins loaded since __init__
        refs = [_run_shard_remote.options(**self._options(job)).remote(job, self.fingerprint,
                                                                       driver_settings(job.config["run"]["threads"]))
                for job in jobs_out]
        index = {ref: k for k, ref in enumerate(refs)}
        out: list[str | None] = [None] * len(jobs)
        pending = list(refs)
        try:
            with tqdm(total=len(jobs), desc=desc, unit="shard", leave=False, disable=not jobs) as bar:
                while pending:
                    ready, pending = ray.wait(pending, num_returns=1)
                    k = index[ready[0]]
                    out[k], pid = self._get(ready[0], jobs[k])
                    self.worker_pids[jobs[k].label] = pid
                    bar.update(1)
                    if on_done is not None:
                        on_done(jobs[k])
        except BaseException:
            for ref in pending:  # a failed stage stops its other shards rather than let them run on
                ray.cancel(ref)
            raise
        return out  # type: ignore[return-value]

    @staticmethod
    def _get(ref: Any, job: ShardJob) -> Any:
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as err:
            cause = err.cause if getattr(err, "cause", None) is not None else err
            raise RuntimeError(f"{job.label} failed on a Ray worker: {type(cause).__name__}: {cause}") from cause
        except ray.exceptions.RayError as err:  # worker or node lost more often than max_retries, cancelled...
            raise RuntimeError(f"{job.label} failed on Ray: {type(err).__name__}: {err}") from err

    def call(self, fn: Callable[..., Any], *args: Any, uses_gpu: bool = False, label: str = "", **kwargs: Any) -> Any:
        """Run `fn(*args, **kwargs)` as one Ray task (a GPU's worth when uses_gpu) and return its result.

        For work that is one task, not shards (training one model): fn must be importable on the workers
        and write what it produces to the shared store itself."""
        from .plugins import loaded_specs
        threads = torch.get_num_threads()
        self.fingerprint = _code_fingerprint()
        ref = _call_remote.options(num_cpus=self._cpus(threads, uses_gpu), num_gpus=1 if uses_gpu else 0,
                                   max_retries=self.max_retries, retry_exceptions=False,
                                   name=label or getattr(fn, "__name__", "call")).remote(fn, self.fingerprint, args,
                                                                                         kwargs, driver_settings(threads),
                                                                                         tuple(loaded_specs()))
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as err:
            cause = err.cause if getattr(err, "cause", None) is not None else err
            raise RuntimeError(f"{label or fn.__name__} failed on a Ray worker: "
                               f"{type(cause).__name__}: {cause}") from cause
        except ray.exceptions.RayError as err:
            raise RuntimeError(f"{label or fn.__name__} failed on Ray: {type(err).__name__}: {err}") from err

    def close(self) -> None:
        """Shut down the Ray instance this executor started; leave one it joined running."""
        if self.started and ray.is_initialized():
            ray.shutdown()
        self.started = False
