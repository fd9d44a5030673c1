"""Bad files end to end: a clear error naming the file, or, when asked, skipped and listed."""
import numpy as np
import pytest
from PIL import Image

from benchmark.config import load_config
from benchmark.runner import load_split


@pytest.fixture
def manifest_with_corrupt_file(tmp_path):
    for k in range(6):
        Image.fromarray((np.random.default_rng(k).random((32, 32)) * 255).astype(np.uint8)).save(tmp_path / f"{k}.png")
    (tmp_path / "3.png").write_bytes(b"\x89PNG\r\n\x1a\ncut short")
    rows = "\n".join(f"{k}.png,{k % 2}" for k in range(6))
    (tmp_path / "manifest.csv").write_text("image,label\n" + rows + "\n")
    return tmp_path


def _cfg(root, *extra):
    return load_config(overrides=["data.dataset='manifest'", f"data.root='{root}'", "data.size=32",
                                  "data.limit={train=0, val=0, test=0}", f"data.cache_dir='{root / 'cache'}'", *extra])


def test_corrupt_file_stops_with_its_name(manifest_with_corrupt_file):
    with pytest.raises(ValueError, match=r"3\.png.*data.skip_bad"):
        load_split(_cfg(manifest_with_corrupt_file), "test")


def test_skip_bad_skips_and_lists_the_file(manifest_with_corrupt_file):
    skipped = []
    batch = load_split(_cfg(manifest_with_corrupt_file, "data.skip_bad=true"), "test", skipped)
    assert len(batch) == 5 and "3" not in batch.ids
    assert len(skipped) == 1 and "3.png" in skipped[0]["error"]
    again = []
    load_split(_cfg(manifest_with_corrupt_file, "data.skip_bad=true"), "test", again)
    assert again == skipped, "the cache remembers what was skipped"
