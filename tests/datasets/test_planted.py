"""Planted evidence (datasets/planted.py): the paste changes exactly the marker's pixels, the mask is
those pixels, the counterfactual is the base image, and who gets a marker follows the declared rule."""
import pytest
import torch

from cxr_xai_bench.datasets import build_dataset
from cxr_xai_bench.datasets.planted import marker_mask


def _planted(split="test", **kw):
    return build_dataset("planted", split=split, size=64, seed=0, **{"base": "phantom", **kw})


@pytest.mark.parametrize("shape", ["disc", "square", "letter"])
@pytest.mark.parametrize("position", ["fixed", "random"])
def test_the_paste_changes_exactly_the_marker_and_the_counterfactual_is_the_base(shape, position):
    ds, base = _planted(test_share=1.0, shape=shape, position=position, intensity=0.97), build_dataset(
        "phantom", split="test", size=64, seed=0)
    fresh = _planted(test_share=1.0, shape=shape, position=position, intensity=0.97)  # as the reliance stage builds it
    for index in (0, 1, 5, 42):
        s, b = ds[index], base[index]
        assert s.metadata["planted"] and s.lesion_mask.any()
        changed = (s.image != b.image)[0]
        assert (changed & ~s.lesion_mask).sum() == 0, "no pixel outside the marker changes"
        assert (s.image[0][s.lesion_mask] == 0.97).all(), "every marker pixel carries the marker"
        assert torch.equal(changed, s.lesion_mask & (b.image[0] != 0.97))
        assert torch.equal(fresh.counterfactual(s.id), b.image), "the counterfactual is the image without it"
        assert torch.equal(s.metadata["base_lesion_mask"], b.lesion_mask) and s.label == b.label


def test_who_gets_the_marker():
    train = _planted(split="train", q=1.0)
    for i in range(20):
        s = train[i]
        assert s.metadata["planted"] == (s.label == 1), "q = 1: every image of the target class, no other"
    assert not any(_planted(split="train", q=0.0)[i].metadata["planted"] for i in range(20))
    half = [_planted(split="train", q=0.5)[i].metadata["planted"] for i in range(1, 200, 2)]
    assert 30 < sum(half) < 70, "q = 0.5 of the target class"
    test = _planted(test_share=0.5)
    got = [(test[i].label, test[i].metadata["planted"]) for i in range(200)]
    for label in (0, 1):
        marked = sum(p for lab, p in got if lab == label)
        assert 30 < marked < 70, f"the scored split marks about half of class {label}"
    assert [test[i].metadata["planted"] for i in range(50)] == [_planted(test_share=0.5)[i].metadata["planted"]
                                                                 for i in range(50)], "a pure function of the config"
    assert _planted(test_share=0.5)[3].lesion_mask.dtype == torch.bool
    none = _planted(test_share=0.0)
    assert none.counterfactual(none[1].id) is None and not none[1].lesion_mask.any()


def test_marker_shapes():
    disc, square, letter = (marker_mask(100, s, 0.2, 0.5, 0.5) for s in ("disc", "square", "letter"))
    assert square.sum() == 400 and 300 < disc.sum() < 330  # pi r^2 = 314 px
    assert (letter <= square).all() and 100 < letter.sum() < 200


@pytest.mark.parametrize("bad, match", [(dict(base="planted"), "base dataset"), (dict(shape="star"), "shape"),
                                        (dict(q=1.5), "q must"), (dict(extent=0.0), "extent")])
def test_bad_planted_settings_are_refused_by_name(bad, match):
    with pytest.raises(ValueError, match=match):
        _planted(**bad)
