"""`explain.folders`: maps made elsewhere, registered as explainers under the names the user gives
(explainers/folder_maps.py). Done in validate (driver) and before a Ray worker's first job, so both
know the names; the folder's path and a fingerprint of its files go into `explain.params.<name>`,
and so into the maps' key."""
from __future__ import annotations

from pathlib import Path

from cxr_xai_bench.explainers.folder_maps import fingerprint, register_folder

ALLOWED = ("signed", "key", "path", "fingerprint")


def register_folders(cfg) -> None:
    """Register each folder of cfg.explain.folders, add it to explain.names, and record its path and
    fingerprint in explain.params (idempotent)."""
    for name, folder in cfg.explain.folders.items():
        path = Path(folder).expanduser().resolve()
        if not path.is_dir():
            raise FileNotFoundError(f"explain.folders.{name}: {folder} is not a folder")
        params = dict(cfg.explain.params.get(name, {}))
        unknown = sorted(set(params) - set(ALLOWED))
        if unknown:
            raise KeyError(f"explain.params.{name}: unknown parameters {unknown} for maps folder {name!r}; "
                           f"allowed: signed, key")
        register_folder(name, signed=bool(params.get("signed", False)))
        params.update(path=str(path), fingerprint=fingerprint(path))
        cfg.explain.params[name] = params
        if name not in cfg.explain.names:
            cfg.explain.names.append(name)


def register_folders_of(config: dict) -> None:
    """On a worker: the folder explainers of a config dict (its params already carry path and fingerprint)."""
    explain = config.get("explain", {})
    for name in explain.get("folders", {}):
        register_folder(name, signed=bool(explain.get("params", {}).get(name, {}).get("signed", False)))
