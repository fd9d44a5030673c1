"""LIME (Ribeiro et al. 2016): the lime package's algorithm with the perturbed images built on the device.

`lime` keeps everything of `lime_image.LimeImageExplainer.explain_instance` - the segmentation,
the per-superpixel mean as the hidden colour, the on/off draws from its RandomState, the cosine
distance, the kernel and the weighted ridge surrogate through its own `lime_base` - but builds
all perturbed images in one gather over the segment map and classifies them in large batches,
where the package copies and masks one image at a time in numpy. With the same segmentation and
seed the superpixel weights equal the package's (tested). `lime_package` runs the package itself.
The map gives every pixel the surrogate weight of its superpixel for the target class.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import numpy as np
import sklearn.metrics
import torch
from lime import lime_image
from lime.wrappers.scikit_image import SegmentationAlgorithm

from .registry import Explainer, register_explainer

SEGMENTERS = ("quickshift", "slic", "felzenszwalb")


@register_explainer("lime_package")
class LIMEPackage(Explainer):
    signed = True
    forward_only = True

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

    def passes(self, side: int) -> tuple[int, int]:
        return self.num_samples, 0  # the first sample is the whole image

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


@register_explainer("lime")
class LIME(LIMEPackage):
    def _explain(self, model, images, targets):
        seeds = [self.image_seed(image) for image in images]
        rgbs = [image[0].cpu().double().numpy()[..., None].repeat(3, axis=2) for image in images]
        # segmentation runs on the CPU (scikit-image releases the GIL): all images at once in
        # threads, while the device classifies; each image keeps its own seed, so order is moot
        with ThreadPoolExecutor(max_workers=min(len(images), os.cpu_count() or 1)) as pool:
            all_segments = list(pool.map(lambda a: self.segmenter(a[0])(a[1]), zip(seeds, rgbs)))
        maps = []
        for image, target, seed, segments_np in zip(images, targets.tolist(), seeds, all_segments):
            explainer = lime_image.LimeImageExplainer(random_state=seed)
            segments = torch.from_numpy(segments_np).to(images.device).long()
            n_features = int(np.unique(segments_np).shape[0])
            if segments_np.min() != 0 or segments_np.max() != n_features - 1:
                raise ValueError(f"lime: segment labels must be 0..{n_features - 1} (set start_label=0)")
            # the package's draws, in its order, from its RandomState
            data = explainer.random_state.randint(0, 2, self.num_samples * n_features).reshape(self.num_samples, n_features)
            data[0, :] = 1
            grey = image[0].double()
            sums = torch.zeros(n_features, dtype=torch.float64, device=images.device).index_add_(0, segments.flatten(), grey.flatten())
            counts = torch.bincount(segments.flatten(), minlength=n_features).double()
            # superpixel means in float64 as the package computes them; selecting before or after
            # the cast to float32 gives the same values, so the big gather runs in float32
            fudged = (sums / counts)[segments].float()
            grey = grey.float()
            on = torch.from_numpy(data).to(images.device).bool()
            probs = []
            with torch.no_grad():
                for i in range(0, self.num_samples, self.batch_size):
                    keep = on[i:i + self.batch_size][:, segments]  # (B,H,W): superpixel on or hidden
                    probs.append(model(torch.where(keep, grey, fudged)[:, None]).softmax(1).double())
            labels = torch.cat(probs).cpu().numpy()
            distances = sklearn.metrics.pairwise_distances(data, data[0].reshape(1, -1), metric="cosine").ravel()
            _, local_exp, _, _ = explainer.base.explain_instance_with_data(
                data, labels, distances, target, 100000, model_regressor=None, feature_selection=explainer.feature_selection)
            weights = np.zeros(n_features)
            for segment, w in local_exp:
                weights[segment] = w
            maps.append(torch.from_numpy(weights)[segments.cpu()].float())
        return torch.stack(maps).to(images.device)
