"""Report sections on what the evidence behind the verdicts is: the known truth (what the models are
known to use), what every map explains (the target, and the misclassified images under both), and
the curve metrics' headroom. Each is a section of build.SECTIONS, like report_sections'."""
from __future__ import annotations

from . import headroom, known_truth, tables, target_section
from .report_context import ReportContext
from .report_sections import Part


def known_truth_part(ctx: ReportContext) -> Part:
    """Lesion reliance from counterfactuals, and explainers and faithfulness metrics on the known-truth cases."""
    rel = known_truth.read_reliance(ctx.run_dir)
    if rel is None or rel.empty:
        for name in ("known_truth_explainers.csv", "known_truth_metrics.csv"):
            (ctx.rep / name).unlink(missing_ok=True)
        return Part(notes=["- known truth (lesion reliance): not measured, the dataset renders no counterfactual "
                           "images without their lesions (the phantom does)."])
    expl, valid = known_truth.explainer_table(ctx.scores, rel), known_truth.metric_validity(ctx.scores, rel)
    tables.write_csv(ctx.rep / "known_truth_explainers.csv", expl)
    tables.write_csv(ctx.rep / "known_truth_metrics.csv", valid)
    return Part(known_truth.known_truth_lines(rel, expl, valid, ctx.labels),
                [ctx.rep / "known_truth_explainers.csv", ctx.rep / "known_truth_metrics.csv"])


def target_part(ctx: ReportContext) -> Part:
    """What every map explains, and the headline metrics on the misclassified images under both targets."""
    other = target_section.read_target_scores(ctx.run_dir)
    table = None if other is None or other.empty else target_section.both_targets(ctx.scores, other)
    wrong: dict[str, int] = {}
    if ctx.predictions is not None and {"label", "prob_pneumonia"} <= set(ctx.predictions.columns):
        p = ctx.predictions
        for model, g in p.groupby("model", sort=True):
            wrong[model] = int(((g["prob_pneumonia"] > 0.5).astype(int) != g["label"]).sum())
    files = []
    if table is not None:
        tables.write_csv(ctx.rep / "target_both.csv", table)
        files.append(ctx.rep / "target_both.csv")
    else:
        (ctx.rep / "target_both.csv").unlink(missing_ok=True)
    return Part(target_section.target_lines(ctx.cfg.explain.target, table, wrong), files)


def headroom_part(ctx: ReportContext) -> Part:
    """The curve metrics' outputs at the start and end of their curves, and which have no headroom
    (kept out of every verdict; headroom.py), with headroom.csv."""
    if ctx.headroom is None or ctx.headroom.empty:
        curves = [m for m in ctx.cfg.metrics.names if headroom.curve_kind(m)]
        note = (f"- headroom of the curve metrics ({', '.join(curves)}): not judged, the run folder has no "
                "`curve_ends.csv` (a run made before it); every curve metric stays in the verdicts.")
        return Part(notes=[note] if curves else [])
    tables.write_csv(ctx.rep / "headroom.csv", ctx.headroom)
    margin = getattr(ctx.cfg.report, "headroom_margin", headroom.DEFAULT_MARGIN)
    return Part(headroom.headroom_markdown(ctx.headroom, margin, ctx.scores["dataset"].nunique() > 1),
                [ctx.rep / "headroom.csv"])
