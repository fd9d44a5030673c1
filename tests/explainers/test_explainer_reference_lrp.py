"""The registered `lrp` explainer against an independent LRP on VGG networks.

What is under test is the project's own code path: `build_explainer("lrp")` with its preset
("auto" picks epsilon_gamma_box for VGG), its canonizer (batch norm merged into the convolutions),
the model's ImageNet normalisation and z-box bounds (`model.input_bounds`), and the model's output
folded into the last layer (`centred_head`).

The reference shares none of that code:
- the network is rebuilt by hand from the model's parameters: batch norm folded into the preceding
  convolution, the output's centring (when the model centres) folded into the last layer;
- the input is normalised with the published ImageNet constants, and the z-box bounds are those
  constants' images of black (0) and white (1);
- every layer above the first convolution is propagated by captum's LRP with the rules of the
  composite (gamma on convolutions, epsilon on the dense layer, a 1e-6-stabilised epsilon on the
  average pool, which is zennit's Norm); captum is correct on a plain feed-forward VGG (it is not
  on residual networks, so ResNet50 is not compared here);
- the first convolution's z-box rule (Montavon et al. 2017, bias-free denominator) is written out
  by hand.

captum's GammaRule modifies the weights only; Montavon et al. (2019) treat the bias as the weight
of a constant input and modify it the same way (b + gamma b+), as zennit does, so the reference
adds that to captum's rule (`TextbookGamma`). Its stabiliser is set to zennit's 1e-6.

The networks get non-degenerate weights (non-zero conv biases, batch-norm statistics away from the
identity, a dense layer whose logits are O(0.1-1)), so the relevance is far above the tolerance,
and the maps are checked not to be constant. Everything runs in float64 so the tolerances can be
tight relative ones: a wrong epsilon, gamma, bound or canonizer moves the maps by percents.
"""
import copy

import pytest
import torch
import torchvision
from captum.attr import LRP as CaptumLRP
from captum.attr._utils.lrp_rules import EpsilonRule, GammaRule
from torch import nn

from cxr_xai_bench.datasets import collate
from cxr_xai_bench.datasets.phantom import PhantomDataset
from cxr_xai_bench.explainers import build_explainer
from cxr_xai_bench.models import build_model
from cxr_xai_bench.models.builders import XrayClassifier

# the published constants, rounded to float32 as a model built in float32 holds them
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).double().view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).double().view(1, 3, 1, 1)
# VGG16's 13 convolutions and 5 max pools, narrower (16-64 channels instead of 64-512), so the
# comparison runs in well under a second on a CPU; the real VGG16 runs in the slow test
NARROW_VGG16 = [16, 16, "M", 32, 32, "M", 32, 32, 32, "M", 64, 64, 64, "M", 64, 64, 64, "M"]
TARGETS = torch.tensor([0, 1, 1])  # both classes, neither always the phantom's label


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread):
    """Small networks on a shared 2-core CPU: a second thread only adds contention."""


@pytest.fixture(scope="module")
def images():
    return collate([PhantomDataset("test", size=48)[i] for i in range(3)]).images.double()


class NarrowVGG(nn.Module):
    """torchvision's VGG (its `make_layers`, init and forward) with the compact head; built
    directly because torchvision's VGG constructor first initialises the 120M-weight dense head."""

    def __init__(self, batch_norm: bool):
        super().__init__()
        self.features = torchvision.models.vgg.make_layers(NARROW_VGG16, batch_norm=batch_norm)
        self.avgpool, self.classifier = nn.AdaptiveAvgPool2d(1), nn.Linear(64, 2)
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def narrow_vgg(batch_norm: bool) -> XrayClassifier:
    torch.manual_seed(0)
    net = NarrowVGG(batch_norm)
    last_relu = [n for n, m in net.features.named_children() if isinstance(m, nn.ReLU)][-1]
    return XrayClassifier(net, "vgg16_bn" if batch_norm else "vgg16", f"features.{last_relu}", head_layer="classifier")


def non_degenerate(model: XrayClassifier, seed: int = 0) -> XrayClassifier:
    """Random conv biases, batch-norm statistics and affine parameters away from the identity, a
    dense layer with logits of order 0.1-1 (torchvision initialises biases to 0 and the dense
    weights at std 0.01, which leaves logits near 1e-3)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.net.modules():
            if isinstance(mod, nn.Conv2d) and mod.bias is not None:
                mod.bias.copy_(0.05 * torch.randn(mod.bias.shape, generator=g))
            elif isinstance(mod, nn.BatchNorm2d):
                n = mod.num_features
                mod.weight.copy_(0.5 + torch.rand(n, generator=g))
                mod.bias.copy_(0.1 * torch.randn(n, generator=g))
                mod.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                mod.running_var.copy_(0.5 + torch.rand(n, generator=g))
        head = model.net.get_submodule(model.head_layer_name)
        head.weight.copy_(4 * torch.randn(head.weight.shape, generator=g) / head.in_features ** 0.5)
        head.bias.copy_(0.3 * torch.randn(head.bias.shape, generator=g))
    return model.double().eval()


class TextbookGamma(GammaRule):
    """captum's gamma rule with the bias modified like the weights (b + gamma b+) and zennit's
    stabiliser."""

    STABILITY_FACTOR = 1e-6

    def _manipulate_weights(self, module, inputs, outputs):
        super()._manipulate_weights(module, inputs, outputs)
        if module.bias is not None:
            module.bias.data = module.bias.data + self.gamma * module.bias.data.clamp(min=0)


class _Above(nn.Module):
    """Everything above the first convolution, as plain layers captum can attach rules to."""

    def __init__(self, features: nn.Sequential, head: nn.Linear):
        super().__init__()
        self.features, self.pool, self.head = features, nn.AdaptiveAvgPool2d(1), head

    def forward(self, x):
        return self.head(torch.flatten(self.pool(self.features(x)), 1))


def _rebuild(model: XrayClassifier) -> tuple[nn.Conv2d, _Above]:
    """The model's VGG as plain layers: batch norm folded by hand, the model's output in the head."""
    layers, mods = [], list(model.net.features)
    for i, mod in enumerate(mods):
        if isinstance(mod, nn.BatchNorm2d):
            continue
        mod = copy.deepcopy(mod)
        if isinstance(mod, nn.Conv2d) and i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d):
            bn = mods[i + 1]
            scale = bn.weight.data / (bn.running_var + bn.eps).sqrt()
            mod.weight.data = mod.weight.data * scale[:, None, None, None]
            mod.bias.data = (mod.bias.data - bn.running_mean) * scale + bn.bias.data
        layers.append(mod)
    old = model.net.get_submodule(model.head_layer_name)
    head = copy.deepcopy(old)
    if getattr(model, "output_kind", "centred") == "centred":  # forward returns logits minus their mean
        head.weight.data = old.weight.data - old.weight.data.mean(0, keepdim=True)
        head.bias.data = old.bias.data - old.bias.data.mean()
    return layers[0], _Above(nn.Sequential(*layers[1:]), head)


def reference_lrp(model, images, targets, epsilon, gamma):
    """Input relevance (N,3,H,W) on the normalised input and the explained logits (N,)."""
    first, above = _rebuild(model)
    x = (images.expand(-1, 3, -1, -1) - IMAGENET_MEAN) / IMAGENET_STD
    low = ((0 - IMAGENET_MEAN) / IMAGENET_STD).expand_as(x)
    high = ((1 - IMAGENET_MEAN) / IMAGENET_STD).expand_as(x)
    a1 = first(x).detach()
    for mod in above.modules():
        if isinstance(mod, nn.Conv2d):
            mod.rule = TextbookGamma(gamma)
        elif isinstance(mod, nn.Linear):
            mod.rule = EpsilonRule(epsilon)
        elif isinstance(mod, nn.AdaptiveAvgPool2d):
            mod.rule = EpsilonRule(1e-6)
        # MaxPool2d: captum's default EpsilonRule(1e-9), i.e. relevance to the winner as a gradient does
    r1 = CaptumLRP(above).attribute(a1.clone().requires_grad_(True), target=targets).detach()
    logits = above(a1).gather(1, targets[:, None])[:, 0].detach()
    # z-box: R_i = sum_j (x_i w_ij - l_i w+_ij - h_i w-_ij) / z_j R_j, z_j = sum_i of the same terms
    w = first.weight.detach()
    x, low, high = (t.clone().requires_grad_(True) for t in (x, low, high))

    def conv(t, weight):
        return nn.functional.conv2d(t, weight, None, first.stride, first.padding)

    z = conv(x, w) - conv(low, w.clamp(min=0)) - conv(high, w.clamp(max=0))
    s = (r1 / (z + ((z == 0).to(z) + z.sign()) * 1e-6)).detach()
    gx, gl, gh = torch.autograd.grad((z * s).sum(), (x, low, high))
    return (x * gx + low * gl + high * gh).detach(), logits


def _check(model, images, targets, params, epsilon, gamma):
    lrp = build_explainer("lrp", **params)
    rel, logits = lrp.relevance(model, images, targets)
    maps = lrp.explain(model, images, targets)
    ref, ref_logits = reference_lrp(model, images, targets, epsilon, gamma)
    with torch.no_grad():
        out = model(images).gather(1, targets[:, None])[:, 0]
    # the reference rebuilt the model's function, and the logits are far above the tolerance
    torch.testing.assert_close(ref_logits, out, rtol=1e-9, atol=0)
    assert (out.abs() > 0.05).all(), f"logits {out} too small to tell rules apart"
    # non-constant maps with real structure
    spread = ref.sum(1).flatten(1).std(1) / ref.sum(1).flatten(1).abs().amax(1)
    assert (spread > 0.05).all(), f"reference maps nearly constant: std/max {spread}"
    torch.testing.assert_close(logits.detach(), out, rtol=1e-9, atol=0)
    scale = ref.abs().amax((1, 2, 3), keepdim=True)
    torch.testing.assert_close(rel / scale, ref / scale, rtol=0, atol=1e-5)
    torch.testing.assert_close(maps.double() / scale[:, 0], ref.sum(1) / scale[:, 0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("arch,params", [
    ("vgg16", {}),                                    # the registered defaults: auto -> epsilon_gamma_box
    ("vgg16", {"epsilon": 0.3, "gamma": 0.1}),       # epsilon comparable to the logits: it must reach the dense layer
    ("vgg16_bn", {}),                                 # batch norm: the canonizer must merge it into the convolutions
])
def test_lrp_equals_independent_lrp_on_vgg(arch, params, images):
    model = non_degenerate(narrow_vgg(arch == "vgg16_bn"))
    _check(model, images, TARGETS, params, params.get("epsilon", 1e-6), params.get("gamma", 0.25))


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["vgg16", "vgg16_bn"])
def test_lrp_equals_independent_lrp_on_the_built_vgg16(arch, images):
    """The same on the builder's own VGG16 (compact head), 48 px."""
    torch.manual_seed(0)
    model = non_degenerate(build_model(arch, head="compact"))
    _check(model, images, TARGETS, {"epsilon": 0.1}, 0.1, 0.25)


@pytest.mark.parametrize("arch", ["vgg16_bn", "resnet50"])
def test_lrp_explains_the_models_own_logit(arch, images):
    """With batch norm merged by the canonizer, the network LRP propagates through computes the
    model's output (zennit's merge alone left each batch norm dividing by sqrt(1 + eps): the
    explained logit was off by a relative 7e-4 here on VGG16_bn, 1.4e-4 on ResNet50). ResNet50 in
    float32 to stay fast: its rounding is 1e-6."""
    if arch == "vgg16_bn":
        model, x, rtol = non_degenerate(narrow_vgg(True)), images[:2], 1e-9
    else:
        torch.manual_seed(0)
        model, x, rtol = non_degenerate(build_model(arch, head="compact")).float(), images[:1].float(), 1e-5
    targets = TARGETS[:len(x)]
    with torch.no_grad():
        out = model(x).gather(1, targets[:, None])[:, 0]
    _, logits = build_explainer("lrp").relevance(model, x, targets)
    torch.testing.assert_close(logits.detach(), out, rtol=rtol, atol=0)
