"""Per-batch seeds of the metrics that draw at random: image i of every batch must not get the
same random subsets (faithfulness correlation) or noise (ROAD)."""
import torch

from benchmark.metrics import get_metric, score
from benchmark.run.scoring import batch_seed as _batch_seed


def test_each_batch_gets_its_own_seed_unless_the_config_fixes_one():
    spec = get_metric("faithfulness_correlation")
    a, b = _batch_seed(spec, {}, 0, 0)["seed"], _batch_seed(spec, {}, 0, 16)["seed"]
    assert a != b and _batch_seed(spec, {}, 0, 16)["seed"] == b, "deterministic per batch"
    assert _batch_seed(spec, {}, 1, 0)["seed"] != a, "the run seed matters"
    assert _batch_seed(spec, {"seed": 5}, 0, 16) == {"seed": 5}
    assert _batch_seed(get_metric("deletion_auc"), {"steps": 4}, 0, 16) == {"steps": 4}, "no seed to set"
    assert "seed" in get_metric("road_morf").defaults


def test_the_same_image_in_two_batches_gets_different_subsets():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    x, maps = torch.rand(1, 1, 8, 8), torch.rand(1, 8, 8)
    t = torch.ones(1, dtype=torch.long)
    spec = get_metric("faithfulness_correlation")
    values = [float(score("faithfulness_correlation", model, x, t, maps, None, None,
                          **_batch_seed(spec, {"nr_runs": 8, "subset_size": 4}, 0, start))) for start in (0, 16)]
    assert values[0] != values[1]
