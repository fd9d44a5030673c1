"""The run report: rebuilt from the files of a run folder alone, never recomputing scores.

`build_report(run_dir)` reads scores.csv, config.toml, manifest.json and, when present, curves.csv,
sanity.csv, predictions.csv and cases/<model>.npz (formats in artifacts.py), and writes every table,
figure and report.md into run_dir/report/. A missing optional file drops its figures with a line in
report.md saying so. Same inputs give byte-identical outputs (seeded bootstrap, fixed orders, figure
metadata without dates).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..speed.floor import floor_markdown
from . import data_section, figures, findings, focal, latex, overlays, sections, stats, tables, trust
from .artifacts import load_curves, load_predictions, read_cases
from .figure_pool import FigurePool
from ..store.files import write_text
from ..store.runfolder import read_config


def load_scores(run_dir: Path) -> pd.DataFrame:
    path = Path(run_dir) / "scores.csv"
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


def _gaps_note(gaps: dict) -> str:
    """Report text on the images an explainer lacked its context for (manifest `context_gaps`)."""
    if not gaps:
        return ""
    listed = ", ".join(f"`{e}` {len(ids)}" for e, ids in sorted(gaps.items()))
    return (f" Images an explainer lacked its dataset context for (`explain.missing_context = \"nan\"`: {listed}) are "
            "not applicable to it: they are left out of its own mean, CI and paired tests only, not counted as its "
            "failures, and they keep the image in the other explainers' common set; in a cell whose common set holds "
            "one of them, that explainer is left out of the Friedman test and ranks and is not eligible for bold.")


def _img(stem: str, alt: str) -> str:
    return f"![{alt}]({stem}.png)  \n[PDF]({stem}.pdf)\n"


def _classifier_lines(manifest: dict) -> list[str]:
    lines = ["| model | val accuracy | val F1 | val AUROC | test accuracy | test F1 | test AUROC | test sensitivity "
             "| test specificity | best epoch |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, c in sorted(manifest.get("classifiers", {}).items()):
        v, t = c.get("val", {}), c.get("test", {})
        f = lambda d, k: tables.fmt(float(d.get(k, float("nan"))))  # noqa: E731
        lines.append(f"| {name} | {f(v, 'accuracy')} | {f(v, 'f1')} | {f(v, 'auroc')} | {f(t, 'accuracy')} | {f(t, 'f1')} | "
                     f"{f(t, 'auroc')} | {f(t, 'sensitivity')} | {f(t, 'specificity')} | {c.get('best_epoch', '')} |")
    return lines


def _environment_lines(manifest: dict) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in sorted(manifest.get("versions", {}).items()))
    # the report's own time is written after the report, so a rebuild would differ in it: left out
    timings = {k: v for k, v in manifest.get("timings_s", {}).items() if not k.startswith("report")}
    total = sum(timings.values())
    return [f"- device: {manifest.get('device', '?')}, torch threads: {manifest.get('torch_threads', '?')}, "
            f"seed: {manifest.get('seed', '?')}, git commit: `{manifest.get('git_commit', '?')}`",
            f"- versions: {versions}",
            f"- stage time (without the report): {total:.1f} s in all; " + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(timings.items())),
            f"- skipped files: {len(manifest.get('skipped_files', []))}"]


def _paired_summary(tests: pd.DataFrame) -> str:
    if tests.empty:
        return "No pairs of explainers to test.\n"
    sig = tests[tests.p_holm < 0.05]
    return (f"{len(sig)} of {len(tests)} pairs of explainers differ at Holm-adjusted p < 0.05 (paired Wilcoxon "
            "signed-rank, Pratt's treatment of zero differences, on the images every explainer of the cell scored). "
            "`paired_tests.csv` lists every pair with n, the mean "
            "difference a − b and its paired bootstrap CI, the matched-pairs rank-biserial effect size, p and the "
            "Holm-adjusted p.\n")


def _cd_section(fried: pd.DataFrame, ranks: pd.DataFrame, rep: Path, multi: bool, pool: FigurePool) -> list[str]:
    """A critical-difference diagram per (dataset, model) of the metrics whose Friedman test rejects,
    and a line for each metric whose test does not (or could not run)."""
    groups = list(fried.groupby(["dataset", "model"], sort=True))
    stems = [f"cd-{dataset}-{model}" if multi else f"cd-{model}" for (dataset, model), _ in groups]
    drawn = [pool.submit(figures.cd_diagram, fried, ranks, dataset, model, rep / stem)
             for ((dataset, model), _), stem in zip(groups, stems)]
    out = []
    for ((dataset, model), tests), stem, figure in zip(groups, stems, drawn):
        if figure.result() is not None:
            out.append(_img(stem, f"critical difference {model}"))
        for t in tests.itertuples(index=False):
            if pd.isna(t.p):
                out.append(f"- {model}, {t.metric}: Friedman test not run (k={t.k} explainers, n={t.n} common images; "
                           "it needs 3 and 2): no critical-difference diagram.")
            elif not t.p < t.alpha:
                out.append(f"- {model}, {t.metric}: Friedman test does not reject (p={tables.fmt(float(t.p))}): "
                           "no critical-difference diagram.")
        out.append("")
    return out


def _by_class(scores: pd.DataFrame, predictions: pd.DataFrame | None, rep: Path, b: int, conf: float, seed: int,
              notes: list[str], gaps=None) -> list[str]:
    """The faithfulness breakdown by class as report lines (and per_class.csv)."""
    if predictions is None:
        notes.append("- faithfulness by class: not reported, the run folder has no `predictions.csv` (the labels).")
        return []
    table = sections.per_class(scores, predictions, b, conf, seed, gaps)
    if table.empty:
        return []
    tables.write_csv(rep / "per_class.csv", table)
    return ["## Faithfulness by class\n", "Each cell's common images (those every explainer scored) split by their "
            "label (from `predictions.csv`): mean [CI] (n). Also in `per_class.csv`.\n", sections.per_class_markdown(table)]


def build_report(run_dir: Path, figure_workers: int | None = None) -> str:
    """Write every table, figure and report.md of a run into run_dir/report/ from its stored files;
    return the Markdown leaderboard. `figure_workers` processes draw the figures (default: the
    config's report.figure_workers; 1: this process), the same bytes either way."""
    run_dir = Path(run_dir)
    rep = run_dir / "report"
    cfg = read_config(run_dir)  # the resolved config.toml, read by the store (reporting never imports running)
    scores = load_scores(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text()) if (run_dir / "manifest.json").exists() else None
    gaps = load_gaps(run_dir)
    # a run folder written before report.figure_workers existed draws in this process
    workers = getattr(cfg.report, "figure_workers", 0) if figure_workers is None else figure_workers
    with FigurePool(workers) as pool:
        leaderboard, lines = _report_lines(run_dir, rep, cfg, scores, manifest, gaps, pool)
    write_text(rep / "report.md", "\n".join(lines))
    return leaderboard


def _report_lines(run_dir: Path, rep: Path, cfg, scores: pd.DataFrame, manifest: dict | None, gaps: dict,
                  pool: FigurePool) -> tuple[str, list[str]]:
    """The Markdown leaderboard and the lines of report.md, writing the tables on the way. Figures go
    to `pool`, those that need no statistics first, so its workers draw while this process computes."""
    b, conf, seed = cfg.report.bootstrap, cfg.report.confidence, cfg.run.seed
    notes: list[str] = []
    curves, sanity = load_curves(run_dir / "curves.csv", cfg.data.dataset, cfg.data.splits["test"])
    predictions = load_predictions(run_dir / "predictions.csv", cfg.data.dataset, cfg.data.splits["test"])
    case_files = sorted((run_dir / "cases").glob("*.npz")) if (run_dir / "cases").is_dir() else []
    curves_png = pool.submit(figures.curves_figure, curves, rep / "curves") if curves is not None else None
    sanity_png = pool.submit(figures.sanity_figure, sanity, rep / "sanity") if sanity is not None else None
    roc_png = pool.submit(figures.roc_figure, predictions, rep / "roc") if predictions is not None else None
    case_pngs = []
    for path in case_files:
        cases, model = read_cases(path), path.stem
        metric = str(cases["case_metric"])
        case_pngs.append((model, pool.submit(overlays.overlay_figure, cases, f"{model}: heat maps over the same X-rays",
                                             rep / f"overlay-{model}"),
                          pool.submit(overlays.case_figure, cases,
                                      f"{model}: best, median and worst image per explainer by {metric}",
                                      rep / f"cases-{model}")))

    summary = stats.summarise(scores, b, conf, seed, gaps)
    leaderboard_png = pool.submit(figures.leaderboard_figure, summary, rep / "leaderboard")
    runtime_png = pool.submit(figures.runtime_quality, summary, rep / "runtime")
    tests = stats.paired_tests(scores, b, conf, seed, gaps)
    fried, ranks = stats.friedman(scores, gaps=gaps)
    ranks_png = pool.submit(figures.rank_heatmap, ranks, rep / "ranks") if not ranks.empty else None
    cd_lines = _cd_section(fried, ranks, rep, scores["dataset"].nunique() > 1, pool) if not ranks.empty else []
    leaderboard = tables.write_tables(summary, rep, conf, tests, fried, ranks)
    width = getattr(cfg.report, "latex_width", "textwidth")
    write_text(rep / "leaderboard.tex", latex.leaderboard_tex(summary, tests, conf, width))
    write_text(rep / "leaderboard_all.tex", latex.combined_tex(summary, tests, conf, width))
    comparisons, overview = findings.findings(summary, tests)
    tables.write_csv(rep / "findings.csv", comparisons)
    by_class = _by_class(scores, predictions, rep, b, conf, seed, notes, gaps)
    by_class += focal.focal_section(scores, predictions, rep, b, conf, seed, width, notes, gaps)
    trust_lines = trust.trust_section(summary, scores, rep, b, seed)

    figs: list[str] = ["## Figures\n", "### Leaderboard\n", _img(leaderboard_png.result()[0].stem, "leaderboard")]
    if ranks_png is not None:
        ranks_png.result()
        figs += ["### Average ranks\n", _img("ranks", "rank heat map")]
        figs += ["### Critical-difference diagrams\n", *cd_lines]
    if runtime_png.result() is not None:
        figs += ["### Runtime against localisation\n", _img("runtime", "runtime against localisation")]
    else:
        notes.append("- runtime against localisation: not drawn, the scores lack `seconds_per_image` or a localisation metric.")
    if curves_png is not None:
        curves_png.result()
        figs += ["### Deletion and insertion curves\n", _img("curves", "deletion and insertion curves")]
    else:
        notes.append("- deletion and insertion curves: not drawn, the run folder has no `curves.csv`.")
    if sanity_png is not None:
        sanity_png.result()
        figs += ["### Sanity: cascading parameter randomisation\n", _img("sanity", "sanity curves")]
    else:
        notes.append("- sanity curves: not drawn, the run folder has no `sanity.csv` (no sanity metric was run).")
    if roc_png is not None:
        roc_png.result()
        figs += ["### Classifiers: ROC and confusion matrix\n", _img("roc", "ROC and confusion matrices")]
    else:
        notes.append("- ROC curve and confusion matrix: not drawn, the run folder has no `predictions.csv`.")
    if not case_files:
        notes.append("- overlays and best/median/worst cases: not drawn, the run folder has no `cases/<model>.npz`.")
    for model, overlay_png, cases_png in case_pngs:
        if overlay_png.result():
            figs += [f"### Overlays: {model}\n", _img(f"overlay-{model}", f"overlay {model}")]
        if cases_png.result():
            figs += [f"### Best, median and worst cases: {model}\n", _img(f"cases-{model}", f"cases {model}")]

    nan = scores.assign(isnan=scores["value"].isna()).groupby("metric", sort=True)["isnan"].agg(["sum", "size"])
    lines = [f"# Benchmark report: {cfg.run.name}\n", "## What this run supports\n",
             findings.findings_markdown(overview, scores["dataset"].nunique() > 1), findings.findings_note(),
             f"Dataset `{cfg.data.dataset}` at {cfg.data.size} px, test split `{cfg.data.splits['test']}`; models "
             f"{', '.join(f'`{m}`' for m in cfg.models.names)}; explainers {', '.join(f'`{e}`' for e in cfg.explain.names)} "
             f"(target: {cfg.explain.target}); metrics {', '.join(f'`{m}`' for m in cfg.metrics.names)}. "
             f"Statistics: {b} bootstrap resamples of images, {round(conf * 100)}% percentile intervals, seed {seed}; "
             "every explainer of a (model, metric) is scored on the same images, those all of them scored.\n",
             *sections.settings_lines(cfg)]
    if manifest is None:
        notes.append("- classifiers, data counts and environment: not reported, the run folder has no `manifest.json`.")
    else:
        lines += [*data_section.data_lines(run_dir, rep, manifest, pool, notes),
                  "## Classifiers\n", *_classifier_lines(manifest), "", "## Environment\n", *_environment_lines(manifest), "",
                  *floor_markdown(manifest.get("floor"))]
    lines += ["## Leaderboard\n", leaderboard,
              "Not scored (NaN) per metric, all models and explainers: "
              + ", ".join(f"{m} {int(r['sum'])} of {int(r['size'])}" for m, r in nan.iterrows())
              + ". Localisation metrics are NaN on images without a lesion mask or with an empty one (`lung_mass`: "
              "only without a lung mask). An image NaN for "
              "some explainers only is their failure (\"k failed\" in the cells, `n_failed` in `leaderboard.csv`) and is "
              "left out of every explainer's mean, test and rank." + _gaps_note(gaps) + "\n",
              "### All models side by side\n", tables.combined_markdown(summary, tests), *by_class,
              "## Ranks, Friedman test and critical differences\n",
              "Average rank per metric over the images every explainer scored (1 = best in the metric's direction; "
              "ties share the mean rank); Friedman test across explainers; two explainers whose average ranks differ "
              "by less than the Nemenyi critical difference (CD) are not significantly different; the CD diagrams are "
              "drawn only where the Friedman test rejects at p < 0.05.\n",
              tables.rank_markdown(fried, ranks),
              "## Paired tests\n", _paired_summary(tests), *trust_lines, *figs]
    if notes:
        lines += ["## Not in this report\n", *notes, ""]
    lines += ["## Files\n", "Tables: `leaderboard.md/.csv/.tex` (per model and metric category), `leaderboard_all.md/.tex` "
              f"(all models; LaTeX fitting `\\{width}`), `ranks.md/.csv`, `friedman.csv`, `paired_tests.csv`, `per_class.csv`, "
              "`focal_leaderboard.csv/.tex`, "
              "`findings.csv` (every method against every baseline), `metric_agreement.csv`, `discrimination.csv`, "
              "`rank_first.csv`. Figures as PNG (200 dpi) and PDF. "
              "Rebuild with `python -m benchmark report RUN_DIR`.\n",
              "## Config\n", "```toml", (run_dir / "config.toml").read_text().rstrip(), "```", ""]
    return leaderboard, lines
