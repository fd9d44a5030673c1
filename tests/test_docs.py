"""The README and the documentation site: short README, links that resolve, generated reference pages
that match the code, documented configs that load to what they claim, the tutorial's data, and the
site built with warnings as errors (`mkdocs build --strict`). CXR_REQUIRE_DOCS=1 (CI) turns a missing
mkdocs into a failure instead of a skip."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"

sys.path.insert(0, str(DOCS))
import gen_reference  # noqa: E402

sys.path.pop(0)

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def test_readme_is_short():
    n = len(README.read_text().splitlines())
    assert n <= 260, f"README.md has {n} lines; move detail into docs/ (at most 260)"


@pytest.mark.parametrize("page", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    """Every relative link and image of README.md and docs/**/*.md names a file that exists
    (anchors are checked by mkdocs build --strict for the docs pages)."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # code blocks hold no links
    missing = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http(s):, mailto:, in-page anchors
        path = target.split("#", 1)[0]
        if path and not (page.parent / path).exists():
            missing.append(target)
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"


def test_no_reference_outside_the_repository():
    for page in _markdown_files():
        text = page.read_text()
        assert "../shared" not in text and "design.md" not in text, page


def test_the_readme_test_command_is_what_ci_runs():
    readme = README.read_text()
    command = 'python3.11 -m pip install "tox>=4" && python3.11 -m tox'
    assert command in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'python3.11 -m pip install -q "tox>=4"' in ci and "\npython3.11 -m tox\n" in ci + "\n"


def test_generated_reference_pages_are_current():
    """docs/reference/config.md and cli.md equal what docs/gen_reference.py makes from the code."""
    stale = [p.relative_to(ROOT) for p, text in gen_reference.render().items()
             if not p.exists() or p.read_text() != text]
    assert not stale, f"{stale} are stale: run `python docs/gen_reference.py`"


def test_config_reference_covers_every_key_and_its_defaults_equal_Config(tmp_path):
    """Every key of Config() is in the reference, and the TOML block of the defaults loads to Config()."""
    from benchmark.run.config import Config, load_config

    page = (DOCS / "reference" / "config.md").read_text()
    for section, table in Config().to_dict().items():
        for key in table:
            assert f"| `{section}.{key}` |" in page, f"{section}.{key} missing from docs/reference/config.md"
    block = page.split("## The defaults as one TOML file", 1)[1]
    block = re.search(r"```toml\n(.*?)```", block, re.S).group(1)
    assert tomllib.loads(block) == Config().to_dict()
    f = tmp_path / "defaults.toml"
    f.write_text(block)
    loaded, default = load_config(f).to_dict(), Config().to_dict()
    # load_config marks every config it returns as resolved (what a run writes to config.toml)
    assert loaded["run"].pop("resolved") is True and default["run"].pop("resolved") is False
    assert loaded == default


def test_cli_reference_lists_every_command_and_preset():
    from benchmark.cli import _parser
    from benchmark.run.presets import PRESETS

    page = (DOCS / "reference" / "cli.md").read_text()
    import argparse
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name in sub.choices:
        assert f"## `{name}`" in page
    for preset in PRESETS:
        assert preset in page


def test_documented_example_configs_load():
    from benchmark.run.config import load_config

    for path in [ROOT / "configs" / "covid-qu-ex.toml", DOCS / "examples" / "my-data.toml"]:
        cfg = load_config(path)
        assert cfg.run.name == tomllib.loads(path.read_text())["run"]["name"]
    assert load_config(DOCS / "examples" / "my-data.toml").data.dataset == "manifest"


def test_your_data_tutorial_files_load(tmp_path, monkeypatch):
    """The "Your data" tutorial: make_my_data.py writes files that the manifest dataset reads, with
    the masks it says (non-empty for pneumonia, empty for normal), through the tutorial's config."""
    from benchmark.run.config import load_config
    from cxr_xai_bench.datasets import build_dataset

    sys.path.insert(0, str(DOCS / "examples"))
    try:
        import make_my_data
    finally:
        sys.path.pop(0)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(make_my_data, "SPLITS", {"train": 4, "val": 2, "test": 4})
    make_my_data.main("my-data")
    cfg = load_config(DOCS / "examples" / "my-data.toml")
    ds = build_dataset(cfg.data.dataset, split="test", size=32, **cfg.data.params)
    samples = [ds[i] for i in range(len(ds))]
    assert len(samples) == 4
    for s in samples:
        assert s.image.shape == (1, 32, 32) and s.lesion_mask is not None
        assert bool(s.lesion_mask.any()) == (s.label == 1)


def test_citation_and_license():
    cff = dict(re.findall(r"^(\w[\w-]*): *(.+)$", (ROOT / "CITATION.cff").read_text(), re.M))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert cff["cff-version"] == "1.2.0" and cff["title"] and "authors" in (ROOT / "CITATION.cff").read_text()
    assert cff["version"].strip('"') == project["version"]
    assert cff["license"] == project["license"]["text"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_docs_build_strict(tmp_path, mkdocs):
    """mkdocs build --strict: warnings (broken links and anchors, pages missing from nav, API
    objects that do not resolve) are errors. Without mkdocs it skips, and fails under CXR_REQUIRE_DOCS
    (the `mkdocs` fixture, tests/conftest.py)."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert (tmp_path / "site" / "reference" / "config" / "index.html").exists()
