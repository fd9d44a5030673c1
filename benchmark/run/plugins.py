"""Plug-ins: a user's module that registers explainers, metrics, datasets and models with the same
decorators as the built-ins (`register_explainer`, `register_metric`, `register_dataset`,
`register_model`).

A plug-in is named by a dotted module name (`my_pkg.methods`, imported from sys.path) or a `.py`
path (`./my_methods.py`, imported under the stable name `cxr_plugin_<stem>` and kept in
sys.modules, so `store.code.code_closure` reads its source like ours: editing a plug-in explainer
invalidates its maps and nothing else). Sources: `--plugin` on the CLI, `run.plugins` in the
config, and every entry point of the installed packages in the group `cxr_xai_bench.plugins`
(loaded in every process that loads plug-ins: the driver, and each Ray worker before its first job).
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import re
import sys
from importlib import metadata
from pathlib import Path

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "cxr_xai_bench.plugins"
PATH_PREFIX = "cxr_plugin_"

# spec (as given, paths made absolute) -> the module name it was imported under
_LOADED: dict[str, str] = {}
_ENTRY_POINTS_DONE: list[bool] = []


class PluginError(RuntimeError):
    """A plug-in failed to import or registered a name that is already taken."""


def _registries() -> dict[str, dict]:
    from cxr_xai_bench.datasets import DATASETS
    from cxr_xai_bench.explainers import EXPLAINERS
    from cxr_xai_bench.models import MODELS

    from ..metrics import METRICS
    return {"explainer": EXPLAINERS, "metric": METRICS, "dataset": DATASETS, "model": MODELS}


def is_path(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def normalise(spec: str) -> str:
    """A path plug-in as an absolute path (Ray workers need not share the driver's working folder)."""
    spec = spec.strip()
    return str(Path(spec).expanduser().resolve()) if is_path(spec) else spec


def module_name_for_path(path: str | Path) -> str:
    stem = re.sub(r"\W", "_", Path(path).stem)
    return PATH_PREFIX + stem


def _import(spec: str, label: str) -> str:
    if not is_path(spec):
        importlib.import_module(spec)
        return spec
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    name = module_name_for_path(path)
    old = sys.modules.get(name)
    if old is not None:
        if Path(getattr(old, "__file__", "") or "").resolve() != path.resolve():
            raise ImportError(f"another plug-in file with the stem {path.stem!r} is already loaded "
                              f"({old.__file__}); rename one of them")
        return name
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return name


def _load_one(spec: str, label: str) -> str:
    registries = _registries()
    before = {kind: dict(reg) for kind, reg in registries.items()}
    try:
        name = _import(spec, label)
    except Exception as err:
        # a name taken inside a registry decorator (ValueError "... registered twice") or an import error
        for kind, reg in registries.items():  # undo what the plug-in registered before it failed
            for added in set(reg) - set(before[kind]):
                del reg[added]
        what = "registers a name that is already taken" if "registered twice" in str(err) else "failed to import"
        raise PluginError(f"plug-in {label} {what}: {type(err).__name__}: {err}") from err
    for kind, reg in registries.items():  # registries that overwrite silently (models)
        replaced = [n for n, v in before[kind].items() if reg.get(n) is not v]
        if replaced:
            reg.update({n: before[kind][n] for n in replaced})
            raise PluginError(f"plug-in {label} registers {kind} {replaced[0]!r}, which is already taken; "
                              f"pick another name")
    return name


def load_entry_points() -> list[str]:
    """Import every entry point of the group `cxr_xai_bench.plugins` (once per process)."""
    if _ENTRY_POINTS_DONE:
        return [n for s, n in _LOADED.items() if s.startswith("entry-point:")]
    _ENTRY_POINTS_DONE.append(True)
    names = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        key = f"entry-point:{ep.name}={ep.value}"
        if key in _LOADED:
            continue
        module = ep.value.split(":")[0].strip()
        label = f"{ep.name!r} (entry point {ep.value!r} of group {ENTRY_POINT_GROUP!r}"
        dist = getattr(ep, "dist", None)
        label += f", package {dist.name})" if dist is not None else ")"
        _LOADED[key] = _load_one(module, label)
        names.append(_LOADED[key])
    return names


def load_plugins(specs: list[str] | tuple[str, ...] = (), entry_points: bool = True) -> list[str]:
    """Import the named plug-ins (and the installed entry points), each once per process; returns
    the module names they were imported under."""
    if entry_points:
        load_entry_points()
    names = []
    for spec in specs:
        full = normalise(spec)
        if full not in _LOADED:
            _LOADED[full] = _load_one(full, repr(spec))
            log.info("loaded plug-in %s as module %s", spec, _LOADED[full])
        names.append(_LOADED[full])
    return names


def loaded_modules() -> list[str]:
    """The module names of every plug-in this process has loaded (for the Ray same-code check)."""
    return sorted(set(_LOADED.values()))


def loaded_specs() -> list[str]:
    """The CLI / config plug-ins this process has loaded (paths absolute), to load them on a worker."""
    return sorted(s for s in _LOADED if not s.startswith("entry-point:"))
