"""The side-by-side speed script runs end to end at a tiny size and writes one row per pair."""
import csv
import math

import pytest
import quantus  # noqa: F401  (a required dependency: never skipped)

from benchmark.speed import metric_speed as perf
from benchmark.metrics import METRICS


def test_perf_main_writes_a_row_per_pair(tmp_path, capsys, np_trapz):
    out = tmp_path / "perf.csv"
    assert perf.main(["--size", "16", "--images", "2", "--model", "tiny", "--device", "cpu", "--repeats", "1",
                      "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    expected = [(p.ours, p.quantus) for p in perf.PAIRS if p.ours in METRICS]
    assert [(r["metric"], r["quantus"]) for r in rows] == expected
    assert {"deletion_auc", "faithfulness_correlation", "road_morf", "pointing_game", "relevance_mass"} <= {
        r["metric"] for r in rows}
    for r in rows:
        for col in ("ours_ms_per_image", "quantus_ms_per_image", "ratio"):
            v = float(r[col])
            assert math.isfinite(v) and v > 0, (r["metric"], col, v)
    assert "PixelFlipping" in capsys.readouterr().out


def test_perf_rejects_a_size_without_an_8x8_grid():
    with pytest.raises(ValueError, match="multiple of 8"):
        perf.main(["--size", "20", "--images", "1", "--model", "tiny", "--device", "cpu"])
