"""Each stage's key follows the source of exactly the project modules its code imports: editing any
module in a stage's import closure (a comment appended, as the store reads it) changes that key and
every key downstream of it, and editing a module outside it changes nothing. The keys are computed
by the runner's own key functions, with the store's source reader patched for one module at a time."""
from pathlib import Path

import pytest
import torch

from benchmark.run.config import load_config
from benchmark.run.context import RunContext, explainer_code, metric_code
from benchmark.run.data import data_key
from benchmark.run.report_stage import report_code
from benchmark.run.train import train_config, train_key
from benchmark.store import code
from benchmark.store.code import module_closure
from cxr_xai_bench.explainers import EXPLAINERS
from cxr_xai_bench.models.builders import MODELS

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("data", "train", "maps", "score", "report")
MODEL, EXPLAINER, METRIC = "resnet50", "gradcam", "deletion_auc"


def _project_modules() -> list[str]:
    """Every module of the project, named as it is imported."""
    out = []
    for folder, prefix in (("benchmark", "benchmark"), ("datasets", "cxr_xai_bench.datasets"),
                           ("models", "cxr_xai_bench.models"), ("explainers", "cxr_xai_bench.explainers")):
        for f in (ROOT / folder).rglob("*.py"):
            parts = f.relative_to(ROOT / folder).with_suffix("").parts
            out.append(".".join((prefix, *parts)).removesuffix(".__init__"))
    return sorted(out)


@pytest.fixture(scope="module")
def keys_if_edited(tmp_path_factory):
    cfg = load_config()
    ctx = RunContext(cfg, tmp_path_factory.mktemp("run"), torch.device("cpu"))
    tcfg = train_config(cfg, MODEL, cfg.run.seed)
    original = code.read_source

    def keys(edited: str | None) -> dict[str, str]:
        """Every stage's key as if `edited`'s source had one more line (None: as the files are)."""
        mp = pytest.MonkeyPatch()
        mp.setattr(code, "read_source", lambda name: original(name) + ("\n# edited\n" if name == edited else ""))
        code._cached_closure.cache_clear()
        try:
            train = train_key(cfg, MODEL, cfg.models.params.get(MODEL, {}), tcfg)
            _, maps = ctx.maps_dir(MODEL, train, EXPLAINER)
            score = ctx.scores_dir(MODEL, EXPLAINER, METRIC, maps).name
            return {"data": str(data_key(cfg, "test")), "train": train, "maps": maps, "score": score,
                    "report": report_code()}
        finally:
            mp.undo()
            code._cached_closure.cache_clear()

    base = keys(None)
    changed = {s: set() for s in STAGES}
    for name in _project_modules():
        for stage, key in keys(name).items():
            if key != base[stage]:
                changed[stage].add(name)
    return changed


def test_every_module_a_stage_imports_changes_its_key_and_no_other(keys_if_edited):
    dataset = load_config().data.dataset
    from cxr_xai_bench.datasets import DATASETS
    closures = {"data": module_closure(DATASETS[dataset].__module__, "benchmark.run.data"),
                "train": module_closure("cxr_xai_bench.models.training", "benchmark.run.environment",
                                        MODELS[MODEL].__module__),
                "maps": module_closure(*explainer_code(EXPLAINER)),
                "score": module_closure(*metric_code(METRIC)),
                "report": module_closure("benchmark.report.build", "benchmark.report.artifacts",
                                         "benchmark.report.chexlocalize")}
    # downstream: a stage's key holds its upstream keys, so their code changes it too
    expected = {"data": set(closures["data"])}
    expected["train"] = expected["data"] | set(closures["train"])
    expected["maps"] = expected["train"] | set(closures["maps"])
    expected["score"] = expected["maps"] | set(closures["score"])
    expected["report"] = set(closures["report"])  # the report follows its upstream through the files it reads
    for stage in STAGES:
        assert keys_if_edited[stage] == expected[stage], stage


def test_closures_hold_what_each_stage_runs_and_leave_out_what_it_does_not(keys_if_edited):
    k = keys_if_edited
    assert {"benchmark.report.focal", "benchmark.report.build", "benchmark.report.tables",
            "benchmark.speed.floor"} <= k["report"]  # focal was missing from the hand-kept list
    assert {"cxr_xai_bench.datasets.phantom", "cxr_xai_bench.datasets.sample", "benchmark.run.data"} <= k["data"]
    assert {"cxr_xai_bench.models.training", "cxr_xai_bench.models.builders"} <= k["train"]
    assert {EXPLAINERS[EXPLAINER].__module__, "benchmark.run.jobs", "benchmark.run.missing_context"} <= k["maps"]
    assert "benchmark.metrics.faithfulness" in k["score"]
    # a metric edit re-scores without re-explaining; an explainer edit leaves other explainers' maps
    assert "benchmark.metrics.faithfulness" not in k["maps"]
    assert "cxr_xai_bench.explainers.lrp" not in k["maps"] | k["score"]
    assert "benchmark.metrics.localisation" not in k["score"]
    # reporting is no input of any computed stage: a report edit rebuilds the report only
    for stage in ("data", "train", "maps", "score"):
        assert not {m for m in k[stage] if m.startswith("benchmark.report.")}, stage
        assert "benchmark.cli" not in k[stage] and "benchmark.run.runner" not in k[stage]
    assert not {m for m in k["report"] if m.startswith("benchmark.run.")}


def test_closure_follows_relative_from_and_function_level_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "closure_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from . import registered  # registration only\n")
    (pkg / "a.py").write_text("from . import b\nfrom .c import name\n\ndef f():\n    import closure_pkg.d\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import e\n")
    for m in ("c", "d", "e", "registered"):
        (pkg / f"{m}.py").write_text("name = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code.clear_code_cache()
    try:
        assert module_closure("closure_pkg.a") == ["closure_pkg.a", "closure_pkg.b", "closure_pkg.c", "closure_pkg.d"]
        assert module_closure("closure_pkg") == ["closure_pkg"]
    finally:
        code.clear_code_cache()
