"""Code versions computed from imports: a stage key holds the hash of the source of every project
module its entry modules import, directly or not, so no hand-kept list of modules can miss one.

`code_closure(*roots)` parses each module's import statements with `ast` (relative imports
resolved, `from pkg import name` counting `pkg.name` where that is a module, imports inside
functions too) and follows those of project modules: `benchmark`, `cxr_xai_bench`, and the top-level
package of each root (so a plug-in package's own helpers count). Third-party libraries enter a key
through their versions in the manifest, not here. Two kinds of import are not followed, because
the stage does not run the code they bring in:
- `from . import a, b` in a package's `__init__` (a registry registering its entries): the entry a
  stage uses (an explainer, metric, dataset or model builder module) is one of that stage's roots,
  so editing gradcam re-explains gradcam only;
- imports under `if TYPE_CHECKING:` (annotations only);
- the modules that resolve a configuration (`CONFIG_RESOLUTION`: the presets and the merging of
  defaults, preset, file and `--set`): a stage key holds the resolved settings it uses, so how they
  were resolved is no part of its code. Followed, a preset's comment re-keyed every stage of every
  run (the data stage's closure reaches them through the config's dataclasses).
The closure and the module sources are cached per process (`clear_code_cache` after editing files).
"""
from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import sys
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path
from typing import Callable, Iterable

PROJECT_PACKAGES = ("benchmark", "cxr_xai_bench")
CONFIG_RESOLUTION = frozenset({"benchmark.run.presets", "benchmark.run.config_merge"})


@functools.lru_cache(maxsize=None)
def _spec(name: str) -> ModuleSpec | None:
    """Where module `name` lives, found without running any package's __init__ where possible (a
    closure of the scoring stage must not import the report package just to look at it)."""
    parent, _, last = name.rpartition(".")
    if parent:
        above = _spec(parent)
        locations = above.submodule_search_locations if above is not None else None
        if locations is None:
            return None  # the parent is no package: `name` is a name inside a module, not a module
        spec = PathFinder.find_spec(name, list(locations))
        if spec is not None:
            return spec
    try:  # a top-level name, or a module only a meta-path finder knows (an editable install's mapping)
        return importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError):
        return None


def _spec_file(name: str) -> tuple[str | None, bool]:
    """(source file of module `name` or None, whether it is a package); (None, False): no such module."""
    mod = sys.modules.get(name)
    if mod is not None and getattr(mod, "__file__", None):  # plug-ins loaded from a path live only here
        return mod.__file__, hasattr(mod, "__path__")
    spec = _spec(name)
    if spec is None:
        return None, False
    return (spec.origin if spec.has_location else None), spec.submodule_search_locations is not None


@functools.lru_cache(maxsize=None)
def is_module(name: str) -> bool:
    file, is_pkg = _spec_file(name)
    return file is not None or is_pkg


@functools.lru_cache(maxsize=None)
def read_source(name: str) -> str:
    """The source text of module `name` ("" for one without a Python source file)."""
    file, _ = _spec_file(name)
    if file is None or not file.endswith(".py"):
        mod = sys.modules.get(name)  # compiled or frozen: its version stands for its source
        return f"# {name} {getattr(mod, '__version__', '')}"
    return Path(file).read_text(encoding="utf-8")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except those under `if TYPE_CHECKING:`."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


@functools.lru_cache(maxsize=None)
def imports_of(name: str, source: str) -> frozenset[str]:
    """The modules that module `name` (source `source`) imports, registration imports left out."""
    file, is_pkg = _spec_file(name)
    pkg = name if is_pkg else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
            continue
        if node.level:
            parts = pkg.split(".")
            base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        subs = {f"{base}.{a.name}" for a in node.names if a.name != "*" and is_module(f"{base}.{a.name}")}
        registering = is_pkg and node.level == 1 and not node.module and base == name
        if not registering:
            found |= subs
        if len(subs) < len(node.names):  # names that are no module come from the package itself
            found.add(base)
    return frozenset(m for m in found if m and m != name)


def module_closure(*roots: str, source: Callable[[str], str] | None = None) -> list[str]:
    """The roots and every project module they import, directly or not (sorted names)."""
    read = source or read_source
    project = set(PROJECT_PACKAGES) | {r.partition(".")[0] for r in roots}
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or not is_module(name):
            continue
        seen.add(name)
        todo.extend(m for m in imports_of(name, read(name))
                    if m.partition(".")[0] in project and m not in seen and m not in CONFIG_RESOLUTION)
    return sorted(seen)


def _hash(names: Iterable[str], read: Callable[[str], str]) -> str:
    h = hashlib.sha256()
    for name in names:
        h.update(f"{name}\n".encode() + read(name).encode())
    return h.hexdigest()[:12]


@functools.lru_cache(maxsize=None)
def _cached_closure(roots: tuple[str, ...]) -> str:
    return _hash(module_closure(*roots), read_source)


def code_closure(*roots: str, source: Callable[[str], str] | None = None) -> str:
    """Hash of the source of `roots` and of every project module they import: a stage's code version.

    `source` (a module name -> source text function) replaces reading the files, uncached: the
    tests key a stage as if one module were edited."""
    roots = tuple(sorted(set(roots)))
    if source is None:
        return _cached_closure(roots)
    return _hash(module_closure(*roots, source=source), source)


def clear_code_cache() -> None:
    """Forget the cached sources and closures (after a module's file changed in this process)."""
    for f in (_spec, is_module, read_source, _cached_closure):
        f.cache_clear()
