"""data.resize and data.mask_values (issue 27): config keys, part of the data key, passed to the
dataset builders by read_split, and refused by name where a plug-in dataset cannot take them."""
import numpy as np
import pytest
from PIL import Image

from benchmark.run.config import load_config
from benchmark.run.data import data_key, read_split


def test_config_keys_and_defaults():
    cfg = load_config()
    assert cfg.data.resize == "pad" and cfg.data.mask_values == []
    cfg = load_config(overrides=["data.resize=crop", "data.mask_values=[2, 3]"])
    assert cfg.data.resize == "crop" and cfg.data.mask_values == [2, 3]


def test_resize_and_mask_values_are_part_of_the_data_key():
    base = data_key(load_config(), "test")
    for override in ("data.resize=crop", "data.mask_values=[2]"):
        other = data_key(load_config(overrides=[override]), "test")
        assert other != base, override
    assert base["resize"] == "pad" and base["mask_values"] == []


@pytest.fixture
def wide_manifest(tmp_path):
    """20x40 (H x W) grey image with a white 4x4 square at rows 6..9, cols 22..25, and its 0/1 mask."""
    img = np.full((20, 40), 128, np.uint8)
    img[6:10, 22:26] = 255
    Image.fromarray(img).save(tmp_path / "w.png")
    Image.fromarray((img == 255).astype(np.uint8)).save(tmp_path / "w_mask.png")
    (tmp_path / "m.csv").write_text("image,label,mask,split\nw.png,1,w_mask.png,test\n")
    return tmp_path / "m.csv"


def _cfg(csv, *overrides):
    return load_config(overrides=["data.dataset=manifest", f"data.params.path='{csv}'", "data.size=20",
                                  "data.cache_dir=''", *overrides])


def test_read_split_passes_resize_to_the_dataset(wide_manifest):
    crop = read_split(_cfg(wide_manifest, "data.resize=crop"), "test")
    rows, cols = np.nonzero(crop.lesion_masks[0].numpy())
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (6, 9, 12, 15)  # columns 10..29 kept
    pad = read_split(_cfg(wide_manifest), "test")
    rows, cols = np.nonzero(pad.lesion_masks[0].numpy())
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (8, 9, 11, 12)  # 40x40 padded, halved
    assert float(pad.images[0, 0, 0, 0]) == 0.0  # padded black


def test_read_split_passes_mask_values(wide_manifest, tmp_path):
    labels = np.zeros((20, 40), np.uint8)
    labels[6:10, 22:26], labels[0, 0] = 2, 1
    Image.fromarray(labels).save(tmp_path / "w_mask.png")
    with pytest.raises(ValueError, match=r"w_mask\.png holds 3 distinct values"):
        read_split(_cfg(wide_manifest, "data.resize=crop"), "test")
    batch = read_split(_cfg(wide_manifest, "data.resize=crop", "data.mask_values=[2]"), "test")
    assert int(batch.lesion_masks[0].sum()) == 16


def test_a_plugin_dataset_without_the_arguments(monkeypatch):
    from cxr_xai_bench.datasets import DATASETS
    from cxr_xai_bench.datasets.phantom import PhantomDataset

    class Old(PhantomDataset):
        def __init__(self, split="test", size=64, seed=0):  # written before data.resize existed
            super().__init__(split=split, size=size, seed=seed, n=4)

    monkeypatch.setitem(DATASETS, "old_plugin", Old)
    assert len(read_split(load_config(overrides=["data.dataset=old_plugin", "data.size=32"]), "test")) == 4
    with pytest.raises(ValueError, match="data.resize = 'crop': dataset 'old_plugin' does not take 'resize'"):
        read_split(load_config(overrides=["data.dataset=old_plugin", "data.size=32", "data.resize=crop"]), "test")
