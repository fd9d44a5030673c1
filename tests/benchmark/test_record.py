"""Committed records (benchmark/report/record.py): what a record keeps, that its score table is
written the same bytes every time, and that every committed record rebuilds its own report byte for
byte with `benchmark report` (issue: records that rebuild)."""
import filecmp
import gzip
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from benchmark.report.record import (SIZE_BUDGET_MB, committed_files, export_record, gzip_copy, record_size,
                                     table_path)

REFERENCE = Path(__file__).resolve().parents[2] / "results" / "reference"
RECORDS = sorted(p for p in REFERENCE.iterdir() if (p / "scores.csv.gz").exists()) if REFERENCE.is_dir() else []


def _fake_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    for sub in ("checkpoints", "maps/vgg16_bn-gradcam-abc", "scores", "cases", "context"):
        (run / sub).mkdir(parents=True)
    (run / "checkpoints" / "vgg16_bn.pt").write_bytes(b"weights")
    (run / "maps" / "vgg16_bn-gradcam-abc" / "0.npy").write_bytes(b"map")
    (run / "cases" / "vgg16_bn.npz").write_bytes(b"cases")
    (run / "config.toml").write_text("[run]\nname = 'x'\n")
    (run / "predictions.csv").write_text("image_id,label\na,1\n")
    pd.DataFrame({"dataset": ["phantom"] * 3, "model": ["vgg16_bn"] * 3, "explainer": ["gradcam"] * 3,
                  "metric": ["iou"] * 3, "image_id": ["001", "002", "003"], "value": [0.5, 0.25, 0.125]}
                 ).to_csv(run / "scores.csv", index=False)
    return run


def test_a_record_keeps_the_tables_and_cases_not_weights_or_maps(tmp_path):
    run = _fake_run(tmp_path)
    rec = tmp_path / "record"
    export_record(run, rec)
    assert (rec / "config.toml").exists() and (rec / "predictions.csv").exists()
    for dropped in ("checkpoints", "maps", "scores", "context", "scores.csv", "cases"):  # no X-ray leaves the run
        assert not (rec / dropped).exists(), dropped
    # the score table comes back exactly, image ids as strings (leading zeros kept)
    back = pd.read_csv(table_path(rec, "scores.csv"), dtype={"image_id": str})
    pd.testing.assert_frame_equal(back, pd.read_csv(run / "scores.csv", dtype={"image_id": str}))


def test_the_compressed_score_table_is_the_same_bytes_every_time(tmp_path, monkeypatch):
    run = _fake_run(tmp_path)
    a, b = tmp_path / "a.csv.gz", tmp_path / "b.csv.gz"
    gzip_copy(run / "scores.csv", a)
    # written a day later (gzip stamps the clock's time unless told otherwise), through another temp name
    later = time.time() + 86400
    monkeypatch.setattr(time, "time", lambda: later)
    gzip_copy(run / "scores.csv", b)
    assert a.read_bytes() == b.read_bytes()
    assert gzip.decompress(a.read_bytes()) == (run / "scores.csv").read_bytes()


def test_a_record_is_not_written_over_its_run(tmp_path):
    run = _fake_run(tmp_path)
    with pytest.raises(ValueError, match="another folder"):
        export_record(run, run)
    with pytest.raises(FileNotFoundError, match="not a finished run"):
        export_record(tmp_path / "nothing", tmp_path / "rec")


def test_only_tables_and_text_are_committed_and_counted(tmp_path):
    (tmp_path / "report" / "html").mkdir(parents=True)
    (tmp_path / "report" / "main-figure.pdf").write_bytes(b"x" * 1000)
    (tmp_path / "report" / "overlay-m.png").write_bytes(b"x" * 1000)
    (tmp_path / "report" / "html" / "index.html").write_bytes(b"x" * 1000)
    (tmp_path / "report" / "main-figure.png").write_bytes(b"x" * 10)
    (tmp_path / "report" / "leaderboard.md").write_bytes(b"x" * 5)
    (tmp_path / "report.md").write_bytes(b"x" * 7)
    assert [p.name for p in committed_files(tmp_path)] == ["leaderboard.md", "report.md"]
    assert record_size(tmp_path) == 12


@pytest.mark.integration
@pytest.mark.parametrize("record", RECORDS, ids=[p.name for p in RECORDS])
def test_a_committed_record_rebuilds_byte_for_byte(record, tmp_path):
    """`benchmark report` on a copy of the record writes every committed file of its report again,
    the same bytes; and the record stays within its size budget."""
    from benchmark.report.build import build_report

    assert record_size(record) <= SIZE_BUDGET_MB * 2**20, f"{record.name}: {record_size(record) / 2**20:.1f} MB"
    copy = tmp_path / record.name
    shutil.copytree(record, copy, ignore=shutil.ignore_patterns("*.pdf"))
    shutil.rmtree(copy / "report")
    build_report(copy)
    committed = [p.relative_to(record) for p in committed_files(record / "report")]
    assert committed, f"{record.name} has no committed report"
    differ = [str(p) for p in committed if not (copy / p).exists() or not filecmp.cmp(record / p, copy / p, shallow=False)]
    assert not differ, f"{record.name}: rebuilt differently: {differ}"
    new = sorted(str(p.relative_to(copy)) for p in committed_files(copy / "report")
                 if not (record / p.relative_to(copy)).exists())
    assert not new, f"{record.name}: the rebuild writes files the record does not commit: {new}"


def test_the_shipped_records_are_rebuildable():
    """Both CPU records of the README ship what `benchmark report` needs."""
    names = {p.name for p in RECORDS}
    assert {"phantom-default-cpu", "covid-qu-ex-paper-cpu"} <= names, names
