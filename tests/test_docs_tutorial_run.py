"""The "your data" tutorial, run as a newcomer runs it: its two commands, from a fresh folder, with
the installed package. The run must finish, score the tutorial's images, and say in its report
that it read 8-bit PNG files."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.integration


def test_the_your_data_tutorial_runs_end_to_end(tmp_path):
    examples = tmp_path / "docs" / "examples"
    examples.mkdir(parents=True)
    for name in ("make_my_data.py", "my-data.toml"):
        shutil.copy(ROOT / "docs" / "examples" / name, examples / name)
    env = dict(os.environ)
    made = subprocess.run([sys.executable, "docs/examples/make_my_data.py", "my-data"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env=env)
    assert made.returncode == 0, made.stderr[-3000:]
    assert (tmp_path / "my-data" / "manifest.csv").exists()
    run = subprocess.run([sys.executable, "-m", "benchmark", "run", "--preset", "smoke", "--config",
                          "docs/examples/my-data.toml", "--out", "results/my-data"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=1800, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "results" / "my-data"
    scores = pd.read_csv(out / "scores.csv", dtype={"image_id": str})
    manifest = pd.read_csv(tmp_path / "my-data" / "manifest.csv", dtype=str)
    assert set(scores.image_id) <= set(manifest.get("id", manifest["image"].map(lambda p: Path(p).stem)))
    report = (out / "report" / "report.md").read_text()
    assert "## Data" in report and "Data loaded" in run.stderr
    assert (out / "report" / "data-preview.png").exists()
    summary = json.loads((out / "manifest.json").read_text())["data_summary"]
    assert {r: s["bit_depths"] for r, s in summary["roles"].items()} == {"train": [8], "val": [8], "test": [8]}
