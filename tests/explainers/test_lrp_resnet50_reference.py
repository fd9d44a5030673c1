"""The registered `lrp` explainer on the builder's ResNet50 against LRP reconstructed layer by layer
by hand.

Which check and why. The strongest check that fits here is a full independent reconstruction on the
real network, not on a stand-in: `build_model("resnet50")` (torchvision's ResNet50 behind the
project's wrapper), randomly initialised and made non-degenerate, in float64 at 32 px (2 images,
both classes as targets), with `build_explainer("lrp")` at its defaults exactly as the run builds it
("auto" -> epsilon_alpha2beta1_flat for resnet50, the project's exact batch-norm merge and zennit's
Bottleneck canonizer). The reference shares no code with zennit or the explainer: batch norm is
folded into each convolution by hand, and every rule of the composite is written out with
`torch.nn.functional` convolutions and their input gradients (`torch.nn.grad.conv2d_input`):
- the first convolution: Flat (weights and inputs set to one, bias zeroed): relevance spread
  uniformly over each output's receptive field, zero padding excluded;
- the max pool: the gradient (relevance to the window's maximum, summed over overlapping windows);
- every ReLU: passed through unchanged;
- every other convolution (bottleneck convolutions and the downsampling 1x1): alpha=2, beta=1 with
  the bias split like the weights (b+ in the positive, b- in the negative denominator);
- the residual sum and the global average pool: the Norm rule (relevance in proportion to each
  input's contribution, stabiliser 1e-6);
- the dense layer: epsilon (1e-6), bias in the denominator;
- the relevance starts at the explained logit (the model's raw target logit here; with
  output="centred" the centring is folded into the dense layer by hand) and is summed over the three
  colour channels of the normalised input.
Tolerance: 1e-6 of each map's largest magnitude (float64 through 53 layers whose activations grow
to O(100) with these random statistics: the reference's logit already differs from the model's by a
relative 1e-8 from summation order alone). The first-order errors the checks target (a wrong
alpha/beta, a missed merge, epsilon where alpha-beta belongs) move the maps by percents.
Run time: about 5-15 s per test on the shared 2-core CPU (ResNet50 in float64); the centred
variant and the zero-bias reconstruction are marked slow.

Conservation, checked too: with `zero_bias=True` the rules ignore biases and the relevance of the
input sums to the explained logit (alpha-beta and epsilon lose only where a denominator is zero or
the 1e-6 stabiliser matters); with the default biases, the relevance the biases absorb (summed by
the hand reconstruction: alpha * b+ R / z+ - beta * b- R / z- per convolution output, b R / z at the
dense layer) plus the input's relevance is the logit. Both hold to a relative 4e-6 here (the
stabilisers and the float32 map); the tolerance is 2e-5, so zennit's own batch-norm merge (each
merged layer scaling by 1 - eps/2, a relative 1.4e-4 on the logit) still fails it.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.grad import conv2d_input

from cxr_xai_bench.explainers import build_explainer
from cxr_xai_bench.models import build_model

STAB = 1e-6
MEAN = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)
TARGETS = torch.tensor([0, 1])


def stab(z: torch.Tensor) -> torch.Tensor:
    return z + STAB * ((z == 0).to(z) + z.sign())


def non_degenerate(model, seed: int = 0):
    """Batch-norm statistics and affine parameters away from the identity (and bn3 not zero, as
    zero_init_residual leaves it), logits of order 1."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.net.modules():
            if isinstance(mod, nn.BatchNorm2d):
                n = mod.num_features
                mod.weight.copy_(0.5 + torch.rand(n, generator=g))
                mod.bias.copy_(0.1 * torch.randn(n, generator=g))
                mod.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                mod.running_var.copy_(0.5 + torch.rand(n, generator=g))
        fc = model.net.fc
        fc.weight.copy_(4 * torch.randn(fc.weight.shape, generator=g) / fc.in_features ** 0.5)
        fc.bias.copy_(0.3 * torch.randn(fc.bias.shape, generator=g))
    return model.double().eval()


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(3)
    x = 0.4 * torch.rand(2, 1, 32, 32, generator=g, dtype=torch.float64)
    x[0, 0, 6:14, 8:20] += 0.5
    x[1, 0, 18:28, 4:12] += 0.5
    return x.clamp(0, 1)


@pytest.fixture(scope="module")
def resnet50():
    """One build for the module (constructing ResNet50 costs seconds here); `output_kind` is a plain
    attribute (see models.builders), switched per test and restored."""
    torch.manual_seed(0)
    return non_degenerate(build_model("resnet50"))


@pytest.fixture
def model_for(resnet50):
    def get(output: str):
        resnet50.output_kind = output
        return resnet50
    yield get
    resnet50.output_kind = "raw"


class Conv:
    """A convolution with its batch norm folded in by hand: weight, bias, stride, padding."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d):
        scale = bn.weight.detach() / (bn.running_var + bn.eps).sqrt()
        self.w = conv.weight.detach() * scale[:, None, None, None]
        self.b = bn.bias.detach() - bn.running_mean * scale
        self.stride, self.padding = conv.stride, conv.padding

    def __call__(self, a, w=None, b=None):
        return F.conv2d(a, self.w if w is None else w, b, self.stride, self.padding)

    def back(self, shape, w, grad):
        return conv2d_input(shape, w, grad, self.stride, self.padding)


class Reference:
    """Forward with stored activations, then the composite's rules backwards (see module docstring)."""

    def __init__(self, model, use_bias: bool = True):
        net = model.net
        self.use_bias = use_bias
        self.conv1 = Conv(net.conv1, net.bn1)
        self.blocks = []
        for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
            for blk in layer:
                down = Conv(blk.downsample[0], blk.downsample[1]) if blk.downsample is not None else None
                self.blocks.append((Conv(blk.conv1, blk.bn1), Conv(blk.conv2, blk.bn2), Conv(blk.conv3, blk.bn3), down))
        self.fc_w, self.fc_b = net.fc.weight.detach().clone(), net.fc.bias.detach().clone()
        if model.output_kind == "centred":  # the explained output folded into the dense layer
            self.fc_w -= self.fc_w.mean(0, keepdim=True)
            self.fc_b -= self.fc_b.mean()
        self.absorbed = None

    def alpha_beta(self, conv: Conv, a, r):
        ap, an = a.clamp(min=0), a.clamp(max=0)
        wp, wn = conv.w.clamp(min=0), conv.w.clamp(max=0)
        b = conv.b if self.use_bias else torch.zeros_like(conv.b)
        bp, bn = b.clamp(min=0)[None, :, None, None], b.clamp(max=0)[None, :, None, None]
        zp = conv(ap, wp) + conv(an, wn) + bp
        zn = conv(ap, wn) + conv(an, wp) + bn
        sp, sn = r / stab(zp), r / stab(zn)
        self.absorbed += (2 * bp * sp - bn * sn).sum((1, 2, 3))
        return (2 * (ap * conv.back(a.shape, wp, sp) + an * conv.back(a.shape, wn, sp))
                - (ap * conv.back(a.shape, wn, sn) + an * conv.back(a.shape, wp, sn)))

    def relevance(self, images, targets):
        x0 = (images.expand(-1, 3, -1, -1) - MEAN) / STD
        r1 = F.relu(self.conv1(x0, b=self.conv1.b))
        pooled, idx = F.max_pool2d(r1, 3, 2, 1, return_indices=True)
        acts, a = [], pooled
        for c1, c2, c3, down in self.blocks:
            h1 = F.relu(c1(a, b=c1.b))
            h2 = F.relu(c2(h1, b=c2.b))
            o3 = c3(h2, b=c3.b)
            idn = down(a, b=down.b) if down is not None else a
            acts.append((a, h1, h2, o3, idn))
            a = F.relu(o3 + idn)
        feat = a
        avg = feat.mean((2, 3))
        logits = avg @ self.fc_w.T + self.fc_b
        out = logits.gather(1, targets[:, None])[:, 0]
        self.absorbed = torch.zeros(len(images), dtype=images.dtype)
        # dense layer, epsilon
        r = F.one_hot(targets, 2).to(logits) * logits
        b = self.fc_b if self.use_bias else torch.zeros_like(self.fc_b)
        z = avg @ self.fc_w.T + b
        s = r / stab(z)
        self.absorbed += (b * s).sum(1)
        r_avg = avg * (s @ self.fc_w)
        # global average pool, Norm
        r = feat * (r_avg / stab(avg))[:, :, None, None] / (feat.shape[2] * feat.shape[3])
        for (c1, c2, c3, down), (a, h1, h2, o3, idn) in zip(reversed(self.blocks), reversed(acts)):
            # the ReLU after the sum passes r; the sum, Norm
            s = r / stab(o3 + idn)
            r_o3, r_idn = o3 * s, idn * s
            r_a = self.alpha_beta(down, a, r_idn) if down is not None else r_idn
            r_h2 = self.alpha_beta(c3, h2, r_o3)
            r_h1 = self.alpha_beta(c2, h1, r_h2)  # the ReLU between passes r
            r = r_a + self.alpha_beta(c1, a, r_h1)
        # max pool: relevance to each window's maximum (overlapping windows add up)
        r1_rel = torch.zeros_like(r1).flatten(2).scatter_add_(2, idx.flatten(2), r.flatten(2)).view_as(r1)
        # first convolution, Flat: ones for inputs and weights, no bias
        ones_w = torch.ones_like(self.conv1.w)
        count = self.conv1(torch.ones_like(x0), ones_w)
        rx = self.conv1.back(x0.shape, ones_w, r1_rel / stab(count))
        return rx.sum(1), out


@pytest.fixture(autouse=True)
def two_threads():
    n = torch.get_num_threads()
    torch.set_num_threads(min(n, 2))
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("output", ["raw", pytest.param("centred", marks=pytest.mark.slow)])
def test_lrp_resnet50_equals_hand_reconstruction_and_conserves_with_bias_absorption(output, images, model_for):
    model = model_for(output)
    ours = build_explainer("lrp").explain(model, images, TARGETS)
    ref = Reference(model)
    hand, logit = ref.relevance(images, TARGETS)
    with torch.no_grad():
        out = model(images).gather(1, TARGETS[:, None])[:, 0]
    torch.testing.assert_close(logit, out, rtol=1e-7, atol=0)  # the reference computes the model's output
    assert (out.abs() > 0.05).all(), f"logits {out} too small to tell rules apart"
    scale = hand.abs().flatten(1).amax(1)[:, None, None]
    spread = (hand.flatten(1).std(1) / scale.flatten())
    assert (spread > 0.05).all(), f"reference maps nearly constant: std/max {spread}"
    torch.testing.assert_close(ours.double() / scale, hand / scale, rtol=0, atol=1e-6)
    # conservation of the reference: input relevance plus what the biases absorbed is the logit
    torch.testing.assert_close(hand.sum((1, 2)) + ref.absorbed, out, rtol=2e-5, atol=1e-6)
    assert (ref.absorbed.abs() > 1e-3 * out.abs()).all()  # the biases matter: without them no conservation


def test_lrp_resnet50_zero_bias_conserves_the_logit(images, model_for):
    """zero_bias=True: the explainer's input relevance sums to the explained logit (and, with
    --runslow, still equals the hand reconstruction with biases left out of every rule)."""
    model = model_for("raw")
    ours = build_explainer("lrp", zero_bias=True).explain(model, images, TARGETS).double()
    with torch.no_grad():
        out = model(images).gather(1, TARGETS[:, None])[:, 0]
    torch.testing.assert_close(ours.sum((1, 2)), out, rtol=2e-5, atol=1e-6)


@pytest.mark.slow
def test_lrp_resnet50_zero_bias_equals_hand_reconstruction(images, model_for):
    model = model_for("raw")
    ours = build_explainer("lrp", zero_bias=True).explain(model, images, TARGETS).double()
    ref = Reference(model, use_bias=False)
    hand, _ = ref.relevance(images, TARGETS)
    assert ref.absorbed.abs().max() == 0
    scale = hand.abs().flatten(1).amax(1)[:, None, None]
    torch.testing.assert_close(ours / scale, hand / scale, rtol=0, atol=1e-6)
