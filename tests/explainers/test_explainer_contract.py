"""Every registered explainer, checked the moment it registers: shape, dtype, determinism, batching."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from datasets import collate
from datasets.phantom import PhantomDataset
from explainers import EXPLAINERS, build_explainer
from models import build_model

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


def test_gradcam_matches_its_definition(batch):
    """ReLU(sum_k mean(dy/dA_k) * A_k) on the declared layer, bilinearly upsampled."""
    torch.manual_seed(0)
    m = build_model("resnet50", gradcam_layer="layer3").eval()
    store = {}
    h = m.gradcam_layer.register_forward_hook(lambda mod, i, o: store.update(a=o))
    y = m(batch.images)
    h.remove()
    target = y.gather(1, batch.labels[:, None]).sum()
    grad = torch.autograd.grad(target, store["a"])[0]
    cam = torch.relu((grad.mean((2, 3), keepdim=True) * store["a"]).sum(1, keepdim=True))
    ref = torch.nn.functional.interpolate(cam, size=(32, 32), mode="bilinear")[:, 0]
    maps = build_explainer("gradcam").explain(m, batch.images, batch.labels)
    assert torch.allclose(maps, ref.detach(), rtol=1e-4, atol=1e-6)


def test_sobel_equals_scipy_per_image(batch):
    maps = build_explainer("sobel").explain(None, batch.images, batch.labels)
    for i in range(len(batch)):
        x = batch.images[i, 0].double().numpy()
        ref = np.hypot(ndimage.sobel(x, axis=0), ndimage.sobel(x, axis=1))
        assert np.allclose(maps[i].numpy(), ref, atol=1e-5)


def test_lime_map_holds_the_lime_package_weights(batch):
    """Every pixel carries the surrogate weight lime gives its superpixel."""
    from lime import lime_image
    torch.manual_seed(0)
    m = build_model("resnet50").eval()
    exp = build_explainer("lime", num_samples=30, batch_size=30)
    maps = exp.explain(m, batch.images[1:2], batch.labels[1:2])[0].numpy()
    seed = exp.image_seed(batch.images[1])
    rgb = batch.images[1, 0].double().numpy()[..., None].repeat(3, axis=2)

    def classify(x):
        with torch.no_grad():
            return m(torch.from_numpy(x[..., 0]).float()[:, None]).softmax(1).double().numpy()

    ref = lime_image.LimeImageExplainer(random_state=seed).explain_instance(
        rgb, classify, labels=(1,), top_labels=None, num_samples=30, batch_size=30,
        segmentation_fn=exp.segmenter(seed), random_seed=seed)
    for segment, weight in ref.local_exp[1]:
        assert np.allclose(maps[ref.segments == segment], weight, atol=1e-6)


def test_lrp_vgg16_equals_captum_with_the_same_rules(batch):
    """zennit and captum agree on VGG16 with epsilon at the input and dense layers and gamma on
    the other convolutions (captum has no z-box; its gamma assumes non-negative inputs, which holds
    after the first ReLU)."""
    from captum.attr import LRP as CaptumLRP
    from captum.attr._utils.lrp_rules import EpsilonRule, GammaRule
    from zennit.attribution import Gradient
    from zennit.composites import SpecialFirstLayerMapComposite
    from zennit.rules import Epsilon, Gamma, Pass
    from zennit.types import Activation, AvgPool, Convolution

    torch.manual_seed(0)
    m = build_model("vgg16", head="compact").eval()
    x = m.preprocess(batch.images).detach()
    onehot = torch.nn.functional.one_hot(batch.labels, 2).float()
    with m.centred_head() as net:
        composite = SpecialFirstLayerMapComposite(
            layer_map=[(Activation, Pass()), (AvgPool, Epsilon(0.01)), (Convolution, Gamma(0.25)), (torch.nn.Linear, Epsilon(0.01))],
            first_map=[(Convolution, Epsilon(0.01))])
        with Gradient(model=net, composite=composite) as attributor:
            _, ours = attributor(x.clone().requires_grad_(True), lambda logits: logits * onehot)
        convs = [mod for mod in net.modules() if isinstance(mod, torch.nn.Conv2d)]
        for mod in net.modules():
            if isinstance(mod, torch.nn.Conv2d):
                mod.rule = EpsilonRule(0.01) if mod is convs[0] else GammaRule(0.25)
            elif isinstance(mod, (torch.nn.Linear, torch.nn.AdaptiveAvgPool2d)):
                mod.rule = EpsilonRule(0.01)
        try:
            theirs = CaptumLRP(net).attribute(x.clone().requires_grad_(True), target=batch.labels).detach()
        finally:
            for mod in net.modules():
                if hasattr(mod, "rule"):
                    del mod.rule
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-6 * ours.abs().max())


@pytest.mark.parametrize("arch", ["vgg16", "resnet50"])
def test_gradcam_equals_pytorch_grad_cam(arch, batch):
    """Same model, same layer: equal after the same min-max normalisation."""
    from pytorch_grad_cam import GradCAM as ReferenceGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    torch.manual_seed(0)
    m = build_model(arch, head="compact", gradcam_layer="layer3" if arch == "resnet50" else None).eval()
    with ReferenceGradCAM(model=m, target_layers=[m.gradcam_layer]) as cam:
        ref = torch.from_numpy(cam(input_tensor=batch.images, targets=[ClassifierOutputTarget(int(t)) for t in batch.labels]))
    ours = build_explainer("gradcam").explain(m, batch.images, batch.labels)

    def minmax(x):
        flat = x.flatten(1)
        lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
        return ((flat - lo) / (hi - lo).clamp(min=1e-12)).view_as(x)

    assert torch.allclose(minmax(ours), minmax(ref.float()), atol=2e-3)
