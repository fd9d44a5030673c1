"""How far a run is from what its hardware allows: the model passes each stage needs, the measured
throughput of each model on the run's device at the run's image size, and per stage the floor
(passes x seconds per pass), the actual seconds and their ratio.

Passes are counted in images through a model: `forward` images of forward passes, `backward`
images of backward passes. Explainers declare theirs per image (`Explainer.passes`), metrics theirs
per scored image (`register_metric(passes=...)`); the tests count the real passes of a tiny run
with hooks on the models and check them against this plan. Anything that does not declare its
passes (a plug-in) makes its stage's count a lower bound, flagged in the table.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from cxr_xai_bench.models import build_model, place_model

from ..explainer_factory import explainer_from_config
from ..metrics import get_metric
from ..store.code import code_closure
from ..store.files import stage_key, write_json
from ..store.instances import architecture, instances


@dataclass
class Passes:
    forward: int = 0
    backward: int = 0
    unknown: list[str] = field(default_factory=list)  # pieces that did not declare their passes

    def add(self, per_image: tuple[int, int] | None, images: int, what: str) -> None:
        if per_image is None:
            self.unknown.append(what)
            return
        self.forward += per_image[0] * images
        self.backward += per_image[1] * images


@dataclass(frozen=True)
class Throughput:
    """Seconds per image of one model on one device at one image size."""
    forward_s: float
    backward_s: float  # the backward pass alone: (forward + backward) - forward
    batch_size: int

    def seconds(self, p: Passes) -> float:
        return p.forward * self.forward_s + p.backward * self.backward_s


def _timed(fn: Callable[[], None], min_seconds: float = 0.3, max_reps: int = 5) -> float:
    fn()  # warm-up: allocator, oneDNN / cuDNN kernel choice
    reps, t0 = 0, time.perf_counter()
    while reps < max_reps and (reps < 2 or time.perf_counter() - t0 < min_seconds):
        fn()
        reps += 1
    return (time.perf_counter() - t0) / reps


def measure_throughput(model: torch.nn.Module, size: int, device: torch.device, batch_size: int = 16) -> Throughput:
    """Forward (no grad) and forward+backward (gradient to the input) of one batch of noise images,
    in eval mode, in float32: a few seconds on a CPU. Weights do not change the cost, so an untrained
    copy serves. Stages that run in bf16 (train.precision, run.forward_precision) can beat this floor."""
    model = place_model(model, device).eval()  # the layout the run's passes compute in
    x = torch.rand(batch_size, 1, size, size, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def forward() -> None:
        with torch.no_grad():
            model(x)
        sync()

    def forward_backward() -> None:
        xi = x.clone().requires_grad_(True)
        model(xi)[:, 0].sum().backward()
        sync()

    f = _timed(forward)
    fb = _timed(forward_backward)
    return Throughput(f / batch_size, max(fb - f, 0.0) / batch_size, batch_size)


def throughputs(cfg, device: torch.device, cache_dir: Path | None = None, reuse: bool = True) -> dict[str, Throughput]:
    """Every configured model's throughput, measured once per (model, params, size, device, threads)
    and kept in `cache_dir` (the run folder's context/), so a resumed run does not measure again;
    `reuse=False` (--no-resume) measures again and overwrites."""
    out = {}
    for name in cfg.models.names:
        params = cfg.models.params.get(name, {})
        key = stage_key("throughput", name, params, cfg.data.size, str(device), torch.get_num_threads(),
                        torch.__version__, code_closure("cxr_xai_bench.models.layout"))
        path = cache_dir / f"throughput-{name}-{key}.json" if cache_dir is not None else None
        if reuse and path is not None and path.exists():
            out[name] = Throughput(**json.loads(path.read_text()))
            continue
        torch.manual_seed(0)
        out[name] = measure_throughput(build_model(name, **params), cfg.data.size, device)
        if path is not None:
            write_json(path, asdict(out[name]))
    return out


def _explainer_passes(cfg, name: str) -> tuple[int, int] | None:
    return explainer_from_config(cfg, name).passes(cfg.data.size)


def plan_passes(cfg, counts: dict[str, int], metrics_for: Callable[[str], list[str]],
                reliability: list[str] | None = None,
                metrics_of: Callable[[str, tuple[str, ...]], list[str]] | None = None) -> dict[str, dict[str, Passes]]:
    """stage -> model -> passes the stage needs when it computes everything (nothing reused).

    `counts`: images per role (train, val, test, tune: validation lesion images the threshold
    tuning explains, 0 when no metric tunes). `metrics_for(explainer)`: the sharded metrics that
    score it (the run context's rule)."""
    plan: dict[str, dict[str, Passes]] = {"train": {}, "tune": {}, "explain": {}, "score": {}}
    predicted = cfg.explain.target == "predicted"  # every batch is classified first to pick the target
    for name in cfg.models.names:
        model = build_model(name, **cfg.models.params.get(name, {}))
        train = Passes()
        if name in cfg.models.checkpoints:
            train.add((1, 0), counts["val"] + counts["test"], "evaluate the given checkpoint")
        else:
            epochs = {**vars(cfg.train), **cfg.models.train.get(name, {})}["epochs"]
            train.add((1, 1), epochs * counts["train"], "training steps")
            train.add((1, 0), epochs * counts["val"] + counts["test"], "validation and test predictions")
        plan["train"][name] = train
        tune, explain, score = Passes(), Passes(), Passes()
        for explainer in cfg.explain.for_model(name):
            per = _explainer_passes(cfg, explainer)
            tune.add(per, counts.get("tune", 0), f"tune {explainer}")
            explain.add(per, counts["test"], explainer)
            if predicted:
                tune.add((1, 0), counts.get("tune", 0), "predicted targets")
                explain.add((1, 0), counts["test"], "predicted targets")
            shared = set()  # work one metric computes and the next of equal key reuses (one cascade)
            for metric in metrics_for(explainer):
                spec = get_metric(metric)
                params = cfg.metrics.params.get(metric, {})
                key = spec.shared_work(params)
                if key is not None and key in shared:
                    score.add((0, 0), counts["test"], f"{metric} of {explainer} (shares its passes)")
                else:
                    score.add(spec.passes_per_image(params, per, model), counts["test"], f"{metric} of {explainer}")
                if key is not None:
                    shared.add(key)
                if predicted and spec.fn is not None:
                    score.add((1, 0), counts["test"], "predicted targets")
        plan["tune"][name], plan["explain"][name], plan["score"][name] = tune, explain, score
        randomised, perturbed = Passes(), Passes()
        if reliability:
            perturbed.add((2, 0), counts["test"], "predictions on clean and noisy images")
        for explainer in [e for e in reliability or [] if e in cfg.explain.for_model(name)]:
            per = _explainer_passes(cfg, explainer)
            randomised.add(per, counts["test"], f"randomised {explainer}")
            perturbed.add(per, counts["test"], f"perturbed {explainer}")
            for metric in metrics_of(explainer, ("faithfulness", "localisation")):
                spec = get_metric(metric)
                randomised.add(spec.passes_per_image(cfg.metrics.params.get(metric, {}), per, model), counts["test"],
                               f"{metric} of randomised {explainer}")
            if predicted:
                randomised.add((1, 0), counts["test"], "predicted targets")
                perturbed.add((1, 0), counts["test"], "predicted targets")
        if reliability:  # stages a run without these checks does not have
            plan.setdefault("reliability/randomised", {})[name] = randomised
            plan.setdefault("reliability/perturbed", {})[name] = perturbed
    # every instance of an architecture (train.seeds) does its architecture's work again
    names = instances(cfg.models.names, getattr(cfg.train, "seeds", []), cfg.models.checkpoints)
    return {stage: {inst: by_model[arch] for inst, arch, _ in names if arch in by_model}
            for stage, by_model in plan.items()}


def floor_table(plan: dict[str, dict[str, Passes]], speed: dict[str, Throughput],
                timings: dict[str, float], reused: dict[str, bool] | None = None) -> list[dict[str, Any]]:
    """One row per stage with passes: forward / backward images, floor seconds, actual seconds (the
    run's timings; train per model), their ratio, and whether the stage was reused (its time then
    is the time it took when it was computed, or NaN when that is unknown)."""
    rows = []
    for stage, by_model in plan.items():
        groups = ({f"{stage}/{m}": {m: p} for m, p in by_model.items()} if stage == "train" else {stage: by_model})
        for label, parts in groups.items():
            fwd = sum(p.forward for p in parts.values())
            bwd = sum(p.backward for p in parts.values())
            if not fwd and not bwd:
                continue
            floor = sum(speed[architecture(m)].seconds(p) for m, p in parts.items())
            actual = timings.get(label, math.nan)
            unknown = sorted({u for p in parts.values() for u in p.unknown})
            rows.append({"stage": label, "forward": fwd, "backward": bwd, "floor_s": floor, "actual_s": actual,
                         "ratio": actual / floor if floor > 0 else math.nan,
                         "reused": bool((reused or {}).get(label.split("/")[0], False)),
                         "undeclared": ", ".join(unknown)})
    return rows


def format_floor(rows: list[dict[str, Any]], speed: dict[str, Throughput]) -> str:
    """The floor table as plain text for the run summary and `run --plan`."""
    lines = ["Model throughput (this device, run image size, float32; stages in bf16 can beat it): " + "; ".join(
        f"{m} forward {t.forward_s * 1e3:.2f} ms/img, backward {t.backward_s * 1e3:.2f} ms/img" for m, t in speed.items()),
        f"  {'stage':<20}{'forward':>10}{'backward':>10}{'floor s':>10}{'actual s':>10}{'ratio':>8}"]
    for r in rows:
        actual = "-" if math.isnan(r["actual_s"]) else f"{r['actual_s']:.1f}"
        ratio = "-" if math.isnan(r["ratio"]) else f"{r['ratio']:.1f}"
        note = " (reused)" if r["reused"] else ""
        note += f" (+ undeclared: {r['undeclared']})" if r["undeclared"] else ""
        lines.append(f"  {r['stage']:<20}{r['forward']:>10}{r['backward']:>10}{r['floor_s']:>10.1f}{actual:>10}{ratio:>8}{note}")
    return "\n".join(lines)


def floor_markdown(floor: dict[str, Any] | None) -> list[str]:
    """The report's "Time against the floor" lines from manifest.json's `floor` entry ([] without one)."""
    if not floor or not floor.get("stages"):
        return []
    speed = floor.get("throughput", {})
    lines = ["## Time against the floor\n",
             "Model passes each stage needed (images through a model, forward and backward), the floor they set at "
             "the throughput measured on this device at the run's image size ("
             + "; ".join(f"{m}: forward {t['forward_s'] * 1e3:.2f} ms, backward {t['backward_s'] * 1e3:.2f} ms per image"
                         for m, t in speed.items())
             + "), the stage's wall time and their ratio (1 would be a stage doing nothing but model passes at "
             "full speed in float32; stages that run in bf16, see `train.precision` and `run.forward_precision`, can go "
             "below 1). Reused stages keep the time they took when computed.\n",
             "| stage | forward | backward | floor (s) | actual (s) | ratio |", "|---|---|---|---|---|---|"]
    for r in floor["stages"]:
        actual = "-" if r["actual_s"] is None or math.isnan(r["actual_s"]) else f"{r['actual_s']:.1f}"
        ratio = "-" if r["ratio"] is None or math.isnan(r["ratio"]) else f"{r['ratio']:.1f}"
        note = " (reused)" if r.get("reused") else ""
        lines.append(f"| {r['stage']}{note} | {r['forward']} | {r['backward']} | {r['floor_s']:.1f} | {actual} | {ratio} |")
    return lines + [""]
