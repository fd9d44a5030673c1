"""seed_repeatability: one score row per image (the mean over the repeat seeds), the per-seed values
kept in their own files."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.run import repeat


def _ctx(tmp_path, main_maps):
    cfg = SimpleNamespace(run=SimpleNamespace(repeat_seeds=[1, 2], maps_dtype="float32"),
                          metrics=SimpleNamespace(names=["seed_repeatability"], skip={}),
                          explain=SimpleNamespace(names=["gradcam"], for_model=lambda model: ["gradcam"]),
                          data=SimpleNamespace(dataset="phantom", splits={"test": "test"}))
    return SimpleNamespace(cfg=cfg, run_dir=tmp_path, resume=True, work={"score": {"computed": 0, "reused": 0}},
                           progress=lambda msg: None, maps_dir=lambda name, key, e: (tmp_path / "maps", "mkey"),
                           load_maps=lambda name, key, e, n: main_maps)


def test_seed_repeatability_gives_one_row_per_image(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    main = rng.random((3, 6, 6)).astype(np.float32)
    # the model of seed 1 explains exactly like the main one (Spearman 1), seed 2's maps are reversed
    # (Spearman -1): one row per image, the mean over the seeds, 0
    monkeypatch.setattr(repeat, "train_or_load", lambda ctx, name, train, val, seed: (seed, f"key{seed}", None, None))
    monkeypatch.setattr(repeat, "explain_here",
                        lambda ctx, model, e, test, idx, prior: torch.from_numpy(main if model == 1 else -main))
    test = type("T", (), {"ids": ["a", "b", "c"], "__len__": lambda self: 3})()
    ctx = _ctx(tmp_path, main)
    frames = repeat.seed_repeatability(ctx, {"vgg": ("k", None)}, None, None, test, "")
    assert len(frames) == 1
    df = frames[0]
    assert df["image_id"].tolist() == ["a", "b", "c"] and df["metric"].eq("seed_repeatability").all()
    assert df["value"].to_numpy() == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    per_seed = sorted(tmp_path.glob("scores/*/seed-*.csv"), key=lambda p: p.name)
    assert [p.name for p in per_seed] == ["seed-1.csv", "seed-2.csv"]
    assert pd.read_csv(per_seed[0])["value"].to_numpy() == pytest.approx([1, 1, 1])
    # reused from the per-seed files: the same single row per image
    again = repeat.seed_repeatability(ctx, {"vgg": ("k", None)}, None, None, test, "")
    assert ctx.work["score"]["reused"] == 2 and len(again) == 1 and len(again[0]) == 3


def test_mean_over_seeds_keeps_the_image_order():
    f = [pd.DataFrame({"dataset": "d", "split": "s", "model": "m", "explainer": "e", "metric": "seed_repeatability",
                       "image_id": ["z", "a"], "value": v}) for v in ([0.2, 0.4], [0.6, np.nan])]
    out = repeat.mean_over_seeds(f)
    assert out["image_id"].tolist() == ["z", "a"] and out["value"].tolist() == pytest.approx([0.4, 0.4])
