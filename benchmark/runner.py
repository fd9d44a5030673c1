"""The stage runner: data -> train -> explain -> score -> report, each stage stored and resumable.

Every stage output lives under the run folder, named by a hash of its inputs (config slice,
upstream keys and the source of the code that computes it), written atomically, and skipped when
present: a killed run resumes where it stopped, and a changed metric re-scores without
re-explaining. Explaining and scoring are split into shards of test images, handed as jobs to an
executor (in-process, or Ray across machines) that writes each shard's piece of the store.
"""
from __future__ import annotations

import json
import logging
import platform
import random
import subprocess
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import tomli_w

from datasets import Batch
from explainers import EXPLAINERS, build_explainer
from models import TrainConfig, build_model, classifier_report, load_checkpoint, predict_proba, save_checkpoint, train_classifier

from . import metrics as metric_registry
from . import stats
from .report import build_report
from .report_data import (predictions_frame, summarise_curves, summarise_sanity, write_cases, write_curves,
                          write_predictions, write_sanity)
from .config import Config
from .data import data_key, load_split, train_prior
from .executor import Executor, LocalExecutor
from .stages import SCORE_COLUMNS, STATE, ShardJob, aux_path, targets_for
from .store import (CorruptShardError, as_stored, atomic_path, code_version, map_shard_complete, read_map_shard,
                    remove_map_shard, stage_key, sweep_temp_files, write_json, write_text)

log = logging.getLogger(__name__)
STAGES = ("train", "explain", "score", "report")

# the modules whose source decides each stage's output (see store.code_version)
TRAIN_CODE = ("models.builders", "models.training")
SCORE_CODE_SHARED = ("benchmark.stages", "benchmark.metrics.registry")


@dataclass
class RunResult:
    run_dir: Path
    scores: pd.DataFrame
    summary: pd.DataFrame
    classifiers: dict[str, dict[str, Any]]
    leaderboard: str
    timings: dict[str, float] = field(default_factory=dict)
    work: dict[str, dict[str, int]] = field(default_factory=dict)  # stage -> computed / reused counts


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but CUDA is not available here")
    return torch.device(name)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # warn_only: ops without a deterministic kernel (some CUDA backward passes) still run
        torch.use_deterministic_algorithms(True, warn_only=True)


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _versions() -> dict[str, str]:
    import importlib.metadata as md
    out = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "captum", "lime", "zennit", "quantus", "numpy", "scipy", "pandas", "seaborn", "ray"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def validate(cfg: Config) -> None:
    """Fail on unknown names before any work is done, naming the key and the allowed values."""
    from datasets import DATASETS
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
    if ("seed_repeatability" in cfg.metrics.names) != bool(cfg.run.repeat_seeds):
        raise ValueError("metric seed_repeatability and run.repeat_seeds go together: name the metric in "
                         "metrics.names and give run.repeat_seeds (e.g. [1, 2]), or neither")
    if cfg.run.seed in cfg.run.repeat_seeds:
        raise ValueError(f"run.repeat_seeds {cfg.run.repeat_seeds} must not repeat run.seed {cfg.run.seed}")
    if cfg.run.shard_size < 1:
        raise ValueError(f"run.shard_size must be at least 1, got {cfg.run.shard_size}")
    from .executor import EXECUTORS
    from .store import MAP_DTYPES
    for key, value, allowed in (("run.maps_dtype", cfg.run.maps_dtype, MAP_DTYPES), ("run.executor", cfg.run.executor, EXECUTORS)):
        if value not in allowed:
            raise ValueError(f"{key}: {value!r} is not one of {list(allowed)}")
    for metric, names in cfg.metrics.skip.items():
        if metric not in metric_registry.METRICS:
            raise KeyError(f"metrics.skip: unknown metric {metric!r}; registered: {sorted(metric_registry.METRICS)}")
        for name in names:
            if name not in EXPLAINERS:
                raise KeyError(f"metrics.skip.{metric}: unknown explainer {name!r}; registered: {sorted(EXPLAINERS)}")
    if cfg.explain.target not in ("label", "predicted", "pneumonia"):
        raise ValueError(f"explain.target {cfg.explain.target!r} must be 'label', 'predicted' or 'pneumonia'")


def _explainer_code(name: str) -> tuple[str, ...]:
    return ("explainers.registry", EXPLAINERS[name].__module__)


def _metric_code(name: str) -> tuple[str, ...]:
    fn = metric_registry.get_metric(name).fn
    return SCORE_CODE_SHARED + ((fn.__module__,) if fn is not None else ())


class Runner:
    def __init__(self, cfg: Config, run_dir: Path, device: torch.device, executor: Executor | None = None,
                 resume: bool = True):
        self.cfg, self.run_dir, self.device = cfg, Path(run_dir), device
        self.executor = executor
        self.resume = resume
        self.timings: dict[str, float] = {}
        self.skipped: list[dict] = []
        self.work: dict[str, dict[str, int]] = {s: {"computed": 0, "reused": 0} for s in ("train", "explain", "score")}
        self.thresholds: dict[tuple[str, str], float] = {}

    # -- progress log: one line per stage event, so a user (and the kill tests) can see where a run is
    def _progress(self, msg: str) -> None:
        with open(self.run_dir / "progress.log", "a") as fh:
            fh.write(f"{time.strftime('%H:%M:%S')} {msg}\n")
            fh.flush()

    def train_or_load(self, name: str, train: Batch, val: Batch, seed: int | None = None
                      ) -> tuple[torch.nn.Module, str, dict, Path]:
        seed = self.cfg.run.seed if seed is None else seed
        params = self.cfg.models.params.get(name, {})
        tcfg = TrainConfig(**{**asdict(self.cfg.train), **self.cfg.models.train.get(name, {}), "seed": seed})
        key = stage_key("train", name, params, asdict(tcfg), data_key(self.cfg, "train"), data_key(self.cfg, "val"),
                        code_version(*TRAIN_CODE))
        path = self.run_dir / "checkpoints" / f"{name}-{key}.pt"
        seed_everything(seed, self.cfg.run.deterministic)
        model = build_model(name, **params)
        if path.exists() and self.resume:
            meta = load_checkpoint(model, path)
            log.info("%s: loaded checkpoint %s", name, path)
            self.work["train"]["reused"] += 1
        else:
            state = path.with_name(path.stem + ".state.pt")
            if not self.resume:
                state.unlink(missing_ok=True)
            self._progress(f"train {name} " + ("resume from the saved epoch state" if state.exists() else "start"))
            result = train_classifier(model, train.images, train.labels, val.images, val.labels, tcfg,
                                      device=self.device, desc=f"train {name}", state_path=state)
            meta = {"val": result.val, "best_epoch": result.best_epoch, "history": result.history,
                    "seconds": result.seconds, "train_config": asdict(tcfg), "params": params}
            with atomic_path(path) as tmp:
                save_checkpoint(model, tmp, meta)
            state.unlink(missing_ok=True)
            self._progress(f"train {name} done")
            self.work["train"]["computed"] += 1
        model.to(self.device).eval()
        return model, key, meta, path

    def _metrics_for(self, explainer: str) -> list[str]:
        skip = self.cfg.metrics.skip
        return [m for m in self.cfg.metrics.names if explainer not in skip.get(m, ()) and m != "seed_repeatability"]

    def _explain_here(self, model: torch.nn.Module, explainer: str, split: Batch, index: torch.Tensor,
                      prior) -> torch.Tensor:
        """Maps (N,H,W) on the CPU of split images `index`, explained in this process (side stages
        that are not sharded: threshold tuning, seed repeatability)."""
        from .data import explain_context
        cfg = self.cfg
        exp = build_explainer(explainer, seed=cfg.run.seed, **cfg.explain.params.get(explainer, {}))
        maps = []
        for i in range(0, len(index), cfg.explain.batch_size):
            idx = index[i:i + cfg.explain.batch_size]
            x = split.images[idx].to(self.device)
            context = {k: None if v is None else v.to(self.device) for k, v in explain_context(split, idx, prior).items()}
            t = targets_for(cfg.explain.target, split.labels[idx], model, x).to(self.device)
            maps.append(exp.explain(model, x, t, **context).cpu())
        return torch.cat(maps)

    def tune_thresholds(self, models: dict[str, tuple[str, Path]], val: Batch, prior) -> None:
        """For metrics with threshold = "tuned" (iou, dice): per model and explainer, the threshold of
        0.2-0.8 with the best mean IoU on up to metrics.tune_images annotated lesion images of the
        validation split (cheXlocalize's tuning), stored in thresholds/ and reused."""
        from .metrics.segmentation import tune_threshold
        cfg = self.cfg
        if not any(cfg.metrics.params.get(m, {}).get("threshold") == "tuned" for m in cfg.metrics.names):
            return
        lesion = (val.has_mask & val.lesion_masks.flatten(1).any(1)).nonzero().flatten()[: cfg.metrics.tune_images]
        if not len(lesion):
            raise ValueError("metrics: threshold = 'tuned' needs validation images with a lesion mask; this split has none")
        masks, has = val.lesion_masks[lesion], val.has_mask[lesion]
        for model_name, (model_key, ckpt) in models.items():
            model = STATE.models[(str(ckpt), str(self.device))]
            for explainer in cfg.explain.names:
                key = stage_key("tune", model_key, explainer, cfg.explain.params.get(explainer, {}), cfg.explain.target,
                                data_key(cfg, "val"), cfg.metrics.tune_images, code_version(*_explainer_code(explainer),
                                                                                            "benchmark.metrics.segmentation"))
                path = self.run_dir / "thresholds" / f"{model_name}-{explainer}-{key}.json"
                if path.exists() and self.resume:
                    self.thresholds[(model_name, explainer)] = json.loads(path.read_text())["threshold"]
                    continue
                maps = self._explain_here(model, explainer, val, lesion, prior)
                try:
                    value = round(tune_threshold(maps, masks, has), 6)
                except ValueError as err:  # e.g. all-zero maps: no IoU is defined at any threshold
                    log.warning("%s/%s: %s; using Otsu instead", model_name, explainer, err)
                    value = "otsu"
                write_json(path, {"threshold": value, "images": len(lesion)})
                self.thresholds[(model_name, explainer)] = value
                self._progress(f"tune {model_name}/{explainer} threshold {value}")

    def seed_repeatability(self, models: dict[str, tuple[str, Path]], train: Batch, val: Batch, test: Batch,
                           prior_path: str) -> list[pd.DataFrame]:
        """For every run.repeat_seeds seed: train each model again with that seed, explain the test
        images with every explainer, and score each image by the Spearman rank correlation of that
        map with the main seed's map (`seed_repeatability`, higher = the explanation does not hang on
        the training seed). Maps and scores are stored and reused like every other stage."""
        from .metrics.sanity import map_similarity
        cfg, frames = self.cfg, []
        if not cfg.run.repeat_seeds or "seed_repeatability" not in cfg.metrics.names:
            return frames
        prior = np.load(prior_path) if prior_path else None
        for seed in cfg.run.repeat_seeds:
            for name, (model_key, _) in models.items():
                model, other_key, _, _ = self.train_or_load(name, train, val, seed=seed)
                for explainer in cfg.explain.names:
                    if explainer in cfg.metrics.skip.get("seed_repeatability", ()):
                        continue
                    _, mkey = self._maps_dir(name, model_key, explainer)
                    key = stage_key("repeat", mkey, other_key, code_version("benchmark.metrics.sanity", "benchmark.runner"))
                    path = self.run_dir / "scores" / f"{name}-{explainer}-seed_repeatability-{key}" / f"seed-{seed}.csv"
                    if path.exists() and self.resume:
                        frames.append(pd.read_csv(path, dtype={"image_id": str}))
                        self.work["score"]["reused"] += 1
                        continue
                    maps = self._explain_here(model, explainer, test, torch.arange(len(test)), prior)
                    main = torch.from_numpy(self.load_maps(name, model_key, explainer, len(test)))
                    # compare like with like: the main maps were read back from their stored dtype
                    other = torch.from_numpy(as_stored(maps.numpy(), cfg.run.maps_dtype))
                    value = map_similarity(main, other, "spearman").float().numpy()
                    df = pd.DataFrame({"dataset": cfg.data.dataset, "split": cfg.data.splits["test"], "model": name,
                                       "explainer": explainer, "metric": "seed_repeatability", "image_id": test.ids,
                                       "value": value})
                    with atomic_path(path) as tmp:
                        df.to_csv(tmp, index=False)
                    self.work["score"]["computed"] += 1
                    self._progress(f"seed_repeatability {name}/{explainer} seed {seed} done")
                    frames.append(df)
        return frames

    def _shards(self, n: int) -> list[tuple[int, int]]:
        s = self.cfg.run.shard_size
        return [(i, min(i + s, n)) for i in range(0, n, s)]

    def _maps_dir(self, model: str, model_key: str, explainer: str) -> tuple[Path, str]:
        cfg = self.cfg
        key = stage_key("explain", model_key, explainer, cfg.explain.params.get(explainer, {}), cfg.explain.target,
                        cfg.explain.batch_size, data_key(cfg, "test"), cfg.run.seed, cfg.run.shard_size,
                        cfg.run.maps_dtype, code_version(*_explainer_code(explainer)))
        return self.run_dir / "maps" / f"{model}-{explainer}-{key}", key

    def _metric_params(self, model: str, explainer: str, metric: str) -> dict:
        params = self.cfg.metrics.params.get(metric, {})
        if params.get("threshold") == "tuned":
            params = {**params, "threshold": self.thresholds[(model, explainer)]}
        return params

    def _scores_dir(self, model: str, explainer: str, metric: str, maps_key: str) -> Path:
        key = stage_key("score", maps_key, metric, self._metric_params(model, explainer, metric),
                        code_version(*_metric_code(metric)))
        return self.run_dir / "scores" / f"{model}-{explainer}-{metric}-{key}"

    def _job(self, stage, model, ckpt, explainer, metric, start, stop, maps_path, out_path, prior_path) -> ShardJob:
        uses_gpu = self.device.type == "cuda"
        return ShardJob(stage, self.cfg.to_dict(), model, str(ckpt), explainer, metric, start, stop, str(maps_path),
                        str(out_path), prior_path, str(self.device), uses_gpu)

    def plan(self, models: dict[str, tuple[str, Path]], n_test: int, prior_path: str, stage: str) -> list[ShardJob]:
        """The shard jobs of `stage` whose output is missing (all of them without resume).

        Stored map shards are checked against their checksum first: a corrupted one is removed,
        logged, and explained again."""
        jobs = []
        for model, (model_key, ckpt) in models.items():
            for explainer in self.cfg.explain.names:
                mdir, mkey = self._maps_dir(model, model_key, explainer)
                for k, (a, b) in enumerate(self._shards(n_test)):
                    maps_path = mdir / f"shard-{k:05d}.npy"
                    if stage == "explain":
                        if self.resume and map_shard_complete(maps_path):
                            try:
                                read_map_shard(maps_path)
                                self.work["explain"]["reused"] += 1
                                continue
                            except CorruptShardError as err:
                                log.warning("%s; explaining it again", err)
                                self._progress(f"corrupt {maps_path.name} of {model}/{explainer}: recomputed")
                                remove_map_shard(maps_path)
                        jobs.append(self._job("explain", model, ckpt, explainer, "", a, b, maps_path, maps_path, prior_path))
                        continue
                    for metric in self._metrics_for(explainer):
                        out = self._scores_dir(model, explainer, metric, mkey) / f"shard-{k:05d}.csv"
                        if self.resume and out.exists():
                            self.work["score"]["reused"] += 1
                            continue
                        job = self._job("score", model, ckpt, explainer, metric, a, b, maps_path, out, prior_path)
                        jobs.append(replace(job, metric_params=self._metric_params(model, explainer, metric)))
        return jobs

    def _execute(self, jobs: list[ShardJob], stage: str) -> None:
        if not jobs:
            return
        executor = self.executor or LocalExecutor()
        if isinstance(executor, LocalExecutor):
            # the driver already holds the test split: let in-process jobs reuse it
            STATE.tests.setdefault(stage_key(data_key(self.cfg, "test")), self._test)

        def done(job: ShardJob) -> None:
            self.work[stage]["computed"] += 1
            self._progress(f"{job.label} done")
        executor.run(jobs, desc=f"{stage} ({executor.name})", on_done=done)

    def run(self, until: str = "report") -> RunResult:
        if until not in STAGES:
            raise ValueError(f"until={until!r} not in {STAGES}")
        cfg, rd = self.cfg, self.run_dir
        validate(cfg)
        rd.mkdir(parents=True, exist_ok=True)
        swept = sweep_temp_files(rd)
        if swept:
            log.info("removed %d temp files left by an interrupted run", swept)
        write_text(rd / "config.toml", tomli_w.dumps(cfg.to_dict()))
        seed_everything(cfg.run.seed, cfg.run.deterministic)
        t0 = time.perf_counter()
        train, val, test = (load_split(cfg, role, self.skipped) for role in ("train", "val", "test"))
        self._test = test
        self.timings["data"] = time.perf_counter() - t0
        prior = train_prior(train)
        prior_path = ""
        if prior is not None:
            p = rd / "context" / f"train-prior-{stage_key(data_key(cfg, 'train'))}.npy"
            if not p.exists():
                with atomic_path(p) as tmp:
                    with open(tmp, "wb") as fh:
                        np.save(fh, prior)
            prior_path = str(p)
        classifiers, models, predictions = {}, {}, []
        # a stage reused whole keeps the time it took when it was computed (manifest and report say
        # what the work cost, not how long loading it took)
        previous = json.loads((rd / "manifest.json").read_text()).get("timings_s", {}) \
            if self.resume and (rd / "manifest.json").exists() else {}
        for name in cfg.models.names:
            t0 = time.perf_counter()
            trained = self.work["train"]["computed"]
            model, model_key, meta, ckpt = self.train_or_load(name, train, val)
            probs = predict_proba(model, test.images)
            classifiers[name] = {"val": meta["val"], "test": classifier_report(test.labels.numpy(), probs[:, 1].numpy()),
                                 "best_epoch": meta["best_epoch"], "train_seconds": meta["seconds"]}
            predictions.append(predictions_frame(cfg.data.dataset, cfg.data.splits["test"], name, list(test.ids),
                                                 test.labels.numpy(), probs[:, 1].numpy()))
            models[name] = (model_key, ckpt)
            self.timings[f"train/{name}"] = time.perf_counter() - t0
            if self.work["train"]["computed"] == trained and f"train/{name}" in previous:
                self.timings[f"train/{name}"] = previous[f"train/{name}"]
            STATE.models[(str(ckpt), str(self.device))] = model
        write_predictions(rd / "predictions.csv", predictions)
        if until in ("score", "report"):
            self.tune_thresholds(models, val, None if not prior_path else np.load(prior_path))
        scores = pd.DataFrame(columns=SCORE_COLUMNS)
        summary, leaderboard = pd.DataFrame(), ""
        if until != "train":
            for stage in ("explain", "score"):
                if stage == "score" and until == "explain":
                    break
                t0 = time.perf_counter()
                self._execute(self.plan(models, len(test), prior_path, stage), stage)
                self.timings[stage] = time.perf_counter() - t0
                if self.work[stage]["computed"] == 0 and stage in previous:
                    self.timings[stage] = previous[stage]
        if until in ("score", "report"):
            scores = self.gather_scores(models, len(test))
            repeat = self.seed_repeatability(models, train, val, test, prior_path)
            if repeat:
                scores = pd.concat([scores, *repeat], ignore_index=True)[SCORE_COLUMNS]
            with atomic_path(rd / "scores.csv") as tmp:
                scores.to_csv(tmp, index=False)
            self.write_curves(models, len(test))
        manifest = {"versions": _versions(), "git_commit": _git_commit(), "seed": cfg.run.seed,
                    "device": str(self.device), "torch_threads": torch.get_num_threads(),
                    "executor": getattr(self.executor, "name", "local"), "timings_s": self.timings,
                    "classifiers": classifiers, "skipped_files": self.skipped, "work": self.work,
                    "data_counts": {"train": len(train), "val": len(val), "test": len(test),
                                    "test_pneumonia": int(test.labels.sum()),
                                    "test_with_lesion": int(test.lesion_masks.flatten(1).any(1).sum())}}
        write_json(rd / "manifest.json", manifest)
        if until == "report":
            t0 = time.perf_counter()
            key = self._report_key(manifest)
            done = rd / "report" / ".inputs"
            if self.resume and done.exists() and done.read_text() == key and (rd / "report" / "leaderboard.md").exists():
                leaderboard = (rd / "report" / "leaderboard.md").read_text()  # nothing it reads has changed
            else:
                leaderboard = self.write_report(scores, test, models)
                write_text(done, key)
            summary = stats.summarise(scores, cfg.report.bootstrap, cfg.report.confidence, cfg.run.seed)
            self.timings["report"] = time.perf_counter() - t0
            write_json(rd / "manifest.json", {**manifest, "timings_s": self.timings})
        return RunResult(rd, scores, summary, classifiers, leaderboard, self.timings, self.work)

    def _report_key(self, manifest: dict) -> str:
        """Hash of everything the report reads except timings, so an unchanged run skips rebuilding it."""
        import hashlib
        h = hashlib.sha256()
        for name in ("scores.csv", "curves.csv", "sanity.csv", "predictions.csv", "config.toml"):
            p = self.run_dir / name
            h.update(name.encode() + (p.read_bytes() if p.exists() else b"-"))
        stable = {k: manifest[k] for k in ("versions", "classifiers", "data_counts", "skipped_files", "seed", "device")}
        h.update(stage_key(stable, code_version("benchmark.report", "benchmark.tables", "benchmark.figures",
                                                "benchmark.stats", "benchmark.report_data")).encode())
        return h.hexdigest()

    def gather_scores(self, models: dict[str, tuple[str, Path]], n_test: int) -> pd.DataFrame:
        frames = []
        for model, (model_key, _) in models.items():
            for explainer in self.cfg.explain.names:
                _, mkey = self._maps_dir(model, model_key, explainer)
                for metric in self._metrics_for(explainer):
                    sdir = self._scores_dir(model, explainer, metric, mkey)
                    for k in range(len(self._shards(n_test))):
                        frames.append(pd.read_csv(sdir / f"shard-{k:05d}.csv", dtype={"image_id": str}))
        return pd.concat(frames, ignore_index=True)[SCORE_COLUMNS]

    def write_curves(self, models: dict[str, tuple[str, Path]], n_test: int) -> None:
        """curves.csv and sanity.csv from the per-image curves the metrics handed back beside their scores."""
        cfg = self.cfg
        curves, sanity = [], []
        for model, (model_key, _) in models.items():
            for explainer in cfg.explain.names:
                _, mkey = self._maps_dir(model, model_key, explainer)
                for metric in self._metrics_for(explainer):
                    sdir = self._scores_dir(model, explainer, metric, mkey)
                    parts = [aux_path(sdir / f"shard-{k:05d}.csv") for k in range(len(self._shards(n_test)))]
                    if not all(p.exists() for p in parts):
                        continue
                    loaded = []
                    for p in parts:
                        with np.load(p, allow_pickle=False) as z:
                            loaded.append({k: z[k] for k in z.files})
                    if not all("curve" in z for z in loaded):
                        continue
                    curve = np.concatenate([z["curve"] for z in loaded])
                    where = (cfg.data.dataset, cfg.data.splits["test"], model, explainer, metric)
                    if "layers" in loaded[0]:
                        sanity.append(summarise_sanity(*where, curve, [str(x) for x in loaded[0]["layers"]]))
                    elif "fraction" in loaded[0]:
                        curves.append(summarise_curves(*where, curve, loaded[0]["fraction"], cfg.report.bootstrap,
                                                       cfg.report.confidence, cfg.run.seed))
        if curves:
            write_curves(self.run_dir / "curves.csv", curves)
        if sanity:
            write_sanity(self.run_dir / "sanity.csv", sanity)

    def load_maps(self, model: str, model_key: str, explainer: str, n_test: int) -> np.ndarray:
        mdir, _ = self._maps_dir(model, model_key, explainer)
        return np.concatenate([read_map_shard(mdir / f"shard-{k:05d}.npy").maps for k in range(len(self._shards(n_test)))])

    def write_report(self, scores: pd.DataFrame, test: Batch, models: dict[str, tuple[str, Path]]) -> str:
        """Store the overlay cases (images, masks and maps of the chosen images), then build the report
        from the run folder alone, exactly as `python -m benchmark report` does."""
        cfg = self.cfg
        case_metric = next((m for m in ("relevance_mass", "pointing_game", "iou") if m in cfg.metrics.names), None)
        signed = {e: EXPLAINERS[e].signed for e in cfg.explain.names}
        from .chexlocalize import export_ground_truth, export_segmentations
        ids = list(test.ids)
        export_ground_truth(self.run_dir / "chexlocalize" / "gt.json", test.lesion_masks.numpy(), ids)
        for model, (key, _) in models.items():
            maps = {e: self.load_maps(model, key, e, len(test)) for e in cfg.explain.names}
            for e, m in maps.items():  # thresholded segmentations for cheXlocalize's eval.py
                export_segmentations(self.run_dir / "chexlocalize" / f"{model}-{e}.json", m, ids)
            write_cases(self.run_dir / "cases" / f"{model}.npz", test.images[:, 0].numpy(), test.lesion_masks.numpy(),
                        list(test.ids), maps, signed, scores, model, case_metric, cfg.report.overlay_images)
        return build_report(self.run_dir)
