"""Training loop: bf16 autocast and channels_last where the device runs bf16 fast (CUDA, a CPU with
AMX; TrainConfig.precision), float32 otherwise; channels_last on every CPU (models.layout)."""
from __future__ import annotations

import copy
import logging
import math
import os
import time
from pathlib import Path
from typing import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score
from torch import nn
from tqdm.auto import tqdm

from .layout import place_model
from .precision import autocast, resolve_precision

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    epochs: int = 8
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    augment: bool = True
    seed: int = 0
    eval_batch_size: int = 128
    precision: str = "auto"  # "auto": bf16 where models.precision.fast_bf16, else fp32; or "bf16" / "fp32"


@dataclass
class TrainResult:
    best_epoch: int
    val: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def classifier_report(labels: np.ndarray, prob_pos: np.ndarray) -> dict[str, float]:
    """Accuracy, F1, AUROC, sensitivity, specificity and the confusion matrix at p >= 0.5."""
    pred = (prob_pos >= 0.5).astype(int)
    tn, fp, fn, tp = confusion_matrix(labels, pred, labels=[0, 1]).ravel()
    both = len(np.unique(labels)) == 2
    return {
        "accuracy": float((pred == labels).mean()),
        "f1": float(f1_score(labels, pred, zero_division=0)),
        "auroc": float(roc_auc_score(labels, prob_pos)) if both else float("nan"),
        "sensitivity": float(tp / (tp + fn)) if tp + fn else float("nan"),
        "specificity": float(tn / (tn + fp)) if tn + fp else float("nan"),
        "tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp),
    }


@torch.no_grad()
def predict_proba(model: nn.Module, images: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Softmax probabilities (N,2), evaluated in batches on the model's device."""
    device = next(model.parameters()).device
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(device)
        with _autocast(device):
            out.append(model(x).float().softmax(1).cpu())
    return torch.cat(out)


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Light random affine (rotation +-5 deg, scale 0.95-1.05, shift +-4%), one batched resample."""
    n = x.shape[0]
    r = torch.rand(n, 4, generator=gen).to(x.device)
    angle = (r[:, 0] - 0.5) * math.radians(10)
    scale = 0.95 + 0.1 * r[:, 1]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, (r[:, 2] - 0.5) * 0.08], 1),
                         torch.stack([sin, cos, (r[:, 3] - 0.5) * 0.08], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def train_classifier(model: nn.Module, train_images: torch.Tensor, train_labels: torch.Tensor,
                     val_images: torch.Tensor, val_labels: torch.Tensor, cfg: TrainConfig,
                     device: torch.device | str = "cpu", desc: str = "train",
                     state_path: str | Path | None = None,
                     on_epoch_saved: Callable[[int], None] | None = None) -> TrainResult:
    """AdamW with a one-cycle schedule and class-weighted loss; keeps the best epoch on Val accuracy.

    The model is left holding the best epoch's weights, in eval mode, on `device`. With
    `state_path`, the whole training state (weights, optimiser, schedule, random generators, best
    epoch so far) is written there atomically after every epoch, and a later call with the same
    path continues after the last finished epoch: on the CPU the result equals an uninterrupted run.
    `on_epoch_saved(epoch)`, when given, is called after each epoch state is stored (a caller's progress
    or a test's kill point); it changes nothing in the training.
    """
    if len(train_images) == 0 or len(val_images) == 0:
        raise ValueError("training needs a non-empty train and val split")
    device = torch.device(device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    place_model(model, device)
    bf16 = resolve_precision(cfg.precision, device) == "bf16"
    if bf16:  # oneDNN and cuDNN run bf16 convolutions fastest on channels-last tensors
        model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        # one copy to the GPU (a few GB at most) instead of a host gather and copy every step
        train_images, train_labels = train_images.to(device), train_labels.to(device)
    counts = torch.bincount(train_labels.cpu(), minlength=2).float()
    weight = (counts.sum() / (2 * counts.clamp(min=1))).to(device)
    steps_per_epoch = math.ceil(len(train_images) / cfg.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.2)
    best_acc, best_state, best_epoch, history = -1.0, None, -1, []
    first, spent = 0, 0.0
    if state_path is not None and Path(state_path).exists():
        st = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        gen.set_state(st["generator"])
        torch.set_rng_state(st["torch_rng"])
        best_acc, best_epoch, history, spent = st["best_acc"], st["best_epoch"], st["history"], st["seconds"]
        best_state = st["best_state"]
        first = st["epoch"] + 1
        log.info("%s: resumed after epoch %d from %s", desc, st["epoch"], state_path)
    start = time.perf_counter() - spent
    bar = tqdm(range(first, cfg.epochs), desc=desc, unit="epoch", leave=False, initial=first, total=cfg.epochs)
    for epoch in bar:
        model.train()
        order = torch.randperm(len(train_images), generator=gen).to(train_images.device)
        total, seen = 0.0, 0
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            x = train_images[idx].to(device, non_blocking=True)
            y = train_labels[idx].to(device)
            if cfg.augment:
                x = _augment(x, gen)
            if bf16:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(cfg.precision, device):
                loss = F.cross_entropy(model(x).float(), y, weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        prob = predict_proba(model, val_images, cfg.eval_batch_size)[:, 1].numpy()
        rep = classifier_report(val_labels.numpy(), prob)
        history.append({"epoch": epoch, "train_loss": total / seen, **{f"val_{k}": v for k, v in rep.items()}})
        bar.set_postfix(loss=f"{total / seen:.3f}", val_acc=f"{rep['accuracy']:.3f}")
        if rep["accuracy"] > best_acc:
            best_acc, best_epoch, best_state = rep["accuracy"], epoch, copy.deepcopy(model.state_dict())
        if state_path is not None and epoch + 1 < cfg.epochs:
            _save_state(Path(state_path), {
                "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "generator": gen.get_state(), "torch_rng": torch.get_rng_state(), "epoch": epoch,
                "best_acc": best_acc, "best_epoch": best_epoch, "best_state": best_state, "history": history,
                "seconds": time.perf_counter() - start})
            if on_epoch_saved is not None:  # after the state is stored: e.g. a test's kill point
                on_epoch_saved(epoch)
    model.load_state_dict(best_state)  # copies into the placed weights: their layout stays place_model's
    model.eval()
    val = {k.removeprefix("val_"): v for k, v in history[best_epoch].items() if k.startswith("val_")}
    return TrainResult(best_epoch=best_epoch, val=val, history=history, seconds=time.perf_counter() - start)


def _save_state(path: Path, state: dict) -> None:
    """Write beside the target and rename, so a kill mid-write never leaves a truncated state."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(model: nn.Module, path, meta: dict) -> None:
    torch.save({"model": {k: v.cpu() for k, v in model.state_dict().items()}, "meta": meta}, path)


def load_checkpoint(model: nn.Module, path) -> dict:
    """Load weights saved by save_checkpoint (weights_only: never unpickle arbitrary objects)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise ValueError(f"checkpoint {path} does not fit model {getattr(model, 'arch', '?')}: {err}") from None
    return ckpt.get("meta", {})
