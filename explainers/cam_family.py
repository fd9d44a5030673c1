"""Grad-CAM++ and EigenCAM through pytorch-grad-cam, on the layer the model builder declares.

pytorch-grad-cam min-max normalises every map to [0,1] and resizes it with OpenCV; these maps are
therefore unsigned and comparable only in rank, as the metrics here use them.
"""
from __future__ import annotations

import torch

from .registry import Explainer, register_explainer


class _PytorchGradCam(Explainer):
    signed = False
    method: str = ""

    def _explain(self, model, images, targets):
        import pytorch_grad_cam
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        cam_class = getattr(pytorch_grad_cam, self.method)
        with cam_class(model=model, target_layers=[model.gradcam_layer]) as cam:
            maps = cam(input_tensor=images, targets=[ClassifierOutputTarget(int(t)) for t in targets])
        return torch.from_numpy(maps).float().to(images.device)


@register_explainer("gradcam_pp")
class GradCAMPlusPlus(_PytorchGradCam):
    """Grad-CAM++ (Chattopadhay et al. 2018): second-order weighting of the gradients."""

    method = "GradCAMPlusPlus"


@register_explainer("eigencam")
class EigenCAM(_PytorchGradCam):
    """EigenCAM (Muhammad and Yeasin 2020): first principal component of the layer's activations;
    gradient-free and class-agnostic."""

    method = "EigenCAM"
