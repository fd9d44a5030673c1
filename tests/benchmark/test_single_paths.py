"""One path for each job that used to be copied: every explainer in `benchmark` is built by the
factory, the main and the side scores go through one scoring loop, and the report is a list of
sections that each say which files they wrote."""
import ast
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.run import scoring
from benchmark.run.config import config_from_dict
from benchmark.store.files import MapShard, write_map_shard

ROOT = Path(__file__).resolve().parents[2]


def test_build_explainer_is_called_only_by_the_factory():
    callers = []
    for path in sorted((ROOT / "benchmark").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
                if name == "build_explainer":
                    callers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert callers and all(c.startswith("benchmark/explainer_factory.py:") for c in callers), callers


def test_the_factory_applies_the_config_params_and_the_run_seed():
    from benchmark.explainer_factory import explainer_from_config
    cfg = config_from_dict({"run": {"seed": 7}, "explain": {"params": {"random": {}}}})
    x, t = torch.rand(2, 1, 8, 8), torch.tensor([0, 1])
    a, b = (explainer_from_config(cfg, "random").explain(None, x, t) for _ in range(2))
    c = explainer_from_config(cfg, "random", seed=8).explain(None, x, t)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.fixture
def phantom():
    from cxr_xai_bench.datasets import collate
    from cxr_xai_bench.datasets.phantom import PhantomDataset
    return collate([PhantomDataset("test", size=32)[i] for i in range(4)])


def test_main_and_side_scores_go_through_the_same_loop(tmp_path, monkeypatch, phantom):
    from benchmark.run import side_maps
    from benchmark.run.jobs import ShardJob, run_score
    calls = []
    real = scoring.score_images

    def spy(task):
        calls.append((task.metric, task.index.tolist()))
        return real(task)
    monkeypatch.setattr(scoring, "score_images", spy)
    cfg = config_from_dict({"explain": {"batch_size": 2}})
    maps = torch.rand(4, 32, 32).numpy()
    write_map_shard(tmp_path / "m.npy", MapShard(maps, list(phantom.ids), np.zeros(4), np.zeros(4)), "float32")
    state = SimpleNamespace(test_split=lambda c: phantom, prior=lambda p: None, model=None)
    out = tmp_path / "s.csv"
    job = ShardJob("score", cfg.to_dict(), "m", "", "random", "relevance_mass", 0, 4, str(tmp_path / "m.npy"),
                   str(out), "", "cpu", False)
    run_score(job, state)
    main = pd.read_csv(out)
    # the side path on images 1 and 3 of the same shard: the same values for those images
    shard = MapShard(maps[[1, 3]], [phantom.ids[1], phantom.ids[3]], np.zeros(2), np.zeros(2))
    ctx = SimpleNamespace(cfg=cfg, device=torch.device("cpu"), metric_params=lambda m, e, k: {})
    plan = SimpleNamespace(model="m", explainer="random", images=phantom.images)
    side = side_maps._score(ctx, plan, "relevance_mass", None, shard, np.array([1, 3]), phantom.labels, phantom,
                            (0, 4), None, "")
    assert calls == [("relevance_mass", [0, 1, 2, 3]), ("relevance_mass", [1, 3])]
    assert np.allclose(side["value"].to_numpy(), main["value"].to_numpy()[[1, 3]], equal_nan=True)


def test_every_section_claims_its_files_and_the_report_links_only_existing_ones(tmp_path):
    import importlib.util
    import json
    # the report tests' small run folder, written the way the runner writes one
    spec = importlib.util.spec_from_file_location("report_tests", Path(__file__).with_name("test_report.py"))
    report_tests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report_tests)
    _run_dir = report_tests._run_dir
    from benchmark.report import build
    from benchmark.report.figure_pool import FigurePool
    run_dir = _run_dir(tmp_path / "run")
    cfg = build.read_config(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    with FigurePool(0) as pool:
        ctx = build.report_context(run_dir, cfg, build.load_scores(run_dir), manifest, {}, pool)
        parts = build.report_parts(ctx)
    claimed = [f for p in parts for f in p.files]
    assert claimed and all(Path(f).exists() for f in claimed), [f for f in claimed if not Path(f).exists()]
    assert {Path(f).name for f in claimed} == {f.name for f in ctx.rep.iterdir()}, "a file no section claims"
    text = "\n".join(line for p in parts for line in p.lines)
    # html/index.html is written by build_report after report.md (test_html_report checks it exists)
    links = [link for link in re.findall(r"\]\(([^)\s]+)\)", text) if link != "html/index.html"]
    assert links and all((ctx.rep / link).exists() for link in links), [x for x in links if not (ctx.rep / x).exists()]
    assert len(build.SECTIONS) == len(parts) - len(build.CLOSING) - ("## Not in this report\n" in text)
