"""densenet121, a generic torchvision model and torchxrayvision's DenseNet (random weights) go
through every explainer that supports them, under the explainer contract (shape, finite,
deterministic, batched equals one by one); LRP refuses them (tests/explainers/test_lrp_architectures.py)."""
import pytest
import torch

from cxr_xai_bench.datasets import collate
from cxr_xai_bench.datasets.phantom import PhantomDataset
from cxr_xai_bench.explainers import EXPLAINERS, build_explainer
from cxr_xai_bench.models import build_model

FAST = {"lime": {"num_samples": 16, "batch_size": 16}, "integrated_gradients": {"n_steps": 4},
        "occlusion": {"window": 0.25, "stride": 0.25}}
# the explainers that use the model (the baselines ignore it; lime_package is lime's reference, tested there)
MODEL_EXPLAINERS = ["eigencam", "gradcam", "gradcam_pp", "integrated_gradients", "lime", "occlusion"]
MODELS = {"densenet121": {}, "xrv_densenet121": {"weights": "", "resolution": 0},
          "torchvision": {"arch": "efficientnet_b0"}}


@pytest.fixture(scope="module")
def batch():
    return collate([PhantomDataset("test", size=32)[i] for i in range(3)])


@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request):
    torch.manual_seed(0)
    return build_model(request.param, **MODELS[request.param]).eval()


def _context(batch, sl=slice(None)):
    return {"lung_masks": batch.lung_masks[sl], "lesion_masks": batch.lesion_masks[sl],
            "train_mean_mask": batch.lesion_masks.float().mean(0)}


def _build(name):
    return build_explainer(name, seed=1, **FAST.get(name, {}))


def test_every_model_explainer_is_covered():
    assert set(MODEL_EXPLAINERS) <= set(EXPLAINERS)


@pytest.mark.parametrize("name", MODEL_EXPLAINERS)
def test_contract_on_more_architectures(name, model, batch):
    exp = _build(name)
    maps = exp.explain(model, batch.images, batch.labels, **_context(batch))
    assert maps.shape == (3, 32, 32) and maps.dtype == torch.float32
    assert torch.isfinite(maps).all()
    assert torch.equal(maps, _build(name).explain(model, batch.images, batch.labels, **_context(batch)))
    one = exp.explain(model, batch.images[2:3], batch.labels[2:3], **_context(batch, slice(2, 3)))
    assert torch.allclose(one[0], maps[2], rtol=1e-4, atol=1e-5), "batched must equal one-by-one"
    if not exp.signed:
        assert (maps >= 0).all()
