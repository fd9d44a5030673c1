"""The registered `lime` explainer (perturbations built on the device) against the lime package.

With the same segmentation and seed, every pixel of our map must carry the surrogate weight that
`lime_image.LimeImageExplainer.explain_instance` gives its superpixel. The comparison is made on
several images and both classes, with a model whose output moves by units of logit when
superpixels are hidden, so the weights are of order 0.1 (asserted) and the tolerance is relative
to them: an untrained torchvision network's probabilities barely move, its LIME weights are
~1e-4 and an absolute 1e-6 tolerance says little.
"""
import numpy as np
import pytest
import torch
from lime import lime_image
from torch import nn

from cxr_xai_bench.datasets import collate
from cxr_xai_bench.datasets.phantom import PhantomDataset
from cxr_xai_bench.explainers import build_explainer

SIZE, SAMPLES = 64, 50
TARGETS = torch.tensor([0, 1, 1])


class TextureNet(nn.Module):
    """A small CNN on the image minus its local mean: it reads texture, which hiding a superpixel
    (filling it with its mean) removes, so LIME's perturbations move its logits by units."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 8, 5, padding=2), nn.ReLU(), nn.Conv2d(8, 16, 5, stride=2, padding=2),
                                  nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.head = nn.Linear(256, 2)

    def forward(self, x):
        return self.head(self.body(x - nn.functional.avg_pool2d(x, 7, stride=1, padding=3, count_include_pad=False)))


@pytest.fixture(scope="module")
def images():
    return collate([PhantomDataset("test", size=SIZE)[i] for i in range(3)]).images


@pytest.fixture(scope="module")
def model(images):
    """Random convolutions; the head scaled so an image and its 8x8-block-mean version differ by
    about 3 in logit (std over classes and images), and centred on them."""
    torch.manual_seed(0)
    m = TextureNet().eval()
    blocky = nn.functional.interpolate(nn.functional.avg_pool2d(images, 8), size=(SIZE, SIZE))
    with torch.no_grad():
        m.head.weight.mul_(3 / (m(images) - m(blocky)).std())
        m.head.bias.sub_(m(torch.cat([images, blocky])).mean(0))
    return m


def lime_package_weights(model, image, target, explainer):
    """Superpixel weights and segments from lime_image itself, with our segmentation and seed."""
    seed = explainer.image_seed(image)
    rgb = image[0].double().numpy()[..., None].repeat(3, axis=2)

    def classify(x):
        with torch.no_grad():
            return model(torch.from_numpy(x[..., 0]).float()[:, None]).softmax(1).double().numpy()

    ref = lime_image.LimeImageExplainer(random_state=seed).explain_instance(
        rgb, classify, labels=(target,), top_labels=None, num_samples=SAMPLES, batch_size=SAMPLES,
        segmentation_fn=explainer.segmenter(seed), random_seed=seed)
    weights = np.zeros(ref.segments.max() + 1)
    for segment, w in ref.local_exp[target]:
        weights[segment] = w
    return weights, ref.segments


def test_lime_map_holds_the_lime_package_weights(model, images):
    """Every pixel carries the surrogate weight lime gives its superpixel, on every image."""
    exp = build_explainer("lime", num_samples=SAMPLES, batch_size=SAMPLES)
    maps = exp.explain(model, images, TARGETS).numpy()  # one batched call for all images
    for i, target in enumerate(TARGETS.tolist()):
        weights, segments = lime_package_weights(model, images[i], target, exp)
        assert len(weights) >= 4, f"image {i}: only {len(weights)} superpixels"
        top = np.abs(weights).max()
        assert top > 0.02, f"image {i}: LIME weights {weights} too small to compare"
        assert np.ptp(weights) > 0.02, f"image {i}: LIME weights {weights} nearly equal"
        np.testing.assert_allclose(maps[i], weights[segments], rtol=1e-5, atol=1e-6 * top,
                                   err_msg=f"image {i}, target {target}")
