"""An explainer that returns NaN mid-run: the run stops with an error naming the model, explainer and
images, stores no map of that shard, keeps the shards it finished, and resumes from them."""
import json

import pytest
import torch

from benchmark.cli import main
from benchmark.run.config import load_config
from benchmark.run.data import load_split
from cxr_xai_bench.explainers import EXPLAINERS, register_explainer
from cxr_xai_bench.explainers.registry import Explainer

pytestmark = pytest.mark.integration


class NanOnce(Explainer):
    """Test-only: a flat map, except on the call numbered `nan_call` (counted over the class): NaN there."""

    calls = 0
    nan_call = 2

    def _explain(self, model, images, targets, **context):
        NanOnce.calls += 1
        value = float("nan") if NanOnce.calls - 1 == NanOnce.nan_call else 1.0
        return torch.full((len(images), *images.shape[2:]), value)


@pytest.fixture
def nan_once():
    register_explainer("nan_once")(NanOnce)
    NanOnce.calls, NanOnce.nan_call = 0, 2
    yield "nan_once"
    EXPLAINERS.pop("nan_once")


def test_nan_map_stops_the_run_naming_it_and_keeps_finished_shards(nan_once, tmp_path, capsys):
    out = tmp_path / "run"
    sets = ["models.names=['vgg16_bn']", "explain.names=['nan_once']", "metrics.names=['relevance_mass']",
            "run.shard_size=1", f"data.cache_dir='{tmp_path / 'cache'}'"]
    args = ["score", "--preset", "smoke", "--out", str(out)] + [a for s in sets for a in ("--set", s)]
    assert main(args) == 2  # one map shard per call: the third shard, test images [2:3], gets NaN
    err = capsys.readouterr().err
    third = load_split(load_config(None, sets, "smoke"), "test").ids[2]
    assert "error: explain vgg16_bn/nan_once [2:3]: nan_once produced non-finite values" in err, err
    assert repr(third) in err and "shards finished so far are kept" in err, err
    [maps] = (out / "maps").iterdir()
    done = sorted(p.name for p in maps.glob("shard-*"))
    assert done == ["shard-00000.npy", "shard-00000.npy.json", "shard-00001.npy", "shard-00001.npy.json"]
    kept = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in maps.iterdir()}
    assert not (out / "scores.csv").exists()

    NanOnce.nan_call = -1  # fixed: the same command resumes from the two stored shards
    assert main(args) == 0
    assert all(p.stat().st_mtime_ns == m and p.read_bytes() == b for p, (m, b) in kept.items())
    work = json.loads((out / "manifest.json").read_text())["work"]
    assert work["train"] == {"computed": 0, "reused": 1} and work["explain"] == {"computed": 2, "reused": 2}
