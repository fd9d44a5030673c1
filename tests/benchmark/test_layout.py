"""The shape of benchmark/: sub-packages by job, no import circles, short modules, a docstring per
sub-package, and the one-way data flow (datasets, models, explainers never import benchmark)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 300


def _modules(package: str) -> dict[str, Path]:
    out = {}
    for f in (ROOT / package).rglob("*.py"):
        name = ".".join(f.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = f
    return out


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = pkg.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            subs = {f"{base}.{a.name}" for a in node.names} & set(known)
            # `from pkg import submodule` imports the submodule; anything else imports the package itself
            if len(subs) < len(node.names):
                found.add(base)
            found |= subs
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m in known and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circles_in_benchmark():
    mods = _modules("benchmark")
    graph = {m: _imports(m, p, mods) for m, p in mods.items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_benchmark_modules_are_short_and_sub_packages_say_what_lives_there():
    long = {m: n for m, p in _modules("benchmark").items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}
    for sub in ("run", "metrics", "report", "speed", "store"):
        doc = ast.get_docstring(ast.parse((ROOT / "benchmark" / sub / "__init__.py").read_text()))
        assert doc and len(doc) > 40, f"benchmark/{sub}/__init__.py needs a docstring saying what lives there"


@pytest.mark.parametrize("package", ["datasets", "models", "explainers"])
def test_components_never_import_benchmark(package):
    for name, path in _modules(package).items():
        for node in ast.walk(ast.parse(path.read_text())):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            assert not any(m == "benchmark" or m.startswith("benchmark.") for m in mods), f"{name} imports {mods}"


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(graph.get(m, ()))
    return seen


@pytest.mark.parametrize("package,forbidden", [("benchmark.report", ("benchmark.run",)),
                                               ("benchmark.store", ("benchmark.run", "benchmark.report"))])
def test_reporting_never_imports_running_and_the_store_is_a_leaf(package, forbidden):
    """Reporting reads a run folder through benchmark.store alone; the store imports neither side."""
    mods = _modules("benchmark")
    graph = {m: _imports(m, p, mods) for m, p in mods.items()}
    for m in (m for m in mods if m == package or m.startswith(package + ".")):
        bad = sorted(r for r in _reachable(graph, m) if r.startswith(forbidden))
        assert bad == [], f"{m} imports {bad} (directly or through the modules it imports)"


def test_code_versions_come_from_import_closures_not_hand_lists():
    """No hand-kept tuple of module names as a stage's code list (`*_CODE`, `CODE_MODULES`), and no
    call of a per-module hash: every code version is store.code.code_closure of a stage's roots."""
    for package in ("benchmark", "datasets", "models", "explainers"):
        for name, path in _modules(package).items():
            tree = ast.parse(path.read_text())
            for node in tree.body:
                targets = [t.id for t in getattr(node, "targets", [getattr(node, "target", None)]) if isinstance(t, ast.Name)]
                value = getattr(node, "value", None)
                names = [e.value for e in getattr(value, "elts", []) if isinstance(e, ast.Constant)]
                listed = any(isinstance(v, str) and "." in v for v in names)
                assert not (listed and any(t.endswith("_CODE") or t.endswith("CODE_MODULES") for t in targets)), \
                    f"{name} keeps a hand list of code modules: {targets}"
            calls = [n.func for n in ast.walk(tree) if isinstance(n, ast.Call)]
            assert not any(getattr(f, "id", getattr(f, "attr", "")) == "code_version" for f in calls), \
                f"{name} hashes named modules (code_version) instead of their import closure (code_closure)"
