"""The sections of report.md, in order. Each is a function of the shared, read-only ReportContext
(build.py) that writes its own tables and figures into the report folder and returns a Part: the
files it wrote, its Markdown lines and its notes ("not in this report" lines). build.py joins them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..speed.floor import floor_markdown
from ..store.files import write_text
from . import combined, data_section, figures, findings, focal, instances_headline, latex, paper_figures, sections, tables, trust

from .artifacts import load_sanity_images
from .record import table_path
from .report_context import ReportContext


@dataclass
class Part:
    lines: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)   # every file this section wrote (tests check they exist)
    notes: list[str] = field(default_factory=list)


def _img(stem: str, alt: str) -> str:
    return f"![{alt}]({stem}.png)  \n[PDF]({stem}.pdf)\n"


def _written(rep: Path, *names: str) -> list[Path]:
    """Those of `names` that a helper wrote (some write a file only when they have rows for it)."""
    return [rep / n for n in names if (rep / n).exists()]


def _made_by(manifest: dict | None) -> str:
    """The package version that made the run, as manifest.json records it (environment.versions)."""
    version = (manifest or {}).get("versions", {}).get("cxr-xai-bench")
    return f"Made by cxr-xai-bench {version}.\n" if version else "Made by cxr-xai-bench (version not recorded in manifest.json).\n"


# the HTML report (html_report.py, written after report.md by build.py)
HTML_LINK = ("The HTML report, [html/index.html](html/index.html), opens from disk: sortable leaderboards and a case "
             "browser with every scored image, its lesion contour, each explainer's map and the per-image scores.\n")


def header(ctx: ReportContext) -> Part:
    cfg, b, conf, seed = ctx.cfg, ctx.cfg.report.bootstrap, ctx.cfg.report.confidence, ctx.cfg.run.seed
    tables.write_csv(ctx.rep / "findings.csv", ctx.comparisons)
    # the sanity verdicts from the per-image values (sanity_images.csv), methods and baselines
    images = load_sanity_images(table_path(ctx.run_dir, "sanity_images.csv"))
    overview = findings.with_sanity(ctx.overview, ctx.summary, ctx.tests, images, n_resamples=b, seed=seed)
    written = [ctx.rep / "findings.csv"]
    if images is not None:
        tables.write_csv(ctx.rep / "sanity_verdicts.csv", findings.sanity_table(images, b, 0.95, seed))
        written.append(ctx.rep / "sanity_verdicts.csv")
    else:
        (ctx.rep / "sanity_verdicts.csv").unlink(missing_ok=True)
    lines = [f"# Benchmark report: {cfg.run.name}\n", _made_by(ctx.manifest), HTML_LINK, "## What this run supports\n",
             *instances_headline.headline(ctx, overview), findings.findings_markdown(overview, ctx.scores["dataset"].nunique() > 1), findings.findings_note(),
             f"Dataset `{cfg.data.dataset}` at {cfg.data.size} px, test split `{cfg.data.splits['test']}`; models "
             f"{', '.join(f'`{m}`' for m in cfg.models.names)}; explainers {', '.join(f'`{e}`' for e in cfg.explain.names)} "
             f"(target: {cfg.explain.target}); metrics {', '.join(f'`{m}`' for m in cfg.metrics.names)}. "
             f"Statistics: {b} bootstrap resamples of images, {round(conf * 100)}% percentile intervals, seed {seed}; "
             "every explainer of a (model, metric) is scored on the same images, those all of them scored.\n",
             *sections.settings_lines(cfg)]
    return Part(lines, written)


def data(ctx: ReportContext) -> Part:
    if ctx.manifest is None:
        return Part()  # the classifiers section says the manifest is missing
    notes: list[str] = []
    lines = data_section.data_lines(ctx.run_dir, ctx.rep, ctx.manifest, ctx.pool, notes)
    return Part(lines, _written(ctx.rep, "data-preview.png", "data-preview.pdf"), notes)


def _classifier_lines(manifest: dict) -> list[str]:
    lines = ["| model | val accuracy | val F1 | val AUROC | test accuracy | test F1 | test AUROC | test sensitivity "
             "| test specificity | best epoch |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, c in sorted(manifest.get("classifiers", {}).items()):
        v, t = c.get("val") or {}, c.get("test") or {}  # val None: a run without a selection split
        f = lambda d, k: tables.fmt(float(d.get(k, float("nan"))))  # noqa: E731
        lines.append(f"| {name} | {f(v, 'accuracy')} | {f(v, 'f1')} | {f(v, 'auroc')} | {f(t, 'accuracy')} | {f(t, 'f1')} | "
                     f"{f(t, 'auroc')} | {f(t, 'sensitivity')} | {f(t, 'specificity')} | {c.get('best_epoch', '')} |")
    return lines + _given_lines(manifest)


def _given_lines(manifest: dict) -> list[str]:
    """Which models were evaluated as given (not trained here), with their files' SHA-256, and what a
    run without a training or selection split left out."""
    out = []
    if manifest.get("evaluate_only"):
        out.append("\nEvaluated, not trained: this run has no training split; every model is a given checkpoint.")
    for name, c in sorted(manifest.get("classifiers", {}).items()):
        if "loaded" in c:
            info = c["loaded"]
            out.append(f"- `{name}`: evaluated, not trained: `{info.get('source', '?')}` ({info.get('format', '?')}, "
                       f"SHA-256 `{info.get('sha256', '?')}`)")
    out += [f"- {line}" for line in manifest.get("left_out", [])]
    return ([""] if out and not out[0].startswith("\n") else []) + out


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


def classifiers(ctx: ReportContext) -> Part:
    """Classifiers, environment and the speed floor: all from manifest.json."""
    if ctx.manifest is None:
        return Part(notes=["- classifiers, data counts and environment: not reported, the run folder has no `manifest.json`."])
    return Part(["## Classifiers\n", *_classifier_lines(ctx.manifest), "", "## Environment\n",
                 *_environment_lines(ctx.manifest), "", *floor_markdown(ctx.manifest.get("floor"))])


def _gaps_note(gaps: dict) -> str:
    """Report text on the images an explainer is not applicable to (manifest `context_gaps`): it lacked
    its context, or it is built from the lesion mask (the oracle) and the image has no lesion."""
    if not gaps:
        return ""
    listed = ", ".join(f"`{e}` {len(ids)}" for e, ids in sorted(gaps.items()))
    return (f" Images an explainer is not applicable to ({listed}: built from the lesion mask, as `oracle`, on an "
            "image without a lesion, or lacking its dataset context with `explain.missing_context = \"nan\"`) are "
            "scored NaN for it and not applicable to it: they are left out of its own mean, CI and paired tests only, not counted as its "
            "failures, and they keep the image in the other explainers' common set; in a cell whose common set holds "
            "one of them, that explainer is left out of the Friedman test and ranks and is not eligible for bold.")


def _by_class(ctx: ReportContext, part: Part) -> list[str]:
    """The faithfulness breakdown by class as report lines (and per_class.csv)."""
    if ctx.predictions is None:
        part.notes.append("- faithfulness by class: not reported, the run folder has no `predictions.csv` (the labels).")
        return []
    table = sections.per_class(ctx.scores, ctx.predictions, *ctx.bootstrap, ctx.gaps)
    if table.empty:
        return []
    tables.write_csv(ctx.rep / "per_class.csv", table)
    part.files.append(ctx.rep / "per_class.csv")
    return ["## Faithfulness by class\n", "Each cell's common images (those every explainer scored) split by their "
            "label (from `predictions.csv`): mean [CI] (n). Also in `per_class.csv`.\n", sections.per_class_markdown(table, ctx.labels)]


def leaderboard(ctx: ReportContext) -> Part:
    """Leaderboard tables (md, csv, tex), NaN counts, all models side by side, by class, focal lesions."""
    rep, scores, conf = ctx.rep, ctx.scores, ctx.cfg.report.confidence
    board = tables.write_tables(ctx.summary, rep, conf, ctx.tests, ctx.fried, ctx.ranks, ctx.not_run, ctx.labels)
    write_text(rep / "leaderboard.tex", latex.leaderboard_tex(ctx.summary, ctx.tests, conf, ctx.width, ctx.labels))
    write_text(rep / "leaderboard_all.tex", latex.combined_tex(ctx.summary, ctx.tests, conf, ctx.width, ctx.labels))
    side_by_side = combined.combined_markdown(ctx.summary, ctx.tests, ctx.not_run, ctx.labels)
    write_text(rep / "leaderboard_all.md", side_by_side)
    part = Part(files=_written(rep, "leaderboard.md", "leaderboard.csv", "leaderboard_all.md", "paired_tests.csv",
                               "friedman.csv", "ranks.csv", "ranks.md", "leaderboard.tex", "leaderboard_all.tex"))
    by_class = _by_class(ctx, part)
    by_class += focal.focal_section(scores, ctx.predictions, rep, *ctx.bootstrap, ctx.width, part.notes, ctx.gaps,
                                    unjudged=ctx.unjudged, labels=ctx.labels)
    part.files += _written(rep, "focal_leaderboard.csv", "focal_leaderboard.tex")
    nan = scores.assign(isnan=scores["value"].isna()).groupby("metric", sort=True)["isnan"].agg(["sum", "size"])
    part.lines = [
        "## Leaderboard\n", *paper_figures.markdown(ctx.figures, part.files, ctx.instance_means is not None), board,
        "Not scored (NaN) per metric, all models and explainers: "
        + ", ".join(f"{m} {int(r['sum'])} of {int(r['size'])}" for m, r in nan.iterrows())
        + ". Localisation metrics are NaN on images without a lesion mask or with an empty one (`lung_mass`: "
        "only without a lung mask). An image NaN for "
        "some explainers only is their failure (\"k failed\" in the cells, `n_failed` in `leaderboard.csv`) and is "
        "left out of every explainer's mean, test and rank." + _gaps_note(ctx.gaps) + "\n",
        "### All models side by side\n", side_by_side, *by_class]
    return part


def ranks(ctx: ReportContext) -> Part:
    return Part(["## Ranks, Friedman test and critical differences\n",
                 "Average rank per metric over the images every explainer scored (1 = best in the metric's direction; "
                 "ties share the mean rank); Friedman test across explainers; two explainers whose average ranks differ "
                 "by less than the Nemenyi critical difference (CD) are not significantly different; the CD diagrams are "
                 "drawn only where the Friedman test rejects at p < 0.05.\n",
                 tables.rank_markdown(ctx.fried, ctx.ranks, ctx.labels)])


def _paired_summary(tests: pd.DataFrame) -> str:
    if tests.empty:
        return "No pairs of explainers to test.\n"
    sig = tests[tests.p_holm < 0.05]
    margin = float(tests["equivalence_margin"].iloc[0]) if "equivalence_margin" in tests.columns else float("nan")
    same = tests[tests["p_tost_holm"] < 0.05] if "p_tost_holm" in tests.columns else tests.iloc[0:0]
    parity = (f" {len(same)} of {len(tests)} pairs are equivalent within ±{margin:g} (TOST: two one-sided paired "
              f"t-tests of the mean difference against −{margin:g} and +{margin:g}, Holm within the same family, both "
              "rejected at p < 0.05; `report.equivalence_margin`, in each metric's units); only these are called "
              "equivalent. A pair that neither differs nor is equivalent is \"not shown\" either way: the data cannot "
              "tell." if margin > 0 else " No parity is claimed (`report.equivalence_margin` = 0).")
    return (f"{len(sig)} of {len(tests)} pairs of explainers differ at Holm-adjusted p < 0.05 (paired Wilcoxon "
            "signed-rank, Pratt's treatment of zero differences, on the images every explainer of the cell scored). "
            "Holm families, per (model, metric): \"methods\" (the methods among themselves: who leads, the † of the "
            "leaderboards), \"baselines:<method>\" (one method against each baseline: what it beats) and "
            "\"reference\" (baselines among themselves), so adding an explainer moves no verdict of another family."
            + parity + " `paired_tests.csv` lists every pair with n, the mean "
            "difference a − b and its paired bootstrap CI, the matched-pairs rank-biserial effect size, p, the "
            "Holm-adjusted p, its family and the equivalence test's p (p_tost, p_tost_holm).\n")


def paired(ctx: ReportContext) -> Part:
    """Paired tests and the trust section (metric agreement, discrimination, reliability checks)."""
    trust_lines = trust.trust_section(ctx.summary, ctx.scores, ctx.rep, ctx.cfg.report.bootstrap, ctx.cfg.run.seed,
                                      ctx.unjudged)
    files = _written(ctx.rep, "metric_agreement.csv", "metric_agreement_with_baselines.csv", "discrimination.csv",
                     "rank_first.csv", "metric_agreement.png", "metric_agreement.pdf", "randomised_discrimination.csv", "stability.csv")
    return Part(["## Paired tests\n", _paired_summary(ctx.tests), *trust_lines], files)


def cd_lines(fried: pd.DataFrame, ranks: pd.DataFrame, rep: Path, multi: bool, pool) -> tuple[list[str], list[Path]]:
    """A critical-difference diagram per (dataset, model) of the metrics whose Friedman test rejects,
    and a line for each metric whose test does not (or could not run); the lines and the figure files."""
    groups = list(fried.groupby(["dataset", "model"], sort=True))
    stems = [f"cd-{dataset}-{model}" if multi else f"cd-{model}" for (dataset, model), _ in groups]
    drawn = [pool.submit(figures.cd_diagram, fried, ranks, dataset, model, rep / stem)
             for ((dataset, model), _), stem in zip(groups, stems)]
    out, files = [], []
    for ((dataset, model), tests), stem, figure in zip(groups, stems, drawn):
        if figure.result() is not None:
            files += list(figure.result())
            out.append(_img(stem, f"critical difference {model}"))
        for t in tests.itertuples(index=False):
            if pd.isna(t.p):
                out.append(f"- {model}, {t.metric}: Friedman test not run (k={t.k} explainers, n={t.n} common images; "
                           "it needs 3 and 2): no critical-difference diagram.")
            elif not t.p < t.alpha:
                out.append(f"- {model}, {t.metric}: Friedman test does not reject (p={tables.fmt(float(t.p))}): "
                           "no critical-difference diagram.")
        out.append("")
    return out, files


def figures_part(ctx: ReportContext) -> Part:
    """Every figure the context started drawing (ctx.figures), awaited here, with a note for each missing input."""
    part, fig = Part(), ctx.figures
    drawn = lambda name: fig[name].result() if fig.get(name) is not None else None  # noqa: E731
    lines = ["## Figures\n"]  # the leaderboard figures are in the leaderboard section
    for name, title, alt, note in [
            ("ranks", "Average ranks", "rank heat map", None),
            ("runtime", "Runtime against localisation", "runtime against localisation",
             "- runtime against localisation: not drawn, the scores lack `seconds_per_image` or a localisation metric."),
            ("curves", "Deletion and insertion curves", "deletion and insertion curves",
             "- deletion and insertion curves: not drawn, the run folder has no `curves.csv`."),
            ("sanity", "Sanity: cascading parameter randomisation", "sanity curves",
             "- sanity curves: not drawn, the run folder has no `sanity.csv` (no sanity metric was run)."),
            ("roc", "Classifiers: ROC and confusion matrix", "ROC and confusion matrices",
             "- ROC curve and confusion matrix: not drawn, the run folder has no `predictions.csv`.")]:
        paths = drawn(name)
        if paths is not None:
            part.files += list(paths)
            lines += [f"### {title}\n", _img(name, alt)]
        elif note is not None:
            part.notes.append(note)
        if name == "ranks" and fig.get("ranks") is not None:  # the CD diagrams follow the rank heat map
            cd, files = cd_lines(ctx.fried, ctx.ranks, ctx.rep, ctx.scores["dataset"].nunique() > 1, ctx.pool)
            lines += ["### Critical-difference diagrams\n", *cd]
            part.files += files
    if not ctx.cases:
        part.notes.append("- overlays and best/median/worst cases: not drawn, the run folder has no `cases/<model>.npz`.")
    for model, overlay_png, cases_png in ctx.cases:
        for future, stem, title, alt in [(overlay_png, f"overlay-{model}", f"Overlays: {model}", f"overlay {model}"),
                                         (cases_png, f"cases-{model}", f"Best, median and worst cases: {model}",
                                          f"cases {model}")]:
            if future.result():
                part.files += list(future.result())
                lines += [f"### {title}\n", _img(stem, alt)]
    part.lines = lines
    return part


def files_and_config(ctx: ReportContext) -> Part:
    return Part([
        "## Files\n", "Tables: `leaderboard.md/.csv/.tex` (per model and metric category), `leaderboard_all.md/.tex` "
        f"(all models; LaTeX fitting `\\{ctx.width}`), `ranks.md/.csv`, `friedman.csv`, `paired_tests.csv`, `per_class.csv`, "
        "`focal_leaderboard.csv/.tex`, "
        "`findings.csv` (every method against every baseline), `headroom.csv` (the curve metrics' outputs at the "
        "start and end of their curves), `sanity_verdicts.csv` (the sanity verdict of every "
        "explainer and randomisation metric), `metric_agreement.csv`, `discrimination.csv`, "
        "`rank_first.csv`. Figures as PNG (200 dpi) and PDF. "
        "Rebuild with `python -m benchmark report RUN_DIR`.\n",
        "## Config\n", "```toml", (ctx.run_dir / "config.toml").read_text().rstrip(), "```", ""])
