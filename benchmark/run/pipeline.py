"""The run's pipeline: its stages in order, each declaring the config sections it reads and the
artifacts it consumes and produces (stages.Stage). The stage bodies live in their own modules
(data, train, tune, shards, gather, randomised_maps, perturbed_maps, report_stage); the functions
here only bind them to the declared inputs and outputs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..report import stats
from ..speed.floor import throughputs
from ..store.files import atomic_path, stage_key, write_json
from . import report_stage
from .adopt import adopt_run_seed_instance
from .context import RunContext
from .context_gaps import context_gaps
from .data import data_key, has_role, load_split, read_prior_file, train_prior
from .data_summary import data_summary, show as show_data, write_preview
from .gather import gather_scores, write_curves_and_sanity
from .jobs import SCORE_COLUMNS
from .manifest import floor, manifest as run_manifest
from .perturbed_maps import stability_scores
from .randomised_maps import randomised_scores
from .repeat import seed_repeatability
from .reliance import lesion_reliance
from .shards import run_sharded
from .target_maps import other_target_scores
from .stages import SECTIONS, Stage
from .train import train_models
from .tune import tune_thresholds
from .validate import check_context

ROLES = ("train", "val", "test")


def load_data(ctx: RunContext) -> dict[str, Any]:
    """The three split roles, what was loaded (logged, and in the manifest), the report's preview."""
    cfg = ctx.cfg
    train, val, test = (load_split(cfg, role, ctx.skipped) if has_role(cfg, role) else None for role in ROLES)
    ctx.test = test
    present = {r: b for r, b in (("train", train), ("val", val), ("test", test)) if b is not None}
    loaded = data_summary(cfg.data.dataset, cfg.data.splits, present, ctx.skipped)
    show_data(loaded)
    write_preview(ctx.run_dir, test)  # the report's preview figure reads it from the run folder
    return {"train": train, "val": val, "test": test, "data_summary": loaded}


def measure_throughput(ctx: RunContext) -> dict[str, Any]:
    # stored under context/: a resumed run does not measure again
    return {"speed": throughputs(ctx.cfg, ctx.device, ctx.run_dir / "context", ctx.resume)}


def store_prior(ctx: RunContext, train) -> str:
    """The training lesion prior (for mask_prior) as a stored .npy path, "" when the data has none;
    data.prior_file replaces it (checked: size x size, finite, in [0,1]); kept when stored and
    resuming, written anew without resume (--no-resume)."""
    given = ctx.cfg.data.prior_file
    if given:
        prior = read_prior_file(given, ctx.cfg.data.size)
        p = ctx.run_dir / "context" / f"given-prior-{stage_key(prior.tobytes().hex())}.npy"
    else:
        prior = train_prior(train) if train is not None else None
        if prior is None:
            return ""
        p = ctx.run_dir / "context" / f"train-prior-{stage_key(data_key(ctx.cfg, 'train'))}.npy"
    if not (ctx.resume and p.exists()):
        with atomic_path(p) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, prior)
    return str(p)


def dataset_context(ctx: RunContext, train, test) -> dict[str, Any]:
    """The training prior, then, before any training, that every explainer gets what it needs."""
    prior_path = store_prior(ctx, train)
    check_context(ctx.cfg, test, prior_path)
    return {"prior_path": prior_path, "context_gaps": context_gaps(ctx.cfg, test, prior_path)}


def train_stage(ctx: RunContext, train, val, test) -> dict[str, Any]:
    adopt_run_seed_instance(ctx)
    models, classifiers = train_models(ctx, train, val, test)
    return {"models": models, "classifiers": classifiers}


def tune_stage(ctx: RunContext, models, val, prior_path) -> dict[str, Any]:
    if val is not None:  # without a selection split, resolve_roles turned tuned thresholds into Otsu
        tune_thresholds(ctx, models, val, np.load(prior_path) if prior_path else None)
    return {"thresholds": dict(ctx.thresholds)}


def explain_stage(ctx: RunContext, models, test, prior_path) -> dict[str, Any]:
    run_sharded(ctx, models, len(test), prior_path, "explain")
    return {"maps": {(m, e): ctx.maps_dir(m, key, e)[1] for m, (key, _) in models.items()
                     for e in ctx.cfg.explain.for_model(m)}}


def score_stage(ctx: RunContext, models, train, val, test, prior_path, maps, thresholds) -> dict[str, Any]:
    """Score every stored map shard, then the long score table (with seed repeatability), curves and sanity."""
    run_sharded(ctx, models, len(test), prior_path, "score")
    scores = gather_scores(ctx, models, len(test))
    repeat = seed_repeatability(ctx, models, train, val, test, prior_path)
    if repeat:
        scores = pd.concat([scores, *repeat], ignore_index=True)[SCORE_COLUMNS]
    with atomic_path(ctx.run_dir / "scores.csv") as tmp:
        scores.to_csv(tmp, index=False)
    write_curves_and_sanity(ctx, models, len(test))
    return {"scores": scores}


def randomised_stage(ctx: RunContext, models, test, prior_path, scores) -> dict[str, Any]:
    randomised_scores(ctx, models, test, prior_path)
    return {"randomised_table": _table(ctx.run_dir / "randomised_scores.csv")}


def perturbed_stage(ctx: RunContext, models, test, prior_path, scores) -> dict[str, Any]:
    stability_scores(ctx, models, test, prior_path)
    return {"stability_table": _table(ctx.run_dir / "stability.csv")}


def other_target_stage(ctx: RunContext, models, test, prior_path, scores) -> dict[str, Any]:
    other_target_scores(ctx, models, test, prior_path)
    return {"target_table": _table(ctx.run_dir / "target_scores.csv")}


def reliance_stage(ctx: RunContext, models, test) -> dict[str, Any]:
    lesion_reliance(ctx, models, test)
    return {"reliance_table": _table(ctx.run_dir / "reliance.csv")}


def _table(path: Path) -> str:
    return str(path) if path.exists() else ""


def manifest_stage(ctx: RunContext, classifiers, train, val, test, context_gaps, data_summary, speed) -> dict[str, Any]:
    """manifest.json as the report reads it (the runner writes it again at the end, with every
    stage's time and work)."""
    out = run_manifest(ctx, classifiers, train, val, test)
    out.update(context_gaps=context_gaps, precision=ctx.precision, data_summary=data_summary,
               floor=floor(ctx, speed, train, val, test))
    write_json(ctx.run_dir / "manifest.json", out)
    return {"manifest": out}


def report_stage_fn(ctx: RunContext, manifest, scores, test, models, context_gaps) -> dict[str, Any]:
    """The report, rebuilt from the run folder when anything it reads changed; the summary table."""
    cfg = ctx.cfg
    leaderboard = report_stage.report(ctx, manifest, scores, test, models)
    summary = stats.summarise(scores, cfg.report.bootstrap, cfg.report.confidence, cfg.run.seed, context_gaps)
    return {"leaderboard": leaderboard, "summary": summary}


ALL = SECTIONS
PIPELINE: list[Stage] = [
    Stage("data", "train", ("data", "run"), (), ("train", "val", "test", "data_summary"), load_data,
          doc="load the split roles through the preprocessing cache"),
    Stage("throughput", "train", ("data", "models", "run"), (), ("speed",), measure_throughput,
          doc="each model's forward/backward throughput on this device (the floor's unit)"),
    Stage("context", "train", ("data", "explain", "run"), ("train", "test"), ("prior_path", "context_gaps"),
          dataset_context, doc="training lesion prior; every explainer's dataset context checked before training"),
    Stage("train", "train", ("data", "run", "train", "models"), ("train", "val", "test"), ("models", "classifiers"),
          train_stage, work="train", doc="train or load every model; classifier scores and predictions.csv"),
    Stage("tune", "score", ("data", "run", "models", "explain", "metrics"), ("models", "val", "prior_path"),
          ("thresholds",), tune_stage, doc="IoU/Dice thresholds tuned on the selection split"),
    Stage("explain", "explain", ("data", "run", "models", "explain", "metrics"), ("models", "test", "prior_path"),
          ("maps",), explain_stage, work="explain", doc="sharded maps of every (model, explainer)"),
    Stage("score", "score", ("data", "run", "models", "explain", "metrics", "train", "report"),
          ("models", "train", "val", "test", "prior_path", "maps", "thresholds"), ("scores",), score_stage,
          work="score", doc="sharded scores, the long score table, curves and sanity"),
    Stage("reliability/randomised", "score", ("data", "run", "models", "explain", "metrics"),
          ("models", "test", "prior_path", "scores"), ("randomised_table",), randomised_stage, work="reliability",
          doc="metric reliability: maps of the randomised model scored on the trained one"),
    Stage("reliability/perturbed", "score", ("data", "run", "models", "explain", "metrics"),
          ("models", "test", "prior_path", "scores"), ("stability_table",), perturbed_stage, work="reliability",
          doc="metric reliability: maps of slightly noisy images"),
    Stage("reliance", "score", ("data", "run", "models"), ("models", "test"), ("reliance_table",), reliance_stage,
          doc="known truth: each model's output on pneumonia test images with the lesion rendered away"),
    Stage("other_target", "score", ("data", "run", "models", "explain", "metrics"),
          ("models", "test", "prior_path", "scores"), ("target_table",), other_target_stage, work="other_target",
          doc="misclassified images explained for the other target (label / prediction)"),
    Stage("manifest", "train", ALL, ("classifiers", "train", "val", "test", "context_gaps", "data_summary", "speed"),
          ("manifest",), manifest_stage, doc="manifest.json: versions, split roles, classifiers, work, floor"),
    Stage("report", "report", ("data", "run", "report", "explain", "metrics"), ("manifest", "scores", "test", "models", "context_gaps"),
          ("leaderboard", "summary"), report_stage_fn, doc="the report built from the run folder"),
]
