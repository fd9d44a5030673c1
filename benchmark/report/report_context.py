"""What every report section reads (a frozen ReportContext): its own module, so the sections and the
builder that lists them both import it without importing each other."""
from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .figure_pool import FigurePool
from .labels import run_labels
from ..store.instances import architecture


@dataclass(frozen=True)
class ReportContext:
    """What every section reads, computed once: the run's files, the statistics, and the figures
    already started (those needing no statistics first, so the pool's workers draw while this
    process computes). Sections write into `rep` and never change the context."""
    run_dir: Path
    rep: Path
    cfg: Any                        # the resolved config (store.runfolder.read_config)
    scores: pd.DataFrame
    manifest: dict | None
    gaps: dict
    pool: FigurePool
    predictions: pd.DataFrame | None
    summary: pd.DataFrame
    tests: pd.DataFrame
    fried: pd.DataFrame
    ranks: pd.DataFrame
    comparisons: pd.DataFrame
    overview: Any
    figures: dict[str, Future | None]          # name (the file stem) -> drawn paths
    cases: list[tuple[str, Future, Future]]    # (model, overlay figure, best/median/worst figure)
    headroom: pd.DataFrame | None = None       # headroom.headroom: the curve metrics' start / end outputs
    unjudged: frozenset = frozenset()          # (dataset, model, metric) without headroom: out of every verdict
    known_false: frozenset = frozenset()       # (dataset, model, metric) failing the known-truth check: marked
    instance_means: Any = None                 # instances.instance_means when architectures have several instances

    @property
    def not_run(self) -> frozenset:
        """(model, explainer) pairs explain.per_model left out: "not run" in the leaderboards."""
        per_model = getattr(self.cfg.explain, "per_model", {}) or {}
        # keyed by architecture; every trained instance of it (train.seeds: `resnet50@s1`) leaves them out too
        names = set(self.scores["model"].astype(str)) | set(per_model)
        return frozenset((m, e) for m in names for e in per_model.get(architecture(m), {}).get("exclude", []))

    @property
    def bootstrap(self) -> tuple[int, float, int]:
        return self.cfg.report.bootstrap, self.cfg.report.confidence, self.cfg.run.seed

    @property
    def labels(self) -> dict[str, str]:
        """report.labels: display names over labels.DEFAULT_LABELS (a run folder before the key: none)."""
        return run_labels(self.cfg)

    @property
    def width(self) -> str:
        return getattr(self.cfg.report, "latex_width", "textwidth")
