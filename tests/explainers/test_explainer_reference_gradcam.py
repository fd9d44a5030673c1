"""The registered `gradcam` explainer against Grad-CAM's definition and against pytorch-grad-cam.

Grad-CAM (Selvaraju et al. 2017): ReLU(sum_k alpha_k A_k), alpha_k the spatial mean of the target
score's gradient over the declared layer's channel k, bilinearly upsampled to the input.

The comparisons are made where they can fail:
- the declared layer is 8x8 (at 64 px: VGG16's ReLU after conv4_3, ResNet50's layer2; the
  builders' default layers, 8x8 only at 128 and 256 px, run in the slow test), not 2x2, where
  bilinear upsampling of a near-constant map hides most mistakes;
- the networks are calibrated on phantom images (every convolution's output zero-mean and
  unit-variance per channel, batch norm's statistics from the data, non-zero residual branches)
  and the dense layer gives logits of order 1, so the layer's features differ from place to place
  and every image's CAM has both signs before the ReLU: dropping the ReLU, or clipping the wrong
  sign, changes the map;
- maps are compared un-normalised (relative to each map's maximum), and pytorch-grad-cam's own
  min-max normalised output is compared to ours normalised the same way;
- the maps are checked not to be constant.
"""
import pytest
import torch
from pytorch_grad_cam import GradCAM as ReferenceGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from cxr_xai_bench.datasets import collate
from cxr_xai_bench.datasets.phantom import PhantomDataset
from cxr_xai_bench.explainers import build_explainer
from cxr_xai_bench.models import build_model

TARGETS = torch.tensor([0, 1, 1])  # both classes, neither always the phantom's label
LAYERS_AT_64 = {"vgg16": "features.22", "resnet50": "layer2"}  # 8x8 at 64 px


def phantom(split: str, size: int, n: int) -> torch.Tensor:
    return collate([PhantomDataset(split, size=size)[i] for i in range(n)]).images


def calibrated(arch: str, size: int, gradcam_layer: str | None = None, seed: int = 0):
    """The builder's network (compact head) with data-dependent weights, so its features vary
    across the image: batch norms take their statistics from phantom images (VGG16 without batch
    norm: each convolution rescaled to zero mean, unit variance per channel on them), random
    batch-norm scales (ResNet50's residual branches start at zero otherwise), a dense layer with
    logits of order 1."""
    torch.manual_seed(seed)
    kw = {"gradcam_layer": gradcam_layer} if gradcam_layer else {}
    model = build_model(arch, head="compact", **kw)
    g = torch.Generator().manual_seed(seed)
    calib = phantom("val", size, 8)
    with torch.no_grad():
        bns = [m for m in model.net.modules() if isinstance(m, nn.BatchNorm2d)]
        for bn in bns:
            bn.weight.copy_(0.5 + torch.rand(bn.num_features, generator=g))
            bn.bias.copy_(0.1 * torch.randn(bn.num_features, generator=g))
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average: the statistics of the calibration batch
        if bns:
            model.train()
            model(calib)
        else:
            x = model.preprocess(calib)
            for layer in model.net.features:
                if isinstance(layer, nn.Conv2d):
                    y = layer(x)
                    mean, std = y.mean((0, 2, 3)), y.std((0, 2, 3))
                    layer.weight.div_(std[:, None, None, None])
                    layer.bias.sub_(mean).div_(std)
                x = layer(x)
        head = model.net.get_submodule(model.head_layer_name)
        head.weight.copy_(4 * torch.randn(head.weight.shape, generator=g) / head.in_features ** 0.5)
        head.bias.copy_(0.3 * torch.randn(head.bias.shape, generator=g))
    return model.eval()


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread):
    """Small networks on a shared 2-core CPU: a second thread only adds contention."""


@pytest.fixture(scope="module")
def images():
    return phantom("test", 64, 3)


@pytest.fixture(scope="module", params=sorted(LAYERS_AT_64))
def model(request):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return calibrated(request.param, 64, LAYERS_AT_64[request.param])
    finally:
        torch.set_num_threads(n)


class RawGradCAM(ReferenceGradCAM):
    """pytorch-grad-cam's GradCAM, keeping the layer-resolution CAM before its ReLU and min-max
    scaling (its own hooks, gradient mean and weighted sum)."""

    def get_cam_image(self, *args, **kwargs):
        self.raw = super().get_cam_image(*args, **kwargs)
        return self.raw


def reference_gradcam(model, images, targets):
    """(normalised output, layer-resolution CAM before ReLU) from pytorch-grad-cam."""
    with RawGradCAM(model=model, target_layers=[model.gradcam_layer]) as cam:
        out = cam(input_tensor=images, targets=[ClassifierOutputTarget(int(t)) for t in targets])
        return torch.from_numpy(out), torch.from_numpy(cam.raw)


def minmax(x):
    flat = x.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo)).view_as(x)


def _check_informative(cam, maps):
    """Every CAM has both signs before the ReLU (so the ReLU changes it) and is not constant."""
    assert min(cam.shape[-2:]) >= 8, f"declared layer only {tuple(cam.shape[-2:])}"
    top, bottom = cam.flatten(1).amax(1), cam.flatten(1).amin(1)
    assert (top > 0).all() and (bottom < -0.1 * top).all(), f"CAM max {top}, min {bottom}: the ReLU would not matter"
    spread = maps.flatten(1).std(1) / maps.flatten(1).amax(1)
    assert (spread > 0.05).all(), f"maps nearly constant: std/max {spread}"


def _assert_close_to(ours, ref):
    """Un-normalised maps equal within 1e-5 of each map's maximum."""
    scale = ref.flatten(1).amax(1)[:, None, None]
    torch.testing.assert_close(ours / scale, ref / scale, rtol=0, atol=1e-5)


def test_gradcam_matches_its_definition(model, images):
    """ReLU(sum_k mean(dy/dA_k) * A_k) on the declared layer, bilinearly upsampled, raw scale."""
    store = {}
    h = model.gradcam_layer.register_forward_hook(lambda mod, i, o: store.update(a=o))
    y = model(images)
    h.remove()
    grad = torch.autograd.grad(y.gather(1, TARGETS[:, None]).sum(), store["a"])[0]
    cam = (grad.mean((2, 3), keepdim=True) * store["a"]).sum(1, keepdim=True).detach()
    ref = nn.functional.interpolate(torch.relu(cam), size=images.shape[2:], mode="bilinear")[:, 0]
    maps = build_explainer("gradcam").explain(model, images, TARGETS)
    _check_informative(cam[:, 0], ref)
    _assert_close_to(maps, ref)


def test_gradcam_equals_pytorch_grad_cam(model, images):
    """Same model, same declared layer: pytorch-grad-cam's CAM (ReLU, bilinear) at our scale, and its
    own normalised output equal to ours normalised."""
    out, cam = reference_gradcam(model, images, TARGETS)
    maps = build_explainer("gradcam").explain(model, images, TARGETS)
    ref = nn.functional.interpolate(torch.relu(cam)[:, None], size=images.shape[2:], mode="bilinear")[:, 0]
    _check_informative(cam, ref)
    _assert_close_to(maps, ref)
    # its output is min-max scaled and resized by OpenCV (half-pixel centres, as torch's bilinear)
    torch.testing.assert_close(minmax(maps), out, rtol=0, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("arch,size", [("vgg16", 128), ("resnet50", 256)])
def test_gradcam_equals_pytorch_grad_cam_on_the_default_layer(arch, size):
    """The builders' default layers (VGG16's last ReLU, ResNet50's layer4), where they are 8x8."""
    model = calibrated(arch, size)
    images = phantom("test", size, 2)
    out, cam = reference_gradcam(model, images, TARGETS[:2])
    maps = build_explainer("gradcam").explain(model, images, TARGETS[:2])
    ref = nn.functional.interpolate(torch.relu(cam)[:, None], size=images.shape[2:], mode="bilinear")[:, 0]
    _check_informative(cam, ref)
    _assert_close_to(maps, ref)
    torch.testing.assert_close(minmax(maps), out, rtol=0, atol=1e-4)
