"""Loading the splits a run names: seeded stratified subsets, the selection hold-out carved from the
training split (data.holdout), the preprocessing cache, bad files."""
from __future__ import annotations

import logging
import zlib
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cxr_xai_bench.datasets import Batch, build_dataset, collate

from .config import Config, DataSection
from .data_cache import cached_split
from ..store.code import code_closure
from ..store.files import stage_key

log = logging.getLogger(__name__)


def select_indices(ds, limit: int | None, seed: int, pool: np.ndarray | None = None) -> list[int]:
    """A seeded subset of `limit` items stratified by label (all items when limit is 0 or larger),
    drawn from the item indices `pool` (every item when None)."""
    n = len(ds)
    if n == 0:
        raise ValueError(f"dataset {type(ds).__name__} split {getattr(ds, 'split', '?')!r} is empty")
    pool = np.arange(n) if pool is None else np.asarray(pool, dtype=np.int64)
    if not limit or limit >= len(pool):
        return sorted(pool.tolist())
    labels = np.asarray(ds.labels())[pool]
    rng = np.random.default_rng(seed)
    chosen = []
    classes = np.unique(labels)
    for i, c in enumerate(classes):
        members = pool[labels == c]
        take = limit // len(classes) + (1 if i < limit % len(classes) else 0)
        chosen.extend(rng.choice(members, size=min(take, len(members)), replace=False).tolist())
    return sorted(chosen)


def holdout_mask(labels: np.ndarray, fraction: float, seed: int, dataset: str, split: str) -> np.ndarray:
    """bool (N,): the items of a split held out for selection, stratified by label: per class
    round(fraction * its count) items (at least one, and one left for training, where a class has
    two or more). A pure function of (seed, dataset, split, fraction) and the split's labels: the
    generator is seeded from all four (crc32 of the names: Python's str hash changes per process)."""
    labels = np.asarray(labels)
    entropy = [seed, zlib.crc32(dataset.encode()), zlib.crc32(split.encode()), round(fraction * 1_000_000)]
    rng = np.random.default_rng(np.random.SeedSequence(entropy))
    held = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        take = int(np.floor(fraction * len(members) + 0.5))
        take = min(max(take, 1), len(members) - 1) if len(members) > 1 else 0
        held[rng.choice(members, size=take, replace=False)] = True
    return held


def has_role(cfg: Config, role: str) -> bool:
    """Whether the run reads split role `role` ("" in data.splits leaves it out)."""
    return bool(cfg.data.splits.get(role, ""))


def evaluate_only(cfg: Config) -> bool:
    """A run without a training split: every model is given, nothing is trained."""
    return not has_role(cfg, "train")


def uses_holdout(cfg: Config) -> bool:
    """Whether the selection role ("val") is a hold-out carved from the training split."""
    d = cfg.data
    return d.holdout > 0 and has_role(cfg, "train") and d.splits.get("val") == d.splits.get("train")


def role_pool(cfg: Config, ds, role: str) -> np.ndarray | None:
    """The item indices of `ds` that `role` may draw from: with a hold-out, "val" the held-out part
    of the training split and "train" the rest (disjoint by construction); otherwise every item (None)."""
    if not uses_holdout(cfg) or role not in ("train", "val"):
        return None
    d = cfg.data
    held = holdout_mask(ds.labels(), d.holdout, cfg.run.seed, d.dataset, d.splits[role])
    pool = np.flatnonzero(held if role == "val" else ~held)
    if not len(pool):
        raise ValueError(f"data.holdout = {d.holdout} of split {d.splits[role]!r} ({len(held)} images) leaves "
                         f"the {role!r} role no images")
    return pool


def load_split(cfg: Config, role: str, skipped: list[dict] | None = None) -> Batch:
    """Load one split through the preprocessing cache (data.cache_dir) when it is on."""
    from cxr_xai_bench.datasets import DATASETS
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


def data_code(dataset: str) -> str:
    """Version of the code that decides a split's content: the import closure of the dataset's own
    module and of this loading module, so editing a loader or the phantom invalidates the cache,
    checkpoints and maps."""
    from cxr_xai_bench.datasets import DATASETS
    own = (DATASETS[dataset].__module__,) if dataset in DATASETS else ()
    return code_closure(*own, "benchmark.run.data")


def data_key(cfg: Config, role: str) -> dict:
    """The inputs that decide a split's content: part of every downstream stage key."""
    d = cfg.data
    key = {"dataset": d.dataset, "root": d.root, "split": d.splits[role], "size": d.size,
           "limit": d.limit.get(role), "params": d.params, "skip_bad": d.skip_bad, "seed": cfg.run.seed,
           "resize": d.resize, "mask_values": d.mask_values, "code": data_code(d.dataset)}
    if uses_holdout(cfg) and role in ("train", "val"):
        # only where it applies, so runs without a hold-out keep their stored stages
        key["holdout"] = {"fraction": d.holdout, "part": "held out" if role == "val" else "rest"}
    return key


FILE_KEYS = ("resize", "mask_values")  # data.* keys the built-in datasets take beside split, size and seed


def file_params(cfg: Config) -> dict:
    """data.resize and data.mask_values for the dataset's builder. A plug-in dataset whose builder
    takes neither is given them only when set away from their defaults, and is then refused by name."""
    import inspect
    from cxr_xai_bench.datasets import DATASETS
    d = cfg.data
    try:
        sig = inspect.signature(DATASETS[d.dataset])
    except (KeyError, TypeError, ValueError):
        return {key: getattr(d, key) for key in FILE_KEYS}
    takes_all = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    out = {}
    for key in FILE_KEYS:
        default = getattr(DataSection(), key)
        if takes_all or key in sig.parameters:
            out[key] = getattr(d, key)
        elif getattr(d, key) != default:
            raise ValueError(f"data.{key} = {getattr(d, key)!r}: dataset {d.dataset!r} does not take {key!r}; "
                             f"leave data.{key} at its default {default!r} or add the argument to the dataset")
    return out


def read_split(cfg: Config, role: str, skipped: list[dict] | None = None) -> Batch:
    """Decode one split; with data.skip_bad, unreadable items are left out and appended to `skipped`."""
    d = cfg.data
    split = d.splits[role]
    params = {**d.params, **({"root": d.root} if d.root else {})}
    ds = build_dataset(d.dataset, split=split, size=d.size, seed=cfg.run.seed, **file_params(cfg), **params)
    idx = select_indices(ds, d.limit.get(role), cfg.run.seed, role_pool(cfg, ds, role))
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


class ImageIds(tuple):
    """The image ids of a batch as explainer context (maps read from a folder by id): a tuple that,
    like the tensors beside it, can be "moved" to a device (it stays as it is)."""

    def to(self, device) -> "ImageIds":
        return self


def read_prior_file(path: str, size: int) -> np.ndarray:
    """data.prior_file: a float (size, size) array in [0,1], or an error naming the file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"data.prior_file: {path} does not exist")
    try:
        prior = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"data.prior_file: cannot read {path}: {err}") from None
    if prior.shape != (size, size) or not np.isfinite(prior).all() or prior.min() < 0 or prior.max() > 1:
        raise ValueError(f"data.prior_file: {path} must be a finite ({size}, {size}) array in [0, 1] "
                         f"(data.size = {size}); got shape {prior.shape}")
    return prior.astype(np.float32)


def explain_context(test: Batch, sl, prior) -> dict:
    """What dataset-reading baselines may use for test images `sl` (a slice or an index tensor): their
    lung and lesion masks (when the whole split has them), the training prior (H,W), shared by every
    image, and the images' ids (folder maps)."""
    import torch
    has_lungs = bool(test.lung_masks.flatten(1).any(1).all())
    ids = test.ids[sl] if isinstance(sl, slice) else [test.ids[i] for i in torch.as_tensor(sl).reshape(-1).tolist()]
    return {"lung_masks": test.lung_masks[sl] if has_lungs else None,
            "lesion_masks": test.lesion_masks[sl] if bool(test.has_mask.all()) else None,
            "train_mean_mask": None if prior is None else torch.as_tensor(prior),
            "image_ids": ImageIds(str(i) for i in ids)}
