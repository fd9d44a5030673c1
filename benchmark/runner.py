"""The stage runner: data -> train -> explain -> score -> report, each stage stored and resumable.

Every stage output lives under the run folder, named by a hash of its inputs (config slice and
upstream keys), written atomically, and skipped when present: a killed run resumes where it
stopped, and a changed metric re-scores without re-explaining.
"""
from __future__ import annotations

import logging
import platform
import random
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import tomli_w
from tqdm.auto import tqdm

from datasets import Batch, build_dataset, collate
from explainers import build_explainer
from models import TrainConfig, build_model, classifier_report, load_checkpoint, predict_proba, save_checkpoint, train_classifier

from . import metrics as metric_registry
from . import report, stats
from .config import Config
from .data_cache import cached_split
from .store import atomic_path, stage_key, write_json, write_text

log = logging.getLogger(__name__)
SCORE_COLUMNS = ["dataset", "split", "model", "explainer", "metric", "image_id", "value"]


@dataclass
class RunResult:
    run_dir: Path
    scores: pd.DataFrame
    summary: pd.DataFrame
    classifiers: dict[str, dict[str, Any]]
    leaderboard: str
    timings: dict[str, float] = field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but CUDA is not available here")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
    key = stage_key("data", _data_key(cfg, role))

    def build():
        found: list[dict] = []
        return read_split(cfg, role, found), found

    batch, found = cached_split(Path(cfg.data.cache_dir), f"{cfg.data.dataset}-{role}-{cfg.data.size}px-{key}", build)
    if skipped is not None:
        skipped.extend(found)
    return batch


def _data_key(cfg: Config, role: str) -> dict:
    d = cfg.data
    return {"dataset": d.dataset, "root": d.root, "split": d.splits[role], "size": d.size,
            "limit": d.limit.get(role), "params": d.params, "skip_bad": d.skip_bad, "seed": cfg.run.seed}


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


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _versions() -> dict[str, str]:
    import importlib.metadata as md
    out = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "captum", "lime", "zennit", "quantus", "numpy", "scipy", "pandas", "seaborn"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def _targets(kind: str, labels: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    if kind == "label":
        return labels.clone()
    if kind == "predicted":
        return probs.argmax(1)
    if kind == "pneumonia":
        return torch.ones_like(labels)
    raise ValueError(f"explain.target {kind!r} must be 'label', 'predicted' or 'pneumonia'")


def validate(cfg: Config) -> None:
    """Fail on unknown names before any work is done, naming the key and the allowed values."""
    from datasets import DATASETS
    from explainers import EXPLAINERS
    from models import MODELS
    checks = [("data.dataset", [cfg.data.dataset], DATASETS), ("models.names", cfg.models.names, MODELS),
              ("explain.names", cfg.explain.names, EXPLAINERS), ("metrics.names", cfg.metrics.names, metric_registry.METRICS)]
    for key, names, registry in checks:
        for name in names:
            if name not in registry:
                raise KeyError(f"{key}: unknown name {name!r}; registered: {sorted(registry)}")
    for role in ("train", "val", "test"):
        if role not in cfg.data.splits:
            raise KeyError(f"data.splits must name a {role!r} split, got {cfg.data.splits}")
    if not cfg.models.names or not cfg.explain.names or not cfg.metrics.names:
        raise ValueError("models.names, explain.names and metrics.names must each name at least one entry")


def explain_context(train: Batch, test: Batch) -> dict[str, torch.Tensor | None]:
    """What dataset-reading baselines may use: test lung and lesion masks, the mean training lesion."""
    annotated = train.has_mask & (train.labels == 1)
    has_lungs = bool(test.lung_masks.flatten(1).any(1).all())
    return {"lung_masks": test.lung_masks if has_lungs else None,
            "lesion_masks": test.lesion_masks if bool(test.has_mask.all()) else None,
            "train_mean_mask": train.lesion_masks[annotated].float().mean(0) if bool(annotated.any()) else None}


class Runner:
    def __init__(self, cfg: Config, run_dir: Path, device: torch.device):
        self.cfg, self.run_dir, self.device = cfg, Path(run_dir), device
        self.timings: dict[str, float] = {}
        self.skipped: list[dict] = []
        self.context: dict[str, torch.Tensor | None] = {}

    def _data_key(self, role: str) -> dict:
        return _data_key(self.cfg, role)

    def train_or_load(self, name: str, train: Batch, val: Batch) -> tuple[torch.nn.Module, str, dict]:
        params = self.cfg.models.params.get(name, {})
        tcfg = TrainConfig(**{**asdict(self.cfg.train), **self.cfg.models.train.get(name, {}), "seed": self.cfg.run.seed})
        key = stage_key("train", name, params, asdict(tcfg), self._data_key("train"), self._data_key("val"))
        path = self.run_dir / "checkpoints" / f"{name}-{key}.pt"
        seed_everything(self.cfg.run.seed)
        model = build_model(name, **params)
        if path.exists():
            meta = load_checkpoint(model, path)
            log.info("%s: loaded checkpoint %s", name, path)
        else:
            result = train_classifier(model, train.images, train.labels, val.images, val.labels, tcfg,
                                      device=self.device, desc=f"train {name}")
            meta = {"val": result.val, "best_epoch": result.best_epoch, "history": result.history,
                    "seconds": result.seconds, "train_config": asdict(tcfg), "params": params}
            with atomic_path(path) as tmp:
                save_checkpoint(model, tmp, meta)
        model.to(self.device).eval()
        return model, key, meta

    def explain_or_load(self, model_name: str, model, model_key: str, explainer: str, test: Batch,
                        targets: torch.Tensor) -> tuple[np.ndarray, np.ndarray, str]:
        params = self.cfg.explain.params.get(explainer, {})
        key = stage_key("explain", model_key, explainer, params, self._data_key("test"), targets.tolist(), self.cfg.run.seed)
        path = self.run_dir / "maps" / f"{model_name}-{explainer}-{key}.npz"
        if path.exists():
            with np.load(path) as z:
                return z["maps"], z["seconds"], key
        exp = build_explainer(explainer, seed=self.cfg.run.seed, **params)
        bs = self.cfg.explain.batch_size
        maps, seconds = [], []
        for i in tqdm(range(0, len(test), bs), desc=f"explain {model_name}/{explainer}", unit="batch", leave=False):
            x = test.images[i:i + bs].to(self.device)
            # per-image context (N,H,W) is sliced with the batch; the training prior (H,W) is shared
            context = {k: None if v is None else (v if v.dim() == 2 else v[i:i + bs]).to(self.device)
                       for k, v in self.context.items()}
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            m = exp.explain(model, x, targets[i:i + bs].to(self.device), **context)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            maps.append(m.cpu().numpy())
            seconds.extend([dt / len(x)] * len(x))
        maps_arr, sec_arr = np.concatenate(maps), np.asarray(seconds)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, maps=maps_arr, seconds=sec_arr, ids=np.asarray(test.ids))
        return maps_arr, sec_arr, key

    def score_or_load(self, model_name: str, model, explainer: str, maps_key: str, maps: np.ndarray,
                      seconds: np.ndarray, test: Batch, targets: torch.Tensor) -> pd.DataFrame:
        frames = []
        for metric in self.cfg.metrics.names:
            params = self.cfg.metrics.params.get(metric, {})
            key = stage_key("score", maps_key, metric, params)
            path = self.run_dir / "scores" / f"{model_name}-{explainer}-{metric}-{key}.csv"
            if path.exists():
                frames.append(pd.read_csv(path, dtype={"image_id": str}))
                continue
            if metric_registry.get_metric(metric).fn is None:
                values = seconds
            else:
                values = []
                bs = self.cfg.explain.batch_size
                for i in range(0, len(test), bs):
                    sl = slice(i, i + bs)
                    v = metric_registry.score(metric, model, test.images[sl].to(self.device), targets[sl].to(self.device),
                                              torch.from_numpy(maps[sl]).to(self.device), test.lesion_masks[sl].to(self.device),
                                              test.has_mask[sl].to(self.device), **params)
                    values.append(v.cpu().numpy())
                values = np.concatenate(values)
            df = pd.DataFrame({"dataset": self.cfg.data.dataset, "split": self.cfg.data.splits["test"], "model": model_name,
                               "explainer": explainer, "metric": metric, "image_id": test.ids, "value": values})
            with atomic_path(path) as tmp:
                df.to_csv(tmp, index=False)
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    def run(self) -> RunResult:
        cfg, rd = self.cfg, self.run_dir
        rd.mkdir(parents=True, exist_ok=True)
        write_text(rd / "config.toml", tomli_w.dumps(cfg.to_dict()))
        validate(cfg)
        t0 = time.perf_counter()
        train, val, test = (load_split(cfg, role, self.skipped) for role in ("train", "val", "test"))
        self.timings["data"] = time.perf_counter() - t0
        self.context = explain_context(train, test)
        classifiers, frames, overlay = {}, [], {}
        for name in cfg.models.names:
            t0 = time.perf_counter()
            model, model_key, meta = self.train_or_load(name, train, val)
            probs = predict_proba(model, test.images)
            classifiers[name] = {"val": meta["val"], "test": classifier_report(test.labels.numpy(), probs[:, 1].numpy()),
                                 "best_epoch": meta["best_epoch"], "train_seconds": meta["seconds"]}
            self.timings[f"train/{name}"] = time.perf_counter() - t0
            targets = _targets(cfg.explain.target, test.labels, probs)
            overlay[name] = {}
            for explainer in cfg.explain.names:
                t0 = time.perf_counter()
                maps, seconds, maps_key = self.explain_or_load(name, model, model_key, explainer, test, targets)
                self.timings[f"explain/{name}/{explainer}"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                frames.append(self.score_or_load(name, model, explainer, maps_key, maps, seconds, test, targets))
                self.timings[f"score/{name}/{explainer}"] = time.perf_counter() - t0
                overlay[name][explainer] = maps
        scores = pd.concat(frames, ignore_index=True)[SCORE_COLUMNS]
        with atomic_path(rd / "scores.csv") as tmp:
            scores.to_csv(tmp, index=False)
        t0 = time.perf_counter()
        summary = stats.summarise(scores, cfg.report.bootstrap, cfg.report.confidence, cfg.run.seed)
        leaderboard = self.write_report(scores, summary, classifiers, test, overlay)
        self.timings["report"] = time.perf_counter() - t0
        write_json(rd / "manifest.json", {"versions": _versions(), "git_commit": _git_commit(), "seed": cfg.run.seed,
                                          "device": str(self.device), "torch_threads": torch.get_num_threads(),
                                          "timings_s": self.timings, "classifiers": classifiers,
                                          "skipped_files": self.skipped,
                                          "data_counts": {"train": len(train), "val": len(val), "test": len(test),
                                                          "test_with_lesion": int(test.lesion_masks.flatten(1).any(1).sum())}})
        return RunResult(rd, scores, summary, classifiers, leaderboard, self.timings)

    def write_report(self, scores: pd.DataFrame, summary: pd.DataFrame, classifiers: dict, test: Batch,
                     overlay: dict[str, dict[str, np.ndarray]]) -> str:
        cfg, rep = self.cfg, self.run_dir / "report"
        leaderboard = report.write_tables(summary, rep, cfg.report.confidence, stats.paired_tests(scores))
        report.leaderboard_figure(summary, rep / "leaderboard.png")
        lesion = test.lesion_masks.flatten(1).any(1).nonzero().flatten()[: cfg.report.overlay_images].tolist()
        signed = {e: build_explainer(e, **cfg.explain.params.get(e, {})).signed for e in cfg.explain.names}
        for name, maps in overlay.items():
            report.overlay_grid(test.images[lesion, 0].numpy(), test.lesion_masks[lesion].numpy(),
                                {e: m[lesion] for e, m in maps.items()}, signed, [test.ids[i] for i in lesion],
                                f"{name}: heat maps with the lesion contour (green)", rep / f"overlay-{name}.png")
        case_metric = "relevance_mass" if "relevance_mass" in cfg.metrics.names else None
        if case_metric:
            index = {image_id: k for k, image_id in enumerate(test.ids)}
            for name, maps in overlay.items():
                rows = []
                for explainer, m in maps.items():
                    vals = scores[(scores.model == name) & (scores.explainer == explainer)
                                  & (scores.metric == case_metric)].dropna(subset=["value"]).sort_values("value", kind="stable")
                    if vals.empty:
                        continue
                    picks = [("best", vals.iloc[-1]), ("median", vals.iloc[len(vals) // 2]), ("worst", vals.iloc[0])]
                    cells = [(test.images[index[r.image_id], 0].numpy(), test.lesion_masks[index[r.image_id]].numpy(),
                              m[index[r.image_id]], f"{label} {r.image_id}\n{case_metric} {r.value:.2f}") for label, r in picks]
                    rows.append((explainer, signed[explainer], cells))
                if rows:
                    report.case_grid(rows, f"{name}: best, median and worst image per explainer by {case_metric}",
                                     rep / f"cases-{name}.png")
        lines = [f"# Benchmark report: {cfg.run.name}\n", f"Dataset `{cfg.data.dataset}` at {cfg.data.size} px; "
                 f"test split `{cfg.data.splits['test']}` with {len(test)} images "
                 f"({int(test.labels.sum())} pneumonia, {int(test.lesion_masks.flatten(1).any(1).sum())} with a lesion mask). "
                 f"Device: {self.device}.\n", "## Classifiers\n",
                 "| model | val accuracy | val F1 | val AUROC | test accuracy | test F1 | test AUROC | test sensitivity | test specificity |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for name, c in classifiers.items():
            v, t = c["val"], c["test"]
            lines.append(f"| {name} | {v['accuracy']:.3f} | {v['f1']:.3f} | {v['auroc']:.3f} | {t['accuracy']:.3f} | "
                         f"{t['f1']:.3f} | {t['auroc']:.3f} | {t['sensitivity']:.3f} | {t['specificity']:.3f} |")
        nan_counts = scores.groupby("metric")["value"].apply(lambda s: int(s.isna().sum()))
        lines += ["", "## Leaderboard\n", leaderboard,
                  "Localisation metrics are NaN (not scored) on images without a lesion mask or with an empty one; "
                  "NaNs per metric: " + ", ".join(f"{k} {v}" for k, v in nan_counts.items()) + ".\n",
                  "![leaderboard](leaderboard.png)\n"]
        lines += [f"![overlay {name}](overlay-{name}.png)\n" for name in overlay]
        if case_metric:
            lines += [f"![cases {name}](cases-{name}.png)\n" for name in overlay]
        write_text(rep / "report.md", "\n".join(lines))
        return leaderboard
