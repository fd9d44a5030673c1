"""How the layers of a run's configuration compose (defaults, preset, file, `--set`): deep merge,
the merge of a run's own resolved config.toml, and the preset keys a file overrides."""
from __future__ import annotations

from typing import Any


def merge(base: dict, top: dict) -> dict:
    """`top` over `base` key by key at every depth: setting one nested key keeps its siblings."""
    out = dict(base)
    for k, v in top.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _leaves(data: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in data.items():
        if isinstance(v, dict) and v:
            out.update(_leaves(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def merge_resolved(base: dict, top: dict) -> dict:
    """A resolved file over `base`: each section key it sets replaces base's value whole (a table
    too, with no default entries merged back); keys it lacks (added to the code since) keep base's."""
    out = dict(base)
    for k, v in top.items():
        out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def is_resolved(file: dict) -> bool:
    """Whether a loaded TOML file is a run's complete config.toml (run.resolved = true)."""
    run = file.get("run")
    return isinstance(run, dict) and run.get("resolved") is True


def preset_keys_overridden(preset: dict, file: dict) -> list[str]:
    """Keys the preset sets that a config file sets to something else (the file wins)."""
    mine, theirs = _leaves(preset), _leaves(file)
    # run.name is no budget: the file's name and the preset's make the run's name (load_config)
    return sorted(k for k in mine if k in theirs and theirs[k] != mine[k] and k != "run.name")
