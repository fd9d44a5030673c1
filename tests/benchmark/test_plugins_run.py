"""A plug-in file outside the project in a whole smoke run: its explainer and metric reach the score
table and the leaderboard, a run killed in a plug-in job resumes, a finished run re-run computes
nothing, and editing the plug-in explainer re-explains its maps (and re-scores them) and nothing else."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

pytestmark = pytest.mark.integration

EXPLAINER = textwrap.dedent('''
    from cxr_xai_bench.explainers import Explainer, register_explainer

    @register_explainer("myexp")
    class Mine(Explainer):
        def _explain(self, model, images, targets):
            return images[:, 0] * 0.5
''')
METRIC = textwrap.dedent('''
    from benchmark.metrics import register_metric

    @register_metric("mymetric", category="localisation", higher_is_better=True)
    def mymetric(model, images, targets, maps, masks, has_mask, **_):
        """Mean of the map (a test metric)."""
        return maps.flatten(1).mean(1)
''')
ARGS = ["--preset", "smoke", "--set", "data.limit={train=8, val=4, test=4}", "--set", "models.names=['resnet50']",
        "--set", "explain.names=['myexp','random']", "--set", "metrics.names=['mymetric','pointing_game']"]


def _run(tmp_path, *extra, kill="", expect=0, command="run"):
    env = {**os.environ, "TQDM_DISABLE": "1"}
    env.pop("CXR_TEST_KILL_JOB", None)
    if kill:
        env["CXR_TEST_KILL_JOB"] = kill
    r = subprocess.run([sys.executable, "-m", "benchmark", command, *ARGS, "--plugin", "./exp_plugin.py",
                        "--plugin", str(tmp_path / "metric_plugin.py"), *extra, "--out", str(tmp_path / "run")],
                       cwd=tmp_path, capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == expect, (r.returncode, r.stderr[-3000:])
    return json.loads((tmp_path / "run" / "manifest.json").read_text())["work"] if expect == 0 else None


def test_plugin_in_a_run_resume_and_edit(tmp_path):
    (tmp_path / "exp_plugin.py").write_text(EXPLAINER)
    (tmp_path / "metric_plugin.py").write_text(METRIC)
    _run(tmp_path, kill="score resnet50/myexp/mymetric", expect=-signal.SIGKILL)
    work = _run(tmp_path)  # resumes after the kill: the model and the maps are reused
    assert work["train"] == {"computed": 0, "reused": 1} and work["explain"] == {"computed": 0, "reused": 2}
    assert work["score"]["computed"] >= 1 and sum(work["score"].values()) == 4
    run = tmp_path / "run"
    scores = pd.read_csv(run / "scores.csv")
    assert set(scores.explainer) == {"myexp", "random"} and set(scores.metric) == {"mymetric", "pointing_game"}
    mine = scores[(scores.explainer == "myexp") & (scores.metric == "mymetric")]
    assert len(mine) == 4 and mine.value.notna().all()
    board = pd.read_csv(run / "report" / "leaderboard.csv")
    assert ((board.explainer == "myexp") & (board.metric == "mymetric")).any()
    assert "mymetric" in (run / "report" / "leaderboard.md").read_text()
    assert "exp_plugin.py" in (run / "config.toml").read_text()

    work = _run(tmp_path)  # finished: computes nothing
    assert all(w["computed"] == 0 for w in work.values()), work

    (tmp_path / "exp_plugin.py").write_text(EXPLAINER.replace("* 0.5", "* 0.25"))
    work = _run(tmp_path, command="score")  # only myexp's maps and their scores
    assert work["train"]["computed"] == 0
    assert work["explain"] == {"computed": 1, "reused": 1} and work["score"] == {"computed": 2, "reused": 2}
    after = pd.read_csv(run / "scores.csv")
    new = after[(after.explainer == "myexp") & (after.metric == "mymetric")].value.to_numpy()
    assert new == pytest.approx(mine.value.to_numpy() / 2, rel=1e-3)

    # `report` rebuilds from the stored tables: it loads the run's plug-ins (config.toml) for their metrics
    r = subprocess.run([sys.executable, "-m", "benchmark", "report", str(run)], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "mymetric" in r.stdout


@pytest.mark.ray  # conftest: skipped without Ray, a failure under CXR_REQUIRE_RAY
def test_plugin_runs_on_ray_workers(tmp_path):
    """Ray workers load the run's plug-ins (path ones from run.plugins, made absolute) before their first
    job, training included (run.train_on_workers), and pass the same-code check that covers them."""
    (tmp_path / "exp_plugin.py").write_text(EXPLAINER)
    (tmp_path / "metric_plugin.py").write_text(METRIC)
    work = _run(tmp_path, "--executor", "ray", "--set", "run.ray_workers=2", "--set", "run.train_on_workers=true",
                command="score")
    assert work["explain"]["computed"] == 2 and work["score"]["computed"] == 4
    scores = pd.read_csv(tmp_path / "run" / "scores.csv")
    assert ((scores.explainer == "myexp") & (scores.metric == "mymetric")).sum() == 4


@pytest.mark.ray  # conftest: skipped without Ray, a failure under CXR_REQUIRE_RAY
def test_ray_fingerprint_covers_plugins(tmp_path, monkeypatch):
    from benchmark.run import plugins, ray_executor
    monkeypatch.setattr(plugins, "_LOADED", {})
    before = ray_executor._code_fingerprint()
    f = tmp_path / "fp_plugin_mod.py"
    f.write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.load_plugins(["fp_plugin_mod"], entry_points=False)
    try:
        assert ray_executor._code_fingerprint() != before
    finally:
        sys.modules.pop("fp_plugin_mod", None)
