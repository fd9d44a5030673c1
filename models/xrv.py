"""torchxrayvision's chest X-ray DenseNet121 classifiers as models of the suite (optional extra:
`pip install '.[xrv]'`, torchxrayvision 1.5.7).

`xrv_densenet121` takes (N,1,H,W) images in [0,1] like every model here and does torchxrayvision's
own input handling inside: it scales to [-1024, 1024] (`x * 2048 - 1024`, xrv's `normalize(img,
255)` of an 8-bit image) and resizes to the weights' resolution (224; bilinear with antialiasing,
as `xrv.utils.fix_resolution`) when the image has another size (`resolution = 0` never resizes).

Two logits from one pathology: xrv's DenseNet gives one independent logit z per pathology (its
probability is sigmoid(z)). The model returns (-z/2, +z/2) for the chosen `pathology` (class 1 =
the pathology present, e.g. "Pneumonia" or "Lung Opacity"): the softmax of these is exactly
(1 - sigmoid(z), sigmoid(z)), so the suite's pneumonia probability is xrv's own, and the two logits
are already centred (explaining class 0 gives minus the map of class 1 for every gradient method).
The row of xrv's classifier for the pathology becomes a two-output linear head (`classifier`),
so the model is one ordinary network: features -> relu -> pool -> flatten -> classifier, with
the final ReLU a module (xrv applies it functionally in place, which would disturb Grad-CAM
hooks) and Grad-CAM on `relu` (as `densenet121`). This is models.output_head's sigmoid case with
`output = "centred"`, folded into the layer at build time (`two_logit_linear`); `output_class` and
`output_index` do the same for any other model, on its full head. xrv's operating-point
calibration (`op_norm`, which moves each pathology's threshold to 0.5) is not applied: the suite
thresholds sigmoid(z) at 0.5; the report's classifier table reads accordingly.

Weights:
- `weights = "densenet121-res224-rsna"` (or any xrv DenseNet name): loaded the way xrv loads
  them, from its cache folder (`cache_dir`, default `~/.torchxrayvision/models_data/`), which
  xrv fills by downloading when online. xrv unpickles its own release files
  (`torch.load(weights_only=False)`); offline, copy the file there (the error names it and its URL).
- `weights_file = "path.pt"`: a state_dict of xrv's DenseNet (e.g. saved with
  `torch.save(xrv.models.DenseNet(weights=...).state_dict(), path)`), read with
  `weights_only=True`; `weights` then only names its labels (default: xrv's 18 default pathologies).
- neither (`weights = ""`): random initialisation (tests).
"""
from __future__ import annotations

import os
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .builders import XrayClassifier, check_output, register_model
from .output_head import output_position, two_logit_linear

XRV_RANGE = 1024.0


def _xrv():
    try:
        import torchxrayvision
    except ImportError:
        raise ImportError("model xrv_densenet121 needs torchxrayvision: pip install 'cxr-xai-bench[xrv]' "
                          "(or pip install torchxrayvision==1.5.7)") from None
    return torchxrayvision


class XrvClassifier(XrayClassifier):
    """XrayClassifier whose input handling is torchxrayvision's: one channel in [-1024, 1024] at `resolution`."""

    def __init__(self, net: nn.Module, arch: str, pathology: str, resolution: int, output: str = "raw"):
        super().__init__(net, arch, gradcam_layer="relu", head_layer="classifier", output=output)
        self.pathology, self.resolution = pathology, resolution

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"{self.arch} expects images shaped (N,1,H,W), got {tuple(x.shape)}")
        x = x * (2 * XRV_RANGE) - XRV_RANGE
        if self.resolution and tuple(x.shape[-2:]) != (self.resolution, self.resolution):
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", antialias=True)
        return x

    @property
    def input_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        low = torch.full((1, 1, 1, 1), -XRV_RANGE, device=self.mean.device)
        return low, -low


def _xrv_densenet(xrv, weights: str, cache_dir: str) -> nn.Module:
    if not weights:
        return xrv.models.DenseNet(weights=None)
    known = [k for k in xrv.models.model_urls if k.startswith("densenet")]
    if weights not in known:
        raise ValueError(f"unknown torchxrayvision weights {weights!r}; allowed: {known}")
    url = xrv.models.model_urls[weights]["weights_url"]
    folder = os.path.expanduser(cache_dir) if cache_dir else xrv.utils.get_cache_dir()
    try:
        return xrv.models.DenseNet(weights=weights, cache_dir=folder)
    except Exception as err:  # offline: urllib's URLError, or a half-written file
        raise RuntimeError(f"torchxrayvision weights {weights!r} could not be loaded from {folder} "
                           f"({type(err).__name__}: {err}); offline, download {url} elsewhere and copy it to "
                           f"{os.path.join(folder, os.path.basename(url))}, or give weights_file") from None


@register_model("xrv_densenet121")
def xrv_densenet121(weights: str = "densenet121-res224-rsna", pathology: str = "Pneumonia", weights_file: str = "",
                    cache_dir: str = "", resolution: int = 224, output: str = "raw") -> XrayClassifier:
    """torchxrayvision DenseNet121 explaining one pathology output (see the module docstring)."""
    check_output(output)
    xrv = _xrv()
    base = _xrv_densenet(xrv, "" if weights_file else weights, cache_dir)
    if weights_file:
        labels = xrv.models.model_urls[weights]["labels"] if weights else list(base.targets)
        base.classifier = nn.Linear(base.classifier.in_features, len(labels))
        state = torch.load(weights_file, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if k != "op_threshs"}
        try:
            missing, unexpected = base.load_state_dict(state, strict=False)
        except RuntimeError as err:
            raise ValueError(f"weights_file {weights_file} does not fit torchxrayvision's DenseNet121: "
                             f"{str(err).splitlines()[0]}") from None
        if missing or unexpected:
            raise ValueError(f"weights_file {weights_file} does not fit torchxrayvision's DenseNet121: missing "
                             f"{sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
        base.targets = labels
    row = output_position(list(getattr(base, "targets", [])), pathology, "pathology",
                          f"torchxrayvision weights {weights or 'None'!r}")
    head = two_logit_linear(base.classifier, row, centred=True)  # a sigmoid output as (-z/2, z/2)
    net = nn.Sequential(OrderedDict(features=base.features, relu=nn.ReLU(), pool=nn.AdaptiveAvgPool2d(1),
                                    flatten=nn.Flatten(1), classifier=head))
    return XrvClassifier(net, "xrv_densenet121", pathology, resolution, output=output)
