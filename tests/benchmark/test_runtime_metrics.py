"""The runtime metrics against known costs, through the code that measures them.

Where they are measured: not by a metric function (their registry entries have no `fn`) but by the
runner around each explain call, `benchmark.run.jobs.run_explain`: wall time with perf_counter
around `explainer.explain` on one batch, divided by the images of that batch
(`seconds_per_image`), and `peak_memory(device)` around the same call (`peak_memory_mb`): on the
CPU the resident set size (/proc/self/statm) sampled every 2 ms by a thread, minus the RSS before
the call; on a GPU the CUDA allocator's peak minus what was allocated before. The map shard keeps
both per image, and `run_score` turns them into score rows.

The explainers here are registered test-locally (monkeypatch on the registry dict, removed after
the test): one sleeps a known time per image, one allocates and touches a known number of bytes
and holds them long enough for the sampler to see them.
"""
import time

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.run.config import Config
from benchmark.run.jobs import ShardJob, run_explain, run_score
from cxr_xai_bench.datasets import Batch
from cxr_xai_bench.explainers.registry import EXPLAINERS, Explainer

SLEEP = 0.05  # seconds per image
ALLOC_MB = 200


class Sleepy(Explainer):
    needs_model = False

    def _explain(self, model, images, targets):
        time.sleep(SLEEP * len(images))
        return torch.zeros(images.shape[0], *images.shape[2:])


class Hungry(Explainer):
    """Allocates ALLOC_MB MiB on the CPU, writes every page, holds it 0.3 s, frees it."""
    needs_model = False

    def _explain(self, model, images, targets):
        block = np.ones(ALLOC_MB * 2**20 // 8)  # float64, every page written
        time.sleep(0.3)
        total = float(block[::4096].sum())
        del block
        return torch.full((images.shape[0], *images.shape[2:]), total * 0)


class Frugal(Explainer):
    needs_model = False

    def _explain(self, model, images, targets):
        time.sleep(0.05)
        return torch.zeros(images.shape[0], *images.shape[2:])


class FakeState:
    """What run_explain / run_score ask the worker state for: a test split, a model, a prior."""

    def __init__(self, n: int, side: int = 16):
        g = torch.Generator().manual_seed(0)
        self.batch = Batch(images=torch.rand(n, 1, side, side, generator=g), labels=torch.arange(n) % 2,
                           lesion_masks=torch.zeros(n, side, side, dtype=torch.bool),
                           has_mask=torch.zeros(n, dtype=torch.bool),
                           lung_masks=torch.zeros(n, side, side, dtype=torch.bool), ids=[f"i{k}" for k in range(n)])

    def test_split(self, cfg):
        return self.batch

    def model(self, cfg, name, checkpoint, device):
        return torch.nn.Identity()

    def prior(self, path):
        return None


@pytest.fixture
def register(monkeypatch):
    def add(name, cls):
        monkeypatch.setattr(cls, "name", name)
        monkeypatch.setitem(EXPLAINERS, name, cls)
    return add


def _measure(tmp_path, explainer: str, metric: str, n: int, batch_size: int) -> pd.DataFrame:
    cfg = Config().to_dict()
    cfg["explain"]["batch_size"] = batch_size
    cfg["run"]["maps_dtype"] = "float32"
    state = FakeState(n)
    maps = str(tmp_path / f"{explainer}.npy")
    run_explain(ShardJob("explain", cfg, "m", "", explainer, "", 0, n, maps, maps, "", "cpu", False), state)
    out = str(tmp_path / f"{explainer}-{metric}.csv")
    run_score(ShardJob("score", cfg, "m", "", explainer, metric, 0, n, maps, out, "", "cpu", False), state)
    return pd.read_csv(out)


def test_seconds_per_image_is_the_wall_time_per_image(tmp_path, register):
    """10 images in batches of 4, 4, 2, each image costing 0.05 s: every image reads 0.05 s (not the
    batch's 0.2 s or 0.1 s, not the 0.5 s of the whole shard, not the batch time over the batch size)."""
    register("sleepy_test", Sleepy)
    t0 = time.perf_counter()
    df = _measure(tmp_path, "sleepy_test", "seconds_per_image", n=10, batch_size=4)
    wall = time.perf_counter() - t0
    assert list(df["image_id"]) == [f"i{k}" for k in range(10)] and (df["metric"] == "seconds_per_image").all()
    values = df["value"].to_numpy()
    assert values.min() >= SLEEP * 0.999  # time.sleep never sleeps less
    assert values.max() <= SLEEP + 0.02, values  # the call's overhead is small; loaded machine margin
    # the sum over images is the time spent in the explain calls, within the test's own wall time
    assert SLEEP * 10 <= values.sum() <= wall


def test_peak_memory_mb_sees_a_known_cpu_allocation(tmp_path, register):
    """An explain call that holds 200 MiB reads at least about 200 MiB for every image of the call
    (the peak is shared by the images of one call, not divided among them), and not wildly more;
    a call that allocates nothing reads little (the metric is the increase, not the process's RSS)."""
    register("hungry_test", Hungry)
    register("frugal_test", Frugal)
    big = _measure(tmp_path, "hungry_test", "peak_memory_mb", n=6, batch_size=3)["value"].to_numpy()
    assert len(big) == 6
    assert big.min() >= 0.95 * ALLOC_MB, big
    assert big.max() <= ALLOC_MB + 60, big  # a copy, or the model/maps counted twice, would exceed this
    small = _measure(tmp_path, "frugal_test", "peak_memory_mb", n=6, batch_size=3)["value"].to_numpy()
    assert small.max() < 20, small


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_peak_memory_mb_sees_a_known_cuda_allocation():
    """On a GPU the allocator's peak above what was allocated before: a 64 MiB tensor reads 64 MiB."""
    from benchmark.run.jobs import peak_memory

    device = torch.device("cuda")
    keep = torch.ones(16 * 2**20, device=device)  # allocated before: not counted
    with peak_memory(device) as mem:
        t = torch.empty(64 * 2**20 // 4, device=device)
        t.fill_(1)
        del t
    assert mem["mb"] == pytest.approx(64, abs=1)
    del keep
