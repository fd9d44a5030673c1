"""Every code block of the tutorials and of getting-started is checked here, or is a file of
docs/examples/ that a test runs, or is in an allow-list below with its reason.

- A Python block is byte-identical to a file of docs/examples/ that some test names, or is run here.
- A TOML block loads (a `--8<--` include: the included file exists and loads).
- A shell block's `python -m benchmark ...` commands parse with the real CLI parser; their
  `--config` files exist and load with their `--set` overrides and `--preset` (nothing is run);
  their `--plugin` files exist; `python docs/examples/*.py` scripts exist.
- Commands that cannot be checked here (installs, Ray cluster commands) and whole blocks that are
  notation rather than commands are listed in ALLOWED_COMMANDS / ALLOWED_BLOCKS with the reason.
"""
from __future__ import annotations

import re
import shlex
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [*sorted((DOCS / "tutorials").glob("*.md")), DOCS / "getting-started.md"]

# command prefix (after shlex) -> why it is not checked here
ALLOWED_COMMANDS = {
    "python3.11 -m venv": "creates a virtual environment; tox builds its own the same way",
    ".venv/bin/pip install": "installs the package; tox installs it the same way",
    "python3.11 -m pip install": "installs tox",
    "pip install": "installs the package or an extra; tox installs the test extra",
    "python3.11 -m tox": "the test suite itself (tests/test_docs.py checks it is what CI runs)",
    "ray start": "starts a Ray cluster (the Ray tests start a local instance instead)",
    "ray stop": "stops a Ray cluster",
}
# a plug-in given by module name that exists only on the reader's machine
ALLOWED_PLUGIN_MODULES = {"my_pkg.methods": "a placeholder for the reader's own module"}
# first line of a block -> why the block is not run as written
ALLOWED_BLOCKS = {
    "python -m benchmark run      [--config FILE]":
        "usage synopsis: brackets and placeholders are notation; its subcommand names are checked below",
}
SHELL_PROGRAMS = ("python", "python3.11", ".venv/bin/python", "pip", ".venv/bin/pip", "ray", "PYTHONPATH=.")


@dataclass
class Block:
    page: Path
    line: int
    lang: str  # the fence's info string; "" for an indented block
    code: str

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def extract_blocks(text: str, page: Path) -> list[Block]:
    """Fenced blocks (``` or ~~~, at any indent) and indented blocks (4 or more spaces deeper than
    the text they follow, after a blank line, as inside list items)."""
    lines = text.split("\n")
    out: list[Block] = []
    i, prev_indent = 0, 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^(\s*)(```|~~~)\s*(\S*)", line)
        if m:
            fence, indent, start = m.group(2), len(m.group(1)), i
            i += 1
            body = []
            while i < len(lines) and not lines[i].strip().startswith(fence):
                body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
                i += 1
            out.append(Block(page, start + 1, m.group(3), "\n".join(body) + "\n"))
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        if line.strip() and i > 0 and not lines[i - 1].strip() and indent >= prev_indent + 4:
            start, body = i, []
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) >= indent):
                body.append(lines[i])
                i += 1
            while body and not body[-1].strip():
                body.pop()
            out.append(Block(page, start + 1, "", textwrap.dedent("\n".join(body)) + "\n"))
            continue
        if line.strip():
            # the indent that text at this level has: a list item's content starts after its marker
            item = re.match(r"^(\s*)([-*+]|\d+\.)\s+", line)
            prev_indent = len(item.group(0)) if item else indent
        i += 1
    return out


def _blocks() -> list[Block]:
    return [b for page in PAGES for b in extract_blocks(page.read_text(), page)]


def _kind(block: Block) -> str:
    first = block.code.lstrip("\n").split("\n", 1)[0]
    if any(first.startswith(k) for k in ALLOWED_BLOCKS):
        return "allowed"
    if block.lang in ("python", "py"):
        return "python"
    if block.lang == "toml" or (block.lang == "" and first.startswith("[")):
        return "toml"
    if block.lang in ("bash", "sh", "shell", "console") or any(
            line.split()[0] in SHELL_PROGRAMS for line in block.code.splitlines() if line.strip() and not line.startswith("#")):
        return "shell"
    if block.lang == "" and first.startswith("image,label,split"):
        return "manifest-csv"
    return "unknown"


def shell_commands(code: str) -> list[list[str]]:
    """The commands of a shell block: continuation lines joined, comments dropped, split at && and ;."""
    joined = re.sub(r"\\\n\s*", " ", code)
    commands: list[list[str]] = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        current: list[str] = []
        for w in words + ["&&"]:
            if w in ("&&", ";"):
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(w)
    return commands


def check_command(words: list[str]) -> str:
    """'' when the command checks out, 'allowed: <reason>' when allow-listed; raises otherwise."""
    text = " ".join(words)
    for prefix, reason in ALLOWED_COMMANDS.items():
        if text.startswith(prefix):
            return f"allowed: {reason}"
    if words[0] == "PYTHONPATH=.":
        words = words[1:]
    python = words[0] in ("python", "python3.11", ".venv/bin/python")
    assert python, f"a command this test does not know: {text!r} (check it here or allow-list it with a reason)"
    if words[1:3] == ["-m", "benchmark"]:
        _check_benchmark(words[3:])
        return ""
    assert words[1].endswith(".py"), f"not a script or python -m benchmark: {text!r}"
    assert (ROOT / words[1]).is_file(), f"{text!r}: the script {words[1]} does not exist"
    return ""


def _check_benchmark(argv: list[str]) -> None:
    from benchmark.cli import _parser
    from benchmark.run.config import load_config
    try:
        args = _parser().parse_args(argv)
    except SystemExit as err:
        raise AssertionError(f"python -m benchmark {shlex.join(argv)}: the CLI parser refuses it") from err
    for plugin in getattr(args, "plugins", []):
        if plugin.endswith(".py"):
            assert (ROOT / plugin).is_file(), f"--plugin {plugin}: no such file"
        else:
            assert plugin in ALLOWED_PLUGIN_MODULES, f"--plugin {plugin}: a module this test cannot import"
    if hasattr(args, "overrides"):  # run, train, explain, score
        if args.config is not None:
            assert (ROOT / args.config).is_file(), f"--config {args.config}: no such file"
        load_config(ROOT / args.config if args.config else None, args.overrides, args.preset)


# -- the checks -------------------------------------------------------------------------------------

def test_the_extractor_finds_fenced_indented_and_list_item_blocks(tmp_path):
    page = tmp_path / "p.md"
    text = ("Text\n\n    python -m benchmark list\n\n1. **Item**:\n\n        python -m benchmark run \\\n"
            "            --preset smoke\n\n2. more\n   continued\n\n```toml\na = 1\n```\n\n- item\n  more text\n")
    blocks = extract_blocks(text, page)
    assert [(b.lang, b.code) for b in blocks] == [
        ("", "python -m benchmark list\n"), ("", "python -m benchmark run \\\n    --preset smoke\n"), ("toml", "a = 1\n")]
    assert shell_commands(blocks[1].code) == [["python", "-m", "benchmark", "run", "--preset", "smoke"]]


def test_every_block_is_classified():
    blocks = _blocks()
    assert len(blocks) >= 10
    unknown = [f"{b.where()}: {b.code[:60]!r}" for b in blocks if _kind(b) == "unknown"]
    assert not unknown, "code blocks this test neither checks nor allow-lists:\n" + "\n".join(unknown)


def test_allow_lists_are_used():
    blocks = _blocks()
    firsts = [b.code.lstrip("\n").split("\n", 1)[0] for b in blocks]
    for key in ALLOWED_BLOCKS:
        assert any(f.startswith(key) for f in firsts), f"stale ALLOWED_BLOCKS entry {key!r}"
    texts = [" ".join(c) for b in blocks if _kind(b) == "shell" for c in shell_commands(b.code)]
    for key in ALLOWED_COMMANDS:
        assert any(t.startswith(key) for t in texts), f"stale ALLOWED_COMMANDS entry {key!r}"


@pytest.mark.parametrize("block", [b for b in _blocks() if _kind(b) == "python"], ids=Block.where)
def test_python_blocks_are_examples_a_test_runs(block):
    examples = {p.read_text(): p for p in (DOCS / "examples").glob("*.py")}
    assert block.code in examples, f"{block.where()}: not byte-identical to a file of docs/examples/"
    name = examples[block.code].name
    runners = [p for p in (ROOT / "tests").rglob("*.py") if p.name != Path(__file__).name and name in p.read_text()]
    assert runners, f"{block.where()}: docs/examples/{name} is run by no test"


@pytest.mark.parametrize("block", [b for b in _blocks() if _kind(b) == "toml"], ids=Block.where)
def test_toml_blocks_load(block):
    include = re.fullmatch(r'--8<-- "([^"]+)"\n', block.code)
    text = (ROOT / include.group(1)).read_text() if include else block.code
    tomllib.loads(text)


@pytest.mark.parametrize("block", [b for b in _blocks() if _kind(b) == "shell"], ids=Block.where)
def test_shell_blocks_parse_and_their_files_exist(block):
    commands = shell_commands(block.code)
    assert commands, f"{block.where()}: no command in a shell block"
    for words in commands:
        check_command(words)


@pytest.mark.parametrize("block", [b for b in _blocks() if _kind(b) == "allowed"], ids=Block.where)
def test_synopsis_names_real_subcommands(block):
    from benchmark.cli import _parser
    sub = next(a for a in _parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    for line in block.code.splitlines():
        if line.strip().startswith("["):
            continue  # the options of the line above
        m = re.match(r"python -m (benchmark(?:\.[\w.]+)?)\s+(\w+)?", line.strip())
        assert m, f"{block.where()}: {line!r}"
        if m.group(1) == "benchmark":
            assert m.group(2) in sub.choices, f"{block.where()}: no subcommand {m.group(2)!r}"
        else:
            assert (ROOT / (m.group(1).replace(".", "/") + ".py")).is_file(), line


def test_manifest_excerpt_is_what_the_script_writes(tmp_path, monkeypatch):
    import runpy
    import sys
    blocks = [b for b in _blocks() if _kind(b) == "manifest-csv"]
    assert blocks
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["make_my_data.py", "my-data"])
    runpy.run_path(str(DOCS / "examples" / "make_my_data.py"), run_name="__main__")
    written = (tmp_path / "my-data" / "manifest.csv").read_text().splitlines()
    for b in blocks:
        shown = b.code.strip().splitlines()
        assert written[:len(shown)] == shown, f"{b.where()}: not the head of the manifest make_my_data.py writes"


def test_a_broken_command_fails_the_check():
    with pytest.raises(AssertionError, match="refuses"):
        check_command(shlex.split("python -m benchmark run --preset nonesuch"))
    with pytest.raises(AssertionError, match="no such file"):
        check_command(shlex.split("python -m benchmark run --config configs/nonesuch.toml"))
    with pytest.raises(AssertionError, match="no such file"):
        check_command(shlex.split("python -m benchmark list --plugin ./nonesuch.py"))
    with pytest.raises(AssertionError, match="does not exist"):
        check_command(shlex.split("python docs/examples/nonesuch.py"))
    with pytest.raises(Exception, match="models.names|unknown|nonesuch"):
        check_command(shlex.split("python -m benchmark run --set 'models.nonesuch=1'"))
