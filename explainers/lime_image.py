"""LIME (Ribeiro et al. 2016) through the lime package, one image at a time.

The map gives every pixel the surrogate weight of its superpixel for the target class.
"""
from __future__ import annotations

from unittest import mock

import numpy as np
import torch
from lime import lime_image
from lime.wrappers.scikit_image import SegmentationAlgorithm

from .registry import Explainer, register_explainer

SEGMENTERS = ("quickshift", "slic", "felzenszwalb")


@register_explainer("lime")
class LIME(Explainer):
    signed = True

    def __init__(self, seed: int = 0, num_samples: int = 200, batch_size: int = 100,
                 segmentation: str = "quickshift", segmentation_params: dict | None = None):
        super().__init__(seed)
        if segmentation not in SEGMENTERS:
            raise ValueError(f"unknown LIME segmentation {segmentation!r}; allowed: {SEGMENTERS}")
        if num_samples < 2:
            raise ValueError(f"LIME needs num_samples >= 2, got {num_samples}")
        self.num_samples, self.batch_size = num_samples, batch_size
        self.segmentation = segmentation
        self.segmentation_params = dict(segmentation_params or {})

    def segmenter(self, seed: int) -> SegmentationAlgorithm:
        params = dict(self.segmentation_params)
        if self.segmentation == "quickshift":
            params.setdefault("random_seed", seed)
        return SegmentationAlgorithm(self.segmentation, **params)

    def _explain(self, model, images, targets):
        device = images.device

        @torch.no_grad()
        def classify(rgb: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(rgb[..., 0]).float().unsqueeze(1).to(device)
            return model(x).softmax(1).cpu().double().numpy()

        maps = []
        for image, target in zip(images, targets.tolist()):
            seed = self.image_seed(image)
            rgb = image[0].cpu().double().numpy()[..., None].repeat(3, axis=2)
            with mock.patch.object(lime_image, "tqdm", lambda rows: rows):  # lime draws a bar per image
                exp = lime_image.LimeImageExplainer(random_state=seed).explain_instance(
                    rgb, classify, labels=(target,), top_labels=None, num_samples=self.num_samples,
                    batch_size=self.batch_size, segmentation_fn=self.segmenter(seed), random_seed=seed)
            weights = np.zeros(exp.segments.max() + 1)
            for segment, w in exp.local_exp[target]:
                weights[segment] = w
            maps.append(torch.from_numpy(weights[exp.segments]).float())
        return torch.stack(maps).to(device)
