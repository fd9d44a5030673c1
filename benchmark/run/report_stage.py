"""Stage report: the overlay cases, the HTML case browser's thumbnails (browser/<model>.npz), cheXlocalize exports and the sanity verdict's per-image inputs
(sanity_images.csv) stored, then the report built from the run folder alone (exactly as `python -m benchmark report` does); skipped when nothing it reads changed."""
from __future__ import annotations

import hashlib

import pandas as pd

from cxr_xai_bench.datasets import Batch
from cxr_xai_bench.explainers import EXPLAINERS

from ..report.artifacts import write_cases
from ..report.browser_store import write_browser
from ..report.build import build_report
from ..report.chexlocalize import export_ground_truth, export_segmentations
from .context import Models, RunContext
from .sanity_images import write_sanity_image_table
from ..store.code import code_closure
from ..store.files import stage_key, write_text

REPORT_INPUTS = ("scores.csv", "curves.csv", "curve_ends.csv", "sanity.csv", "sanity_images.csv", "predictions.csv", "config.toml",
                 "randomised_scores.csv", "stability.csv", "target_scores.csv", "reliance.csv", "data_preview.npz")


def report_code() -> str:
    """Code version of the report: the builder (which imports every report section) and the writers
    of the report's stored inputs that this stage calls, with all they import."""
    return code_closure("benchmark.report.build", "benchmark.report.artifacts", "benchmark.report.chexlocalize")


def report_key(ctx: RunContext, manifest: dict) -> str:
    """Hash of everything the report reads except timings, so an unchanged run skips rebuilding it."""
    h = hashlib.sha256()
    for name in REPORT_INPUTS:
        p = ctx.run_dir / name
        h.update(name.encode() + (p.read_bytes() if p.exists() else b"-"))
    stable = {k: manifest[k] for k in ("versions", "classifiers", "data_counts", "skipped_files", "seed", "device")}
    stable["split_roles"] = manifest.get("split_roles")
    stable["context_gaps"] = manifest.get("context_gaps")
    stable["data_summary"] = manifest.get("data_summary")
    h.update(stage_key(stable, report_code()).encode())
    return h.hexdigest()


def write_report(ctx: RunContext, scores: pd.DataFrame, test: Batch, models: Models) -> str:
    """Store the overlay cases (images, masks and maps of the chosen images) and the cheXlocalize
    exports, then build the report; return the Markdown leaderboard."""
    cfg, rd = ctx.cfg, ctx.run_dir
    case_metric = next((m for m in ("relevance_mass", "pointing_game", "iou") if m in cfg.metrics.names), None)
    signed = {e: EXPLAINERS[e].signed for e in cfg.explain.names}
    ids, annotated = list(test.ids), test.has_mask.numpy()
    # cheXlocalize exports: annotated images only (an unknown mask written empty would score as a negative)
    export_ground_truth(rd / "chexlocalize" / "gt.json", test.lesion_masks.numpy(), ids, has_mask=annotated)
    for model, (key, _) in models.items():
        maps = {e: ctx.load_maps(model, key, e, len(test)) for e in cfg.explain.for_model(model)}
        for e, m in maps.items():  # thresholded segmentations for cheXlocalize's eval.py
            export_segmentations(rd / "chexlocalize" / f"{model}-{e}.json", m, ids, has_mask=annotated,
                                 sign=cfg.metrics.sign)
        write_cases(rd / "cases" / f"{model}.npz", test.images[:, 0].numpy(), test.lesion_masks.numpy(),
                    ids, maps, signed, scores, model, case_metric, cfg.report.overlay_images)
        # the case browser of the HTML report: every image this model's explainers were scored on
        write_browser(rd / "browser" / f"{model}.npz", test.images[:, 0].numpy(), test.lesion_masks.numpy(), annotated,
                      ids, maps, signed, keep=sorted(set(scores.loc[scores.model == model, "image_id"].astype(str))))
    return build_report(rd)


def report(ctx: RunContext, manifest: dict, scores: pd.DataFrame, test: Batch, models: Models) -> str:
    # the sanity verdict's per-image inputs, from the randomisation metrics' stored pieces (no model
    # pass), before the key: a rescored sanity metric rebuilds the report
    write_sanity_image_table(ctx, models, len(test))
    key = report_key(ctx, manifest)
    rep = ctx.run_dir / "report"
    done = rep / ".inputs"
    if ctx.resume and done.exists() and done.read_text() == key and (rep / "leaderboard.md").exists():
        return (rep / "leaderboard.md").read_text()
    leaderboard = write_report(ctx, scores, test, models)
    write_text(done, key)
    return leaderboard
