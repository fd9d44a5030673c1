"""Classifier builders: torchvision VGG16, ResNet50, DenseNet121 (and any torchvision classifier by
name) taking one grey channel in [0,1]; torchxrayvision models in models.xrv.

What the model returns (`output`, a parameter of every builder, `models.params.<name>.output` in
the config; the model says which in `model.output_kind`):

- `output = "raw"` (default): the network's pre-softmax class scores y^c as trained. Grad-CAM
  (Selvaraju et al.), integrated gradients, LRP and occlusion are defined on this score, so the
  maps are the published methods' maps.
- `output = "centred"`: each score minus the mean over classes, z^c = y^c - mean_k y^k. With two
  classes z^c = (y^c - y^other) / 2, so every explainer explains half the logit difference, a
  contrastive quantity: evidence shared by both classes cancels, and the gradient (hence
  Grad-CAM's weights, IG, occlusion) of class 0 is exactly minus that of class 1, so Grad-CAM of
  class 0 equals ReLU(-CAM of class 1).

Softmax, cross-entropy and their gradients are invariant to the centring, so training is the same
either way, and the choice adds no parameter or buffer: a checkpoint saved under one `output`
loads into a model built with the other (the state_dict keys are the same).

Grey-to-RGB and ImageNet normalisation live in a module in front of the torchvision network
instead of being folded into the first convolution: folding is not exact at the zero-padded
border (padding in normalised space is grey, in image space black), so every explainer and
perturbation sees plain image space through `XrayClassifier.forward`, and LRP explains
`XrayClassifier.net` on the normalised input and sums relevance over the three channels.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Iterator

import torch
import torchvision
from torch import nn

from .output_head import OUTPUT_PARAMS, check_output_params, select_output

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

OUTPUTS = ("raw", "centred")

MODELS: dict[str, Callable[..., "XrayClassifier"]] = {}


def register_model(name: str):
    def add(fn):
        MODELS[name] = fn
        return fn
    return add


def check_output(output: str) -> str:
    if output not in OUTPUTS:
        raise ValueError(f"unknown model output {output!r}; allowed: {list(OUTPUTS)}")
    return output


class XrayClassifier(nn.Module):
    """(N,1,H,W) in [0,1] -> logits (N,2). `gradcam_layer` names the layer Grad-CAM uses.

    `output` ("raw" or "centred", see the module docstring) decides what forward returns; it is a
    plain attribute (`output_kind`), not part of the state_dict.
    """

    def __init__(self, net: nn.Module, arch: str, gradcam_layer: str, head_layer: str, output: str = "raw"):
        super().__init__()
        self.output_kind = check_output(output)
        for module in net.modules():
            if isinstance(module, nn.ReLU):
                module.inplace = False  # in-place ReLUs break the backward hooks of captum and zennit
        self.net = net
        self.arch = arch
        self.gradcam_layer_name = gradcam_layer
        self.head_layer_name = head_layer
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"{self.arch} expects images shaped (N,1,H,W), got {tuple(x.shape)}")
        return (x.expand(-1, 3, -1, -1) - self.mean) / self.std

    @property
    def input_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised values of black and white, per channel (the z-box bounds of LRP)."""
        return (0 - self.mean) / self.std, (1 - self.mean) / self.std

    @property
    def gradcam_layer(self) -> nn.Module:
        return self.net.get_submodule(self.gradcam_layer_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(self.preprocess(x))
        if self.output_kind == "centred":
            logits = logits - logits.mean(1, keepdim=True)
        return logits

    @contextlib.contextmanager
    def centred_head(self) -> Iterator[nn.Module]:
        """Yield the network with the model's output as its last layer, whatever `output_kind`.

        For rule-based methods (LRP) that must see every operation as a layer: inside the
        block `net(preprocess(x))` equals `self(x)` exactly. With `output_kind == "centred"` the
        centring is folded into the last linear layer for the duration of the block; with "raw"
        the network is yielded unchanged.
        """
        if self.output_kind != "centred":
            yield self.net
            return
        head = self.net.get_submodule(self.head_layer_name)
        saved = head.weight.data.clone(), head.bias.data.clone()
        head.weight.data -= head.weight.data.mean(0, keepdim=True)
        head.bias.data -= head.bias.data.mean()
        try:
            yield self.net
        finally:
            head.weight.data, head.bias.data = saved


def _torchvision_cache_file(weights) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def _load_pretrained(net: nn.Module, pretrained: str | None, weights_enum, head: list[str],
                     fix_keys: Callable[[dict], dict] | None = None) -> None:
    """Load ImageNet weights from torchvision's cache or a local file; never download.

    The 1000-class head is dropped (`head` lists its parameter names) since we classify two classes.
    """
    if not pretrained:
        return
    if pretrained == "imagenet":
        path = _torchvision_cache_file(weights_enum)
        if not path.exists():
            log.warning("ImageNet weights not found at %s (nothing is downloaded at run time); "
                        "training from scratch. Put the torchvision file there to use them.", path)
            return
    else:
        path = Path(pretrained)
        if not path.exists():
            raise FileNotFoundError(f"pretrained weights file {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    state = {k.removeprefix("net."): v for k, v in state.items() if k not in ("mean", "std")}
    if fix_keys is not None:
        state = fix_keys(state)
    own = net.state_dict()
    dropped = [k for k in state if k in head and state[k].shape != own[k].shape]
    state = {k: v for k, v in state.items() if k not in dropped}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or set(missing) - set(head):
        raise ValueError(f"weights in {path} do not fit this architecture: missing {sorted(missing)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]}")
    log.info("loaded pretrained weights from %s (re-initialised: %s)", path, dropped or "none")


def _vgg(batch_norm: bool, pretrained: str | None, head: str, num_classes: int, gradcam_layer: str | None,
         output: str) -> XrayClassifier:
    check_output(output)  # before the (slow) construction of the network
    build = torchvision.models.vgg16_bn if batch_norm else torchvision.models.vgg16
    weights = torchvision.models.VGG16_BN_Weights if batch_norm else torchvision.models.VGG16_Weights
    net = build(weights=None, num_classes=num_classes)
    _load_pretrained(net, pretrained, weights.IMAGENET1K_V1, ["classifier.6.weight", "classifier.6.bias"])
    if head == "compact":
        net.avgpool = nn.AdaptiveAvgPool2d(1)
        net.classifier = nn.Linear(512, num_classes)
    elif head != "torchvision":
        raise ValueError(f"unknown vgg16 head {head!r}; allowed: 'torchvision', 'compact'")
    # the ReLU after the last convolution (before the last max pool), as in Selvaraju et al.
    last_relu = [n for n, m in net.features.named_children() if isinstance(m, nn.ReLU)][-1]
    return XrayClassifier(net, "vgg16_bn" if batch_norm else "vgg16", gradcam_layer or f"features.{last_relu}",
                          head_layer="classifier" if head == "compact" else "classifier.6", output=output)


@register_model("vgg16")
def vgg16(pretrained: str | None = None, head: str = "torchvision", num_classes: int = 2,
          gradcam_layer: str | None = None, output: str = "raw") -> XrayClassifier:
    """torchvision VGG16 (no batch norm).

    head="torchvision" keeps the 7x7x512 -> 4096 -> 4096 classifier (the published network);
    head="compact" replaces pooling and classifier by global average pooling and one linear
    layer; the 13 convolutions stay the same. With the torchvision head at 64 px on a 2-core CPU
    the AdamW step on its 134M dense parameters took 0.65-0.94 s of a 1.7-1.9 s training step
    (batch 32, measured); the compact head removes that cost.
    `gradcam_layer` defaults to the ReLU after the last convolution.
    `output`: "raw" (default) returns the class scores as trained, the quantity the published
    Grad-CAM, IG and LRP explain; "centred" subtracts their mean (see the module docstring).
    """
    return _vgg(False, pretrained, head, num_classes, gradcam_layer, output)


@register_model("vgg16_bn")
def vgg16_bn(pretrained: str | None = None, head: str = "torchvision", num_classes: int = 2,
             gradcam_layer: str | None = None, output: str = "raw") -> XrayClassifier:
    """torchvision VGG16 with batch norm: trains from scratch in far fewer epochs than plain VGG16.

    Parameters as `vgg16`; `output` "raw" (default) or "centred" (see the module docstring).
    """
    return _vgg(True, pretrained, head, num_classes, gradcam_layer, output)


@register_model("resnet50")
def resnet50(pretrained: str | None = None, head: str = "torchvision", num_classes: int = 2,
             gradcam_layer: str = "layer4", zero_init_residual: bool = True, output: str = "raw") -> XrayClassifier:
    """torchvision ResNet50; Grad-CAM on the output of the last stage (layer4) by default.

    On small images layer4 is very coarse (2x2 at 64 px): pick an earlier stage there.
    zero_init_residual (Goyal et al. 2017) starts every residual branch at zero; from scratch on
    the phantom it raised Val accuracy from 0.88 to 0.955 at the same budget (measured on this CPU).
    `output`: "raw" (default) returns the class scores as trained, the quantity the published
    Grad-CAM, IG and LRP explain; "centred" subtracts their mean (see the module docstring).
    """
    if head not in ("torchvision", "compact"):
        raise ValueError(f"unknown resnet50 head {head!r}; allowed: 'torchvision', 'compact'")
    check_output(output)
    net = torchvision.models.resnet50(weights=None, num_classes=num_classes, zero_init_residual=zero_init_residual)
    _load_pretrained(net, pretrained, torchvision.models.ResNet50_Weights.IMAGENET1K_V2, ["fc.weight", "fc.bias"])
    return XrayClassifier(net, "resnet50", gradcam_layer=gradcam_layer, head_layer="fc", output=output)


def _densenet_keys(state: dict) -> dict:
    """torchvision's DenseNet ImageNet files use the old names `norm.1` for `norm1` (as its loader fixes)."""
    pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")
    return {(m.group(1) + m.group(2) if (m := pattern.match(k)) else k): v for k, v in state.items()}


@register_model("densenet121")
def densenet121(pretrained: str | None = None, num_classes: int = 2, gradcam_layer: str = "relu",
                output: str = "raw") -> XrayClassifier:
    """torchvision DenseNet121 (the CheXNet architecture, Rajpurkar et al. 2017).

    torchvision applies the last ReLU functionally and in place (`F.relu(features, inplace=True)`),
    which would overwrite the activations a Grad-CAM hook on `features` holds and hide the ReLU from
    LRP; here the network is rebuilt as named modules with the same state_dict keys (`features.*`,
    `classifier.*`, so torchvision and CheXNet-style state_dicts load unchanged):
    features -> relu -> pool (global average) -> flatten -> classifier.
    Grad-CAM's default layer is `relu`: the rectified final feature maps that the global pooling
    and the linear classifier see, the maps CheXNet's class activation maps weight (with a global
    pooling and one linear layer, Grad-CAM on them equals CAM). `gradcam_layer = "features.norm5"`
    picks the layer before the ReLU (pytorch-grad-cam's usual choice for DenseNet).
    """
    check_output(output)
    base = torchvision.models.densenet121(weights=None, num_classes=num_classes)
    net = nn.Sequential(OrderedDict(features=base.features, relu=nn.ReLU(), pool=nn.AdaptiveAvgPool2d(1),
                                    flatten=nn.Flatten(1), classifier=base.classifier))
    _load_pretrained(net, pretrained, torchvision.models.DenseNet121_Weights.IMAGENET1K_V1,
                     ["classifier.weight", "classifier.bias"], fix_keys=_densenet_keys)
    return XrayClassifier(net, "densenet121", gradcam_layer=gradcam_layer, head_layer="classifier", output=output)


def _last_spatial_child(net: nn.Module, arch: str) -> str:
    """The last top-level child of `net` whose output is a 4-D feature map wider than 1x1 (one forward)."""
    seen: list[str] = []
    hooks = [m.register_forward_hook(lambda mod, inp, out, n=n: seen.append(n) if torch.is_tensor(out) and out.dim() == 4 and out.shape[-1] > 1 else None)
             for n, m in net.named_children()]
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(1, 3, 224, 224))
    finally:
        for h in hooks:
            h.remove()
    if not seen:
        raise ValueError(f"torchvision model {arch!r}: no top-level layer gives a 4-D feature map; "
                         f"set models.params.<model>.gradcam_layer")
    return seen[-1]


@register_model("torchvision")
def torchvision_model(arch: str = "", pretrained: str | None = None, num_classes: int = 2,
                      gradcam_layer: str | None = None, head_layer: str | None = None,
                      output: str = "raw") -> XrayClassifier:
    """Any torchvision classification model by name (`arch`, e.g. "efficientnet_b0", "convnext_tiny",
    "densenet169"), randomly initialised with `num_classes` outputs, behind the same grey-input wrapper.

    `gradcam_layer` defaults to the last top-level child giving a 4-D feature map (ResNets:
    `layer4`; EfficientNet, MobileNet, ConvNeXt, DenseNet: `features`); `head_layer` (the layer
    `centred_head` folds, used by LRP) to the last nn.Linear. In-place activations held as modules
    are made out-of-place; a model that applies in-place functions in its forward (torchvision's
    DenseNets apply the last ReLU that way) can disturb Grad-CAM hooks on the layer before:
    use the dedicated `densenet121` builder there. LRP refuses these architectures (no canonizer).
    `pretrained`: a local file with the torchvision state_dict (its head is dropped when its
    shape differs), or "imagenet" for torchvision's cached weights (never downloaded).
    """
    check_output(output)
    names = torchvision.models.list_models(module=torchvision.models)
    if arch not in names:
        raise ValueError(f"torchvision model arch {arch!r} is not a torchvision classification model; "
                         f"e.g. {[n for n in names if n.startswith(('densenet', 'efficientnet_b', 'resnet'))][:12]}")
    net = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
    for module in net.modules():
        if getattr(module, "inplace", False) is True:
            module.inplace = False
    linears = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    if head_layer is None:
        if not linears:
            raise ValueError(f"torchvision model {arch!r} has no nn.Linear head; set models.params.<model>.head_layer")
        head_layer = linears[-1]
    head_params = [f"{head_layer}.weight", f"{head_layer}.bias"]
    if pretrained == "imagenet":
        weights = torchvision.models.get_model_weights(arch).DEFAULT
    else:
        weights = None
    _load_pretrained(net, pretrained, weights, head_params,
                     fix_keys=_densenet_keys if arch.startswith("densenet") else None)
    return XrayClassifier(net, arch, gradcam_layer=gradcam_layer or _last_spatial_child(net, arch),
                          head_layer=head_layer, output=output)


def build_model(name: str, **params) -> nn.Module:
    """Model `name` built by its registered builder from `params`. `output_index`, `output_class` and
    `output_kind` (any model; see models.output_head) are taken here, not by the builder: the built
    model's outputs are then turned into the two logits of one chosen output (an `OutputHead`)."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {sorted(MODELS)}")
    builder = MODELS[name]
    chosen = {k: params.pop(k) for k in OUTPUT_PARAMS if k in params}
    if not chosen:
        return builder(**params)
    try:
        check_output_params({**params, **chosen}, builder)
    except ValueError as err:
        raise ValueError(f"models.params.{name}: {err}") from None
    # the builder gives its raw outputs; centring, if asked for, applies to the two logits
    centred = params.get("output") == "centred"
    if centred:
        params["output"] = "raw"
    model = builder(**params)
    try:
        return select_output(model, **chosen, centred=centred)
    except ValueError as err:
        raise ValueError(f"models.params.{name}: {err}") from None
