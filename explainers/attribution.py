"""Integrated Gradients and Occlusion from captum, in image space (signed maps)."""
from __future__ import annotations

from captum.attr import IntegratedGradients, Occlusion

from .registry import Explainer, register_explainer


@register_explainer("integrated_gradients")
class IntegratedGradientsMap(Explainer):
    """Integrated Gradients (Sundararajan et al. 2017) from a black image, Gauss-Legendre steps."""

    signed = True

    def __init__(self, seed: int = 0, n_steps: int = 32, internal_batch_size: int = 64):
        super().__init__(seed)
        self.n_steps, self.internal_batch_size = n_steps, internal_batch_size

    def passes(self, side: int) -> tuple[int, int]:
        return self.n_steps, self.n_steps

    def _explain(self, model, images, targets):
        ig = IntegratedGradients(model)
        attr = ig.attribute(images, baselines=0.0, target=targets, n_steps=self.n_steps,
                            internal_batch_size=self.internal_batch_size)
        return attr[:, 0]


@register_explainer("occlusion")
class OcclusionMap(Explainer):
    """Occlusion (Zeiler and Fergus 2014): drop in the target logit when a black square covers a
    region; window and stride as fractions of the image side."""
    forward_only = True

    signed = True

    def __init__(self, seed: int = 0, window: float = 0.125, stride: float = 0.0625):
        super().__init__(seed)
        self.window, self.stride = window, stride

    def _window(self, side: int) -> tuple[int, int]:
        return max(1, round(self.window * side)), max(1, round(self.stride * side))

    def passes(self, side: int) -> tuple[int, int]:
        w, s = self._window(side)
        shifts = -(-(side - w) // s) + 1  # captum's positions per axis (the last may overhang)
        return 1 + shifts * shifts, 0  # the unoccluded image, then one pass per window position

    def _explain(self, model, images, targets):
        side = images.shape[-1]
        w, s = self._window(side)
        attr = Occlusion(model).attribute(images, target=targets, sliding_window_shapes=(1, w, w),
                                          strides=(1, s, s), baselines=0.0)
        return attr[:, 0]
