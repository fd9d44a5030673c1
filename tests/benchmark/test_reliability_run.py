"""The reliability stages in a real (tiny) run: randomised_scores.csv and stability.csv written and
shown in the report, a rerun reusing every stored piece, and `metrics.reliability = false` removing
both and restoring the section's caveat."""
import json

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.report.trust import CAVEAT

pytestmark = pytest.mark.integration
ARGS = ["run", "--preset", "smoke", "--set", "models.names=['vgg16_bn']",
        "--set", "explain.names=['gradcam','random','oracle']",
        "--set", "metrics.names=['deletion_auc','pointing_game','relevance_mass']"]


def _stored(out):
    return {p: p.stat().st_mtime_ns for p in (out / "reliability").rglob("*") if p.is_file()}


def test_reliability_stages_stored_reported_resumed_and_turned_off(tmp_path):
    out = tmp_path / "run"
    assert main([*ARGS, "--out", str(out)]) == 0
    randomised = pd.read_csv(out / "randomised_scores.csv", dtype={"image_id": str})
    stability = pd.read_csv(out / "stability.csv", dtype={"image_id": str})
    scores = pd.read_csv(out / "scores.csv", dtype={"image_id": str})
    # only the model-dependent explainer: the map-only baselines' maps ignore the model
    assert set(randomised.explainer) == set(stability.explainer) == {"gradcam"}
    assert set(randomised.metric) == {"deletion_auc", "pointing_game", "relevance_mass"}
    assert set(stability.metric) == {"pointing_game", "relevance_mass"}  # localisation only
    assert set(randomised.image_id) == set(scores.image_id)
    assert randomised[randomised.metric == "deletion_auc"].value.notna().all()
    assert set(stability.image_id) <= set(scores.image_id)
    report = (out / "report" / "report.md").read_text()
    assert "### Trained against randomised maps" in report and "### Stability of the ranking under noise (sigma 0.01)" in report
    assert "trained maps of gradcam beat randomised maps on" in report and CAVEAT not in report
    disc = pd.read_csv(out / "report" / "randomised_discrimination.csv")
    assert set(disc.metric) <= {"deletion_auc", "pointing_game", "relevance_mass"} and len(disc)
    assert (out / "report" / "stability.csv").exists()
    work = json.loads((out / "manifest.json").read_text())["work"]
    assert work["reliability"]["computed"] > 0, work
    tables = {n: (out / n).read_bytes() for n in ("randomised_scores.csv", "stability.csv")}
    before = _stored(out)

    assert main([*ARGS, "--out", str(out)]) == 0  # resumed: nothing recomputed, the same tables
    work = json.loads((out / "manifest.json").read_text())["work"]
    assert work["reliability"]["computed"] == 0 and work["reliability"]["reused"] > 0, work
    assert _stored(out) == before
    assert {n: (out / n).read_bytes() for n in tables} == tables

    assert main([*ARGS, "--out", str(out), "--set", "metrics.reliability=false"]) == 0
    assert not (out / "randomised_scores.csv").exists() and not (out / "stability.csv").exists()
    assert not (out / "report" / "stability.csv").exists()
    report = (out / "report" / "report.md").read_text()
    assert CAVEAT in report and "Trained against randomised" not in report
    assert json.loads((out / "manifest.json").read_text())["work"]["reliability"] == {"computed": 0, "reused": 0}
