"""No process-wide state in benchmark/run, and no patching of another package's privates (issue 31).

The rules, checked on the source (AST):
1. A module-level name of benchmark/run bound to a call (an instance: `STATE = WorkerState()`) is one of
   the harmless factories (logging.getLogger, ray.remote) or on ALLOWED_INSTANCES.
2. A module-level name of benchmark/run bound to a dict, list or set (display or comprehension) is a
   constant: nothing in benchmark/ mutates it (item or attribute assignment, augmented assignment, del,
   or a mutating method such as append / update / setdefault), by its own name or where it is
   imported, unless it is on ALLOWED_MUTABLE (the plug-in import bookkeeping). No `global` statement.
3. Nothing in benchmark/ or tests/ assigns to a private attribute (`x._name = ...`, `setattr(x, "_name", ...)`)
   of anything but `self` / `cls`; tests may only use pytest's monkeypatch.setattr, which is undone after
   the test, and never on models.training's privates (the training loop takes on_epoch_saved instead).
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN = "benchmark.run"
FACTORIES = {"getLogger", "remote"}
# the one per-process cache: used only inside Ray worker processes (a driver's runs hold RunContext.state)
ALLOWED_INSTANCES = {("benchmark.run.ray_executor", "WORKER")}
# which plug-in modules this process imported (run.plugins): process-wide by nature, as sys.modules is
ALLOWED_MUTABLE = {("benchmark.run.plugins", "_LOADED"), ("benchmark.run.plugins", "_ENTRY_POINTS_DONE")}
MUTATORS = {"append", "extend", "insert", "remove", "pop", "popitem", "clear", "update", "setdefault", "add",
            "discard", "sort", "reverse", "__setitem__", "__delitem__"}
MUTABLE_DISPLAYS = (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)


def _modules(folder: str) -> dict[str, Path]:
    out = {}
    for f in sorted((ROOT / folder).rglob("*.py")):
        out[".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")] = f
    return out


def _module_bindings(tree: ast.Module) -> list[tuple[str, ast.expr]]:
    out = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if getattr(node, "value", None) is None:
            continue
        for t in targets:
            for name in ([t] if isinstance(t, ast.Name) else [e for e in getattr(t, "elts", []) if isinstance(e, ast.Name)]):
                out.append((name.id, node.value))
    return out


def _callee(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")


def _root(node: ast.expr) -> list[str]:
    """`a.b[c].d` -> ["a", "b", "d"]: the base name and the attribute chain over it."""
    chain = []
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        if isinstance(node, ast.Attribute):
            chain.append(node.attr)
        node = node.value
    return [node.id, *reversed(chain)] if isinstance(node, ast.Name) else []


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = (module if path.name == "__init__.py" else module.rpartition(".")[0]).split(".")
    return ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))


def _mutations(tree: ast.AST) -> list[tuple[ast.expr, int]]:
    """(the expression mutated, line) of every mutation in `tree`."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            out += [(t, node.lineno) for t in node.targets if isinstance(t, (ast.Attribute, ast.Subscript))]
        elif isinstance(node, ast.AugAssign) or (isinstance(node, ast.AnnAssign) and not isinstance(node.target, ast.Name)):
            out.append((node.target, node.lineno))
        elif isinstance(node, ast.Delete):
            out += [(t, node.lineno) for t in node.targets]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS:
            out.append((node.func.value, node.lineno))
    return out


def check_run_state(files: dict[str, Path]) -> list[str]:
    """Breaks of rules 1 and 2 in `files` (module name -> path; the benchmark.run ones are checked)."""
    problems, mutable = [], {}
    trees = {m: ast.parse(p.read_text()) for m, p in files.items()}
    for m, tree in trees.items():
        if not m.startswith(RUN + ".") and m != RUN:
            continue
        for name, value in _module_bindings(tree):
            if isinstance(value, ast.Call) and _callee(value) not in FACTORIES and (m, name) not in ALLOWED_INSTANCES:
                problems.append(f"{m}.{name}: a module-level instance ({ast.unparse(value)[:60]}); hold it in the "
                                f"RunContext (or a WorkerState) instead")
            elif isinstance(value, MUTABLE_DISPLAYS) and (m, name) not in ALLOWED_MUTABLE:
                mutable[(m, name)] = True
        problems += [f"{m}:{n.lineno}: global {', '.join(n.names)}" for n in ast.walk(tree)
                     if isinstance(n, ast.Global) and all((m, g) not in ALLOWED_MUTABLE for g in n.names)]
    for m, tree in trees.items():
        # local name -> (module, name) of a tracked module-level container, and local name -> module
        names = {name: (m, name) for (mm, name) in mutable if mm == m}
        modules = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = _resolve(m, files[m], node)
                for a in node.names:
                    if (base, a.name) in mutable:
                        names[a.asname or a.name] = (base, a.name)
                    if f"{base}.{a.name}" in files:
                        modules[a.asname or a.name] = f"{base}.{a.name}"
            elif isinstance(node, ast.Import):
                modules |= {a.asname: a.name for a in node.names if a.asname}
        for target, line in _mutations(tree):
            chain = _root(target)
            hit = names.get(chain[0]) if chain else None
            if hit is None and len(chain) > 1 and chain[0] in modules and (modules[chain[0]], chain[1]) in mutable:
                hit = (modules[chain[0]], chain[1])
            if hit is not None:
                problems.append(f"{m}:{line}: mutates module-level {hit[0]}.{hit[1]} ({ast.unparse(target)[:60]})")
    return problems


def check_private_assignments(files: dict[str, Path], tests: bool) -> list[str]:
    """Breaks of rule 3."""
    problems = []
    for m, path in files.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            for t in targets:
                if (isinstance(t, ast.Attribute) and t.attr.startswith("_") and not t.attr.startswith("__")
                        and not (isinstance(t.value, ast.Name) and t.value.id in ("self", "cls"))):
                    problems.append(f"{m}:{node.lineno}: assigns {ast.unparse(t)}")
            if isinstance(node, ast.Call) and _callee(node) == "setattr" and len(node.args) >= 2:
                attr, owner = node.args[1], node.args[0]
                private = isinstance(attr, ast.Constant) and str(attr.value).startswith("_") and not str(attr.value).startswith("__")
                patched = tests and isinstance(node.func, ast.Attribute) and _root(node.func.value)[:1] == ["monkeypatch"]
                if private and not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                    if not patched or "training" in ast.unparse(owner):
                        problems.append(f"{m}:{node.lineno}: {ast.unparse(node)[:80]}")
    return problems


def test_benchmark_run_keeps_no_process_wide_state():
    problems = check_run_state(_modules("benchmark"))
    assert problems == [], "\n".join(problems)


def test_nothing_patches_a_private_attribute_of_another_package():
    problems = check_private_assignments(_modules("benchmark"), tests=False)
    problems += check_private_assignments(_modules("tests"), tests=True)
    assert problems == [], "\n".join(problems)


def test_the_rules_catch_what_they_forbid(tmp_path):
    """The checks themselves: each forbidden shape in a made-up benchmark.run module is named."""
    pkg = tmp_path / "benchmark" / "run"
    pkg.mkdir(parents=True)
    (pkg / "jobs.py").write_text("STATE = WorkerState()\nCACHE = {}\nCONST = ['a']\nNAMES = ('a',)\n"
                                 "def f():\n    CACHE[1] = 2\n    global G\n")
    (pkg / "train.py").write_text("from .jobs import CONST\nfrom . import jobs\nfrom cxr_xai_bench.models import training\n"
                                  "def g():\n    CONST.append('b')\n    jobs.CACHE.setdefault(1, 2)\n    print(CONST[0])\n"
                                  "    training._save_state = None\n    self._ok = 1\n")
    files = {"benchmark.run.jobs": pkg / "jobs.py", "benchmark.run.train": pkg / "train.py"}
    problems = check_run_state(files)
    assert any("jobs.STATE: a module-level instance" in p for p in problems)
    assert any("mutates module-level benchmark.run.jobs.CACHE (CACHE[1])" in p for p in problems)
    assert any("global G" in p for p in problems)
    assert any("train:5: mutates module-level benchmark.run.jobs.CONST" in p for p in problems)
    assert any("train:6: mutates module-level benchmark.run.jobs.CACHE" in p for p in problems)
    assert len(problems) == 5, problems  # reading CONST[0] and the tuple NAMES are fine
    private = check_private_assignments(files, tests=False)
    assert private == ["benchmark.run.train:8: assigns training._save_state"]
    (pkg / "test_x.py").write_text("def test(monkeypatch):\n    monkeypatch.setattr(torch.cpu, '_amx', None)\n"
                                   "    monkeypatch.setattr(training, '_save_state', None)\n    setattr(m, '_x', 1)\n")
    private = check_private_assignments({"tests.x": pkg / "test_x.py"}, tests=True)
    assert [p.split(":")[1] for p in private] == ["3", "4"]
