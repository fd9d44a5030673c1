"""Integrated gradients, occlusion and Grad-CAM++ as the run builds them (`build_explainer(name,
**params)`, then `explain(model, images, targets)`) against (1) the reference libraries called
directly with the same model, inputs, targets and parameters, and (2) the published formulas written
out by hand here, so that a wrong parameter passed to the library (steps, baseline, window, stride,
layer, target) and a wrong post-processing are both caught.

What ours does after the library, reproduced explicitly below:
- integrated_gradients: captum's IntegratedGradients on the model in image space ([0,1], one grey
  channel), baseline 0 (a black image), Gauss-Legendre steps; the map is channel 0 of the (N,1,H,W)
  attribution (no sum, no abs, no normalisation; signed).
- occlusion: captum's Occlusion with a (1, w, w) window and (1, s, s) strides, w = round(window *
  side), s = round(stride * side), baseline 0; the map is channel 0 (signed, no normalisation).
- gradcam_pp: pytorch-grad-cam's GradCAMPlusPlus on `model.gradcam_layer`, ClassifierOutputTarget
  per image: ReLU, per-image min-max to [0,1], cv2 bilinear resize to the input size, then (one
  layer) ReLU and min-max again; returned as float32 unchanged.

The model is a small randomly initialised CNN behind the project's XrayClassifier (grey-to-RGB and
ImageNet normalisation inside), in float64 so that by-hand references can be compared tightly.
Tolerances: against the library called directly, the same arithmetic: 1e-6 relative to the map's
largest magnitude (ours returns float32). Against the by-hand formulas (float64): 1e-5 of the map's
largest magnitude for IG and occlusion, 1e-4 absolute on the [0,1] Grad-CAM++ maps (float32 and the
resize's rounding).
"""
import cv2
import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients, Occlusion
from pytorch_grad_cam import GradCAMPlusPlus
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from cxr_xai_bench.explainers import build_explainer
from cxr_xai_bench.models.builders import XrayClassifier

SIDE = 32
TARGETS = torch.tensor([0, 1, 1])


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread):
    """Small networks on a shared 2-core CPU: a second thread only adds contention."""


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = Tiny()
    with torch.no_grad():
        net.fc.weight.mul_(5.0)  # logits of order 1
    return XrayClassifier(net, "tiny", gradcam_layer="features.4", head_layer="fc").double().eval()


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(1)
    x = 0.3 * torch.rand(3, 1, SIDE, SIDE, generator=g)
    yy, xx = torch.meshgrid(torch.arange(SIDE), torch.arange(SIDE), indexing="ij")
    for i, (cy, cx) in enumerate([(8, 10), (20, 22), (12, 25)]):  # a bright blob per image, different places
        x[i, 0] += 0.7 * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0)
    return x.clamp(0, 1).double()


def _close(ours: torch.Tensor, ref: torch.Tensor, rel: float):
    scale = ref.abs().flatten(1).amax(1).view(-1, 1, 1)
    assert (scale > 1e-3).all(), "reference map nearly zero: the comparison would say nothing"
    torch.testing.assert_close((ours.double() / scale), (ref.double() / scale), rtol=0, atol=rel)


def _logit(model, x, targets):
    return model(x).gather(1, targets[:, None])[:, 0]


# ----------------------------------------------------------------------------- integrated gradients

@pytest.mark.parametrize("params", [{}, {"n_steps": 8, "internal_batch_size": 5}])
def test_integrated_gradients_against_captum_and_gauss_legendre_by_hand(model, images, params):
    ours = build_explainer("integrated_gradients", **params).explain(model, images, TARGETS)
    n_steps = params.get("n_steps", 32)
    lib = IntegratedGradients(model).attribute(images, baselines=torch.zeros_like(images), target=TARGETS,
                                               n_steps=n_steps, method="gausslegendre")[:, 0]
    _close(ours, lib, 1e-6)
    # by hand: x * sum_i w_i grad f(alpha_i x), Gauss-Legendre nodes and weights mapped to [0, 1]
    nodes, weights = np.polynomial.legendre.leggauss(n_steps)
    total = torch.zeros_like(images)
    for a, w in zip((nodes + 1) / 2, weights / 2):
        x = (a * images).requires_grad_(True)
        grad, = torch.autograd.grad(_logit(model, x, TARGETS).sum(), x)
        total += w * grad
    hand = (images * total)[:, 0]
    _close(ours, hand, 1e-5)
    # completeness (Sundararajan et al.): the sum is close to f(x) - f(black) for this smooth-ish net
    with torch.no_grad():
        delta = _logit(model, images, TARGETS) - _logit(model, torch.zeros_like(images), TARGETS)
    assert (delta.abs() > 0.01).all()
    torch.testing.assert_close(hand.sum((1, 2)), delta, rtol=0.05, atol=0.02)


# ----------------------------------------------------------------------------- occlusion

def occlusion_by_hand(model, images, targets, w, s):
    """Average drop of the target logit over the windows (set to 0) that cover each pixel; windows
    start at 0, s, 2s, ... up to the first that reaches the border (the last may overhang)."""
    n, _, h, wd = images.shape
    with torch.no_grad():
        full = _logit(model, images, targets)
        total, count = torch.zeros(n, h, wd, dtype=images.dtype), torch.zeros(h, wd, dtype=images.dtype)
        starts = list(range(0, h - w + 1, s))
        if starts[-1] + w < h:
            starts.append(starts[-1] + s)
        for y0 in starts:
            for x0 in starts:
                x = images.clone()
                x[:, :, y0:y0 + w, x0:x0 + w] = 0
                total[:, y0:y0 + w, x0:x0 + w] += (full - _logit(model, x, targets))[:, None, None]
                count[y0:y0 + w, x0:x0 + w] += 1
    assert (count > 0).all()
    return total / count


@pytest.mark.parametrize("params,w,s", [
    ({}, 4, 2),                                         # the registered defaults at 32 px: 0.125 * 32, 0.0625 * 32
    ({"window": 0.25, "stride": 0.1875}, 8, 6),         # windows at 0, 6, ..., 24: they tile exactly
    ({"window": 0.25, "stride": 0.15625}, 8, 5),        # windows at 0, 5, ..., 25: the last overhangs the border
])
def test_occlusion_against_captum_and_by_hand(model, images, params, w, s):
    exp = build_explainer("occlusion", **params)
    assert exp._window(SIDE) == (w, s)
    ours = exp.explain(model, images, TARGETS)
    lib = Occlusion(model).attribute(images, target=TARGETS, sliding_window_shapes=(1, w, w), strides=(1, s, s),
                                     baselines=0.0)[:, 0]
    _close(ours, lib, 1e-6)
    _close(ours, occlusion_by_hand(model, images, TARGETS, w, s), 1e-5)
    # the pass count the time floor uses is the number of forward passes of the by-hand loop + 1
    shifts = len(range(0, SIDE - w + 1, s)) + (1 if (SIDE - w) % s else 0)
    assert exp.passes(SIDE) == (1 + shifts * shifts, 0)


# ----------------------------------------------------------------------------- Grad-CAM++

def minmax(img: np.ndarray) -> np.ndarray:
    img = img - img.min()
    return img / (1e-7 + img.max())


def gradcam_pp_by_hand(model, images, targets) -> np.ndarray:
    """Chattopadhay et al. (2018) Eq. 19 with pytorch-grad-cam's eps (1e-6) and its handling of
    zero gradients, then its post-processing: ReLU, min-max, cv2 bilinear resize, ReLU, min-max."""
    held = {}
    hook = model.gradcam_layer.register_forward_hook(lambda m, i, o: held.setdefault("a", o))
    try:
        out = model(images.clone().requires_grad_(True))
    finally:
        hook.remove()
    a = held["a"]
    g, = torch.autograd.grad(out.gather(1, targets[:, None]).sum(), a)
    a, g = a.detach().numpy(), g.numpy()
    alpha = g ** 2 / (2 * g ** 2 + a.sum((2, 3), keepdims=True) * g ** 3 + 1e-6)
    alpha = np.where(g != 0, alpha, 0)
    weights = (np.maximum(g, 0) * alpha).sum((2, 3))
    cams = np.maximum((weights[:, :, None, None] * a).sum(1), 0)
    side = images.shape[-1]
    return np.float32([minmax(np.maximum(cv2.resize(np.float32(minmax(c)), (side, side)), 0)) for c in cams])


def test_gradcam_pp_against_pytorch_grad_cam_and_by_hand(model, images):
    ours = build_explainer("gradcam_pp").explain(model, images, TARGETS)
    with GradCAMPlusPlus(model=model, target_layers=[model.net.features[4]]) as cam:  # the declared layer
        lib = cam(input_tensor=images, targets=[ClassifierOutputTarget(int(t)) for t in TARGETS])
    torch.testing.assert_close(ours, torch.from_numpy(lib), rtol=0, atol=1e-6)
    hand = torch.from_numpy(gradcam_pp_by_hand(model, images, TARGETS))
    assert ours.shape == hand.shape == (3, SIDE, SIDE)
    assert all(float(m.max()) == pytest.approx(1, abs=1e-5) and float(m.min()) == pytest.approx(0, abs=1e-6)
               for m in hand)
    assert (hand.flatten(1).std(1) > 0.05).all()  # real structure, not a flat map
    torch.testing.assert_close(ours, hand, rtol=0, atol=1e-4)
    # the target matters: the other class gives another map (so a wrong target would be seen)
    other = torch.from_numpy(gradcam_pp_by_hand(model, images, 1 - TARGETS))
    assert (ours - other).abs().amax() > 0.05
