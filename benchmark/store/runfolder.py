"""A run folder as running writes it and reporting reads it: the names of its top-level files and
readers for the resolved config and the manifest. Reporting reads a run through these, so it never
needs the running side's config classes (a report is built from the folder alone)."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

CONFIG = "config.toml"        # the resolved config (run.resolved = true): complete, as the run used it
MANIFEST = "manifest.json"    # versions, commit, seed, device, counts, timings
SCORES = "scores.csv"         # the long score table: one row per (cell, image)


def read_config_dict(run_dir: str | Path) -> dict[str, Any]:
    """The run's resolved config.toml as a plain dict (FileNotFoundError naming it when absent)."""
    path = Path(run_dir) / CONFIG
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: is {run_dir} a run folder?")
    return tomllib.loads(path.read_text())


def read_config(run_dir: str | Path) -> SimpleNamespace:
    """The resolved config with attribute access by section (`cfg.report.bootstrap`); each
    section's values stay as written (dicts such as `cfg.data.splits` stay dicts)."""
    data = read_config_dict(run_dir)
    return SimpleNamespace(**{k: SimpleNamespace(**v) if isinstance(v, dict) else v for k, v in data.items()})


def read_manifest(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's manifest, or None for a folder without one."""
    path = Path(run_dir) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None
