"""The committed result of record on COVID-QU-Ex (results/reference/covid-qu-ex-paper-cpu/): its
protocol (selection split is not the scored split), three trained instances of each model, and that
its report holds every explainer of the paper set and every metric, for every instance, with the
focal-lesion table and the verdicts across instances."""
import json
from pathlib import Path

import pandas as pd

from benchmark.run.config import load_config
from benchmark.run.presets import PAPER_EXPLAINERS
from benchmark.store.instances import instances

RECORD = Path(__file__).resolve().parents[2] / "results" / "reference" / "covid-qu-ex-paper-cpu"


def test_the_record_selected_on_a_holdout_and_scored_val():
    manifest = json.loads((RECORD / "manifest.json").read_text())
    roles = manifest["split_roles"]
    assert roles["train"]["split"] == roles["select"]["split"] == "train"
    assert roles["train"]["part"] == "rest" and roles["select"]["part"] == "held out"
    assert roles["score"]["split"] == "val", "scored on a split nothing was selected on"
    cfg = load_config(RECORD / "config.toml")
    assert cfg.data.holdout == 0.1 and cfg.data.dataset == "covid_qu_ex"
    names = [name for name, _, _ in instances(cfg.models.names, cfg.train.seeds)]
    assert len(cfg.train.seeds) >= 3 and set(manifest["classifiers"]) == set(names)
    for name in names:
        assert manifest["classifiers"][name]["test"]["accuracy"] > 0.5, name


def test_the_record_reports_every_explainer_and_metric():
    cfg = load_config(RECORD / "config.toml")
    assert set(PAPER_EXPLAINERS) <= set(cfg.explain.names)
    assert cfg.metrics.names == load_config().metrics.names, "every metric"
    board = pd.read_csv(RECORD / "report" / "leaderboard.csv")
    for model, _, _ in instances(cfg.models.names, cfg.train.seeds):
        rows = board[board["model"] == model]
        assert set(rows["explainer"]) == set(cfg.explain.names), model
        assert set(rows["metric"]) == set(cfg.metrics.names), model
        for metric, skipped in cfg.metrics.skip.items():
            scored = set(rows.loc[rows["metric"] == metric, "explainer"])
            assert scored == set(cfg.explain.names) - set(skipped), (model, metric)
    report = (RECORD / "report" / "report.md").read_text()
    assert "## Across training runs" in report and "### Each instance on its own" in report
    assert "## Focal lesions" in report and (RECORD / "report" / "focal_leaderboard.csv").exists()
    from benchmark.report.labels import label
    for e in cfg.explain.names:
        assert f"| {label(e)} |" in report, e


def test_the_record_is_what_the_readme_command_resolves_to():
    """README: the record is `--preset paper-cpu --config configs/covid-qu-ex.toml`. A preset edited
    after the record (3 -> 10 epochs, say) must come with a new record, or this fails."""
    here = RECORD.parents[2]
    now = load_config(here / "configs" / "covid-qu-ex.toml", preset="paper-cpu").to_dict()
    assert load_config(RECORD / "config.toml").to_dict() == now
