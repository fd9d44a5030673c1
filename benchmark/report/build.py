"""The run report: rebuilt from the files of a run folder alone, never recomputing scores.

`build_report(run_dir)` reads scores.csv, config.toml, manifest.json and, when present, curves.csv,
sanity.csv, predictions.csv and cases/<model>.npz (formats in artifacts.py), and writes every table,
figure and report.md into run_dir/report/. A missing optional file drops its figures with a line in
report.md saying so. Same inputs give byte-identical outputs (seeded bootstrap, fixed orders, figure
metadata without dates).

report.md is the list SECTIONS (report_sections.py), each a function of one read-only ReportContext
returning a Part (files written, Markdown lines, notes); the notes of all of them form "Not in this
report", before the CLOSING sections. Adding a section is adding its function to SECTIONS.
"""
from __future__ import annotations

import json
from concurrent.futures import Future
from pathlib import Path
from typing import Callable

import pandas as pd

from . import evidence_sections as es, figures, findings, headroom, html_report, instances, known_truth, overlays, paper_figures, report_sections as rs, stats
from .artifacts import load_curve_ends, load_curves, load_predictions, read_cases
from .labels import run_labels
from .figure_pool import FigurePool
from .instances_section import across_instances, training_runs_line  # train.seeds: verdicts across training runs
from .report_context import ReportContext
from ..store.files import write_text
from ..store.runfolder import read_config
from .record import table_path

def load_scores(run_dir: Path) -> pd.DataFrame:
    path = table_path(run_dir, "scores.csv")  # a committed record keeps it as scores.csv.gz
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: is {run_dir} a run folder?")
    scores = pd.read_csv(path, dtype={"image_id": str})
    missing = {"dataset", "model", "explainer", "metric", "image_id", "value"} - set(scores.columns)
    if missing:
        raise ValueError(f"{path} lacks the columns {sorted(missing)}")
    return scores


def load_gaps(run_dir: Path) -> dict[str, list[str]]:
    """The run's `context_gaps` (explainer -> image ids it lacked context for) from its manifest;
    empty for a run without them (every NaN then reads as in stats' rules without gaps)."""
    path = Path(run_dir) / "manifest.json"
    return (json.loads(path.read_text()).get("context_gaps") or {}) if path.exists() else {}


Section = Callable[[ReportContext], "rs.Part"]
# report.md in order; one entry per section
SECTIONS: list[Section] = [rs.header, training_runs_line, es.known_truth_part, es.target_part, es.headroom_part, rs.data, rs.classifiers, rs.leaderboard, rs.ranks, rs.paired, across_instances, rs.figures_part]
CLOSING: list[Section] = [rs.files_and_config]  # after "Not in this report"


def report_context(run_dir: Path, cfg, scores: pd.DataFrame, manifest: dict | None, gaps: dict,
                   pool: FigurePool) -> ReportContext:
    rep, b, conf, seed = run_dir / "report", cfg.report.bootstrap, cfg.report.confidence, cfg.run.seed
    curves, sanity = load_curves(run_dir / "curves.csv", cfg.data.dataset, cfg.data.splits["test"])
    predictions = load_predictions(run_dir / "predictions.csv", cfg.data.dataset, cfg.data.splits["test"])
    figs: dict[str, Future | None] = {
        "curves": pool.submit(figures.curves_figure, curves, rep / "curves") if curves is not None else None,
        "sanity": pool.submit(figures.sanity_figure, sanity, rep / "sanity") if sanity is not None else None,
        "roc": pool.submit(figures.roc_figure, predictions, rep / "roc") if predictions is not None else None}
    cases = []
    for path in sorted((run_dir / "cases").glob("*.npz")) if (run_dir / "cases").is_dir() else []:
        case, model = read_cases(path), path.stem
        cases.append((model, pool.submit(overlays.overlay_figure, case, f"{model}: heat maps over the same X-rays",
                                         rep / f"overlay-{model}"),
                      pool.submit(overlays.case_figure, case,
                                  f"{model}: best, median and worst image per explainer by {str(case['case_metric'])}",
                                  rep / f"cases-{model}")))
    # curve metrics without headroom: shown, kept out of every verdict (headroom.py)
    margin = getattr(cfg.report, "headroom_margin", headroom.DEFAULT_MARGIN)
    room = headroom.headroom(load_curve_ends(table_path(run_dir, "curve_ends.csv")), predictions, cfg.explain.target, margin,
                             getattr(cfg.metrics, "params", {}))
    unjudged = headroom.lacking(room)
    summary = headroom.mark(stats.summarise(scores, b, conf, seed, gaps), unjudged)
    labels = run_labels(cfg)
    # the main figure at a page's and a column's width first, then one figure per category (report order)
    # several instances per architecture: the main figure is about the architectures (instances.py)
    main, points, means = summary, None, None
    if instances.repeated(scores["model"].astype(str)):
        means = instances.instance_means(scores, b, conf, seed, gaps)  # also the section "Across training runs"
        main, points = instances.architecture_summary(means, summary), instances.instance_points(scores, gaps)
    figs["main-figure"] = pool.submit(paper_figures.main_figure, main, rep / "main-figure", labels,
                                      paper_figures.PAGE_WIDTH, points)
    figs["main-figure-column"] = pool.submit(paper_figures.main_figure, main, rep / "main-figure-column", labels,
                                             paper_figures.COLUMN_WIDTH, points)
    for cat in paper_figures.categories(summary):
        figs[f"leaderboard-{cat}"] = pool.submit(paper_figures.category_figure, summary, cat,
                                                 rep / f"leaderboard-{cat}", labels)
    figs["runtime"] = pool.submit(figures.runtime_quality, summary, rep / "runtime")
    tests = stats.paired_tests(scores, b, conf, seed, gaps,
                               getattr(cfg.report, "equivalence_margin", stats.EQUIVALENCE_MARGIN))
    fried, ranks = stats.friedman(scores, gaps=gaps)
    figs["ranks"] = pool.submit(figures.rank_heatmap, ranks, rep / "ranks") if not ranks.empty else None
    # faithfulness metrics that cannot see evidence the model is known to use: marked beside their verdicts
    rel = known_truth.read_reliance(run_dir)
    known_false = known_truth.failing(known_truth.metric_validity(scores, rel)) if rel is not None and len(rel) else frozenset()
    summary = known_truth.mark(summary, known_false)
    comparisons, overview = findings.findings(summary, tests, unjudged=unjudged, known_false=known_false)
    return ReportContext(run_dir, rep, cfg, scores, manifest, gaps, pool, predictions, summary, tests, fried, ranks,
                         comparisons, overview, figs, cases, room, unjudged, known_false, means)


def report_parts(ctx: ReportContext) -> list[rs.Part]:
    """Every section's Part in report order, "Not in this report" (the notes of all) before CLOSING."""
    parts = [section(ctx) for section in SECTIONS]
    notes = [n for p in parts for n in p.notes]
    if notes:
        parts.append(rs.Part(["## Not in this report\n", *notes, ""]))
    return parts + [section(ctx) for section in CLOSING]


def build_report(run_dir: Path, figure_workers: int | None = None) -> str:
    """Write every table, figure and report.md of a run into run_dir/report/ from its stored files;
    return the Markdown leaderboard. `figure_workers` processes draw the figures (default: the
    config's report.figure_workers; 1: this process), the same bytes either way."""
    run_dir = Path(run_dir)
    cfg = read_config(run_dir)  # the resolved config.toml, read by the store (reporting never imports running)
    scores = load_scores(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text()) if (run_dir / "manifest.json").exists() else None
    # a run folder written before report.figure_workers existed draws in this process
    workers = getattr(cfg.report, "figure_workers", 0) if figure_workers is None else figure_workers
    with FigurePool(workers) as pool:
        ctx = report_context(run_dir, cfg, scores, manifest, load_gaps(run_dir), pool)
        parts = report_parts(ctx)
    write_text(ctx.rep / "report.md", "\n".join(line for p in parts for line in p.lines))
    # the HTML report (report/html/): leaderboards, report.md's findings and trust, every scored image
    html_report.write_html(run_dir, ctx.rep, cfg, scores, ctx.summary, ctx.predictions)
    return (ctx.rep / "leaderboard.md").read_text()  # the Markdown leaderboard, as tables.write_tables wrote it
