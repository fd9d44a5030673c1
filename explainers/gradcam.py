"""Grad-CAM (Selvaraju et al. 2017) via captum on the layer the model builder declares."""
from __future__ import annotations

from captum.attr import LayerAttribution, LayerGradCam

from .registry import Explainer, register_explainer


@register_explainer("gradcam")
class GradCAM(Explainer):
    signed = False

    def __init__(self, seed: int = 0, upsample: str = "bilinear"):
        super().__init__(seed)
        self.upsample = upsample

    def passes(self, side: int) -> tuple[int, int]:
        # captum takes the gradient to the Grad-CAM layer only: it never reaches the input, so the
        # floor counts no backward pass (a lower bound: the partial backward still costs)
        return 1, 0

    def _explain(self, model, images, targets):
        # captum defaults to relu_attributions=False; the published method applies the ReLU
        cam = LayerGradCam(model, model.gradcam_layer).attribute(images, target=targets, relu_attributions=True)
        up = LayerAttribution.interpolate(cam, tuple(images.shape[2:]), interpolate_mode=self.upsample)
        return up[:, 0]
