"""The package version is recorded in manifest.json (environment.versions) and printed by the report's header."""
import importlib.metadata as md
import json
import tomllib
from pathlib import Path

from benchmark.run import environment

ROOT = Path(__file__).resolve().parents[2]


def _pyproject_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_versions_hold_the_package_version():
    v = environment.versions()
    assert v["cxr-xai-bench"] == environment.package_version()
    try:
        assert v["cxr-xai-bench"] == md.version("cxr-xai-bench")
    except md.PackageNotFoundError:
        assert v["cxr-xai-bench"] == _pyproject_version()


def test_package_version_falls_back_to_pyproject(monkeypatch):
    def missing(name):
        raise md.PackageNotFoundError(name)
    monkeypatch.setattr(environment.md, "version", missing)
    # a source checkout has pyproject.toml two folders above benchmark/run; an installed copy (tox) has none
    beside = Path(environment.__file__).resolve().parents[2] / "pyproject.toml"
    expected = _pyproject_version() if beside.exists() else "unknown"
    assert environment.package_version() == expected
    assert environment.versions()["cxr-xai-bench"] == expected


def test_report_header_shows_the_recorded_version(tmp_path):
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from test_report import _run_dir
    from benchmark.report.build import build_report
    run = _run_dir(tmp_path / "run", extras=False)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["versions"]["cxr-xai-bench"] = "9.8.7"
    (run / "manifest.json").write_text(json.dumps(manifest))
    build_report(run, figure_workers=1)
    head = (run / "report" / "report.md").read_text().split("\n## ")[0]
    assert "cxr-xai-bench 9.8.7" in head
