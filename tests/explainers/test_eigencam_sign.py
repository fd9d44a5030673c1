"""EigenCAM's principal component is oriented: the map does not depend on the sign the SVD
happens to return, and it is high where the layer's activations are high."""
import numpy as np
import pytest
import torch
from torch import nn

from cxr_xai_bench.explainers import build_explainer

_svd = np.linalg.svd


def _flipped_svd(a, *args, **kwargs):
    """The other, equally valid, SVD: A = (-U) S (-V)^T."""
    u, s, vt = _svd(a, *args, **kwargs)
    return -u, s, -vt


class BlobNet(nn.Module):
    """One conv with positive weights and a ReLU (the declared Grad-CAM layer): activations are
    high where the image is bright."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.rand(6, 1, 3, 3, generator=torch.Generator().manual_seed(0)) + 0.1)
        self.relu = nn.ReLU()
        self.head = nn.Linear(6, 2)
        self.gradcam_layer = self.relu

    def forward(self, x):
        return self.head(self.relu(self.conv(x)).mean((2, 3)))


@pytest.fixture
def images():
    """Dim noisy background, one bright square per image (at a different place in each)."""
    x = 0.1 + 0.05 * torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    x[0, 0, 4:12, 6:14] = 0.9
    x[1, 0, 18:28, 16:26] = 0.9
    return x


def _blob(x):
    return x[:, 0] > 0.5


@pytest.mark.parametrize("flip", [False, True])
def test_eigencam_is_high_where_activation_is_high(images, flip, monkeypatch):
    if flip:
        monkeypatch.setattr(np.linalg, "svd", _flipped_svd)
    maps = build_explainer("eigencam").explain(BlobNet().eval(), images, torch.tensor([1, 0]))
    blob = _blob(images)
    for m, b in zip(maps, blob):
        assert b.flatten()[m.argmax()], "the map's maximum lies in the bright square"
        assert m[b].mean() > 0.5 > m[~b].mean()


def test_eigencam_map_does_not_depend_on_the_svd_sign(images, monkeypatch):
    model = BlobNet().eval()
    exp = build_explainer("eigencam")
    plain = exp.explain(model, images, torch.tensor([1, 0]))
    monkeypatch.setattr(np.linalg, "svd", _flipped_svd)
    flipped = exp.explain(model, images, torch.tensor([1, 0]))
    assert torch.equal(plain, flipped)


def test_projection_is_the_package_one_up_to_sign_and_agrees_with_the_mean_activation():
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    from cxr_xai_bench.explainers.cam_family import oriented_2d_projection
    rng = np.random.default_rng(0)
    acts = rng.random((3, 8, 5, 5)).astype(np.float32)
    acts[:, :, 1:3, 1:3] += 2.0  # a strongly activated region
    ours = oriented_2d_projection(acts)
    theirs = get_2d_projection(acts)
    for o, t, a in zip(ours, theirs, acts):
        assert np.allclose(np.abs(o), np.abs(t), atol=1e-4)
        assert np.corrcoef(o.ravel(), a.mean(0).ravel())[0, 1] > 0
    # negating the activations' component (activations reflected about their channel means) flips
    # the SVD's sign; the oriented projection follows the new mean activation
    mirrored = 2 * acts.mean((2, 3), keepdims=True) - acts
    assert np.allclose(oriented_2d_projection(mirrored), -ours, atol=1e-4)
