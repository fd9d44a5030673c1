"""Grad-CAM++ and EigenCAM through pytorch-grad-cam, on the layer the model builder declares.

pytorch-grad-cam min-max normalises every map to [0,1] and resizes it with OpenCV; these maps are
therefore unsigned and comparable only in rank, as the metrics here use them.

EigenCAM's sign: the first principal component of the activations is defined up to its sign
(A = U S V^T = (-U) S (-V)^T), and pytorch-grad-cam's `get_2d_projection` keeps whatever sign the
SVD returns; the ReLU that follows then keeps one half of the map or the other, so the map could
mark the least activated region instead of the most. `oriented_2d_projection` fixes the sign so
that the projection correlates positively with the mean activation over channels (the summed
activations, the map a reader expects EigenCAM to agree with); otherwise it is the same
computation as `get_2d_projection` (centring per channel, SVD, projection on the first component).
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from .registry import Explainer, register_explainer


def oriented_2d_projection(activation_batch: np.ndarray) -> np.ndarray:
    """(B,C,H,W) activations -> (B,H,W) projections on their first principal component, the
    component's sign chosen so the projection correlates positively with the mean activation over
    channels. Ties (zero correlation, e.g. constant activations) keep the larger magnitude
    positive, as Seg-Eigen-CAM (Chung and Ying 2025, Eq. 13) does for every map.
    """
    activation_batch = np.nan_to_num(np.asarray(activation_batch), nan=0.0)  # a copy without NaNs, as the package
    projections = []
    for activations in activation_batch:
        flat = activations.reshape(activations.shape[0], -1).T  # (H*W, C)
        centred = flat - flat.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        projection = centred @ vt[0]
        agreement = float(projection @ (flat.mean(axis=1) - flat.mean()))
        if agreement < 0 or (agreement == 0 and abs(projection.min()) > abs(projection.max())):
            projection = -projection
        projections.append(projection.reshape(activations.shape[1:]))
    return np.float32(projections)


class _PytorchGradCam(Explainer):
    signed = False
    method: str = ""

    backward: int = 1  # pytorch-grad-cam's uses_gradients

    def passes(self, side: int) -> tuple[int, int]:
        return 1, self.backward

    def cam_class(self):
        import pytorch_grad_cam
        return getattr(pytorch_grad_cam, self.method)

    def _explain(self, model, images, targets):
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        with self.cam_class()(model=model, target_layers=[model.gradcam_layer]) as cam:
            maps = cam(input_tensor=images, targets=[ClassifierOutputTarget(int(t)) for t in targets])
        return torch.from_numpy(maps).float().to(images.device)


@register_explainer("gradcam_pp")
class GradCAMPlusPlus(_PytorchGradCam):
    """Grad-CAM++ (Chattopadhay et al. 2018): second-order weighting of the gradients."""

    method = "GradCAMPlusPlus"


@functools.cache
def _oriented_eigencam():
    from pytorch_grad_cam import EigenCAM as PackageEigenCAM

    class OrientedEigenCAM(PackageEigenCAM):
        """pytorch-grad-cam's EigenCAM with the principal component's sign fixed."""

        def get_cam_image(self, input_tensor, target_layer, target_category, activations, grads, eigen_smooth):
            return oriented_2d_projection(activations)

    return OrientedEigenCAM


@register_explainer("eigencam")
class EigenCAM(_PytorchGradCam):
    """EigenCAM (Muhammad and Yeasin 2020): first principal component of the layer's activations;
    gradient-free and class-agnostic. The component is oriented to agree with the mean activation
    over channels (see the module docstring), then pytorch-grad-cam's ReLU and min-max scaling."""

    method = "EigenCAM"
    backward = 0

    def cam_class(self):
        return _oriented_eigencam()
