"""Command line: `python -m benchmark run|train|explain|score|evaluate|report|compare|list|perf`."""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

from .run.config import PRESETS, ConfigError, load_config

STAGE_HELP = {
    "run": "run the whole benchmark (data, train, explain, score, report)",
    "train": "load the data and train (or load) the classifiers, then stop",
    "explain": "... and compute the attribution maps, then stop",
    "score": "... and score the maps and write scores.csv, then stop (no report)",
    "evaluate": "evaluate the models you give (models.checkpoints) on a test split: nothing is trained, no "
                "training or selection split is read (a run with data.splits.train and .val empty)",
}
# `evaluate`: the run without its training and selection roles; a later --set may name a selection split again
EVALUATE = ['data.splits.train=""', 'data.splits.val=""']


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML run config (see configs/); defaults apply to keys it leaves out")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="named preset applied before the config file (smoke: seconds, for tests; default: the "
                        "phantom on a CPU in minutes; paper: GPU, 224 px, full test split, LIME at 1000 samples; paper-cpu: "
                        "the paper's explainers and metrics at a CPU's budget)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, TOML value syntax, repeatable (e.g. --set train.epochs=2 "
                        "--set 'explain.names=[\"gradcam\",\"random\"]')")
    p.add_argument("--out", metavar="DIR", help="run folder (default results/<run.name>)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: the config's run.device, auto)")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="reuse every stage already stored in the run folder (default); --no-resume recomputes all")
    p.add_argument("--executor", choices=["local", "ray"], help="where shard jobs run (default: run.executor, local)")
    p.add_argument("--ray-address", metavar="ADDR", help="Ray cluster to join (default: start a local one)")
    p.add_argument("-v", "--verbose", action="store_true", help="log diagnostics and show tracebacks")
    p.add_argument("--plan", action="store_true",
                   help="print the resolved config and the planned work (model passes per stage, the floor they "
                        "set at this device's measured throughput), then stop: nothing is trained or written")
    _add_plugin_option(p)


def _add_plugin_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="MODULE_OR_FILE",
                   help="import a plug-in that registers explainers, metrics, datasets or models: a dotted module "
                        "name or a .py file, repeatable (adds to run.plugins; installed packages' entry points "
                        "in the group cxr_xai_bench.plugins load on their own)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmark",
        description="cxr-xai-bench: train chest X-ray classifiers, explain them, and score the explanations "
                    "for faithfulness, localisation against lesion masks, sanity and runtime.")
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_text in STAGE_HELP.items():
        r = sub.add_parser(name, help=help_text,
                           description=help_text[0].upper() + help_text[1:] + ". With no options: the embedded chest "
                           "phantom, VGG16-BN and ResNet50, the default explainers and metrics (`benchmark list`; the paper presets run more), on the CPU in minutes. Stages already "
                           "stored in the run folder are reused, so a killed run resumes with the same command.")
        _add_run_options(r)
    _add_plugin_option(sub.add_parser("list", help="list registered datasets, models, explainers, metrics and presets"))
    rep = sub.add_parser("report", help="rebuild a run's report from its stored tables, recomputing nothing",
                         description="Rebuild RUN_DIR/report/ (tables, figures, report.md) from the score table and "
                                     "the other stored tables of the run, without recomputing anything.")
    rep.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `run`")
    cmp = sub.add_parser("compare", help="put two runs side by side",
                         description="Compare the score tables of two runs: means and CIs per cell present in both, "
                                     "the difference, and a paired test where the image ids match.")
    cmp.add_argument("run_a", metavar="RUN_A")
    cmp.add_argument("run_b", metavar="RUN_B")
    cmp.add_argument("--out", metavar="DIR", help="write compare.md and compare.csv here")
    rec = sub.add_parser("record", help="cut a finished run down to a committable record and build its report",
                         description="Copy what `report` needs from RUN_DIR into DEST (the tables, scores as "
                                     "scores.csv.gz; no images, checkpoints or maps) and build DEST/report, "
                                     "so `python -m benchmark report DEST` rebuilds it byte for byte.")
    rec.add_argument("run_dir", metavar="RUN_DIR", help="a finished run folder written by `run`")
    rec.add_argument("dest", metavar="DEST", help="the record folder, e.g. results/reference/<name>")
    perf = sub.add_parser("perf", help="time our metrics against Quantus on the same inputs", add_help=False)
    perf.add_argument("args", nargs=argparse.REMAINDER)
    return p


def _check_run_dir(run_dir: Path) -> str | None:
    from .report.record import table_path
    for name in ("scores.csv", "config.toml"):
        if not table_path(run_dir, name).exists():
            return f"{run_dir / name} does not exist: is {run_dir} a run folder (written by `run`)?"
    return None


def _load_run_plugins(run_dir: Path) -> int:
    """The plug-ins a stored run used (its config.toml's run.plugins), so their metrics are known."""
    import tomllib
    from .run.plugins import PluginError, load_plugins
    try:
        load_plugins(tomllib.loads((run_dir / "config.toml").read_text()).get("run", {}).get("plugins", []))
    except PluginError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _report(args) -> int:
    run_dir = Path(args.run_dir)
    if (msg := _check_run_dir(run_dir)):
        print(f"error: {msg}", file=sys.stderr)
        return 2
    if (err := _load_run_plugins(run_dir)):
        return err
    from .report.build import build_report
    md = build_report(run_dir)
    print(md)
    print(f"report rebuilt in {run_dir / 'report'}")
    return 0


def _record(args) -> int:
    run_dir, dest = Path(args.run_dir), Path(args.dest)
    if (msg := _check_run_dir(run_dir)):
        print(f"error: {msg}", file=sys.stderr)
        return 2
    if (err := _load_run_plugins(run_dir)):
        return err
    from .report.build import build_report
    from .report.record import SIZE_BUDGET_MB, export_record, record_size
    export_record(run_dir, dest)
    build_report(dest)
    mb = record_size(dest) / 2**20
    print(f"record written to {dest}: {mb:.1f} MB (budget {SIZE_BUDGET_MB:.0f} MB)")
    return 0 if mb <= SIZE_BUDGET_MB else 1


def _compare(args) -> int:
    for d in (args.run_a, args.run_b):
        if (msg := _check_run_dir(Path(d))):
            print(f"error: {msg}", file=sys.stderr)
            return 2
    for d in (args.run_a, args.run_b):
        if (err := _load_run_plugins(Path(d))):
            return err
    from .report.compare import compare_runs
    print(compare_runs(Path(args.run_a), Path(args.run_b), Path(args.out) if args.out else None))
    return 0


def _list(plugins: list[str]) -> int:
    from .run.plugins import PluginError, load_plugins, loaded_modules
    try:
        load_plugins(plugins)
    except PluginError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from cxr_xai_bench.datasets import DATASETS
    from cxr_xai_bench.explainers import EXPLAINERS
    from cxr_xai_bench.models import MODELS
    from .metrics import METRICS
    print("datasets:   " + ", ".join(sorted(DATASETS)))
    print("models:     " + ", ".join(sorted(MODELS)))
    print("explainers: " + ", ".join(f"{n} ({'signed' if c.signed else 'unsigned'}"
                                     f"{', from the lesion mask' if getattr(c, 'from_lesion_mask', False) else ''})"
                                     for n, c in sorted(EXPLAINERS.items())))
    print("metrics:")
    for n, m in sorted(METRICS.items()):
        print(f"  {n:<24} {m.category:<13} {'higher' if m.higher_is_better else 'lower'} is better  {m.doc}")
    from .metrics import CATEGORIES, ordered_categories
    used = {m.category for m in METRICS.values()}
    print("categories: " + ", ".join(f"{c} ({sum(m.category == c for m in METRICS.values())})"
                                     for c in ordered_categories(used | set(CATEGORIES)))
          + "; a plug-in metric may declare any lowercase name (Quantus's randomisation is sanity)")
    print("presets:    " + ", ".join(sorted(PRESETS)))
    print("plug-ins:   " + (", ".join(loaded_modules()) or "none"))
    return 0


def summary_screen(result, elapsed: float) -> str:
    """One screen: classifier scores, the mean of every (model, explainer, metric), work done."""
    lines = ["", "Classifiers:"]
    for name, c in result.classifiers.items():
        v = c["val"]  # None: a run without a selection split
        val = (f"val acc {v['accuracy']:.3f}  F1 {v['f1']:.3f}  AUROC {v['auroc']:.3f}   " if v else "no selection split   ")
        given = "   (evaluated, not trained)" if "loaded" in c else ""
        lines.append(f"  {name:<10} {val}test acc {c['test']['accuracy']:.3f}{given}")
    if len(result.summary):
        from .metrics import get_metric
        from .report.roles import is_baseline
        lines += ["", "Best three methods per metric (means over images; baselines are reference rows, never ranked; "
                      "CIs, tests and figures in the report):"]
        for metric, by_metric in result.summary.groupby("metric", sort=False):
            spec = get_metric(metric)
            parts = []
            for model, cell in by_metric.groupby("model", sort=False):
                cell = cell[~cell["explainer"].map(is_baseline).astype(bool)]
                top = cell.dropna(subset=["mean"]).sort_values("mean", ascending=not spec.higher_is_better).head(3)
                parts.append(f"{model}: " + ", ".join(f"{r.explainer} {r.mean:.3g}" for r in top.itertuples()))
            lines.append(f"  {metric:<24}{'↑' if spec.higher_is_better else '↓'} " + " | ".join(parts))
    work = ", ".join(f"{s} {w['computed']} computed / {w['reused']} reused" for s, w in result.work.items())
    if result.floor.get("stages"):
        from .speed.floor import Throughput, format_floor
        speed = {m: Throughput(**t) for m, t in result.floor["throughput"].items()}
        lines += ["", "Time against the floor (model passes at this device's measured speed):",
                  format_floor(result.floor["stages"], speed)]
    lines += ["", f"Work: {work}.", f"Finished in {elapsed:.0f} s; run folder {result.run_dir}"]
    if (result.run_dir / "report" / "report.md").exists():
        lines.append(f"Report: {result.run_dir / 'report' / 'report.md'}")
    return "\n".join(lines)


def _run(args) -> int:
    from .run.executor import make_executor
    from .run.runner import Runner, resolve_device
    from .run.run_lock import RunFolderBusy
    from .store.files import StoreError
    try:
        overrides = [*EVALUATE, *args.overrides] if args.command == "evaluate" else args.overrides
        cfg = load_config(args.config, overrides, args.preset)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    cfg.run.plugins = [*cfg.run.plugins, *(p for p in args.plugins if p not in cfg.run.plugins)]
    if args.device:
        cfg.run.device = args.device
    if args.executor:
        cfg.run.executor = args.executor
    if args.ray_address:
        cfg.run.ray_address = args.ray_address
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    run_dir = Path(args.out) if args.out else Path("results") / cfg.run.name
    start = time.perf_counter()
    executor = None
    try:
        from .run.plugins import load_plugins
        load_plugins(cfg.run.plugins)  # before the executor: its same-code fingerprint covers them
        device = resolve_device(cfg.run.device)
        options = {"num_workers": cfg.run.ray_workers or None} if cfg.run.executor == "ray" else {}
        executor = make_executor(cfg.run.executor, cfg.run.ray_address, **options)
        if args.plan:
            from .run.runner import plan_text
            print(plan_text(cfg, device))
            return 0
        until = "report" if args.command in ("run", "evaluate") else args.command
        result = Runner(cfg, run_dir, device, executor=executor, resume=args.resume).run(until=until)
    except RunFolderBusy as err:  # another run holds the folder: this one touched nothing, one line says who
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ConfigError as err:  # refused before any stage ran: nothing was kept, no traceback to offer
        if args.verbose:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (KeyError, ValueError, FileNotFoundError, RuntimeError, StoreError) as err:
        if args.verbose:
            raise
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {msg}\n(stages finished so far are kept in {run_dir}; rerun with -v for the traceback)", file=sys.stderr)
        return 2
    finally:
        if executor is not None:
            executor.close()
    print(summary_screen(result, time.perf_counter() - start))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["perf"]:  # its own options, parsed by benchmark.speed.metric_speed
        from .speed.metric_speed import main as perf_main
        return perf_main(argv[1:])
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("benchmark.run.data_summary").setLevel(logging.INFO)  # what a run loaded: for the user
    if args.command == "list":
        return _list(args.plugins)
    if args.command == "report":
        return _report(args)
    if args.command == "record":
        return _record(args)
    if args.command == "compare":
        return _compare(args)
    return _run(args)
