"""Layer-wise relevance propagation with zennit, one composite and canonizer per architecture.

Presets (zennit composites):
- "epsilon_gamma_box" (Montavon et al. 2019; Kohlbrenner et al. 2020): z-box at the input, bounded
  by the normalised black and white; gamma on convolutions; epsilon on dense layers.
- "epsilon_alpha2beta1_flat": flat at the input, alpha=2 beta=1 on convolutions, epsilon on dense.
- "epsilon_plus_flat": flat at the input, z+ on convolutions, epsilon on dense layers.
"auto" picks epsilon_gamma_box for VGG and epsilon_alpha2beta1_flat for ResNet50, by what was
measured on the phantom's ResNet50 (this CPU, 40 test images): gamma is unstable there (zennit
issue #148; with bias-free rules the relevance sum reached 1e12 times the logit), and
epsilon_plus_flat conserves but never pointed into a lesion (pointing game 0.0, against 0.15 for
alpha2beta1). Canonizers per architecture: VGG (batch norm merged into convolutions) and ResNet
(batch norm merged, residual sums made explicit so the Norm rule splits them).
Relevance is computed for the
torchvision network on the normalised input and summed over the three colour channels, which
keeps it conserved (the grey-to-RGB copy is a sum in the backward direction). The explained
output is the model's centred target logit (see models.builders), folded into the last layer.
"""
from __future__ import annotations

import torch
from zennit.attribution import Gradient
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import EpsilonAlpha2Beta1Flat, EpsilonGammaBox, EpsilonPlusFlat
from zennit.torchvision import ResNetBasicBlockCanonizer, ResNetBottleneckCanonizer

from .registry import Explainer, register_explainer

PRESETS = ("auto", "epsilon_gamma_box", "epsilon_alpha2beta1_flat", "epsilon_plus_flat")


class ExactMergeBatchNorm(SequentialMergeBatchNorm):
    """zennit's SequentialMergeBatchNorm, with the merged batch norm exactly the identity.

    zennit 0.5.1 sets a merged batch norm's statistics to mean 0 and variance 1 but keeps its eps,
    so the layer still divides by sqrt(1 + eps): each merged batch norm scales by about 1 - eps/2,
    and LRP explains a network that is not the model (the explained logit was off by a relative
    7e-4 on a VGG16_bn and 1.4e-4 on a ResNet50, tested against the model's own output). A
    variance of 1 - eps makes var + eps = 1; `remove` restores the statistics as before.
    """

    @staticmethod
    def merge_batch_norm(modules, batch_norm):
        SequentialMergeBatchNorm.merge_batch_norm(modules, batch_norm)
        batch_norm.running_var.data = torch.ones_like(batch_norm.running_var.data) - batch_norm.eps


def canonizers_for(arch: str) -> list:
    """Batch norm merged into the layer before it; ResNet: residual sums made explicit modules
    (zennit's ResNetCanonizer with the exact merge; VGGCanonizer is the merge alone)."""
    if arch == "resnet50":
        return [ExactMergeBatchNorm(), ResNetBottleneckCanonizer(), ResNetBasicBlockCanonizer()]
    return [ExactMergeBatchNorm()]


@register_explainer("lrp")
class LRP(Explainer):
    signed = True

    def __init__(self, seed: int = 0, preset: str = "auto", gamma: float = 0.25, epsilon: float = 1e-6,
                 zero_bias: bool = False):
        super().__init__(seed)
        if preset not in PRESETS:
            raise ValueError(f"unknown LRP preset {preset!r}; allowed: {PRESETS}")
        self.preset, self.gamma, self.epsilon = preset, gamma, epsilon
        # biases absorb relevance; zeroing them in the rules makes relevance exactly conserved
        self.zero_params = ["bias"] if zero_bias else None

    def composite(self, model):
        # architectures whose canonizers and rules are tested to conserve relevance (test_lrp_conserves_relevance);
        # any other is refused rather than explained with relevance nobody checked
        supported = ("vgg16", "vgg16_bn", "resnet50")
        if getattr(model, "arch", None) not in supported:
            raise ValueError(f"lrp does not support architecture {getattr(model, 'arch', type(model).__name__)!r}: zennit "
                             f"has no canonizer for it (DenseNets put batch norm before their convolutions and "
                             f"concatenate features), so relevance would not be conserved; supported: "
                             f"{list(supported)}. Leave lrp out of explain.names for this model")
        preset = self.preset
        if preset == "auto":
            preset = "epsilon_alpha2beta1_flat" if model.arch == "resnet50" else "epsilon_gamma_box"
        canonizers = canonizers_for(model.arch)
        if preset == "epsilon_gamma_box":
            low, high = model.input_bounds
            return EpsilonGammaBox(low=low, high=high, epsilon=self.epsilon, gamma=self.gamma,
                                   canonizers=canonizers, zero_params=self.zero_params)
        if preset == "epsilon_alpha2beta1_flat":
            return EpsilonAlpha2Beta1Flat(epsilon=self.epsilon, canonizers=canonizers, zero_params=self.zero_params)
        return EpsilonPlusFlat(epsilon=self.epsilon, canonizers=canonizers, zero_params=self.zero_params)

    def passes(self, side: int) -> tuple[int, int]:
        return 1, 1

    def relevance(self, model, images, targets) -> tuple[torch.Tensor, torch.Tensor]:
        """Input relevance (N,3,H,W) on the normalised input and the explained logits (N,)."""
        x = model.preprocess(images).detach().requires_grad_(True)
        onehot = torch.nn.functional.one_hot(targets, 2).to(x)
        with model.centred_head() as net, Gradient(model=net, composite=self.composite(model)) as attributor:
            out, rel = attributor(x, lambda logits: logits * onehot)
        return rel, out.gather(1, targets[:, None])[:, 0]

    def _explain(self, model, images, targets):
        return self.relevance(model, images, targets)[0].sum(1)
