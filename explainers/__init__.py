"""Explanation methods: explain(model, images, targets) -> (N,H,W) float32 maps.

Registered on import: attribution (gradients, IG, occlusion...), baselines, cam_family, gradcam,
lime_image, lrp. `folder_maps` registers maps made elsewhere under a name the config gives
(explain.folders), on demand."""
from .registry import EXPLAINERS, Explainer, build_explainer, register_explainer
from . import attribution, baselines, cam_family, gradcam, lime_image, lrp  # noqa: F401  (register the entries)

__all__ = ["EXPLAINERS", "Explainer", "build_explainer", "register_explainer"]
