"""Command line: `python -m benchmark run|list|report`."""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

from .config import PRESETS, ConfigError, load_config


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmark",
        description="cxr-xai-bench: train chest X-ray classifiers, explain them, and score the explanations "
                    "for faithfulness, localisation against lesion masks and runtime.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the whole benchmark (data, train, explain, score, report)",
                       description="Run the whole benchmark. With no options: the embedded chest phantom, "
                                   "both models, all explainers and metrics, on the CPU in minutes. Stages already "
                                   "stored in the run folder are reused, so a killed run resumes.")
    r.add_argument("--config", metavar="FILE", help="TOML run config (see configs/); defaults apply to keys it leaves out")
    r.add_argument("--preset", choices=sorted(PRESETS), help="named preset applied before the config file (smoke: seconds, for tests)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, TOML value syntax, repeatable (e.g. --set train.epochs=2 "
                        "--set 'explain.names=[\"gradcam\",\"random\"]')")
    r.add_argument("--out", metavar="DIR", help="run folder (default results/<run.name>)")
    r.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: the config's run.device, auto)")
    r.add_argument("-v", "--verbose", action="store_true", help="log diagnostics")
    sub.add_parser("list", help="list registered datasets, models, explainers, metrics and presets")
    rep = sub.add_parser("report", help="rebuild a run's tables and leaderboard figure from its score table alone",
                         description="Rebuild report/leaderboard.{md,csv,tex,png} and report/paired_tests.csv from "
                                     "RUN_DIR/scores.csv and RUN_DIR/config.toml, without recomputing anything. "
                                     "(Overlay grids need the images; they are drawn by `run`.)")
    rep.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `run`")
    return p


def _report(args) -> int:
    import pandas as pd

    from . import report, stats
    run_dir = Path(args.run_dir)
    for name in ("scores.csv", "config.toml"):
        if not (run_dir / name).exists():
            print(f"error: {run_dir / name} does not exist: is {run_dir} a run folder?", file=sys.stderr)
            return 2
    cfg = load_config(run_dir / "config.toml")
    scores = pd.read_csv(run_dir / "scores.csv", dtype={"image_id": str})
    summary = stats.summarise(scores, cfg.report.bootstrap, cfg.report.confidence, cfg.run.seed)
    md = report.write_tables(summary, run_dir / "report", cfg.report.confidence, stats.paired_tests(scores))
    report.leaderboard_figure(summary, run_dir / "report" / "leaderboard.png")
    print(md)
    print(f"tables and figure rebuilt in {run_dir / 'report'}")
    return 0


def _list() -> int:
    from datasets import DATASETS
    from explainers import EXPLAINERS
    from models import MODELS
    from .metrics import METRICS
    print("datasets:   " + ", ".join(sorted(DATASETS)))
    print("models:     " + ", ".join(sorted(MODELS)))
    print("explainers: " + ", ".join(f"{n} ({'signed' if c.signed else 'unsigned'})" for n, c in sorted(EXPLAINERS.items())))
    print("metrics:")
    for n, m in sorted(METRICS.items()):
        print(f"  {n:<18} {m.category:<13} {'higher' if m.higher_is_better else 'lower'} is better  {m.doc}")
    print("presets:    " + ", ".join(sorted(PRESETS)))
    return 0


def _run(args) -> int:
    from .runner import Runner, resolve_device
    try:
        cfg = load_config(args.config, args.overrides, args.preset)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.device:
        cfg.run.device = args.device
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    run_dir = Path(args.out) if args.out else Path("results") / cfg.run.name
    start = time.perf_counter()
    try:
        result = Runner(cfg, run_dir, resolve_device(cfg.run.device)).run()
    except (KeyError, ValueError, FileNotFoundError, RuntimeError) as err:
        if args.verbose:
            raise
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {msg}\n(stages finished so far are kept in {run_dir}; rerun with -v for the traceback)", file=sys.stderr)
        return 2
    print("\nClassifiers (validation / test accuracy):")
    for name, c in result.classifiers.items():
        print(f"  {name:<10} val acc {c['val']['accuracy']:.3f}  F1 {c['val']['f1']:.3f}  AUROC {c['val']['auroc']:.3f}"
              f"   test acc {c['test']['accuracy']:.3f}")
    print("\n" + result.leaderboard)
    print(f"finished in {time.perf_counter() - start:.0f} s; report: {result.run_dir / 'report' / 'report.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command == "list":
        return _list()
    if args.command == "report":
        return _report(args)
    return _run(args)
