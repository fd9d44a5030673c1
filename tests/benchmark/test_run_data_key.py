"""data_key holds the version of the code that decides a split's content, so editing a loader
invalidates the preprocessing cache, checkpoints, maps and scores built from it."""
import importlib
import os
import sys

from benchmark.run.config import load_config
from benchmark.run.data import data_key
from benchmark.store.code import clear_code_cache


def test_editing_a_dataset_module_changes_the_data_key(tmp_path, monkeypatch):
    from cxr_xai_bench.datasets import DATASETS
    src = tmp_path / "tmp_dataset_for_key.py"
    src.write_text("from cxr_xai_bench.datasets import register_dataset\n"
                   "import cxr_xai_bench.datasets.phantom as p\n\n@register_dataset('tmp_key_ds')\n"
                   "class KeyDs(p.PhantomDataset):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(DATASETS, "tmp_key_ds", raising=False)
    try:
        importlib.import_module("tmp_dataset_for_key")
        cfg = load_config(overrides=["data.dataset=tmp_key_ds"])
        before = data_key(cfg, "test")
        assert data_key(cfg, "test") == before, "stable while nothing changes"
        src.write_text(src.read_text() + "# a change to how samples are made\n")
        os.utime(src, ns=(1, 10**18))
        clear_code_cache()  # code versions are cached per process; this one edited a file in it
        after = data_key(cfg, "test")
        assert after["code"] != before["code"] and {**after, "code": 0} == {**before, "code": 0}
        other = data_key(load_config(), "test")
        assert other["code"] != after["code"], "each dataset's own module is part of its key"
    finally:
        DATASETS.pop("tmp_key_ds", None)
        sys.modules.pop("tmp_dataset_for_key", None)
