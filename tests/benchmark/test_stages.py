"""Stages as objects (benchmark/run/stages.py): the runner hands a stage only the config sections
and artifacts it declares, checks what it returns, and owns its timing and work counts."""
from types import SimpleNamespace

import pytest

from benchmark.run.config import load_config
from benchmark.run.pipeline import PIPELINE
from benchmark.run.stages import SECTIONS, Stage, StageContractError, check_pipeline, run_stages


def _ctx(previous=None):
    return SimpleNamespace(cfg=load_config(), work={}, timings={}, previous_timings=previous or {}, stages={})


def test_the_pipeline_is_consistent_and_covers_every_phase():
    from benchmark.run.config import Config
    assert SECTIONS == tuple(Config.__dataclass_fields__), "stages.SECTIONS lists every config section"
    check_pipeline(PIPELINE)
    names = [s.name for s in PIPELINE]
    assert names.index("train") < names.index("explain") < names.index("score") < names.index("report")
    assert {s.phase for s in PIPELINE} == {"train", "explain", "score", "report"}
    for s in PIPELINE:
        assert set(s.reads) <= set(SECTIONS) and s.doc, s.name


def test_a_stage_reading_an_undeclared_section_stops_naming_both():
    def body(ctx):
        return {"n": ctx.cfg.metrics.names}
    stage = Stage("peek", "train", ("data",), (), ("n",), body)
    with pytest.raises(StageContractError, match=r"stage 'peek' read config section 'metrics'"):
        run_stages(_ctx(), [stage], "train")
    ok = Stage("peek", "train", ("metrics",), (), ("n",), body)
    assert run_stages(_ctx(), [ok], "train")["n"] == load_config().metrics.names


def test_a_stage_cannot_replace_a_config_section():
    def body(ctx):
        ctx.cfg.data = None
        return {}
    with pytest.raises(StageContractError, match="tried to replace config section 'data'"):
        run_stages(_ctx(), [Stage("w", "train", ("data",), (), (), body)], "train")


def test_a_stage_must_return_exactly_what_it_declares():
    stage = Stage("half", "train", (), (), ("a", "b"), lambda ctx: {"a": 1})
    with pytest.raises(StageContractError, match=r"stage 'half' returned \['a'\], declares \['a', 'b'\]"):
        run_stages(_ctx(), [stage], "train")


def test_consumed_artifacts_come_from_earlier_stages_of_no_later_phase():
    make = Stage("make", "score", (), (), ("x",), lambda ctx: {"x": 1})
    use = Stage("use", "explain", (), ("x",), (), lambda ctx, x: {})
    with pytest.raises(StageContractError, match=r"'use' \(phase explain\) consumes 'x', produced only from phase score"):
        check_pipeline([make, use])
    with pytest.raises(StageContractError, match="consumes 'x', which no earlier stage produces"):
        check_pipeline([use, make])
    with pytest.raises(StageContractError, match="unknown config sections"):
        check_pipeline([Stage("s", "train", ("dataa",), (), (), lambda ctx: {})])


def test_only_declared_artifacts_are_handed_in_and_until_selects_phases():
    seen = {}
    stages = [Stage("a", "train", (), (), ("x", "y"), lambda ctx: {"x": 1, "y": 2}),
              Stage("b", "explain", (), ("y",), ("z",), lambda ctx, **kw: seen.update(kw) or {"z": 3})]
    assert run_stages(_ctx(), stages, "train") == {"x": 1, "y": 2}
    assert run_stages(_ctx(), stages, "report") == {"x": 1, "y": 2, "z": 3} and seen == {"y": 2}


def test_the_runner_times_each_stage_counts_its_work_and_keeps_the_time_of_a_stage_reused_whole():
    def reuse(ctx):
        ctx.work["w"]["reused"] += 2
        return {}

    def compute(ctx):
        ctx.work["w"]["computed"] += 1
        return {}
    ctx = _ctx(previous={"s": 123.0})
    run_stages(ctx, [Stage("s", "train", (), (), (), reuse, work="w")], "train")
    assert ctx.timings["s"] == 123.0 and ctx.work["w"] == {"computed": 0, "reused": 2}
    assert ctx.stages["s"]["seconds"] == 123.0 and ctx.stages["s"]["work"] == "w"
    ctx = _ctx(previous={"s": 123.0})
    run_stages(ctx, [Stage("s", "train", (), (), (), compute, work="w")], "train")
    assert ctx.timings["s"] < 100 and ctx.work["w"] == {"computed": 1, "reused": 0}


def test_only_the_runner_records_stage_times():
    """Times are the runner's (stages.run_stage): no other module of benchmark/run writes
    ctx.timings or ctx.stages, except the train stage's per-model times ("train/<model>", the floor's rows)."""
    import ast
    from pathlib import Path
    allowed = {"stages.py": {"timings", "stages"}, "train.py": {"timings"}, "context.py": {"timings"}}  # train's keep_previous_timing
    found = []
    for f in sorted((Path(__file__).resolve().parents[2] / "benchmark" / "run").glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
            for t in targets:
                while isinstance(t, ast.Subscript):
                    t = t.value
                if isinstance(t, ast.Attribute) and t.attr in ("timings", "stages") and t.attr not in allowed.get(f.name, ()):
                    found.append(f"{f.name}:{node.lineno} writes .{t.attr}")
    assert not found, found
