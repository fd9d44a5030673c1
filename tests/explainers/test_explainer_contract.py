"""Every registered explainer, checked the moment it registers: shape, dtype, determinism, batching."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from cxr_xai_bench.datasets import collate
from cxr_xai_bench.datasets.phantom import PhantomDataset
from cxr_xai_bench.explainers import EXPLAINERS, build_explainer
from cxr_xai_bench.models import build_model

FAST = {"lime": {"num_samples": 20, "batch_size": 20}, "lime_package": {"num_samples": 20, "batch_size": 20}}


@pytest.fixture(scope="module")
def batch():
    return collate([PhantomDataset("test", size=32)[i] for i in range(3)])


@pytest.fixture(scope="module", params=["vgg16", "resnet50"])
def model(request):
    torch.manual_seed(0)
    return build_model(request.param, head="compact").eval()


def _context(batch, sl=slice(None)):
    return {"lung_masks": batch.lung_masks[sl], "lesion_masks": batch.lesion_masks[sl],
            "train_mean_mask": batch.lesion_masks.float().mean(0)}


@pytest.mark.parametrize("name", sorted(EXPLAINERS))
def test_contract(name, model, batch):
    exp = build_explainer(name, seed=1, **FAST.get(name, {}))
    maps = exp.explain(model, batch.images, batch.labels, **_context(batch))
    assert maps.shape == (3, 32, 32) and maps.dtype == torch.float32
    assert torch.isfinite(maps).all()
    again = build_explainer(name, seed=1, **FAST.get(name, {})).explain(model, batch.images, batch.labels, **_context(batch))
    assert torch.equal(maps, again), "same seed must give the same maps"
    one = exp.explain(model, batch.images[2:3], batch.labels[2:3], **_context(batch, slice(2, 3)))
    assert torch.allclose(one[0], maps[2], rtol=1e-4, atol=1e-6), "batched must equal one-by-one"
    if not exp.signed:
        assert (maps >= 0).all()


def test_unknown_explainer_and_bad_parameters():
    with pytest.raises(KeyError, match="unknown explainer 'gradcan'"):
        build_explainer("gradcan")
    with pytest.raises(TypeError, match="explainer 'lime': bad parameters"):
        build_explainer("lime", samples=3)
    with pytest.raises(ValueError, match="unknown LRP preset"):
        build_explainer("lrp", preset="alpha9")


def test_baselines_read_the_dataset(batch):
    assert torch.equal(build_explainer("oracle").explain(None, batch.images, batch.labels, **_context(batch)),
                       batch.lesion_masks.float())
    assert torch.equal(build_explainer("lung_prior").explain(None, batch.images, batch.labels, **_context(batch)),
                       batch.lung_masks.float())
    c = build_explainer("center").explain(None, batch.images, batch.labels)
    assert c[0].argmax() in (15 * 32 + 15, 15 * 32 + 16, 16 * 32 + 15, 16 * 32 + 16)
    with pytest.raises(ValueError, match="lung_prior needs \\['lung_masks'\\]"):
        build_explainer("lung_prior").explain(None, batch.images, batch.labels)


def test_mismatched_targets_are_rejected(model, batch):
    with pytest.raises(ValueError, match="3 images but 2 targets"):
        build_explainer("gradcam").explain(model, batch.images, batch.labels[:2])


@pytest.mark.parametrize("arch,preset", [("vgg16", "auto"), ("vgg16_bn", "auto"), ("resnet50", "auto"),
                                         ("resnet50", "epsilon_plus_flat"), ("vgg16_bn", "epsilon_alpha2beta1_flat")])
def test_lrp_conserves_relevance(arch, preset, batch):
    """With bias-free rules every layer conserves: input relevance sums to the explained logit."""
    torch.manual_seed(0)
    m = build_model(arch, head="compact").eval()
    with torch.no_grad():  # logits of a freshly initialised network are tiny; scale them up
        m.net.get_submodule(m.head_layer_name).weight.mul_(100)
    lrp = build_explainer("lrp", zero_bias=True, preset=preset)
    rel, logit = lrp.relevance(m, batch.images, batch.labels)
    assert torch.allclose(rel.sum((1, 2, 3)), logit, rtol=0.01, atol=1e-6)
    maps = lrp.explain(m, batch.images, batch.labels)
    assert torch.allclose(maps.sum((1, 2)), logit, rtol=0.01, atol=1e-6)


def test_sobel_equals_scipy_per_image(batch):
    maps = build_explainer("sobel").explain(None, batch.images, batch.labels)
    for i in range(len(batch)):
        x = batch.images[i, 0].double().numpy()
        ref = np.hypot(ndimage.sobel(x, axis=0), ndimage.sobel(x, axis=1))
        assert np.allclose(maps[i].numpy(), ref, atol=1e-5)


# Agreement with independent implementations (LRP vs captum, Grad-CAM vs its definition and
# pytorch-grad-cam, LIME vs the lime package) lives in test_explainer_reference_*.py, on
# non-degenerate models and at sizes where the comparisons can fail.
