"""Each run holds its own loaded models (RunContext.state), and a cached model is never served once its
checkpoint file was written again (issue 31, item 7): no process-wide STATE piling up models across
runs, no stale weights after a --no-resume retrain to the same path."""
import gc
import os
import weakref

import torch

from benchmark.run.config import load_config
from benchmark.run.jobs import WorkerState
from benchmark.run.runner import Runner
from cxr_xai_bench.models import build_model, save_checkpoint


def _tiny(tmp_path):
    return load_config(preset="smoke", overrides=["models.names=['vgg16_bn']", "explain.names=['random']",
                                                  "metrics.names=['pointing_game']", "data.limit={train=8, val=4, test=4}",
                                                  f"data.cache_dir='{tmp_path / 'cache'}'", "train.epochs=1"])


def test_two_runners_in_one_process_do_not_share_models(tmp_path):
    cfg = _tiny(tmp_path)
    first = Runner(cfg, tmp_path / "a", torch.device("cpu"))
    second = Runner(cfg, tmp_path / "b", torch.device("cpu"))
    assert first.ctx.state is not second.ctx.state and second.ctx.state.models == {}
    first.run("explain")
    held = first.ctx.state.loaded_models()
    assert [os.path.dirname(c) for c, _ in held] == [str(tmp_path / "a" / "checkpoints")]
    assert second.ctx.state.models == {} and second.ctx.state.tests == {}, "the first run's models leaked"
    model = weakref.ref(held[0][1])
    del first, held
    gc.collect()
    assert model() is None, "a finished run's model is still held by something process-wide"
    second.run("explain")
    assert [os.path.dirname(c) for c, _ in second.ctx.state.loaded_models()] == [str(tmp_path / "b" / "checkpoints")]


def test_a_rewritten_checkpoint_is_loaded_again_never_served_stale(tmp_path):
    """What a long-lived Ray worker does per shard (WorkerState.model): the same path twice, the file
    written again in between (a --no-resume retrain under the same key), gives the new weights."""
    cfg = _tiny(tmp_path)
    path = tmp_path / "vgg16_bn-key.pt"
    params = cfg.models.params.get("vgg16_bn", {})

    def write(seed):
        torch.manual_seed(seed)
        tmp = path.with_name(path.name + ".tmp")
        save_checkpoint(build_model("vgg16_bn", **params), tmp, {})
        os.replace(tmp, path)  # as the runner writes checkpoints: atomically
    state = WorkerState()
    write(0)
    old = state.model(cfg, "vgg16_bn", str(path), torch.device("cpu"))
    assert state.model(cfg, "vgg16_bn", str(path), torch.device("cpu")) is old  # unchanged file: reused
    weights = [p.detach().clone() for p in old.parameters()]
    write(1)
    new = state.model(cfg, "vgg16_bn", str(path), torch.device("cpu"))
    assert new is not old and len(state.models) == 1, "the stale model is still held"
    assert any(not torch.equal(a, b) for a, b in zip(weights, new.parameters()))
    # rewritten in place (same inode), same bytes size: the change time still tells the versions apart
    reference = weakref.ref(new)
    torch.manual_seed(2)
    save_checkpoint(build_model("vgg16_bn", **params), path, {})
    del new
    newer = state.model(cfg, "vgg16_bn", str(path), torch.device("cpu"))
    gc.collect()
    assert reference() is None and newer is not None
