"""A train.seeds run in a folder that already holds the single-seed run adopts that run's work.

The instance trained with run.seed (`resnet50@s0` when run.seed = 0) is the model the single-seed run
trained as `resnet50`: the same training settings, so the same keys at every stage (a stage key holds
the model's key, never its name). Only the names differ, so without this the first instance would be
trained, explained and scored again (on a 2-core CPU, 80 minutes of a paper-cpu run). Its stored
checkpoint, maps, thresholds and score shards are copied under the instance's name, the `model`
column of each score table relabelled; the stages then find them like any stored work.
"""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

from ..store.files import atomic_path
from ..store.instances import instance_name
from .context import RunContext
from .train import instance_train_config

# the folders of stored stage work whose entries start with "<model>-" (files or folders of shards)
STAGE_DIRS = ("checkpoints", "maps", "scores", "thresholds", "reliability/maps", "reliability/scores")


def adopt_run_seed_instance(ctx: RunContext) -> None:
    """Before training: a train.seeds run that lists run.seed, resumed in the folder of the
    single-seed run, takes that run's work as its run.seed instance's, where that run's checkpoint has
    the instance's key (a run made with other settings or code is left alone)."""
    cfg = ctx.cfg
    if not ctx.resume or cfg.run.seed not in cfg.train.seeds:
        return
    archs = []
    for arch in (a for a in cfg.models.names if a not in cfg.models.checkpoints):
        _, key = instance_train_config(cfg, arch, cfg.run.seed, ctx.device)
        inst = instance_name(arch, cfg.run.seed)
        if (ctx.run_dir / "checkpoints" / f"{arch}-{key}.pt").exists():
            archs.append(arch)
        elif (any((ctx.run_dir / "checkpoints").glob(f"{arch}-*.pt"))
              and not (ctx.run_dir / "checkpoints" / f"{inst}-{key}.pt").exists()):
            # made by other code or settings: its keys are not the instance's, so nothing of it is reused
            ctx.progress(f"adopt {arch}: not adopted, the single-seed run's checkpoint has another key "
                         f"(other code or settings), so none of its work is reused for {inst}")
    for arch, n in adopt_single_seed_work(ctx.run_dir, archs, cfg.run.seed).items():
        if n:
            ctx.progress(f"adopt {arch}: {n} stored files of the single-seed run taken as "
                         f"{instance_name(arch, cfg.run.seed)}'s (same keys)")


def adopt_single_seed_work(run_dir: Path, archs: list[str], seed: int) -> dict[str, int]:
    """Copy each architecture's stored single-seed work (`arch-...`) in `run_dir` to the names of its
    instance trained with `seed` (`arch@s<seed>-...`), leaving what that name already has; returns the
    number of files copied per architecture. Each file is written atomically, a shard's side files
    before the shard, so a run killed while adopting adopts the rest when rerun."""
    copied = {}
    for arch in archs:
        inst = instance_name(arch, seed)
        n = 0
        for folder in STAGE_DIRS:
            for src in sorted((run_dir / folder).glob(f"{arch}-*")):
                if src.name.startswith("."):
                    continue
                dst = src.with_name(inst + src.name[len(arch):])
                n += _copy_tree(src, dst, arch, inst)
        copied[arch] = n
    return copied


def _copy_tree(src: Path, dst: Path, arch: str, inst: str) -> int:
    if src.is_file():
        return _copy_file(src, dst, arch, inst)
    # side files (shard-0.npy.json, shard-0.csv.aux.npz) before their shard: a stage takes a shard that
    # exists as stored
    files = sorted((p for p in src.iterdir() if p.is_file() and not p.name.startswith(".")),
                   key=lambda p: (-p.name.count("."), p.name))
    return sum(_copy_file(p, dst / p.name, arch, inst) for p in files)


def _copy_file(src: Path, dst: Path, arch: str, inst: str) -> int:
    if dst.exists():
        return 0
    with atomic_path(dst) as tmp:
        if src.suffix == ".csv":
            _relabel_csv(src, tmp, arch, inst)
        else:
            shutil.copyfile(src, tmp)
    return 1


def _relabel_csv(src: Path, dst: Path, arch: str, inst: str) -> None:
    """The table with its `model` column's `arch` cells named `inst`, every other cell's text unchanged
    (so the numbers read back bit for bit)."""
    with open(src, newline="") as fh:
        rows = list(csv.reader(fh))
    if rows and "model" in rows[0]:
        col = rows[0].index("model")
        for row in rows[1:]:
            if len(row) > col and row[col] == arch:
                row[col] = inst
    with open(dst, "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
