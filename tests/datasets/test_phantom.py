import pytest
import torch
import torch.nn.functional as F

from cxr_xai_bench.datasets import build_dataset, collate
from cxr_xai_bench.datasets.phantom import PhantomDataset


def test_deterministic_by_seed_split_index():
    a = PhantomDataset("train", size=48, seed=3)[5]
    b = PhantomDataset("train", size=48, seed=3)[5]
    assert torch.equal(a.image, b.image) and torch.equal(a.lesion_mask, b.lesion_mask)
    c = PhantomDataset("train", size=48, seed=4)[5]
    d = PhantomDataset("val", size=48, seed=3)[5]
    assert not torch.equal(a.image, c.image) and not torch.equal(a.image, d.image)


def test_contract_types_and_range():
    s = PhantomDataset("test", size=40)[1]
    assert s.image.shape == (1, 40, 40) and s.image.dtype == torch.float32
    assert 0 <= s.image.min() and s.image.max() <= 1
    assert s.lesion_mask.dtype == torch.bool and s.lung_mask.dtype == torch.bool
    assert s.label == 1 and s.id == "phantom-test-00001"


def test_labels_balanced_and_lesions_only_in_pneumonia():
    ds = PhantomDataset("train", size=48, n=40)
    samples = [ds[i] for i in range(40)]
    assert sum(s.label for s in samples) == 20
    for s in samples:
        assert bool(s.lesion_mask.any()) == (s.label == 1), s.id
        assert s.lung_mask.float().mean() > 0.1


def test_lesion_masks_inside_lungs():
    ds = PhantomDataset("train", size=64, n=30)
    for i in range(1, 30, 2):
        s = ds[i]
        assert not (s.lesion_mask & ~s.lung_mask).any(), s.id


def test_lesion_brightens_the_image_inside_its_mask():
    ds = PhantomDataset("val", size=64, n=20)
    for i in range(1, 20, 2):
        s = ds[i]
        inside = s.image[0][s.lesion_mask].mean()
        lung_rest = s.image[0][s.lung_mask & ~s.lesion_mask].mean()
        assert inside > lung_rest + 0.05, s.id


def test_same_anatomy_at_any_resolution():
    lo = PhantomDataset("train", size=64, seed=1)[3]
    hi = PhantomDataset("train", size=128, seed=1)[3]
    # compare at 16 px so that the per-pixel noise, drawn at each resolution, averages out
    coarse = [F.interpolate(s.image[None], size=(16, 16), mode="area")[0] for s in (lo, hi)]
    assert (coarse[0] - coarse[1]).abs().mean() < 0.02
    mask_down = F.interpolate(hi.lesion_mask[None, None].float(), size=(64, 64), mode="area")[0, 0] > 0.5
    inter = (mask_down & lo.lesion_mask).sum()
    union = (mask_down | lo.lesion_mask).sum()
    assert inter / union > 0.8


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="split 'tset'"):
        PhantomDataset("tset")
    with pytest.raises(ValueError, match="size"):
        PhantomDataset("train", size=8)
    with pytest.raises(IndexError):
        PhantomDataset("train", n=4)[4]
    with pytest.raises(KeyError, match="unknown dataset 'phantm'"):
        build_dataset("phantm")


def test_collate_flags_unknown_masks_and_rejects_mismatch():
    ds = PhantomDataset("train", size=32)
    s0, s1 = ds[0], ds[1]
    s1.lesion_mask = None
    batch = collate([s0, s1])
    assert batch.has_mask.tolist() == [True, False]
    s0.lung_mask = torch.zeros(16, 16, dtype=torch.bool)
    with pytest.raises(ValueError, match="phantom-train-00000.*lung mask"):
        collate([s0, s1])
    with pytest.raises(ValueError, match="empty"):
        collate([])


def test_normal_render_of_a_pneumonia_sample_is_its_exact_counterfactual():
    """Lesions draw from their own stream: removing them changes nothing else in the X-ray."""
    from cxr_xai_bench.datasets.phantom import render
    with_lesion = render(0, "test", 7, 64, label=1)
    without = render(0, "test", 7, 64, label=0)
    changed = (with_lesion["image"] - without["image"]).abs() > 1e-3
    near = F.max_pool2d(with_lesion["lesion_mask"][None, None].float(), 9, stride=1, padding=4)[0, 0] > 0
    assert changed.any() and not (changed & ~near).any()
    assert torch.equal(with_lesion["lung_mask"], without["lung_mask"])
