"""pytest-benchmark timings of the faithfulness metrics at a fixed small size on the CPU (tox -e bench)."""
import pytest
import torch

from benchmark.metrics import score
from benchmark.speed.metric_speed import build, make_inputs

CASES = [("deletion_auc", {"steps": 64}), ("insertion_auc", {"steps": 64}),
         ("deletion_auc", {"steps": 64, "unit": "patch", "patch_size": 8}),
         ("faithfulness_correlation", {"nr_runs": 100}), ("road_morf", {}), ("road_lerf", {})]


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = build("tiny").eval()
    images, maps, masks = make_inputs(8, 64, torch.device("cpu"))
    with torch.no_grad():
        targets = model(images).argmax(1)
    return model, images, targets, maps, masks


@pytest.mark.perf
@pytest.mark.parametrize("name,params", CASES, ids=[f"{n}-{'-'.join(map(str, p.values()))}" for n, p in CASES])
def test_metric_speed(benchmark, setup, name, params):
    model, images, targets, maps, masks = setup
    has = masks.flatten(1).any(1)
    v = benchmark.pedantic(score, args=(name, model, images, targets, maps, masks, has), kwargs=params,
                           rounds=2, iterations=1, warmup_rounds=1)
    assert v.shape == (8,) and torch.isfinite(v).all()
