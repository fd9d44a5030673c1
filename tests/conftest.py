"""Shared test settings: at most two torch threads in the test process (runs the tests start in
subprocesses keep torch's default), --runslow, and fixtures for patches a test needs for itself."""
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
