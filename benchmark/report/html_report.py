"""The HTML report: one self-contained folder, report/html/, that opens from disk (file://, no server,
no network): index.html (its CSS and JS inline, from the package's web/ templates), data.js (every
number and the case list, loaded by <script src> so no fetch() is needed) and thumbs/ (PNG).

It shows sortable leaderboards (display names, methods first and baselines marked, the best method per
column in bold), the findings, trust and known-truth sections of report.md, and a case browser with
one card per scored image: the X-ray, its lesion contour, each explainer's overlay, the per-image
scores, and filters (class, lesion, misclassified, best / worst N by a metric).

Built by build_report from the run folder alone: the scores, predictions.csv, report.md and the
browser store (browser_store.py, RUN/browser/<model>.npz). The folder is built aside and moved into
place; the same run folder gives the same bytes (sorted keys, fixed number formats, PNG without dates).
"""
from __future__ import annotations

import json
import math
import shutil
from html import escape
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import to_hex

from . import html_markdown, html_thumbs, roles
from .browser_store import read_browser
from .figure_style import explainer_styles
from .labels import decimals, label, number, run_labels, time_unit, TIME_METRICS
from ..store.files import write_text

SECTIONS = ("What this run supports", "Known truth", "Across training runs", "How far to trust")
CATEGORIES = ("faithfulness", "localisation", "sanity", "runtime")


def _num(v) -> float | None:
    """A number for data.js: 4 significant digits, None for NaN (JSON has no NaN)."""
    if v is None:
        return None
    v = float(v)
    return float(f"{v:.4g}") if math.isfinite(v) else None


def _metric_info(names, labels) -> list[dict]:
    from ..metrics import get_metric
    out = []
    for m in names:
        try:
            spec = get_metric(m)
            cat, higher = spec.category, bool(spec.higher_is_better)
        except (KeyError, ValueError):
            cat, higher = "other", True
        out.append({"name": m, "label": label(m, labels), "category": cat, "higher": higher, "dec": decimals(m),
                    "time": m in TIME_METRICS})
    rank = lambda c: (CATEGORIES.index(c) if c in CATEGORIES else len(CATEGORIES), c)  # noqa: E731
    return sorted(out, key=lambda d: (rank(d["category"]), d["name"]))


def leaderboards(summary: pd.DataFrame, metrics: list[dict], labels) -> list[dict]:
    """One table per (dataset, model, category): rows explainers (methods, then baselines), cells
    mean [CI] at the metric's decimals, `best` on the best judged method of each column."""
    out = []
    info = {d["name"]: d for d in metrics}
    for (dataset, model), cell in summary.groupby(["dataset", "model"], sort=True):
        names = roles.ordered(cell["explainer"].unique())
        for cat in dict.fromkeys(d["category"] for d in metrics):
            cols = [d["name"] for d in metrics if d["category"] == cat and d["name"] in set(cell["metric"])]
            if not cols:
                continue
            table = {"dataset": dataset, "model": model, "label": label(model, labels), "category": cat,
                     "category_label": label(cat, labels), "columns": [], "rows": []}
            by = cell.set_index(["explainer", "metric"])
            best = {}
            for m in cols:
                col = cell[cell.metric == m]
                unit = time_unit(col["mean"]) if info[m]["time"] else None
                judged = bool(col["judged"].all()) if "judged" in col.columns else True
                table["columns"].append({"name": m, "label": label(m, labels) + (f" ({unit[0]})" if unit else ""),
                                         "higher": info[m]["higher"], "judged": judged, "unit": unit})
                ok = col[col.explainer.map(lambda e: not roles.is_baseline(e)) & col["mean"].notna()]
                if judged and len(ok):
                    pick = ok["mean"].idxmax() if info[m]["higher"] else ok["mean"].idxmin()
                    best[m] = col.loc[pick, "explainer"]
            for e in names:
                cells = []
                for c in table["columns"]:
                    m, unit = c["name"], c["unit"]
                    if (e, m) not in by.index:
                        cells.append({"v": None, "t": "–"})
                        continue
                    r = by.loc[(e, m)]
                    text = f"{number(m, r['mean'], unit)} [{number(m, r['ci_low'], unit)}, {number(m, r['ci_high'], unit)}]"
                    cells.append({"v": _num(r["mean"]), "t": text, "n": int(r["n"]), "best": best.get(m) == e})
                if any(c["v"] is not None for c in cells):  # a baseline the metrics skip gets no empty row
                    table["rows"].append({"explainer": e, "label": label(e, labels), "baseline": roles.is_baseline(e),
                                          "cells": cells})
            for c in table["columns"]:
                c.pop("unit")
            out.append(table)
    return out


def _cases(run_dir: Path, scores: pd.DataFrame, predictions: pd.DataFrame | None) -> tuple[list[str], dict]:
    """(case ids in test order, {model: browser store}); the ids are every image scores.csv scores."""
    stores = {}
    folder = run_dir / "browser"
    for path in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
        stores[path.stem] = read_browser(path)
    scored = set(scores["image_id"].astype(str))
    order = [str(i) for s in stores.values() for i in s["ids"] if str(i) in scored]
    order = list(dict.fromkeys(order)) + sorted(scored - set(order))
    return order, stores


def case_data(run_dir: Path, html: Path, scores: pd.DataFrame, predictions: pd.DataFrame | None, labels) -> dict:
    order, stores = _cases(run_dir, scores, predictions)
    thumbs = html_thumbs.write_thumbs(html, stores, order)
    lesion: dict[str, bool | None] = {}
    for s in stores.values():
        for j, i in enumerate(str(x) for x in s["ids"]):
            lesion.setdefault(i, bool(s["masks"][j].any()) if s["has_mask"][j] else None)
    label_of, share, prob = {}, {}, {}
    if predictions is not None:
        for r in predictions.itertuples(index=False):
            label_of[str(r.image_id)] = int(r.label)
            share.setdefault(str(r.image_id), _num(r.lesion_share))
            prob.setdefault(r.model, {})[str(r.image_id)] = _num(r.prob_pneumonia)
    cases = []
    for i in order:
        s = share.get(i)
        cases.append({"id": i, "label": label_of.get(i), "xray": thumbs["xray"].get(i), "mask": thumbs["mask"].get(i),
                      "lesion": lesion[i] if i in lesion else (None if s is None else s > 0), "share": s})
    values = scores.assign(image_id=scores["image_id"].astype(str)).groupby(
        ["model", "explainer", "metric", "image_id"], sort=True)["value"].first()
    per_model = {}
    for model in sorted(scores["model"].unique()):
        explainers = roles.ordered(scores.loc[scores.model == model, "explainer"].unique())
        maps = thumbs["maps"].get(model, {})
        entry = {"label": label(model, labels), "explainers": explainers,
                 "prob": [prob.get(model, {}).get(i) for i in order],
                 "maps": {e: [maps.get(e, {}).get(i) for i in order] for e in explainers}, "scores": {}}
        for (e, m), v in values.loc[model].groupby(level=["explainer", "metric"], sort=True):
            col = v.droplevel(["explainer", "metric"]).reindex(order)
            entry["scores"].setdefault(e, {})[m] = [_num(x) for x in col.to_numpy(dtype=float)]
        per_model[model] = entry
    signed = {str(e): bool(sg) for s in stores.values() for e, sg in zip(s["explainers"], s["signed"])}
    return {"cases": cases, "models": per_model, "signed": signed}


def _template(name: str) -> str:
    return (resources.files("benchmark.report") / "web" / name).read_text(encoding="utf-8")


def write_html(run_dir: Path, rep: Path, cfg, scores: pd.DataFrame, summary: pd.DataFrame,
               predictions: pd.DataFrame | None) -> Path:
    """Write report/html/ (module docstring); return the path of its index.html."""
    labels = run_labels(cfg)
    html = rep / "html"
    new = rep / ".html-new"
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    metrics = _metric_info(sorted(scores["metric"].unique()), labels)
    names = roles.ordered(scores["explainer"].unique())
    styles = explainer_styles(names)
    report_md = (rep / "report.md").read_text() if (rep / "report.md").exists() else ""
    data = {"title": str(cfg.run.name), "dataset": str(cfg.data.dataset), "size": int(cfg.data.size),
            "metrics": metrics, "leaderboards": leaderboards(summary, metrics, labels),
            "explainers": [{"name": e, "label": label(e, labels), "baseline": roles.is_baseline(e),
                            "color": to_hex(styles[e]["color"])} for e in names],
            "sections": [{"title": t, "html": html_markdown.to_html(body, shift=1)}
                         for t, body in html_markdown.sections(report_md, SECTIONS)],
            "legend": {"unsigned": html_thumbs.gradient(False), "signed": html_thumbs.gradient(True)},
            **case_data(run_dir, new, scores, predictions, labels)}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    write_text(new / "data.js", "window.CXR_DATA = " + text + ";\n")
    page = (_template("index.html").replace("{{TITLE}}", escape(f"Benchmark report: {data['title']}"))
            .replace("/*{{STYLE}}*/", _template("style.css")).replace("/*{{SCRIPT}}*/", _template("app.js")))
    write_text(new / "index.html", page)
    shutil.rmtree(html, ignore_errors=True)
    new.rename(html)
    return html / "index.html"


def folder_bytes(path: Path) -> int:
    """The size of a folder's files in bytes (the HTML report's size budget)."""
    return int(np.sum([p.stat().st_size for p in Path(path).rglob("*") if p.is_file()] or [0]))
