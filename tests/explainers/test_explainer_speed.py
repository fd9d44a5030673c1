"""pytest-benchmark timings of every explainer at a fixed small size on the CPU (tox -e bench)."""
import pytest
import torch

from cxr_xai_bench.datasets import collate
from cxr_xai_bench.datasets.phantom import PhantomDataset
from cxr_xai_bench.explainers import EXPLAINERS, build_explainer
from cxr_xai_bench.models import build_model

PARAMS = {"lime": {"num_samples": 200, "batch_size": 200}, "lime_package": {"num_samples": 200, "batch_size": 200}}


@pytest.fixture(scope="module")
def setup():
    batch = collate([PhantomDataset("test", size=64)[i] for i in range(4)])
    torch.manual_seed(0)
    model = build_model("resnet50").eval()
    context = {"lung_masks": batch.lung_masks, "lesion_masks": batch.lesion_masks,
               "train_mean_mask": batch.lesion_masks.float().mean(0)}
    return model, batch, context


@pytest.mark.perf
@pytest.mark.parametrize("name", sorted(EXPLAINERS))
def test_explainer_speed(benchmark, setup, name):
    model, batch, context = setup
    exp = build_explainer(name, **PARAMS.get(name, {}))
    maps = benchmark.pedantic(exp.explain, args=(model, batch.images, batch.labels), kwargs=context,
                              rounds=2, iterations=1, warmup_rounds=1)
    assert maps.shape == (4, 64, 64)
