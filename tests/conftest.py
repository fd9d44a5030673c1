"""Shared test settings: at most two torch threads in the test process (runs the tests start in
subprocesses keep torch's default), --runslow, fixtures for patches a test needs for itself, and the
checks of a run folder's store that the resume and Ray tests share (fixture run_store)."""
import json
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
    from benchmark.run.store import map_shard_complete

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


@pytest.fixture(scope="session")
def run_store():
    """The run-folder helpers above (stored_pieces, assert_untouched, run_results, run_work,
    assert_same_numbers) for test modules: under --import-mode=importlib a test cannot import conftest."""
    return SimpleNamespace(pieces=stored_pieces, assert_untouched=assert_untouched, results=run_results,
                           work=run_work, assert_same_numbers=assert_same_numbers)
