"""CI's skip rules hold (issue 31): a test that needs the real data, Ray or pdflatex goes through
conftest's helpers (fixtures covid_root and pdflatex, the `ray` marker), which skip on a developer's
machine and fail where CXR_REQUIRE_DATA / CXR_REQUIRE_RAY / CXR_REQUIRE_LATEX are set. A skip of its
own on those (a skipif on a data path, pytest.importorskip("ray"), a check of a CXR_REQUIRE_ variable)
would pass CI silently where the thing is missing: this scan finds them."""
import ast
import os
import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
# what a skip about data, Ray or TeX mentions (in the skip call or the function around it)
NEEDS = re.compile(r"\bray\b|have_ray|latex|covid|qu-ex|default_root|cxr_data_root|shared/data|rsna|chexlocalize|chromium|playwright",
                   re.IGNORECASE)
SKIPS = {"skip", "skipif", "importorskip", "xfail", "skipTest", "skipUnless", "skipIf"}


def _called(node: ast.Call) -> str:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def own_skips(source: str) -> list[tuple[int, str]]:
    """(line, text) of each skip in `source` that is about data, Ray or TeX, and of each read of a
    CXR_REQUIRE_ variable: both belong to conftest's helpers only."""
    tree = ast.parse(source)
    found = []
    scopes = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"CXR_REQUIRE_\w+", node.value):
            found.append((node.lineno, f"reads {node.value}"))
        # a skip called, or named as a decorator/marker (pytest.mark.skipif without a call is rare: count it too)
        name = _called(node) if isinstance(node, ast.Call) else node.attr if isinstance(node, ast.Attribute) else ""
        if name not in SKIPS or (isinstance(node, ast.Attribute) and name in ("skip", "xfail")):
            continue
        text = ast.get_source_segment(source, node) or ""
        around = [s for s in scopes if s.lineno <= node.lineno <= (s.end_lineno or s.lineno)]
        context = text + "".join(ast.get_source_segment(source, s) or "" for s in around[-1:])
        if name == "importorskip" or NEEDS.search(context):
            found.append((node.lineno, text.splitlines()[0][:120]))
    return sorted(set(found))


def test_no_test_skips_on_data_ray_or_latex_around_the_conftest_helpers():
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        if path.name == "conftest.py" or path == Path(__file__).resolve():
            continue
        offenders += [f"{path.relative_to(TESTS)}:{line}: {text}" for line, text in own_skips(path.read_text())]
    assert not offenders, ("skips that CI's CXR_REQUIRE_* variables cannot turn into failures; use the "
                           "fixtures covid_root / pdflatex or the `ray` marker (tests/conftest.py):\n" + "\n".join(offenders))


def test_the_scan_finds_each_kind_of_own_skip():
    """The rule above on the kinds of skips it must catch (the four the issue found were of these kinds)."""
    bad = {
        "importorskip": 'import pytest\nray = pytest.importorskip("ray")\n',
        "skipif on Ray": 'import pytest\nHAVE_RAY = False\nneeds = pytest.mark.skipif(not HAVE_RAY, reason="no")\n',
        "skip on data": ('import pytest\ndef _root():\n    from x import default_root\n    r = default_root()\n'
                         '    if r is None:\n        pytest.skip("not found")\n    return r\n'),
        "skip on pdflatex": 'import shutil, pytest\ndef t():\n    if shutil.which("pdflatex") is None:\n        pytest.skip("x")\n',
        "env read": 'import os\nif os.environ.get("CXR_REQUIRE_DATA"):\n    pass\n',
    }
    for kind, source in bad.items():
        assert own_skips(source), kind
    fine = ('import pytest, torch\n@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")\n'
            'def test_gpu(covid_root):\n    pass\n@pytest.mark.ray\ndef test_ray():\n    pass\n')
    assert own_skips(fine) == []


PROBE = '''
import sys
import pytest
sys.modules["ray"] = None  # Ray "not installed" for this session: find_spec("ray") is None

def test_data(covid_root):
    pass

def test_tex(pdflatex):
    pass

@pytest.mark.ray
def test_ray():
    pass
'''


def test_the_helpers_skip_and_fail_as_ci_asks(tmp_path, monkeypatch):
    """conftest's helpers on a machine without the data, Ray and pdflatex: three skips, and three
    failures (setup errors) once the CXR_REQUIRE_* variables are set."""
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXR_REQUIRE_")}
    env.update(CXR_DATA_ROOT=str(tmp_path / "none"), PATH=str(tmp_path / "bin"), PYTHONPATH=str(TESTS))
    (tmp_path / "bin").mkdir()
    # conftest as a plug-in; rootdir here, so ../shared/data beside the project is not what decides
    cmd = [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-q", "-rs", "--rootdir",
           str(tmp_path), "-c", os.devnull, str(tmp_path / "test_probe.py")]
    from cxr_xai_bench.datasets.covid_qu_ex import default_root
    monkeypatch.setenv("CXR_DATA_ROOT", env["CXR_DATA_ROOT"])  # what the probe sees: only a source checkout's
    data_here = default_root() is not None  # ../shared/data can still be found (not an installed package's)
    loose = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    strict = subprocess.run(cmd, cwd=tmp_path, env={**env, "CXR_REQUIRE_DATA": "1", "CXR_REQUIRE_RAY": "1",
                                                    "CXR_REQUIRE_LATEX": "1"}, capture_output=True, text=True, timeout=300)
    expect = 2 if data_here else 3
    assert f"{expect} skipped" in loose.stdout and "failed" not in loose.stdout, loose.stdout[-2000:]
    # a failure in a fixture or setup hook is an "error": the session fails all the same
    assert f"{expect} error" in strict.stdout and strict.returncode != 0, strict.stdout[-2000:]
    for env_var in ("CXR_REQUIRE_RAY", "CXR_REQUIRE_LATEX") + (() if data_here else ("CXR_REQUIRE_DATA",)):
        assert f"{env_var} is set but" in strict.stdout, env_var
