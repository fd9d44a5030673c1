"""The run store's files: stage keys hashed from their inputs, atomic writes, compact checksummed map shards.

A stage output is complete when its file exists under its final name: every write goes to a temp
file beside it, is fsynced and renamed into place, so a killed run leaves only temp files (swept on
the next start) and never a half-written artifact.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

MAP_DTYPES = ("float16", "float32")


class StoreError(OSError):
    """A write to the run store failed (disk full, permissions); nothing half-written was left."""


def stage_key(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable inputs (config slices, upstream keys, code versions)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync it and rename it into place.

    A run killed mid-write leaves only a temp file, never a half-written artifact. A full disk or
    a permission error becomes a StoreError naming the file, with the temp file removed.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as err:
        raise StoreError(err.errno, f"cannot write {path}: {err.strerror or err}") from None
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if isinstance(err, StoreError):
            raise
        why = "the disk is full" if err.errno in (errno.ENOSPC, errno.EDQUOT) else (err.strerror or str(err))
        raise StoreError(err.errno, f"cannot write {path}: {why}; nothing was half-written, and the stages "
                                    f"already stored are kept (free space and rerun to resume)") from None
    finally:
        tmp.unlink(missing_ok=True)


def sweep_temp_files(root: str | Path) -> int:
    """Remove temp files left by a killed run; returns how many."""
    n = 0
    for p in Path(root).rglob(".*.tmp"):
        p.unlink(missing_ok=True)
        n += 1
    return n


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class MapShard:
    maps: np.ndarray            # (n,H,W) float32
    ids: list[str]
    seconds: np.ndarray         # (n,) seconds per image of the explain call
    peak_memory_mb: np.ndarray  # (n,) peak memory of the call that made each map


def quantise(maps: np.ndarray, dtype: str = "float16") -> tuple[np.ndarray, np.ndarray]:
    """(stored array, per-map scale) as a map shard holds them; stored * scale is what metrics read."""
    if dtype not in MAP_DTYPES:
        raise ValueError(f"map dtype {dtype!r} not in {MAP_DTYPES}")
    maps = np.asarray(maps, dtype=np.float32)
    if dtype == "float32":
        return maps, np.ones(len(maps), np.float32)
    scale = np.abs(maps).reshape(len(maps), -1).max(1) if len(maps) else np.zeros(0, np.float32)
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    return (maps / scale[:, None, None]).astype(np.float16), scale


def as_stored(maps: np.ndarray, dtype: str = "float16") -> np.ndarray:
    """The maps exactly as they read back from a shard of `dtype`."""
    stored, scale = quantise(maps, dtype)
    return stored.astype(np.float32) * scale[:, None, None]


def write_map_shard(path: str | Path, shard: MapShard, dtype: str = "float16") -> None:
    """Store maps as `path` (.npy, memory-mappable) plus `path`.json (ids, timings, scales, checksum).

    float16 stores each map divided by its largest magnitude with that scale kept in float32, so
    maps of any magnitude (LRP relevances of 1e-6 included) keep 11 bits of relative precision
    and never underflow. The JSON is written last: its presence marks the shard complete.
    """
    path = Path(path)
    stored, scale = quantise(shard.maps, dtype)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, stored)
    meta = {"ids": list(shard.ids), "seconds": [float(s) for s in shard.seconds],
            "peak_memory_mb": [float(m) for m in shard.peak_memory_mb], "scale": [float(s) for s in scale],
            "dtype": dtype, "shape": list(stored.shape), "sha256": _sha256(path)}
    write_json(_meta_path(path), meta)


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def map_shard_complete(path: str | Path) -> bool:
    path = Path(path)
    return path.exists() and _meta_path(path).exists()


class CorruptShardError(ValueError):
    pass


def read_map_shard(path: str | Path, verify: bool = True) -> MapShard:
    """Load a shard written by write_map_shard (memory-mapped); CorruptShardError on a checksum mismatch."""
    path = Path(path)
    try:
        meta = json.loads(_meta_path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CorruptShardError(f"map shard {path}: unreadable metadata ({err})") from None
    if verify and _sha256(path) != meta.get("sha256"):
        raise CorruptShardError(f"map shard {path}: checksum mismatch (the file changed after it was written)")
    try:
        stored = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise CorruptShardError(f"map shard {path}: unreadable ({err})") from None
    if list(stored.shape) != meta["shape"]:
        raise CorruptShardError(f"map shard {path}: shape {stored.shape} != recorded {meta['shape']}")
    maps = np.asarray(stored, dtype=np.float32) * np.asarray(meta["scale"], np.float32)[:, None, None]
    return MapShard(maps, meta["ids"], np.asarray(meta["seconds"]), np.asarray(meta["peak_memory_mb"]))


def remove_map_shard(path: str | Path) -> None:
    path = Path(path)
    _meta_path(path).unlink(missing_ok=True)
    path.unlink(missing_ok=True)
