"""Which LRP configuration explains a COVID-QU-Ex classifier: the evidence behind `lrp`'s "auto".

Trains (or reuses) both models with the suite on COVID-QU-Ex Train at a CPU size, then, on the
SELECTION split only (the seeded, stratified hold-out of Train: nothing here touches Val, the split
the benchmark scores), explains every held-out image with each LRP preset and with references that
do not depend on LRP's rules (Grad-CAM, Integrated Gradients, random, the lung prior), and scores:

- conservation: sum of the input relevance / the explained (centred) logit, median over images
  (1 = conserved; LRP only);
- localisation on lesion images: pointing game, relevance mass;
- the shortcut check on every image: lung_mass (share of positive relevance inside the lungs);
- faithfulness: deletion AUC, 8 steps (lower is better).

Integrated Gradients runs 16 steps; a seeded random `--images` of the selection split is explained.

Writes docs/lrp-on-real-data.csv and prints a Markdown table (docs/lrp-on-real-data.md holds the
write-up). Usage, from the project root (about 15 minutes on a 2-core CPU):

    python docs/lrp_real_data.py [--out results/lrp-study] [--size 64] [--train 1200] [--epochs 3]
                                 [--images 120] [--device cpu]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmark.metrics import score  # noqa: E402
from benchmark.run.config import load_config  # noqa: E402
from benchmark.run.data import load_split, train_prior  # noqa: E402
from benchmark.run.runner import Runner  # noqa: E402
from cxr_xai_bench.explainers import build_explainer  # noqa: E402
from cxr_xai_bench.explainers.lrp import LRP  # noqa: E402

PRESETS = ("epsilon_gamma_box", "epsilon_alpha2beta1_flat", "epsilon_plus_flat")
REFERENCES = ("gradcam", "integrated_gradients", "random", "lung_prior")
LOCALISATION = ("pointing_game", "relevance_mass")


def config(size: int, n_train: int, epochs: int, extra: tuple[str, ...] = ()):
    """The COVID-QU-Ex config at `size`: below 128 px the `paper-cpu` preset's models (VGG's compact
    head, Grad-CAM on the 8x8 layers), at 128 px and above the `paper` preset's. Weight decay 5e-4,
    the setting the published study (docs/lrp-on-real-data.csv) trained with."""
    preset = "paper-cpu" if size < 128 else "paper"
    return load_config(ROOT / "configs" / "covid-qu-ex.toml", [
        f"data.size={size}", f"data.limit.train={n_train}", "data.limit.test=40", f"train.epochs={epochs}",
        "train.batch_size=32" if size < 128 else "train.batch_size=64", "train.weight_decay=5e-4",
        f"models.train.vgg16_bn.epochs={epochs}", f"models.train.resnet50.epochs={epochs}",
        "train.seeds=[]", *extra], preset)  # one instance per model: paper-cpu now trains three


def conservation(model, images, targets, preset: str) -> float:
    rel, logits = LRP(preset=preset).relevance(model, images, targets)
    return float(np.median((rel.flatten(1).sum(1) / logits).detach().cpu().numpy()))


def explain(model, name: str, images, targets, context, batch: int = 32, **params) -> torch.Tensor:
    explainer = build_explainer(name, seed=0, **params)
    return torch.cat([explainer.explain(model, images[i:i + batch], targets[i:i + batch],
                                        **{k: None if v is None else v[i:i + batch] if v.dim() == 3 else v
                                           for k, v in context.items()})
                      for i in range(0, len(images), batch)])


def subset(batch, n: int, seed: int = 0):
    """A seeded random n of the batch's images (all when n <= 0), classes in their natural share."""
    if n <= 0 or n >= len(batch):
        return batch
    keep = np.sort(np.random.default_rng(seed).permutation(len(batch))[:n])
    return type(batch)(batch.images[keep], batch.labels[keep], batch.lesion_masks[keep], batch.has_mask[keep],
                       batch.lung_masks[keep], [batch.ids[i] for i in keep])


def study(out: Path, size: int, n_train: int, epochs: int, n_images: int, device: str = "cpu",
          extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per model and method; `extra`: more config overrides (e.g. a data.cache_dir)."""
    cfg = config(size, n_train, epochs, extra)
    device = torch.device(device)
    runner = Runner(cfg, out, device)
    result = runner.run("train")
    select = subset(load_split(cfg, "val"), n_images)  # the hold-out of Train: the selection split
    prior = train_prior(load_split(cfg, "train"))
    select = type(select)(*(t.to(device) if torch.is_tensor(t) else t for t in
                            (select.images, select.labels, select.lesion_masks, select.has_mask,
                             select.lung_masks, select.ids)))
    context = {"lung_masks": select.lung_masks,
               "train_mean_mask": None if prior is None else torch.from_numpy(prior).to(device)}
    targets = select.labels.clone()
    rows = []
    mine = [m for _, m in runner.ctx.state.loaded_models()]  # this run's models (each run holds its own)
    for model in mine:
        arch = model.arch
        print(f"{arch}: selection accuracy {result.classifiers[arch]['val']}", flush=True)
        methods = {f"lrp:{p}": ("lrp", {"preset": p}) for p in PRESETS}
        methods |= {r: (r, {"n_steps": 16} if r == "integrated_gradients" else {}) for r in REFERENCES}
        for label, (name, params) in methods.items():
            try:
                maps = explain(model, name, select.images, targets, context, **params)
            except (FloatingPointError, RuntimeError, ValueError) as err:
                rows.append({"model": arch, "method": label, "error": str(err).split("\n")[0][:120]})
                continue
            row = {"model": arch, "method": label, "images": len(select)}
            if name == "lrp":
                row["conservation"] = conservation(model, select.images[:64], targets[:64], params["preset"])
            for metric in (*LOCALISATION, "lung_mass", "deletion_auc"):
                v = score(metric, model, select.images, targets, maps, select.lesion_masks, select.has_mask,
                          lung_masks=select.lung_masks, **({"steps": 8} if metric == "deletion_auc" else {})).cpu().numpy()
                row[metric] = float(np.nanmean(v))
                if metric == "pointing_game":
                    row["lesion_images"] = int(np.isfinite(v).sum())
            rows.append(row)
            print(row, flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "results" / "lrp-study"))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--train", type=int, default=1200)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--images", type=int, default=120, help="selection images explained (0: all)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    table = study(Path(args.out), args.size, args.train, args.epochs, args.images, args.device)
    table.to_csv(ROOT / "docs" / "lrp-on-real-data.csv", index=False)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
