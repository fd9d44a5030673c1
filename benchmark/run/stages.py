"""The run's stages as objects: each declares the config sections it reads, the artifacts it consumes
and the artifacts it produces; `run_stages` (the runner's loop) owns the rest.

The runner hands a stage only the artifacts it declares, and only the config sections it declares
(`ConfigView`: reading another section stops the run naming the stage and the section, so a
declaration cannot silently fall behind the code, and the contract tests run every stage); it
checks that the stage returned exactly what it declares; it times the stage, counts its work
(computed / reused pieces, which the stage's code reports under `Stage.work`), keeps the time a
stage took when it was computed for a stage that a resumed run reuses whole, and records each stage
(declaration, time, work) in the manifest. The keys that decide reuse are computed, per piece, from
the declared config sections, the upstream keys and the source of the code the stage imports
(store.code.code_closure); the worker cache (loaded models and test split) is the run context's
`state`, one per run.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .config import Config

PHASES = ("train", "explain", "score", "report")  # `run --until`: the last phase a run does
SECTIONS = ("run", "data", "train", "models", "explain", "metrics", "report")  # Config's sections (a test checks)


class StageContractError(RuntimeError):
    """A stage read an undeclared config section, lacked an input, or returned other artifacts than it declares."""


class ConfigView:
    """The run's config as one stage may read it: its declared sections, nothing else.

    `to_dict()` gives the whole config: the shard jobs carry it to workers, which rebuild what they
    need from it under the keys this stage computed from its declared sections."""

    def __init__(self, cfg: Config, stage: str, reads: tuple[str, ...]):
        object.__setattr__(self, "_cfg", cfg)
        object.__setattr__(self, "_stage", stage)
        object.__setattr__(self, "_reads", frozenset(reads))

    def __getattr__(self, name: str) -> Any:
        if name in SECTIONS and name not in self._reads:
            raise StageContractError(f"stage {self._stage!r} read config section {name!r}, which it does not "
                                     f"declare (reads: {sorted(self._reads)})")
        return getattr(self._cfg, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise StageContractError(f"stage {self._stage!r} tried to replace config section {name!r}")

    def __deepcopy__(self, memo):
        import copy
        return copy.deepcopy(self._cfg, memo)

    def to_dict(self) -> dict[str, Any]:
        return self._cfg.to_dict()


@dataclass(frozen=True)
class Stage:
    name: str
    phase: str                      # the first `until` phase that includes it (PHASES)
    reads: tuple[str, ...]          # config sections
    consumes: tuple[str, ...]       # artifacts of earlier stages
    produces: tuple[str, ...]       # artifacts it returns
    fn: Callable[..., dict[str, Any]] = field(compare=False)  # fn(ctx, **consumed) -> {artifact: value}
    work: str = ""                  # the work counter it reports into ("" : none; pieces computed/reused)
    doc: str = ""

    def included(self, until: str) -> bool:
        return PHASES.index(self.phase) <= PHASES.index(until)

    def manifest_entry(self) -> dict[str, Any]:
        return {"phase": self.phase, "reads": list(self.reads), "consumes": list(self.consumes),
                "produces": list(self.produces), "work": self.work or None}


def check_pipeline(stages: list[Stage]) -> None:
    """Every consumed artifact is produced by an earlier stage of a phase no later than its consumer's,
    names are unique, declared sections exist."""
    made: dict[str, str] = {}  # artifact -> phase of its producer
    names = set()
    for s in stages:
        if s.name in names:
            raise StageContractError(f"two stages named {s.name!r}")
        names.add(s.name)
        bad = [r for r in s.reads if r not in SECTIONS]
        if bad:
            raise StageContractError(f"stage {s.name!r} declares unknown config sections {bad}; sections: {SECTIONS}")
        if s.phase not in PHASES:
            raise StageContractError(f"stage {s.name!r}: phase {s.phase!r} not in {PHASES}")
        for a in s.consumes:
            if a not in made:
                raise StageContractError(f"stage {s.name!r} consumes {a!r}, which no earlier stage produces")
            if PHASES.index(made[a]) > PHASES.index(s.phase):
                raise StageContractError(f"stage {s.name!r} (phase {s.phase}) consumes {a!r}, produced only "
                                         f"from phase {made[a]}")
        for a in s.produces:
            made.setdefault(a, s.phase)


def run_stage(ctx, stage: Stage, artifacts: dict[str, Any]) -> dict[str, Any]:
    """One stage under its contract: its inputs, its config view, its timing and work counts."""
    missing = [a for a in stage.consumes if a not in artifacts]
    if missing:
        raise StageContractError(f"stage {stage.name!r} needs {missing}, not produced by this run")
    if stage.work:
        ctx.work.setdefault(stage.work, {"computed": 0, "reused": 0})
    before = ctx.work[stage.work]["computed"] if stage.work else None
    real, ctx.cfg = ctx.cfg, ConfigView(ctx.cfg, stage.name, stage.reads)
    t0 = time.perf_counter()
    try:
        out = stage.fn(ctx, **{a: artifacts[a] for a in stage.consumes}) or {}
    finally:
        ctx.cfg = real
    ctx.timings[stage.name] = time.perf_counter() - t0
    if stage.work and ctx.work[stage.work]["computed"] == before and ctx.work[stage.work]["reused"] \
            and stage.name in ctx.previous_timings:
        ctx.timings[stage.name] = ctx.previous_timings[stage.name]  # reused whole: the time it took when computed
    if set(out) != set(stage.produces):
        raise StageContractError(f"stage {stage.name!r} returned {sorted(out)}, declares {sorted(stage.produces)}")
    ctx.stages[stage.name] = {**stage.manifest_entry(), "seconds": float(np.round(ctx.timings[stage.name], 6))}
    return out


def run_stages(ctx, stages: list[Stage], until: str, artifacts: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stages of `stages` that `until` includes, in order; returns every artifact produced."""
    if until not in PHASES:
        raise ValueError(f"until={until!r} not in {PHASES}")
    check_pipeline(stages)
    artifacts = dict(artifacts or {})
    for stage in stages:
        if stage.included(until):
            artifacts.update(run_stage(ctx, stage, artifacts))
    return artifacts
