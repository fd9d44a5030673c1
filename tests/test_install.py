"""What `pip install .` puts into an environment: the top-level import names are `benchmark` (the
command `python -m benchmark`) and `cxr_xai_bench` only, and the package installs beside Hugging
Face's `datasets` without overwriting it (both import and work afterwards).

Both tests build the wheel from the source tree (pip fetches setuptools from the registry);
the second makes a fresh virtual environment that sees this environment's packages (torch, numpy,
...) through a .pth file, installs Hugging Face `datasets` from the registry into it, then our
wheel, and imports both."""
from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.integration
ALLOWED_TOP_LEVEL = {"benchmark", "cxr_xai_bench"}


def _pip(python: str | Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args], cwd=cwd,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"pip {' '.join(args)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _pip(sys.executable, "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT))
    (found,) = out.glob("cxr_xai_bench-*.whl")
    return found


def _top_level(whl: Path) -> set[str]:
    names = zipfile.ZipFile(whl).namelist()
    return {n.split("/")[0].removesuffix(".py") for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}


def test_the_wheel_installs_only_project_names(wheel):
    assert _top_level(wheel) == ALLOWED_TOP_LEVEL
    names = set(zipfile.ZipFile(wheel).namelist())
    # every component folder of the source tree is inside the namespace, none is left out
    for folder in ("datasets", "models", "explainers"):
        for src in (ROOT / folder).glob("*.py"):
            assert f"cxr_xai_bench/{folder}/{src.name}" in names, f"{folder}/{src.name} is not in the wheel"
    for src in (ROOT / "benchmark").rglob("*.py"):
        assert src.relative_to(ROOT).as_posix() in names, f"{src.relative_to(ROOT)} is not in the wheel"


def test_the_top_level_check_sees_a_generic_name():
    """The check above would catch a wheel that ships a top-level `datasets` package."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        fake = Path(d) / "x-0-py3-none-any.whl"
        with zipfile.ZipFile(fake, "w") as z:
            z.writestr("datasets/__init__.py", "")
            z.writestr("benchmark/__init__.py", "")
            z.writestr("x-0.dist-info/METADATA", "")
        assert _top_level(fake) == {"datasets", "benchmark"} != ALLOWED_TOP_LEVEL


def test_installs_beside_hugging_face_datasets(wheel, tmp_path):
    env = tmp_path / "env"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # this environment's packages (torch, numpy, ...) after the fresh one's own, so nothing is downloaded twice
    here = [p for p in sys.path if p.endswith("site-packages")]
    Path(site, "zz_outer_env.pth").write_text("\n".join(here) + "\n")
    _pip(python, "install", "-q", "datasets")
    _pip(python, "install", "-q", "--no-deps", str(wheel))
    code = ("import datasets, cxr_xai_bench.datasets as ours, benchmark.cli\n"
            "assert hasattr(datasets, 'load_dataset'), datasets.__file__\n"
            "assert 'phantom' in ours.DATASETS\n"
            "ds = datasets.Dataset.from_dict({'a': [1, 2, 3]})\n"
            "assert ds.num_rows == 3\n"
            "print(datasets.__file__); print(ours.__file__)")
    r = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    hf, mine = r.stdout.split()
    assert Path(hf).parent.name == "datasets" and str(Path(site)) in hf
    assert Path(mine).parent.parent.name == "cxr_xai_bench"
