"""The default run end to end as a pytest-benchmark (issue: the README's first command in at most
300 s on a 2-core CPU). Three rounds, each from a clean run folder (the preprocessing cache is
shared, as it is for a user's second run); per-stage seconds and the floor ratios go to extra_info.

    tox -e bench -- -k default_run_speed      (or: pytest -m perf --runslow --benchmark-enable -k ...)
"""
import shutil

import pytest
import torch

from benchmark.run.config import load_config
from benchmark.run.runner import Runner


@pytest.mark.perf
def test_default_run_wall_time(benchmark, tmp_path):
    cfg = load_config()
    cfg.data.cache_dir = str(tmp_path / "cache")
    Runner(cfg, tmp_path / "warm", torch.device("cpu")).run("train")  # fills the cache: rounds time the rest
    results = []

    def one_run():
        shutil.rmtree(tmp_path / "run", ignore_errors=True)
        results.append(Runner(cfg, tmp_path / "run", torch.device("cpu")).run())

    benchmark.pedantic(one_run, rounds=3, iterations=1)
    last = results[-1]
    benchmark.extra_info["stages_s"] = [r.timings for r in results]
    benchmark.extra_info["floor"] = [[{k: r[k] for k in ("stage", "floor_s", "actual_s", "ratio")} for r in run.floor["stages"]]
                                     for run in results]  # per round: the throughput is measured anew in each
    for name, c in last.classifiers.items():
        assert c["val"]["accuracy"] >= 0.9, name
    assert {r["stage"] for r in last.floor["stages"]} >= {"explain", "score"}


@pytest.mark.perf
def test_scaling_with_images_and_size(benchmark, tmp_path, capsys):
    """Time and peak memory of the smoke preset at 4, 8, 16 test images and 32, 48, 64 px."""
    from benchmark.speed.scaling import main
    out = tmp_path / "scaling.csv"
    benchmark.pedantic(main, args=(["--out", str(out)],), rounds=1, iterations=1)
    import pandas as pd
    table = pd.read_csv(out)
    benchmark.extra_info["points"] = table.to_dict("records")
    assert len(table) == 5 and (table.wall_s > 0).all() and (table.peak_rss_mb > 0).all()
