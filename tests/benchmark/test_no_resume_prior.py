"""The stored training prior (mask_prior's input, context/train-prior-<key>.npy) is kept by a
resumed run and written again without resume (`--no-resume`), like every other stored piece: a
damaged or stale prior must not survive a run that was told to recompute everything (issue 17)."""
from pathlib import Path

import numpy as np
import torch

from benchmark.run.config import load_config
from benchmark.run.context import RunContext
from benchmark.run.pipeline import store_prior as _store_prior
from cxr_xai_bench.datasets import Batch


def _train(n=6):
    """Pneumonia images (even indices) with a lesion at rows 2-4, columns 3-5; normals without one."""
    labels = torch.tensor([1, 0] * (n // 2))
    lesions = torch.zeros(n, 8, 8, dtype=torch.bool)
    lesions[labels == 1, 2:5, 3:6] = True
    return Batch(torch.rand(n, 1, 8, 8), labels, lesions, torch.ones(n, dtype=torch.bool),
                 torch.ones(n, 8, 8, dtype=torch.bool), [f"img{i}" for i in range(n)])


def test_no_resume_rewrites_the_stored_prior(tmp_path):
    cfg, train, cpu = load_config(preset="smoke"), _train(), torch.device("cpu")
    path = Path(_store_prior(RunContext(cfg, tmp_path, cpu), train))
    assert path.parent == tmp_path / "context"
    prior = np.load(path)
    assert prior[3, 4] == 1 and prior[0, 0] == 0 and prior.sum() == 9
    path.write_bytes(b"damaged")
    assert _store_prior(RunContext(cfg, tmp_path, cpu, resume=True), train) == str(path)
    assert path.read_bytes() == b"damaged", "a resumed run keeps the stored prior"
    assert _store_prior(RunContext(cfg, tmp_path, cpu, resume=False), train) == str(path)
    np.testing.assert_array_equal(np.load(path), prior)  # written again from the training data
