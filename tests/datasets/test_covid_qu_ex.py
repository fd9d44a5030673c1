"""COVID-QU-Ex on the real files in ../shared/data (skipped on a fresh clone, a failure in CI)."""

import numpy as np
import pytest
import torch
from PIL import Image

from cxr_xai_bench.datasets import build_dataset


@pytest.fixture(scope="module")
def root(covid_root):
    return covid_root


CLASS_NAMES = ("COVID-19", "Non-COVID", "Normal")
SPLIT_FOLDERS = {"train": "Train", "val": "Val", "test": "Test"}


def _pngs(folder):
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() == ".png")


def _counts(root, split):
    """Images per class in the split's folder: the published dataset and a trimmed copy alike."""
    return {c: len(_pngs(root / SPLIT_FOLDERS[split] / c / "images")) for c in CLASS_NAMES}


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_layout_counts_labels_and_mask_rules(root, split):
    """Counts come from the folder: the published dataset (Train, Val, Test) and a copy without Test."""
    folder = root / SPLIT_FOLDERS[split]
    if split == "test" and not folder.is_dir():
        with pytest.raises(FileNotFoundError, match="Test"):
            build_dataset("covid_qu_ex", split="test", root=str(root))
        return
    counts = _counts(root, split)
    assert all(counts.values()), f"{folder}: a class folder holds no images: {counts}"
    for cls in CLASS_NAMES:  # the published layout: both masks for every image, same file name
        names = _pngs(folder / cls / "images")
        for kind in ("infection masks", "lung masks"):
            assert _pngs(folder / cls / kind) == names, f"{folder / cls / kind} does not match its images"
    ds = build_dataset("covid_qu_ex", split=split, size=64, root=str(root))
    assert len(ds) == sum(counts.values())
    labels = np.array(ds.labels())
    assert labels.sum() == counts["COVID-19"] + counts["Non-COVID"]
    by_class = {}
    for i, (cls, _) in enumerate(ds.items):
        by_class.setdefault(cls, i)
    covid, noncovid, normal = (ds[by_class[c]] for c in CLASS_NAMES)
    assert covid.label == 1 and covid.lesion_mask is not None and covid.lesion_mask.any()
    assert noncovid.label == 1 and noncovid.lesion_mask is None, "Non-COVID masks were never drawn: unknown"
    assert normal.label == 0 and normal.lesion_mask is not None and not normal.lesion_mask.any()
    for s in (covid, noncovid, normal):
        assert s.image.shape == (1, 64, 64) and s.lung_mask.any()
        assert 0 <= s.image.min() and s.image.max() <= 1
        assert s.metadata["split"] == split


def test_reads_the_png_as_published(root):
    ds = build_dataset("covid_qu_ex", split="val", size=256, root=str(root), classes=["COVID-19"])
    cls, name = ds.items[0]
    raw = np.asarray(Image.open(root / "Val" / cls / "images" / name).convert("L"))
    assert torch.allclose(ds[0].image[0], torch.tensor(raw, dtype=torch.float32) / 255)


@pytest.mark.slow  # reads every Val COVID-19 mask pair (8 s on the 2-core CPU); the fake layout below is fast
def test_focal_subset_keeps_small_lesions_and_normals(root):
    ds = build_dataset("covid_qu_ex", split="val", size=64, root=str(root), classes=["COVID-19", "Normal"], subset="focal")
    full = build_dataset("covid_qu_ex", split="val", size=64, root=str(root), classes=["COVID-19"])
    n_covid = sum(1 for c, _ in ds.items if c == "COVID-19")
    assert 0 < n_covid < len(full)
    assert sum(1 for c, _ in ds.items if c == "Normal") == _counts(root, "val")["Normal"]
    for i in [i for i, (c, _) in enumerate(ds.items) if c == "COVID-19"][:20]:
        s = ds[i]
        assert s.lesion_mask.sum() < 0.5 * s.lung_mask.sum() * 1.1  # 64 px resampling tolerance


def test_bad_arguments_name_the_thing(root, tmp_path):
    with pytest.raises(ValueError, match="unknown COVID-QU-Ex split"):
        build_dataset("covid_qu_ex", split="dev", root=str(root))
    with pytest.raises(ValueError, match="unknown COVID-QU-Ex classes"):
        build_dataset("covid_qu_ex", split="val", root=str(root), classes=["Covid"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_dataset("covid_qu_ex", split="val", root=str(tmp_path / "nowhere"))


def _fake_split(tmp_path, corrupt=False, bad_mask=False, masks=True, split="Val"):
    for cls in ("COVID-19", "Non-COVID", "Normal"):
        folders = ["images"] + (["infection masks", "lung masks"] if masks else [])
        for sub in folders:
            (tmp_path / split / cls / sub).mkdir(parents=True, exist_ok=True)
        for k in range(2):
            img = (np.random.default_rng(k).random((32, 32)) * 255).astype(np.uint8)
            Image.fromarray(img).save(tmp_path / split / cls / "images" / f"{cls}_{k}.png")
            if masks:
                m = np.zeros((16, 16) if bad_mask else (32, 32), np.uint8)
                if cls == "COVID-19":
                    m[4:10, 4:10] = 255
                Image.fromarray(m).save(tmp_path / split / cls / "infection masks" / f"{cls}_{k}.png")
                lung = np.zeros((32, 32), np.uint8)
                lung[2:30, 2:30] = 255
                Image.fromarray(lung).save(tmp_path / split / cls / "lung masks" / f"{cls}_{k}.png")
    if corrupt:
        (tmp_path / split / "Normal" / "images" / "Normal_1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return tmp_path


def test_fixture_layout_corrupt_file_and_mask_size(tmp_path):
    root = _fake_split(tmp_path / "a")
    ds = build_dataset("covid_qu_ex", split="val", size=32, root=str(root))
    assert len(ds) == 6 and ds[0].lesion_mask[5, 5]
    root = _fake_split(tmp_path / "b", corrupt=True)
    ds = build_dataset("covid_qu_ex", split="val", size=32, root=str(root))
    bad = [i for i, (c, n) in enumerate(ds.items) if n == "Normal_1.png"][0]
    with pytest.raises(ValueError, match="Normal_1.png"):
        ds[bad]
    root = _fake_split(tmp_path / "c", bad_mask=True)
    ds = build_dataset("covid_qu_ex", split="val", size=32, root=str(root))
    with pytest.raises(ValueError, match="mask size"):
        ds[0]


def test_split_without_masks_loads_images_and_labels(tmp_path):
    root = _fake_split(tmp_path, masks=False)
    ds = build_dataset("covid_qu_ex", split="val", size=32, root=str(root))
    s = ds[0]
    assert s.lesion_mask is None and s.lung_mask is None and s.label == 1


def test_test_split_is_read_when_present_and_named_when_absent(tmp_path):
    """The published dataset has Train, Val and Test; a copy without Test says which folder is missing."""
    root = _fake_split(tmp_path, split="Val")
    with pytest.raises(FileNotFoundError, match="Test"):
        build_dataset("covid_qu_ex", split="test", size=32, root=str(root))
    _fake_split(tmp_path, split="Test")
    ds = build_dataset("covid_qu_ex", split="test", size=32, root=str(root))
    assert len(ds) == 6 and ds[0].metadata["split"] == "test" and ds[0].lesion_mask[5, 5]


def test_focal_subset_on_a_fake_layout(tmp_path):
    """focal keeps annotated lesions under half the lung and every normal, drops Non-COVID (unknown)."""
    root = _fake_split(tmp_path)
    whole = np.full((32, 32), 255, np.uint8)  # a lesion over the whole lung: not focal
    Image.fromarray(whole).save(root / "Val" / "COVID-19" / "infection masks" / "COVID-19_1.png")
    ds = build_dataset("covid_qu_ex", split="val", size=32, root=str(root), subset="focal")
    assert [name for _, name in ds.items] == ["COVID-19_0.png", "Normal_0.png", "Normal_1.png"]
