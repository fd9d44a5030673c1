"""The report section "Across training runs" (report/instances.py computes it): written only when some
architecture has two or more trained instances (train.seeds); and one line under "What was measured"
saying what the verdicts rest on: one trained instance of each architecture, or several."""
from __future__ import annotations

import pandas as pd

from . import instances as inst
from .report_context import ReportContext
from .report_sections import Part
from ..metrics import get_metric
from . import board_format as bf, latex, roles
from ..store.files import write_text
from .labels import label, number
from .tables import fmt, ordered_metrics, write_csv

def training_runs_line(ctx: ReportContext) -> Part:
    """One bullet under "What was measured": how many trained instances each verdict rests on."""
    groups = inst.by_architecture(ctx.scores["model"].astype(str))
    many = {a: len(ms) for a, ms in groups.items() if len(ms) >= 2}
    if not many:
        seed = (ctx.manifest or {}).get("seed", ctx.cfg.run.seed)
        return Part([f"- training runs: one trained instance of each architecture (training seed {seed}): every "
                     "verdict and interval of this report is about that instance, over images only; `train.seeds = "
                     "[0, 1, 2]` trains each architecture once per seed and reports which verdicts hold across them.", ""])
    counts = ", ".join(f"`{a}` {k}" for a, k in many.items())
    return Part([f"- training runs: several trained instances per architecture ({counts}; `<model>@s<seed>`): each "
                 "instance's verdicts are its own; those that hold in every instance open 'What this run supports', "
                 "with means and ranking agreement over instances under 'Across training runs'.", ""])


def _classifier_lines(spread: list[dict]) -> list[str]:
    if not spread:
        return []
    out = ["Classifiers across instances (mean ± SD over the instances; each instance's row is in \"Classifiers\"):\n",
           "| architecture | instances | val accuracy | test accuracy | test AUROC |", "|---|---|---|---|---|"]
    for r in spread:
        cell = lambda k: f"{number('accuracy', r[k][0])} ± {number('accuracy', r[k][1])}"  # noqa: E731
        out.append(f"| {label(r['architecture'])} | {r['instances']} | {cell('val_accuracy')} | {cell('test_accuracy')} | "
                   f"{cell('test_auroc')} |")
    return out + [""]


def _means_tables(means: pd.DataFrame, labels=None) -> list[str]:
    """Explainers x metrics, `mean [low, high] (n)` over instances and images: one table per metric
    category, split so that none is wider than the leaderboards' limit; methods, then baselines."""
    cells = {(r.explainer, r.metric): r for r in means.itertuples(index=False)}
    explainers = roles.ordered(means["explainer"].unique())
    methods = [e for e in explainers if not roles.is_baseline(e)]
    first_baseline = next((e for e in explainers if e not in methods), None) if methods else None
    out = []
    by_category: dict[str, list[str]] = {}
    for m in ordered_metrics(means["metric"]):
        by_category.setdefault(get_metric(m).category, []).append(m)
    for category, metrics in by_category.items():
        for chunk in bf.column_chunks(metrics):
            units = {m: bf.unit_of(m, [cells.get((e, m)) for e in explainers]) for m in chunk}
            rows: list[list[str] | None] = []
            for e in explainers:
                if e == first_baseline:
                    rows.append(None)  # the baselines' block opens at the first baseline
                row = []
                for m in chunk:
                    r = cells.get((e, m))
                    row.append("–" if r is None else f"{bf.value(m, r.mean, units[m])}{bf.ci(r, m, units[m])} (n={r.n})")
                rows.append([label(e, labels)] + row)
            out += [f"{label(category, labels)}:\n", *bf.md_table(
                ["explainer"] + [f"{bf.head(m, labels, units[m])} {bf.arrow(m)}" for m in chunk], rows), ""]
    return out


def _agreement_table(agree: pd.DataFrame, labels=None) -> list[str]:
    out = ["| metric | mean Kendall tau (pairs) | leading method (share of instances) | leads significantly in every instance |",
           "|---|---|---|---|"]
    for r in agree.set_index("metric").loc[ordered_metrics(agree["metric"])].reset_index().itertuples(index=False):
        lead = f"{label(r.leader, labels)} ({r.leader_share:.0%})" if r.leader else "– (not ranked)"
        if r.pairs:
            tau = f"{fmt(r.kendall_tau)} ({r.pairs})"
        elif r.judged_in < 2:  # a curve metric without headroom ranks nobody
            tau = f"– (not judged in {r.instances - r.judged_in} of {r.instances} instances: no headroom)"
        else:
            tau = "– (fewer than two instances rank two methods)"
        out.append(f"| {label(r.metric, labels)} | {tau} | {lead} | {'yes' if r.leads_every_instance else 'no'} |")
    return out + [""]


def verdict_lines(verdicts: pd.DataFrame, agree: pd.DataFrame, labels=None) -> list[str]:
    """Per method: the metrics it beats random (and every prior) on in every instance, and, apart and
    not as a verdict, those it does in some instances only; then the leads that hold in every instance."""
    out = []
    for e, g in verdicts.groupby("explainer", sort=True):
        held, partial = [], []
        for metric, kind, k, n, baselines in inst.standing(g):
            name = label(metric, labels)
            if kind in ("every", "random"):
                held.append(name + (" (and every prior)" if kind == "every" and baselines > 1 else ""))
            elif kind == "some":
                partial.append(f"{name} ({k} of {n})")
        out.append(f"- {label(e, labels)} beats random in every instance on: {', '.join(held) or '–'}"
                   + (f"; in some instances only, not a verdict: {', '.join(partial)}" if partial else ""))
    leads = agree[agree["leads_every_instance"].astype(bool)]
    out.append("- leads (significantly better than the runner-up) in every instance: "
               + (", ".join(f"{label(r.leader, labels)} on {label(r.metric, labels)}"
                            for r in leads.itertuples(index=False)) or "none"))
    return out + [""]


METHOD_NOTE = ("Each architecture's instances were trained with the seeds of `train.seeds` (initialisation and data "
               "order; same data and budget) and explained and scored as models of their own. Mean: over instances "
               "and the images every instance scored; interval: {conf:.0%} percentile interval of a two-level "
               "bootstrap ({b} resamples, seed {seed}) that resamples the instances, then the images, one image draw "
               "shared by the drawn instances (they score the same images), so it covers both training runs and "
               "images. Agreement: Kendall tau between two instances' method rankings (baselines not ranked), "
               "averaged over every two instances; the leading method is first in the most instances. A verdict "
               "(\"beats\", \"leads\") is printed here only where it holds in every instance (the per-instance paired "
               "tests of \"What this run supports\"); where it holds in some, it is counted, not claimed. Files: "
               "`across_instances.csv` (as LaTeX tables: `across_instances.tex`), `ranking_agreement.csv`, "
               "`verdicts_across_instances.csv`.\n")


def across_instances(ctx: ReportContext) -> Part:
    """The section "Across training runs", or the one-instance note (module docstring)."""
    if not inst.repeated(ctx.scores["model"].astype(str)):
        return Part()  # one instance per architecture: training_runs_line says so
    b, conf, seed = ctx.bootstrap
    means = ctx.instance_means if ctx.instance_means is not None else inst.instance_means(ctx.scores, b, conf, seed, ctx.gaps)
    agree = inst.agreement(ctx.summary, ctx.tests)
    verdicts = inst.verdicts(ctx.comparisons)
    files = {"across_instances.csv": means, "ranking_agreement.csv": agree, "verdicts_across_instances.csv": verdicts}
    for name, df in files.items():
        write_csv(ctx.rep / name, df)
    # for a paper: the means over instances as LaTeX tables, one per (architecture, category)
    write_text(ctx.rep / "across_instances.tex",
               latex.leaderboard_tex(inst.architecture_summary(means, ctx.summary), None, conf, ctx.width, ctx.labels,
                                     across=True))
    lines = ["## Across training runs\n", METHOD_NOTE.format(conf=conf, b=b, seed=seed),
             *_classifier_lines(inst.classifier_spread((ctx.manifest or {}).get("classifiers", {})))]
    multi = ctx.scores["dataset"].nunique() > 1
    for (dataset, arch), m in means.groupby(["dataset", "architecture"], sort=True):
        title = f"{label(arch, ctx.labels)} ({dataset})" if multi else label(arch, ctx.labels)
        a = agree[(agree.dataset == dataset) & (agree.architecture == arch)]
        v = verdicts[(verdicts.dataset == dataset) & (verdicts.architecture == arch)]
        lines += [f"### {title}: {int(m['instances'].iloc[0])} instances\n", *_means_tables(m, ctx.labels),
                  "Ranking agreement across instances:\n", *_agreement_table(a, ctx.labels),
                  "Verdicts that hold in every instance:\n", *verdict_lines(v, a, ctx.labels)]
    return Part(lines, [ctx.rep / n for n in [*files, "across_instances.tex"]])
