"""The default run's promises, checked on the real default config (about 8 minutes on 2 cores)."""
import pytest

from benchmark.run.config import load_config
from benchmark.run.runner import Runner, resolve_device


@pytest.mark.slow
@pytest.mark.integration
def test_default_run_trains_both_models_and_explainers_beat_random(tmp_path):
    cfg = load_config()
    result = Runner(cfg, tmp_path / "default", resolve_device("cpu")).run()
    for name, c in result.classifiers.items():
        assert c["val"]["accuracy"] >= 0.9, name
    pg = result.summary[result.summary.metric == "pointing_game"].set_index(["model", "explainer"])["mean"]
    for model in cfg.models.names:
        for explainer in ("gradcam", "lrp"):
            assert pg[(model, explainer)] > pg[(model, "random")], (model, explainer)
    for f in ("scores.csv", "report/leaderboard.md", "report/leaderboard.png", "report/report.md"):
        assert (tmp_path / "default" / f).stat().st_size > 0
