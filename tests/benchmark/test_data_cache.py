import torch

from benchmark.run.data_cache import cached_split
from cxr_xai_bench.datasets import collate
from cxr_xai_bench.datasets.phantom import PhantomDataset


def _batch():
    ds = PhantomDataset("test", size=36)  # 36 px: masks whose width is not a multiple of 8
    samples = [ds[i] for i in range(4)]
    samples[2].lesion_mask = None
    return collate(samples)


def test_cache_round_trip_builds_once(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return _batch(), [{"split": "test", "index": 9, "error": "bad"}]

    first, skipped1 = cached_split(tmp_path, "k", build)
    second, skipped2 = cached_split(tmp_path, "k", build)
    assert len(calls) == 1 and skipped1 == skipped2 == [{"split": "test", "index": 9, "error": "bad"}]
    ref = _batch()
    assert torch.equal(first.images, second.images)
    assert (first.images - ref.images).abs().max() <= 0.5 / 255 + 1e-6  # uint8 storage
    for name in ("lesion_masks", "has_mask", "lung_masks", "labels"):
        assert torch.equal(getattr(second, name), getattr(ref, name)), name
    assert second.ids == ref.ids and not second.has_mask[2]


def test_damaged_cache_is_rebuilt(tmp_path):
    cached_split(tmp_path, "k", lambda: (_batch(), []))
    (tmp_path / "k" / "images.npy").write_bytes(b"garbage")
    calls = []
    batch, _ = cached_split(tmp_path, "k", lambda: (calls.append(1) or _batch(), []))
    assert calls and len(batch) == 4
