"""The data summary shown at load (benchmark.run.data_summary), its survival through the
preprocessing cache, and its place in the manifest and the report (benchmark.report.data_section)."""
import json
import logging

import numpy as np
import pytest
import torch

from benchmark.report.data_section import preview_figure, read_preview, summary_markdown
from benchmark.run.data_cache import cached_split
from benchmark.run.data_summary import data_summary, preview_rows, split_summary, summary_text, write_preview
from cxr_xai_bench.datasets import Batch, collate
from cxr_xai_bench.datasets.phantom import PhantomDataset


def _batch() -> Batch:
    """Six 8x8 rows whose counts are known by hand:
    0 pneumonia, lesion outlined, lung mask, 512x400 16-bit file
    1 pneumonia, annotated but empty lesion mask ("p-empty"), lung mask, 256x256 8-bit
    2 pneumonia, unannotated, lung mask, 1024x1024 8-bit
    3 normal, empty lesion mask, lung mask, 256x256 8-bit
    4 normal, unannotated, no lung mask, 300x600 8-bit
    5 normal, empty lesion mask, no lung mask, no file metadata (generated)."""
    n = 6
    lesion = torch.zeros(n, 8, 8, dtype=torch.bool)
    lesion[0, 2:4, 2:4] = True
    lung = torch.zeros(n, 8, 8, dtype=torch.bool)
    lung[:4, 1:7, 1:7] = True
    meta = [{"original_size": [512, 400], "bit_depth": 16}, {"original_size": (256, 256), "bit_depth": 8},
            {"original_size": [1024, 1024], "bit_depth": 8}, {"original_size": [256, 256], "bit_depth": 8},
            {"original_size": [300, 600], "bit_depth": 8}, {}]
    return Batch(torch.rand(n, 1, 8, 8), torch.tensor([1, 1, 1, 0, 0, 0]), lesion,
                 torch.tensor([True, True, False, True, False, True]), lung,
                 ["p-lesion", "p-empty", "p-unknown", "n-empty", "n-unknown", "n-generated"], meta)


SKIPPED = [{"split": "train", "index": 7, "error": "x.png: truncated"},
           {"split": "test", "index": 2, "error": "y.png: 12-bit"}]


def test_split_summary_counts_by_hand():
    s = data_summary("demo", {"train": "Train"}, {"train": _batch()}, SKIPPED)
    assert s["dataset"] == "demo"
    t = s["roles"]["train"]
    assert t["split"] == "Train" and t["images"] == 6
    assert t["labels"] == {"pneumonia": 3, "normal": 3}
    assert t["lesion_masks"] == {"non_empty": 1, "empty": 3, "unannotated": 2, "empty_on_pneumonia": 1,
                                 "empty_on_pneumonia_ids": ["p-empty"]}
    assert t["lung_masks"] == {"present": 4}
    # row 5 has no file metadata: the run's 8x8 counts, and the source says the sizes are mixed
    assert t["original_size"] == {"min_h": 8, "max_h": 1024, "min_w": 8, "max_w": 1024, "source": "mixed"}
    assert t["bit_depths"] == [8, 16, "generated"]
    assert t["skipped"] == 1 and t["skipped_files"] == [{"index": 7, "error": "x.png: truncated"}]


def test_all_files_give_their_size_range_and_source_files():
    t = split_summary(_batch().subset([0, 1, 2, 3, 4]), "Train")
    assert t["original_size"] == {"min_h": 256, "max_h": 1024, "min_w": 256, "max_w": 1024, "source": "files"}
    assert t["bit_depths"] == [8, 16] and t["skipped"] == 0


def test_phantom_reports_generated_size():
    ds = PhantomDataset("test", size=32)
    t = split_summary(collate([ds[i] for i in range(6)]), "test")
    assert t["original_size"] == {"min_h": 32, "max_h": 32, "min_w": 32, "max_w": 32, "source": "generated"}
    assert t["bit_depths"] == ["generated"]
    assert "original size H 32, W 32 (generated); bit depth generated" in summary_text({"dataset": "phantom",
                                                                                        "roles": {"test": t}})


def test_text_and_markdown_list_the_empty_pneumonia_ids_and_skips():
    s = data_summary("demo", {"train": "Train", "test": "Val"}, {"train": _batch(), "test": _batch().subset([0, 3])},
                     SKIPPED)
    text = summary_text(s)
    assert "1 pneumonia images with an empty lesion mask: p-empty" in text
    assert "skipped item 7: x.png: truncated" in text and "skipped item 2: y.png: 12-bit" in text
    assert "lesion masks 1 non-empty, 3 empty, 2 unannotated" in text
    # as read back from manifest.json (sorted keys): the table keeps train before test
    md = "\n".join(summary_markdown(json.loads(json.dumps(s, sort_keys=True))))
    assert "| | train | test |" in md and "| lesion masks non-empty / empty / unannotated | 1 / 3 / 2 | 1 / 1 / 0 |" in md
    assert "| skipped files | 1 | 1 |" in md and "`p-empty`" in md
    assert "| original height (px) | 8–1024 (some generated) | 256–512 |" in md
    assert "| bit depth | 8, 16, generated | 8, 16 |" in md


def test_cached_load_gives_the_same_summary(tmp_path):
    ds = PhantomDataset("test", size=36)  # 36: a width not a multiple of 8
    samples = [ds[i] for i in range(4)]
    for i, s in enumerate(samples):  # as a file dataset would set them (a tuple: JSON gives a list back)
        s.metadata.update(original_size=(100 + i, 200), bit_depth=8 if i else 16)
    samples[1].lesion_mask = torch.zeros(36, 36, dtype=torch.bool)
    samples[1].label = 1
    built = collate(samples)
    first, skipped = cached_split(tmp_path, "k", lambda: (built, SKIPPED[:1]))
    again, skipped_again = cached_split(tmp_path, "k", lambda: pytest.fail("read from the cache"))
    want = split_summary(built, "test", SKIPPED[:1])
    assert want["original_size"]["source"] == "files" and want["bit_depths"] == [8, 16]
    assert split_summary(first, "test", skipped) == want
    assert split_summary(again, "test", skipped_again) == want
    assert again.metadata[0]["bit_depth"] == 16


def test_preview_rows_put_outlined_pneumonia_first_and_cap_per_label():
    b = _batch()
    assert preview_rows(b, per_label=2) == [0, 1, 3, 4]
    assert preview_rows(b.subset([1, 2, 0, 3]), per_label=4) == [2, 0, 1, 3]
    # two outlined and one unannotated pneumonia row: the last place goes to the unannotated one
    assert preview_rows(b.subset([0, 0, 2]), per_label=2) == [0, 2]


def test_preview_file_round_trip_and_figure(tmp_path):
    b = _batch()
    path = write_preview(tmp_path, b)
    stamp = path.stat().st_mtime_ns
    assert write_preview(tmp_path, b).stat().st_mtime_ns == stamp, "unchanged arrays: not rewritten"
    p = read_preview(tmp_path)
    assert list(p["ids"]) == ["p-lesion", "p-empty", "p-unknown", "n-empty", "n-unknown", "n-generated"]
    assert p["lesion_masks"][0].sum() == 4 and not p["has_mask"][2] and p["images"].dtype == np.uint8
    files = preview_figure(p, tmp_path / "data-preview")
    assert [f.suffix for f in files] == [".png", ".pdf"] and all(f.stat().st_size for f in files)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A smoke run cut to one model, one explainer and one metric, in this process."""
    from benchmark.run.config import load_config
    from benchmark.run.runner import Runner
    cfg = load_config(overrides=["models.names=['resnet50']", "explain.names=['random']",
                                 "metrics.names=['pointing_game']", "report.figure_workers=1"], preset="smoke")
    out = tmp_path_factory.mktemp("run") / "tiny"
    logger = logging.getLogger("benchmark.run.data_summary")
    records = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        Runner(cfg, out, torch.device("cpu")).run()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    return out, cfg, [r.getMessage() for r in records]


def test_run_shows_stores_and_reports_the_summary(tiny_run):
    out, cfg, messages = tiny_run
    manifest = json.loads((out / "manifest.json").read_text())
    roles = manifest["data_summary"]["roles"]
    assert set(roles) == {"train", "val", "test"}
    assert roles["test"]["images"] == manifest["data_counts"]["test"] == cfg.data.limit["test"]
    assert roles["test"]["labels"]["pneumonia"] == manifest["data_counts"]["test_pneumonia"]
    assert roles["test"]["original_size"]["source"] == "generated"
    assert any(m.startswith("Data loaded (phantom)") and "test (split" in m for m in messages), messages
    report = (out / "report" / "report.md").read_text()
    assert "## Data\n" in report and "| pneumonia / normal |" in report
    assert "![test images per class](data-preview.png)" in report
    assert (out / "report" / "data-preview.png").stat().st_size > 0 and (out / "report" / "data-preview.pdf").exists()
    assert len(read_preview(out)["ids"]) == min(8, roles["test"]["images"])
