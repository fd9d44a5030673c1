"""Loading the splits a run names: seeded stratified subsets, the preprocessing cache, bad files."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from datasets import Batch, build_dataset, collate

from .config import Config
from .data_cache import cached_split
from .store import code_version, stage_key

log = logging.getLogger(__name__)


def select_indices(ds, limit: int | None, seed: int) -> list[int]:
    """A seeded subset of `limit` items stratified by label (all items when limit is 0 or larger)."""
    n = len(ds)
    if n == 0:
        raise ValueError(f"dataset {type(ds).__name__} split {getattr(ds, 'split', '?')!r} is empty")
    if not limit or limit >= n:
        return list(range(n))
    labels = np.asarray(ds.labels())
    rng = np.random.default_rng(seed)
    chosen = []
    classes = np.unique(labels)
    for i, c in enumerate(classes):
        pool = np.flatnonzero(labels == c)
        take = limit // len(classes) + (1 if i < limit % len(classes) else 0)
        chosen.extend(rng.choice(pool, size=min(take, len(pool)), replace=False).tolist())
    return sorted(chosen)


def load_split(cfg: Config, role: str, skipped: list[dict] | None = None) -> Batch:
    """Load one split through the preprocessing cache (data.cache_dir) when it is on."""
    from datasets import DATASETS
    if not cfg.data.cache_dir or not getattr(DATASETS[cfg.data.dataset], "cacheable", True):
        return read_split(cfg, role, skipped)
    key = stage_key("data", data_key(cfg, role))

    def build():
        found: list[dict] = []
        return read_split(cfg, role, found), found

    batch, found = cached_split(Path(cfg.data.cache_dir), f"{cfg.data.dataset}-{role}-{cfg.data.size}px-{key}", build)
    if skipped is not None:
        skipped.extend(found)
    return batch


# the code every dataset's samples pass through (decoding, resizing, the Sample contract, selection)
SHARED_DATA_CODE = ("datasets.sample", "datasets.imageio", "datasets.registry", "benchmark.run.data")


def data_code(dataset: str) -> str:
    """Version of the code that decides a split's content: the dataset's own module and the shared
    loading code, so editing a loader or the phantom invalidates the cache, checkpoints and maps."""
    from datasets import DATASETS
    own = (DATASETS[dataset].__module__,) if dataset in DATASETS else ()
    return code_version(*own, *SHARED_DATA_CODE)


def data_key(cfg: Config, role: str) -> dict:
    """The inputs that decide a split's content: part of every downstream stage key."""
    d = cfg.data
    return {"dataset": d.dataset, "root": d.root, "split": d.splits[role], "size": d.size,
            "limit": d.limit.get(role), "params": d.params, "skip_bad": d.skip_bad, "seed": cfg.run.seed,
            "code": data_code(d.dataset)}


def read_split(cfg: Config, role: str, skipped: list[dict] | None = None) -> Batch:
    """Decode one split; with data.skip_bad, unreadable items are left out and appended to `skipped`."""
    d = cfg.data
    split = d.splits[role]
    params = {**d.params, **({"root": d.root} if d.root else {})}
    ds = build_dataset(d.dataset, split=split, size=d.size, seed=cfg.run.seed, **params)
    idx = select_indices(ds, d.limit.get(role), cfg.run.seed)
    samples = []
    for i in tqdm(idx, desc=f"load {role}", unit="img", leave=False):
        try:
            samples.append(ds[i])
        except (ValueError, FileNotFoundError) as err:
            if not d.skip_bad:
                raise ValueError(f"{role} split item {i}: {err} (set data.skip_bad = true to skip such files)") from None
            log.warning("skipping %s item %d: %s", role, i, err)
            if skipped is not None:
                skipped.append({"split": role, "index": i, "error": str(err)})
    if not samples:
        raise ValueError(f"{role} split of {d.dataset!r} has no readable images")
    return collate(samples)


def train_prior(train: Batch) -> np.ndarray | None:
    """Mean lesion mask of the annotated pneumonia training images (the `mask_prior` baseline)."""
    annotated = train.has_mask & (train.labels == 1)
    return train.lesion_masks[annotated].float().mean(0).numpy() if bool(annotated.any()) else None


def explain_context(test: Batch, sl: slice, prior) -> dict:
    """What dataset-reading baselines may use for test images `sl`: their lung and lesion masks
    (when the whole split has them) and the training prior (H,W), shared by every image."""
    import torch
    has_lungs = bool(test.lung_masks.flatten(1).any(1).all())
    return {"lung_masks": test.lung_masks[sl] if has_lungs else None,
            "lesion_masks": test.lesion_masks[sl] if bool(test.has_mask.all()) else None,
            "train_mean_mask": None if prior is None else torch.as_tensor(prior)}
