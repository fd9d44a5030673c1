"""Shared test settings: at most two torch threads in the test process (runs the tests start in
subprocesses keep torch's default), --runslow, fixtures for patches a test needs for itself, and the
checks of a run folder's store that the resume and Ray tests share (fixture run_store)."""
import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow or perf")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords or "perf" in item.keywords:
            item.add_marker(skip)


# -- what a test needs from the machine: the one place a test skips for missing data, Ray or TeX ------
# Each helper skips on a developer's machine and fails where CI asks for the thing (CXR_REQUIRE_DATA,
# CXR_REQUIRE_RAY, CXR_REQUIRE_LATEX, CXR_REQUIRE_BROWSER). tests/test_skip_rules.py fails on a skip that goes around them.
# Tests reach them through fixtures (covid_root, pdflatex) and the `ray` marker: under
# --import-mode=importlib a test module cannot import conftest.

def _missing(env: str, what: str) -> None:
    import os
    if os.environ.get(env):
        pytest.fail(f"{env} is set but {what}", pytrace=False)
    pytest.skip(f"{what} (set {env}=1 to make this a failure)")


# the development and CI checkouts have the real data beside them; a test run without
# CXR_DATA_ROOT looks there (the package itself only reads CXR_DATA_ROOT or data.root)
_SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if _SHARED_DATA.is_dir():
    os.environ.setdefault("CXR_DATA_ROOT", str(_SHARED_DATA))


def require_data():
    """The COVID-QU-Ex folder (../shared/data or $CXR_DATA_ROOT); skips without it, fails under CXR_REQUIRE_DATA."""
    from cxr_xai_bench.datasets.covid_qu_ex import default_root
    root = default_root()
    if root is None:
        _missing("CXR_REQUIRE_DATA", "COVID-QU-Ex was not found (../shared/data or $CXR_DATA_ROOT)")
    return root


def require_ray() -> None:
    """Ray importable; skips without it, fails under CXR_REQUIRE_RAY."""
    import importlib.util
    if importlib.util.find_spec("ray") is None:
        _missing("CXR_REQUIRE_RAY", "Ray is not installed (pip install '.[ray]')")


def require_latex() -> str:
    """The pdflatex executable; skips without it, fails under CXR_REQUIRE_LATEX."""
    import shutil
    engine = shutil.which("pdflatex")
    if engine is None:
        _missing("CXR_REQUIRE_LATEX", "pdflatex is not installed")
    return engine


def require_mkdocs() -> str:
    """The mkdocs executable (this interpreter's environment first); skips without it, fails under CXR_REQUIRE_DOCS."""
    import shutil
    import sys
    from pathlib import Path
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    if mkdocs is None:
        _missing("CXR_REQUIRE_DOCS", "mkdocs is not installed (pip install '.[docs]')")
    return mkdocs


def require_browser() -> str:
    """The system's Chromium with Playwright to drive it; skips without either, fails under CXR_REQUIRE_BROWSER."""
    import importlib.util
    import shutil
    if importlib.util.find_spec("playwright") is None:
        _missing("CXR_REQUIRE_BROWSER", "playwright is not installed (pip install '.[test]')")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        _missing("CXR_REQUIRE_BROWSER", "chromium is not installed (apt-get install chromium)")
    return chromium


@pytest.fixture(scope="session")
def chromium():
    return require_browser()


@pytest.fixture(scope="session")
def mkdocs():
    return require_mkdocs()


@pytest.fixture(scope="session")
def covid_root():
    return require_data()


@pytest.fixture(scope="session")
def pdflatex():
    return require_latex()


def pytest_runtest_setup(item):
    if item.get_closest_marker("ray") is not None:  # the marker is the way to ask for Ray
        require_ray()


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test: tiny networks on a shared 2-core CPU only lose by a second one."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def np_trapz(monkeypatch):
    """np.trapz for one test: quantus 0.6 calls it, and numpy 2.4 removed it (never patched at import)."""
    monkeypatch.setattr(np, "trapz", getattr(np, "trapz", None) or np.trapezoid, raising=False)


# -- a run folder's store, as the resume and Ray tests check it ---------------------------------

RUNTIME_METRICS = ("seconds_per_image", "peak_memory_mb")  # measurements, not results: left out of equality


def stored_pieces(out):
    """Every finished piece of a run folder's store, relative path -> (mtime, bytes): checkpoints, the
    context folder (the training prior), complete map shards (.npy once its .json exists, and the
    .json), score shards (.csv, and its .aux.npz once the .csv exists). Temp files and epoch states
    are not finished pieces."""
    from benchmark.store.files import map_shard_complete

    def finished(p):
        top = p.relative_to(out).parts[0]
        if p.name.endswith(".tmp") or p.name.endswith(".state.pt"):
            return False
        if top == "maps":
            return map_shard_complete(p.with_name(p.name.removesuffix(".json")))
        if top == "scores":
            return p.with_name(p.name.removesuffix(".aux.npz")).exists()
        return top in ("checkpoints", "context")
    return {p.relative_to(out): (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*")
            if p.is_file() and finished(p)}


def assert_untouched(out, kept):
    """Every piece of a `stored_pieces` snapshot is still there with the same mtime and bytes."""
    for rel, (mtime, data) in kept.items():
        p = out / rel
        assert p.exists(), f"{rel} was removed"
        assert p.stat().st_mtime_ns == mtime and p.read_bytes() == data, f"{rel} was written again"


def run_results(out):
    """A run's score table without the runtime metrics."""
    import pandas as pd
    s = pd.read_csv(out / "scores.csv", dtype={"image_id": str})
    return s[~s.metric.isin(RUNTIME_METRICS)].reset_index(drop=True)


def run_work(out):
    """The manifest's work counts: stage -> {"computed": n, "reused": n}."""
    return json.loads((out / "manifest.json").read_text())["work"]


def assert_same_numbers(out, reference):
    """The score table exactly, and every map and (non-runtime) score shard byte for byte."""
    import pandas as pd
    pd.testing.assert_frame_equal(run_results(out), run_results(reference), check_exact=True)
    for folder, suffix in (("maps", ".npy"), ("scores", ".csv")):
        mine = sorted(p.relative_to(out) for p in (out / folder).rglob(f"shard-*{suffix}"))
        assert mine == sorted(p.relative_to(reference) for p in (reference / folder).rglob(f"shard-*{suffix}"))
        for rel in mine:
            if not any(m in str(rel) for m in RUNTIME_METRICS):
                assert (out / rel).read_bytes() == (reference / rel).read_bytes(), rel


# Ray workers against the in-process driver: the workers take the driver's torch settings and its resolved
# precision (ray_executor.driver_settings, runner.resolve_precisions), and on this 2-core AVX2 EPYC the
# numbers are equal bit for bit; on AVX-512/AMX machines 3.1% and 1.0% of the scores of the two Ray tests
# differed below the sixth significant digit (oneDNN's kernels in a fresh worker process may split a
# reduction otherwise). The bound: scores within rtol 1e-5 + atol 1e-7; the stored float16 maps (11
# significant bits, scaled per map) within one float16 step (rtol 2**-10); everything else exact.
SCORE_RTOL, SCORE_ATOL, MAP_RTOL = 1e-5, 1e-7, 2.0 ** -10


def _close_tables(mine, ref, what):
    import pandas as pd
    assert list(mine.columns) == list(ref.columns) and len(mine) == len(ref), what
    keys = [c for c in mine.columns if c != "value"]
    pd.testing.assert_frame_equal(mine[keys], ref[keys], check_exact=True, obj=what)  # ids, rows, order
    a, b = mine["value"].to_numpy(float), ref["value"].to_numpy(float)
    assert (np.isnan(a) == np.isnan(b)).all(), f"{what}: NaN pattern differs"
    np.testing.assert_allclose(a, b, rtol=SCORE_RTOL, atol=SCORE_ATOL, equal_nan=True, err_msg=what)


def assert_close_numbers(out, reference):
    """assert_same_numbers within the bound above: the score table and every non-runtime score shard
    (ids, rows, columns and NaN pattern exactly; values within SCORE_RTOL/SCORE_ATOL), and every map shard
    (same files, shapes and NaN pattern; values within MAP_RTOL of the map's largest magnitude)."""
    import pandas as pd
    from benchmark.store.files import read_map_shard
    _close_tables(run_results(out), run_results(reference), "scores.csv")
    for folder, suffix in (("maps", ".npy"), ("scores", ".csv")):
        mine = sorted(p.relative_to(out) for p in (out / folder).rglob(f"shard-*{suffix}"))
        assert mine == sorted(p.relative_to(reference) for p in (reference / folder).rglob(f"shard-*{suffix}"))
        for rel in mine:
            if any(m in str(rel) for m in RUNTIME_METRICS):
                continue
            if suffix == ".csv":
                _close_tables(pd.read_csv(out / rel, dtype={"image_id": str}),
                              pd.read_csv(reference / rel, dtype={"image_id": str}), str(rel))
                continue
            sa, sb = read_map_shard(out / rel), read_map_shard(reference / rel)
            a, b = np.asarray(sa.maps, dtype=np.float32), np.asarray(sb.maps, dtype=np.float32)
            assert list(sa.ids) == list(sb.ids) and a.shape == b.shape and (np.isnan(a) == np.isnan(b)).all(), rel
            scale = np.nanmax(np.abs(b), axis=tuple(range(1, b.ndim)), keepdims=True) if b.size else 1.0
            assert (np.nan_to_num(np.abs(a - b)) <= MAP_RTOL * np.nan_to_num(scale) + SCORE_ATOL).all(), rel


@pytest.fixture(scope="session")
def run_store():
    """The run-folder helpers above (stored_pieces, assert_untouched, run_results, run_work,
    assert_same_numbers, assert_close_numbers) for test modules: under --import-mode=importlib a test cannot import conftest."""
    return SimpleNamespace(pieces=stored_pieces, assert_untouched=assert_untouched, results=run_results,
                           work=run_work, assert_same_numbers=assert_same_numbers,
                           assert_close_numbers=assert_close_numbers)


@pytest.fixture
def clean_registries():
    """Whatever a test (or its plug-ins) registers is removed afterwards, so other tests see the
    built-ins only: the four registries, the plug-in loader's record and the plug-ins' modules."""
    import sys

    from benchmark.metrics import METRICS
    from benchmark.run import plugins
    from cxr_xai_bench.datasets import DATASETS
    from cxr_xai_bench.explainers import EXPLAINERS
    from cxr_xai_bench.models import MODELS
    regs = (EXPLAINERS, METRICS, DATASETS, MODELS)
    before = [dict(r) for r in regs]
    loaded, modules = dict(plugins._LOADED), set(sys.modules)
    yield
    for reg, old in zip(regs, before):
        reg.clear()
        reg.update(old)
    plugins._LOADED.clear()
    plugins._LOADED.update(loaded)
    for name in set(sys.modules) - modules:
        if name.startswith(plugins.PATH_PREFIX):
            del sys.modules[name]
