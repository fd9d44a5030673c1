"""The table "What this run supports" opens with when architectures have several trained instances
(train.seeds): what holds in every instance, what in some (counted, not claimed). Apart from
instances_section.py so that report_sections.header can use it without an import circle."""
from __future__ import annotations

import pandas as pd

from . import instances as inst
from .findings import KNOWN_MARK
from .labels import label
from .report_context import ReportContext


HEADLINE_NOTE = ("Several trained instances per architecture (`train.seeds`): a verdict here is about the "
                 "architecture, so it holds in every instance (each instance's paired tests, as in the table under "
                 "\"Each instance on its own\"); a metric on which the method beats random in some instances only is "
                 "counted (k of n instances), not claimed; an architecture with one instance (a given checkpoint) is in that table only. Means and "
                 "intervals over instances and images, and the rankings' agreement: \"Across training runs\".\n")


def headline(ctx: ReportContext, overview: pd.DataFrame) -> list[str]:
    """The table "What this run supports" opens with when architectures have several instances
    (headline_lines); [] when every architecture has one instance."""
    if not inst.repeated(ctx.scores["model"].astype(str)):
        return []
    return headline_lines(inst.verdicts(ctx.comparisons), inst.agreement(ctx.summary, ctx.tests), overview,
                          ctx.known_false, ctx.labels, ctx.scores["dataset"].nunique() > 1)


def headline_lines(verdicts: pd.DataFrame, agree: pd.DataFrame, overview: pd.DataFrame,
                   known_false=frozenset(), labels=None, multi: bool = False) -> list[str]:
    """Per (architecture, method) of instances.verdicts: the metrics it beats random and every prior on in
    every instance, random only in every instance, random in some instances only (counted, not a
    verdict), and how many of its instances pass sanity (findings.overview's per-instance outcomes);
    then the leads that hold in every instance (instances.agreement)."""
    groups = inst.repeated(overview["model"].astype(str))
    out = ["| architecture | explainer | beats random and every prior in every instance | beats random in every "
           "instance, not every prior | beats random in some instances only: not a verdict | sanity |",
           "|---|---|---|---|---|---|"]
    marked = False
    for (dataset, arch, e), g in verdicts.groupby(["dataset", "architecture", "explainer"], sort=True):
        members = groups.get(arch, [])
        every, floor_only, some = [], [], []
        for metric, kind, k, n, _ in inst.standing(g):
            failing = sum((dataset, x, metric) in known_false for x in members)
            name = label(metric, labels) + (KNOWN_MARK if failing else "")
            marked |= bool(failing)
            if kind == "every":
                every.append(name)
            elif kind == "random":
                floor_only.append(name)
            elif kind == "some":
                some.append(f"{name} ({k} of {n})")
        rows = overview[(overview["dataset"] == dataset) & overview["model"].isin(members) & (overview["explainer"] == e)]
        outcomes = [str(s).split(" ", 1)[0] for s in rows["sanity"]]
        sanity = ("not run" if all(o == "not" for o in outcomes)
                  else f"passes in {outcomes.count('passes')} of {len(members)}")
        arch_cell = f"{label(arch, labels)} ({dataset})" if multi else label(arch, labels)
        out.append(f"| {arch_cell} | {label(e, labels)} | {', '.join(every) or '–'} | {', '.join(floor_only) or '–'} | "
                   f"{', '.join(some) or '–'} | {sanity} |")
    leads = agree[agree["leads_every_instance"].astype(bool)]
    out += ["", "Leads (significantly better than the runner-up) in every instance: "
            + (", ".join(f"{label(r.leader, labels)} on {label(r.metric, labels)} ({label(r.architecture, labels)})"
                         for r in leads.itertuples(index=False)) or "none") + "."]
    if marked:
        out += ["", f"{KNOWN_MARK} the metric fails its known-truth check on at least one instance of that architecture "
                "(see \"Known truth\")."]
    return out + ["", HEADLINE_NOTE, "### Each instance on its own\n",
                  "One row per trained instance: each is about those weights only, not a verdict about the architecture.\n"]
