"""Two runs side by side: per (dataset, model, explainer, metric) cell present in both, the mean and
bootstrap CI of each run (each run's leaderboard numbers: on that run's common image set of the
cell, see stats), the difference B - A, and a paired test on the images both runs scored (Wilcoxon
signed-rank with Pratt's zeros, Holm-corrected across the compared cells; paired bootstrap CI of the
mean difference). Cells whose runs share no image id get no test."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .build import load_gaps, load_scores
from .stats import CELL, bootstrap_ci, holm, rank_biserial, summarise, wilcoxon
from ..store.files import write_text
from ..store.runfolder import read_config
from .tables import arrow, fmt, write_csv

COLUMNS = CELL + ["n_a", "mean_a", "ci_low_a", "ci_high_a", "n_b", "mean_b", "ci_low_b", "ci_high_b", "delta",
                  "n_paired", "delta_ci_low", "delta_ci_high", "rank_biserial", "p", "p_holm"]


def compare_scores(a: pd.DataFrame, b: pd.DataFrame, n_resamples: int = 1000, confidence: float = 0.95,
                   seed: int = 0, gaps_a=None, gaps_b=None) -> pd.DataFrame:
    """The comparison table of two long score tables (one row per cell present in both); gaps_a and
    gaps_b are each run's `context_gaps` (see stats)."""
    sa = summarise(a, n_resamples, confidence, seed, gaps_a)
    sb = summarise(b, n_resamples, confidence, seed, gaps_b)
    both = sa.merge(sb, on=CELL, suffixes=("_a", "_b"))
    rows = []
    for r in both.itertuples(index=False):
        key = dict(zip(CELL, r[:4]))
        # one value per image (several rows of an image, e.g. one per seed, averaged as in stats)
        sel = [s[(s[CELL] == pd.Series(key)).all(axis=1)].groupby("image_id")["value"].mean() for s in (a, b)]
        paired = pd.concat(sel, axis=1, keys=["a", "b"], join="inner").dropna()
        diff = (paired["b"] - paired["a"]).to_numpy(dtype=float)
        _, p = wilcoxon(paired["b"].to_numpy(dtype=float), paired["a"].to_numpy(dtype=float))
        low, high = bootstrap_ci(diff, n_resamples, confidence, seed)
        rows.append({**key, "n_a": r.n_a, "mean_a": r.mean_a, "ci_low_a": r.ci_low_a, "ci_high_a": r.ci_high_a,
                     "n_b": r.n_b, "mean_b": r.mean_b, "ci_low_b": r.ci_low_b, "ci_high_b": r.ci_high_b,
                     "delta": r.mean_b - r.mean_a, "n_paired": len(diff), "delta_ci_low": low, "delta_ci_high": high,
                     "rank_biserial": rank_biserial(paired["b"], paired["a"]), "p": p})
    out = pd.DataFrame(rows, columns=COLUMNS)
    ok = out["p"].notna().to_numpy()
    out["p_holm"] = np.nan
    if ok.any():
        out.loc[ok, "p_holm"] = holm(out.loc[ok, "p"].to_numpy())
    return out


def compare_markdown(table: pd.DataFrame, name_a: str, name_b: str) -> str:
    lines = [f"# {name_b} against {name_a}\n",
             f"Cells: mean [bootstrap CI] (n). Δ = {name_b} − {name_a}, with the paired bootstrap CI over the images both "
             "runs scored and the Holm-adjusted paired Wilcoxon p (blank: no common image).\n",
             f"| dataset | model | explainer | metric | {name_a} | {name_b} | Δ [CI] | n paired | p (Holm) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples(index=False):
        ci = "" if np.isnan(r.delta_ci_low) else f" [{fmt(r.delta_ci_low)}, {fmt(r.delta_ci_high)}]"
        p = "" if np.isnan(r.p_holm) else fmt(float(r.p_holm))
        lines.append(f"| {r.dataset} | {r.model} | {r.explainer} | {r.metric} {arrow(r.metric)} | "
                     f"{fmt(r.mean_a)} [{fmt(r.ci_low_a)}, {fmt(r.ci_high_a)}] ({r.n_a}) | "
                     f"{fmt(r.mean_b)} [{fmt(r.ci_low_b)}, {fmt(r.ci_high_b)}] ({r.n_b}) | {fmt(r.delta)}{ci} | "
                     f"{r.n_paired} | {p} |")
    return "\n".join(lines) + "\n"


def compare_runs(run_a: Path, run_b: Path, out: Path | None = None) -> str:
    """Markdown comparison of two run folders (statistics settings from run A's config); with `out`,
    also writes out/compare.md and out/compare.csv."""
    run_a, run_b = Path(run_a), Path(run_b)
    cfg = read_config(run_a) if (run_a / "config.toml").exists() else None
    b, conf, seed = (cfg.report.bootstrap, cfg.report.confidence, cfg.run.seed) if cfg else (1000, 0.95, 0)
    table = compare_scores(load_scores(run_a), load_scores(run_b), b, conf, seed, load_gaps(run_a), load_gaps(run_b))
    if table.empty:
        raise ValueError(f"{run_a} and {run_b} share no (dataset, model, explainer, metric) cell")
    md = compare_markdown(table, run_a.name, run_b.name if run_b.name != run_a.name else str(run_b))
    if out is not None:
        write_text(Path(out) / "compare.md", md)
        write_csv(Path(out) / "compare.csv", table)
    return md
