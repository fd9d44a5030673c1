"""The run store: compact map shards, checksums, atomic writes under a full disk, code versions."""
import errno
import os

import numpy as np
import pytest

from benchmark.store import files as store
from benchmark.store.code import clear_code_cache, code_closure, read_source
from benchmark.store.files import (CorruptShardError, MapShard, StoreError, atomic_path, map_shard_complete,
                                   read_map_shard, sweep_temp_files, write_map_shard, write_text)


def _shard(seed=0, n=3, scale=1.0):
    rng = np.random.default_rng(seed)
    maps = (rng.standard_normal((n, 8, 8)) * scale).astype(np.float32)
    maps[1] = 0.0  # an all-zero map must survive the per-map scaling
    return MapShard(maps, [f"id{k}" for k in range(n)], np.full(n, 0.5), np.full(n, 12.0))


@pytest.mark.parametrize("scale", [1.0, 1e-7, 1e5])
def test_float16_shard_keeps_relative_precision_at_any_magnitude(tmp_path, scale):
    s = _shard(scale=scale)
    write_map_shard(tmp_path / "a.npy", s, "float16")
    back = read_map_shard(tmp_path / "a.npy")
    assert back.ids == s.ids and back.maps.dtype == np.float32
    peak = np.abs(s.maps).reshape(3, -1).max(1)[:, None, None]
    err = np.abs(back.maps - s.maps) / np.where(peak > 0, peak, 1)
    assert err.max() < 2 ** -11, "float16 relative to the map's largest magnitude"
    assert (back.maps[1] == 0).all()
    assert np.load(tmp_path / "a.npy", mmap_mode="r").dtype == np.float16
    np.testing.assert_array_equal(back.seconds, s.seconds)


def test_float32_shard_is_exact(tmp_path):
    s = _shard()
    write_map_shard(tmp_path / "a.npy", s, "float32")
    np.testing.assert_array_equal(read_map_shard(tmp_path / "a.npy").maps, s.maps)


def test_checksum_detects_a_changed_file(tmp_path):
    write_map_shard(tmp_path / "a.npy", _shard(), "float16")
    data = bytearray((tmp_path / "a.npy").read_bytes())
    data[-1] ^= 1
    (tmp_path / "a.npy").write_bytes(bytes(data))
    with pytest.raises(CorruptShardError, match="checksum"):
        read_map_shard(tmp_path / "a.npy")


def test_shard_without_metadata_is_incomplete(tmp_path):
    write_map_shard(tmp_path / "a.npy", _shard(), "float16")
    (tmp_path / "a.npy.json").unlink()
    assert not map_shard_complete(tmp_path / "a.npy")


def test_full_disk_is_a_clear_error_and_leaves_nothing_half_written(tmp_path, monkeypatch):
    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(store.os, "fsync", no_space)
    with pytest.raises(StoreError, match=r"a\.txt: the disk is full; nothing was half-written"):
        write_text(tmp_path / "a.txt", "hello")
    assert list(tmp_path.iterdir()) == [], "no final file and no temp file"


def test_temp_files_of_a_killed_write_are_swept(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "x.csv") as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    (tmp_path / ".y.csv.abc.tmp").write_text("left by SIGKILL")
    assert sweep_temp_files(tmp_path) == 1
    assert list(tmp_path.iterdir()) == []


def test_code_version_follows_the_source(tmp_path, monkeypatch):
    (tmp_path / "stage_mod_a.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    v1 = code_closure("stage_mod_a")
    assert v1 == code_closure("stage_mod_a")
    import importlib
    import sys
    (tmp_path / "stage_mod_a.py").write_text("X = 2\n")
    sys.modules.pop("stage_mod_a", None)
    importlib.invalidate_caches()
    clear_code_cache()  # sources are cached per process: a file edited in it must be re-read
    try:
        assert code_closure("stage_mod_a") != v1
    finally:
        sys.modules.pop("stage_mod_a", None)  # leave no module of a deleted folder behind
        clear_code_cache()


def test_a_stage_key_holds_the_resolved_config_not_the_presets():
    """Editing a preset (its comment, or a preset the run does not use) leaves every stage's code
    version as it was: the key holds the settings as resolved. The config's own dataclasses (whose
    defaults the data stage reads) still count."""
    def edited(module):
        return lambda name: read_source(name) + ("\n# edited\n" if name == module else "")
    for root in ("benchmark.run.data", "benchmark.run.target_maps"):
        base = code_closure(root)
        assert code_closure(root, source=edited("benchmark.run.presets")) == base, root
        assert code_closure(root, source=edited("benchmark.run.config_merge")) == base, root
        assert code_closure(root, source=edited("benchmark.run.config")) != base, root
