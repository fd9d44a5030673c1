"""Stage train: each model trained on the train split and selected on the val split (or its stored
checkpoint loaded), then its test-split predictions written to predictions.csv."""
from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from cxr_xai_bench.datasets import Batch
from cxr_xai_bench.models.precision import resolve_precision
from cxr_xai_bench.models import (TrainConfig, build_model, classifier_report, load_checkpoint, place_model, predict_proba, save_checkpoint,
                    train_classifier)
from cxr_xai_bench.models.builders import MODELS
from cxr_xai_bench.models.checkpoints import load_trained

from ..report.artifacts import lesion_share, predictions_frame, write_predictions
from .config import Config
from .context import Models, RunContext, train_code
from .data import data_key
from .environment import seed_everything
from ..store.instances import architecture, instance_name, instances, seed_of
from ..store.code import code_closure
from ..store.files import atomic_path, stage_key

log = logging.getLogger(__name__)


def load_given(ctx: RunContext, name: str, params: dict, val: Batch, seed: int) -> tuple[torch.nn.Module, str, dict, Path]:
    """Model `name` from its file in models.checkpoints, not trained: keyed by the file's SHA-256 (so every
    downstream key is), stored as our checkpoint in the run folder (shard jobs and Ray workers load
    that), and evaluated on the val split here (the test split is evaluated by train_models)."""
    cfg, given = ctx.cfg, ctx.cfg.models.checkpoints[name]
    if seed != cfg.run.seed:
        raise ValueError(f"models.checkpoints.{name}: a given checkpoint is not trained here, so it cannot be "
                         f"trained again with repeat seed {seed}; leave metric seed_repeatability out")
    seed_everything(seed, cfg.run.deterministic)
    model = build_model(name, **params)
    info = load_trained(model, given, allow_pickle=name in cfg.models.allow_pickle)
    own = info.pop("meta")
    key = stage_key("load", name, params, info["sha256"], code_closure("cxr_xai_bench.models.checkpoints", MODELS[name].__module__))
    path = ctx.run_dir / "checkpoints" / f"{name}-{key}.pt"
    meta = {"loaded": info, "params": params, "best_epoch": "loaded", "seconds": 0.0,
            "trained_meta": {k: own[k] for k in ("val", "best_epoch", "train_config") if k in own}}
    if not (path.exists() and ctx.resume):
        with atomic_path(path) as tmp:
            save_checkpoint(model, tmp, meta)
    place_model(model, ctx.device).eval()
    meta["val"] = (None if val is None else  # an evaluate-only run may have no selection split
                   classifier_report(val.labels.numpy(), predict_proba(model, val.images)[:, 1].numpy()))
    ctx.work["train"]["loaded"] = ctx.work["train"].get("loaded", 0) + 1
    ctx.progress(f"train {name} skipped: loaded {given} ({info['format']}, sha256 {info['sha256'][:12]})")
    return model, key, meta, path


def train_key(cfg: Config, name: str, params: dict, tcfg: TrainConfig) -> str:
    """The stored checkpoint's key: the model, its settings (the training seed among them), the data it
    learns from, its code. `name` is the architecture: an instance's seed is in `tcfg`."""
    return stage_key("train", name, params, asdict(tcfg), data_key(cfg, "train"), data_key(cfg, "val"), train_code(name))


def instance_train_config(cfg: Config, arch: str, seed: int, device: torch.device) -> tuple[TrainConfig, str]:
    """The settings `arch` trains with under training seed `seed` on `device`, and its checkpoint key."""
    tcfg = train_config(cfg, arch, seed)
    tcfg.precision = resolve_precision(tcfg.precision, device)  # the key holds what "auto" became here
    return tcfg, train_key(cfg, arch, cfg.models.params.get(arch, {}), tcfg)


def train_config(cfg: Config, arch: str, seed: int) -> TrainConfig:
    """The training loop's settings of `arch` with training seed `seed` (train.seeds is the run's list
    of instances, not a setting of one training)."""
    section = {k: v for k, v in asdict(cfg.train).items() if k != "seeds"}
    return TrainConfig(**{**section, **cfg.models.train.get(arch, {}), "seed": seed})


def train_or_load(ctx: RunContext, name: str, train: Batch, val: Batch, seed: int | None = None
                  ) -> tuple[torch.nn.Module, str, dict, Path]:
    """The trained model `name` (an instance name, store/instances.py; training it unless its checkpoint
    is stored), its key, meta and path. `seed` (run.repeat_seeds) overrides the instance's own seed."""
    cfg = ctx.cfg
    arch = architecture(name)
    own = seed_of(name)
    seed = (cfg.run.seed if own is None else own) if seed is None else seed
    params = cfg.models.params.get(arch, {})
    if arch in cfg.models.checkpoints:
        return load_given(ctx, arch, params, val, seed)
    tcfg, key = instance_train_config(cfg, arch, seed, ctx.device)
    # the file carries the seed it was trained with when the run trains instances (a repeat seed's
    # retraining of two instances is then one file); without train.seeds the names stay as they were
    stem = instance_name(arch, seed) if cfg.train.seeds else arch
    path = ctx.run_dir / "checkpoints" / f"{stem}-{key}.pt"
    remote = cfg.run.train_on_workers and getattr(ctx.executor, "name", "local") == "ray"
    if remote and not (path.exists() and ctx.resume):
        # one Ray task trains the model into the shared run folder under this same key; the driver
        # (which may have no GPU) then loads the checkpoint like a stored one
        ctx.progress(f"train {name} on a Ray worker")
        got = ctx.executor.call(train_on_worker, cfg.to_dict(), str(ctx.run_dir), name,
                                "cuda" if ctx.device.type == "cuda" else "cpu", ctx.resume, seed, uses_gpu=ctx.device.type == "cuda", label=f"train {name}")
        if Path(got["checkpoint"]) != path:
            raise RuntimeError(f"train {name}: the Ray worker wrote {got['checkpoint']}, the driver expects {path} "
                               f"(different code or data on the worker)")
        ctx.work["train"]["computed" if got["computed"] else "reused"] += 1
        ctx.progress(f"train {name} done")
    seed_everything(seed, cfg.run.deterministic)
    model = build_model(arch, **params)
    if remote and path.exists():
        meta = load_checkpoint(model, path)
    elif path.exists() and ctx.resume:
        meta = load_checkpoint(model, path)
        log.info("%s: loaded checkpoint %s", name, path)
        ctx.work["train"]["reused"] += 1
    else:
        state = path.with_name(path.stem + ".state.pt")
        if not ctx.resume:
            state.unlink(missing_ok=True)
        ctx.progress(f"train {name} " + ("resume from the saved epoch state" if state.exists() else "start"))
        # on_epoch_saved: the test-only kill point (CXR_TEST_KILL_AFTER="epoch:N"); None otherwise
        result = train_classifier(model, train.images, train.labels, val.images, val.labels, tcfg,
                                  device=ctx.device, desc=f"train {name}", state_path=state,
                                  on_epoch_saved=ctx.kills.on_epoch_saved())
        meta = {"val": result.val, "best_epoch": result.best_epoch, "history": result.history,
                "seconds": result.seconds, "train_config": asdict(tcfg), "params": params}
        with atomic_path(path) as tmp:
            save_checkpoint(model, tmp, meta)
        state.unlink(missing_ok=True)
        ctx.progress(f"train {name} done")
        ctx.work["train"]["computed"] += 1
        ctx.kills.point("train")  # test-only (CXR_TEST_KILL_AFTER="train:N"); a no-op otherwise
    place_model(model, ctx.device).eval()
    return model, key, meta, path


def check_given(cfg) -> None:
    """models.checkpoints and models.allow_pickle name configured models, and the files exist."""
    for key, names in (("cxr_xai_bench.models.checkpoints", list(cfg.models.checkpoints)), ("models.allow_pickle", cfg.models.allow_pickle)):
        unknown = [n for n in names if n not in cfg.models.names]
        if unknown:
            raise KeyError(f"{key}: {unknown} not in models.names {cfg.models.names}")
    for name, file in cfg.models.checkpoints.items():
        if not Path(file).is_file():
            raise FileNotFoundError(f"models.checkpoints.{name}: file {file} does not exist")


def train_models(ctx: RunContext, train: Batch, val: Batch, test: Batch) -> tuple[Models, dict[str, dict[str, Any]]]:
    """Every configured model instance (store/instances.py: one per architecture, or one per train.seeds
    seed), trained or loaded; returns the instances and their classifier scores."""
    cfg = ctx.cfg
    check_given(cfg)
    classifiers: dict[str, dict[str, Any]] = {}
    models: Models = {}
    predictions = []
    for name, arch, seed in instances(cfg.models.names, cfg.train.seeds, cfg.models.checkpoints):
        t0 = time.perf_counter()
        trained = ctx.work["train"]["computed"]
        model, model_key, meta, ckpt = _train_instance(ctx, name, seed, list(models), train, val)
        probs = predict_proba(model, test.images)
        classifiers[name] = {"val": meta["val"], "test": classifier_report(test.labels.numpy(), probs[:, 1].numpy()),
                             "best_epoch": meta["best_epoch"], "train_seconds": meta["seconds"]}
        if seed is not None:  # one of train.seeds' instances: the report groups them by architecture
            classifiers[name].update(architecture=arch, train_seed=seed)
        if "loaded" in meta:  # a given checkpoint: loaded, not trained
            classifiers[name].update(trained=False, loaded=meta["loaded"], trained_meta=meta["trained_meta"])
        predictions.append(predictions_frame(cfg.data.dataset, cfg.data.splits["test"], name, list(test.ids),
                                             test.labels.numpy(), probs[:, 1].numpy(),
                                             lesion_share(test.lesion_masks, test.has_mask, test.lung_masks)))
        models[name] = (model_key, ckpt)
        ctx.timings[f"train/{name}"] = time.perf_counter() - t0
        ctx.keep_previous_timing(f"train/{name}", trained, "train")
        # this run's shard jobs run in this process (and its side stages) reuse the loaded model
        ctx.state.keep_model(ckpt, ctx.device, model)
    write_predictions(ctx.run_dir / "predictions.csv", predictions)
    return models, classifiers


def _train_instance(ctx: RunContext, name: str, seed: int | None, done: list[str], train: Batch, val: Batch
                    ) -> tuple[torch.nn.Module, str, dict, Path]:
    """train_or_load of one instance. An instance of train.seeds that fails to train stops the run (as a
    model does) with an error naming it and the instances already stored, which a rerun reuses: an
    architecture is never reported with one of its instances silently missing."""
    if seed is None:
        return train_or_load(ctx, name, train, val)
    try:
        return train_or_load(ctx, name, train, val)
    except Exception as err:
        kept = ", ".join(done) or "none"
        raise RuntimeError(f"train {name} (architecture {architecture(name)}, training seed {seed}) failed: "
                           f"{type(err).__name__}: {err}; instances trained and kept: {kept}") from err


def train_on_worker(config: dict, run_dir: str, name: str, device: str, resume: bool = True,
                    seed: int | None = None) -> dict:
    """Train one model (or find its stored checkpoint) in this process, exactly as the driver would.

    The body of the Ray task that `run.train_on_workers` submits per model, so a driver without a
    GPU can run a paper-scale run: the checkpoint lands in the shared run folder under the driver's
    key (epoch-state resume, atomic write). Returns {"checkpoint": path, "computed": whether it trained}."""
    from .config import config_from_dict
    from .data import load_split
    cfg = config_from_dict({**config, "run": {**config["run"], "train_on_workers": False}})
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    ctx = RunContext(cfg, Path(run_dir), torch.device(device), resume=resume)
    _, _, _, path = train_or_load(ctx, name, load_split(cfg, "train"), load_split(cfg, "val"), seed=seed)
    return {"checkpoint": str(path), "computed": ctx.work["train"]["computed"] > 0}
