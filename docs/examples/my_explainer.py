"""A plug-in: one file that adds an explainer and a metric to the benchmark.

    python -m benchmark list --plugin docs/examples/my_explainer.py
    python -m benchmark run --plugin docs/examples/my_explainer.py \
        --set 'explain.names=["input_x_gradient","gradcam","random"]' \
        --set 'metrics.names=["deletion_auc","pointing_game","lesion_share"]'
"""
import torch

from benchmark.metrics import register_metric
from cxr_xai_bench.explainers import Explainer, register_explainer


@register_explainer("input_x_gradient")
class InputXGradient(Explainer):
    """Input times the gradient of the target logit (Shrikumar et al. 2016)."""

    signed = True  # its maps hold negative evidence too

    def _explain(self, model, images, targets):
        x = images.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            logits = model(x)
            logits.gather(1, targets[:, None]).sum().backward()
        return (x * x.grad)[:, 0]  # (N,H,W) at input resolution


@register_metric("lesion_share", category="localisation", higher_is_better=True, needs_mask=True)
def lesion_share(model, images, targets, maps, masks, has_mask, **_):
    """Share of positive relevance inside the lesion mask; NaN where there is no lesion."""
    pos = maps.clamp(min=0).flatten(1)
    inside = (pos * masks.flatten(1).float()).sum(1) / pos.sum(1).clamp(min=1e-12)
    lesion = has_mask & masks.flatten(1).any(1)
    return torch.where(lesion, inside, torch.full_like(inside, float("nan")))
