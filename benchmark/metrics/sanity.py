"""Sanity checks: does the explanation change when the model's parameters are randomised?

Cascading model-parameter randomisation (Adebayo et al. 2018, "Sanity checks for saliency maps";
Quantus MPRT with layer_order="top_down"): on a deep copy of the model, re-initialise each
parameterised layer in turn from the logits down to the input, cumulatively, re-explain with the
same explainer after each stage and compare with the original map. A map that stays similar while
the weights are destroyed does not explain the model. Lower similarity is better.

Layers and seeding follow Quantus 0.6 so both randomise identically: the layers are the modules
with a `reset_parameters` method, in reverse `named_modules` order; before each reset the torch
RNG is seeded with the same value (Quantus seeds `seed + 1`; we seed `seed`). The caller's model
and the caller's RNG state are never touched.

Batch norm: BatchNorm layers have `reset_parameters`, so, as in Quantus, each is a cascade stage
of its own (counted by `max_layers` like a convolution). PyTorch's reset is not random: it sets
the weight to 1, the bias to 0, the running mean to 0, the running variance to 1 and
num_batches_tracked to 0, the same for every seed. The randomised copy stays in the caller's
mode, and the explainers run models in eval mode, where a reset BatchNorm computes
x / sqrt(1 + eps): the identity up to a factor 1 - 5e-6. So the cascade does not randomise
batch norm: it removes the layer's learned normalisation and affine map, and the convolutions
around it, re-initialised as well, then see unnormalised activations. Adebayo et al. re-initialise
whole blocks of Inception v3 instead; we follow Quantus, the implementation our tests compare with.
Name `layers` to randomise only chosen modules (e.g. every Conv2d and Linear and no BatchNorm).

Maps are compared after the preprocessing Adebayo et al. and Quantus apply by default: absolute
value (`abs`) and scaling by the maximum absolute value (`normalise`). We scale each map by its own
maximum; Quantus scales a whole batch by one maximum, which makes a map's SSIM depend on the other
images in its batch (Spearman is unaffected by either).
Similarities, batched on the device: `ssim` equals skimage.metrics.structural_similarity with
Quantus' settings (7x7 uniform window, sample covariance, K1=0.01, K2=0.03, data_range = max - min
of the two maps), computed on the (H,W) map; `spearman` equals scipy.stats.spearmanr (average ranks).
Note Quantus' MPRT hands ssim flattened (N, H*W) vectors, i.e. a 1-D SSIM along pixel rows; we
use the 2-D map.

Constant maps (exactly equal pixels, after the preprocessing: an all-zero map, or any constant
one, which `normalise` turns into all ones), by map_similarity, so no stage is ever NaN and
dropped from the mean (a map that collapses under randomisation passes the check, and must count):
- a constant map against a non-constant one: 0 for both similarities. Spearman is 0/0 there
  (scipy returns NaN) and no rank association is the only reading; SSIM is defined but measures
  only agreement of flat windows (a collapsed all-zero map scores, roughly, the share of 7x7
  windows where the other map is zero too: 0.36 against a ReLU'd cosine map that is zero on half
  its pixels), and a map without structure shares no structure: 0.
- two constant maps: Spearman 1 (both rank every pixel alike); SSIM 1 when the constants are
  equal (skimage gives 0/0 with a zero data range) and otherwise its luminance term
  (2ab + C1) / (a^2 + b^2 + C1), e.g. 1e-4 for an all-zero against an all-one map.
These keep the metric's value (the mean over stages) defined; they are not evidence of model
dependence, which the report's sanity verdict judges from what the metrics hand back in `sink`:

- sink["null"] (N, 1): the similarity of image i's map to the map of another image of the batch
  (the next one, cyclically, whose map is not degenerate), same explainer, same model, same
  preprocessing: how alike this explainer's maps of two unrelated inputs are on this data. NaN
  where image i's map is degenerate or the batch holds no other usable map.
- sink["degenerate"] (N, 2): 1 where the trained model's map (column 0) or the last stage's map
  (column 1: every layer of `layers` randomised, all by default) is constant or non-finite after the preprocessing, where a
  rank correlation is undefined.

The verdict (report/findings.py: sanity_cell) compares the last stage's |similarity| with the
null's |similarity| per image and counts degenerate maps as failures.
"""
from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch
from torch import nn

from .cascade_memo import CascadeMemo
from .registry import register_metric

# the similarities and map checks live in similarity.py; imported here, where the sanity metrics and
# their callers have always found them
from .similarity import (SIMILARITIES, degenerate, map_similarity, null_partners, null_similarities,  # noqa: F401
                         preprocess, spearman, ssim)


def randomisable_layers(model: nn.Module) -> list[str]:
    """Names of the modules that can be re-initialised, top (logits) first: Quantus' top-down order."""
    return [name for name, m in model.named_modules() if hasattr(m, "reset_parameters")][::-1]


def _stages(n_layers: int, max_layers: int | None) -> list[int]:
    if max_layers is None or max_layers == 0 or max_layers >= n_layers:
        return list(range(n_layers))
    if max_layers < 0:
        raise ValueError(f"max_layers must be >= 1 (0 or None: every layer), got {max_layers}")
    return sorted(set(np.linspace(0, n_layers - 1, max_layers).round().astype(int).tolist()))


ExplainFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def cascade_maps(model: nn.Module, explain_fn: ExplainFn, images: torch.Tensor, targets: torch.Tensor, seed: int,
                 layers: list[str] | None = None, max_layers: int | None = None) -> list[tuple[str, torch.Tensor]]:
    """The maps (N,H,W) after each kept cascade stage, with the name of the last layer randomised.

    Every layer in `layers` (default: all, top-down) is re-initialised in turn, cumulatively, on a
    deep copy; the map is recomputed after the stages kept by `max_layers` (evenly spaced, always
    the first and the last: only the logits layer random, every layer random; 0 or None keeps
    all). One cascade serves any number of similarities (see cascading_randomisation).
    """
    available = randomisable_layers(model)
    layers = available if layers is None else list(layers)
    unknown = [name for name in layers if name not in available]
    if unknown or not layers:
        raise KeyError(f"layers {unknown or layers} are not re-initialisable modules of the model; "
                       f"available (top-down): {available}")
    keep = set(_stages(len(layers), max_layers))
    randomised = copy.deepcopy(model)
    modules = dict(randomised.named_modules())
    devices = sorted({p.device.index for p in randomised.parameters() if p.device.type == "cuda"})
    out = []
    with torch.random.fork_rng(devices=devices):
        for i, name in enumerate(layers):
            torch.manual_seed(seed)
            modules[name].reset_parameters()
            if i in keep:
                out.append((name, explain_fn(randomised, images, targets).detach()))
    return out


def cascading_randomisation(model: nn.Module, explain_fn: ExplainFn,
                            images: torch.Tensor, targets: torch.Tensor, similarity: str, seed: int,
                            layers: list[str] | None = None, max_layers: int | None = None, *,
                            original: torch.Tensor | None = None, abs: bool = True,
                            normalise: bool = True) -> tuple[list[str], torch.Tensor]:
    """Similarity (N, L) float32 of each image's map to its map after each cascade stage, and the L stage names.

    Stages as cascade_maps. `original` is the map of the unchanged model when the caller already
    has it; otherwise it is computed. Maps are compared after `preprocess(abs, normalise)`.
    """
    if similarity not in SIMILARITIES:
        raise KeyError(f"unknown similarity {similarity!r}; use one of {SIMILARITIES}")
    stages = cascade_maps(model, explain_fn, images, targets, seed, layers, max_layers)
    if original is None:
        original = explain_fn(model, images, targets)
    return stage_similarities(original, stages, similarity, abs, normalise)


def stage_similarities(original: torch.Tensor, stages: list[tuple[str, torch.Tensor]], similarity: str,
                       abs: bool = True, normalise: bool = True) -> tuple[list[str], torch.Tensor]:
    """(stage names, (N, L) float32 similarity of `original` to each stage's maps after preprocess)."""
    reference = preprocess(original.detach(), abs, normalise)
    curve = [map_similarity(reference, preprocess(m, abs, normalise), similarity) for _, m in stages]
    return [name for name, _ in stages], torch.stack(curve, 1).float()


CASCADES = CascadeMemo()


def shared_cascade(model: nn.Module, explainer, images: torch.Tensor, targets: torch.Tensor, context: dict,
                   seed: int, layers: list[str] | None, max_layers: int | None) -> list[tuple[str, torch.Tensor]]:
    """cascade_maps of `explainer`, shared through CASCADES by the randomisation metrics."""
    return CASCADES.stages_of(model, explainer, images, targets, context, seed, layers, max_layers,
                              lambda: cascade_maps(model, lambda m, x, t: explainer.explain(m, x, t, **context),
                                                   images, targets, seed, layers, max_layers))


def cascade_key(params: dict) -> tuple:
    """What the stages of a randomisation metric depend on beyond the shard: equal keys share a cascade."""
    return ("cascade", int(params["seed"]), tuple(params["layers"]), params["max_layers"] or 0)


def _randomisation_metric(similarity: str, model, images, targets, maps, explainer, context, sink, seed, max_layers,
                          abs, normalise, layers) -> torch.Tensor:
    if model is None:
        raise ValueError(f"randomisation_{similarity} needs the model")
    stages = shared_cascade(model, explainer, images, targets, context, seed, list(layers) or None, max_layers)
    names, curve = stage_similarities(maps, stages, similarity, abs, normalise)
    if sink is not None:
        sink["curve"], sink["layers"] = curve, names
        # the sanity verdict's inputs (module docstring): the null and the degenerate maps, per image
        sink["null"] = null_similarities(maps, similarity, abs, normalise)[:, None]
        sink["degenerate"] = torch.stack([degenerate(maps, abs, normalise),
                                          degenerate(stages[-1][1], abs, normalise)], 1).float().cpu()
    # every stage counts: map_similarity scores constant maps instead of returning NaN
    return curve.mean(1)


_DEFAULTS = {"seed": 0, "max_layers": 5, "abs": True, "normalise": True, "layers": ()}


def cascade_passes(params: dict, explainer_passes: tuple[int, int] | None, model) -> tuple[int, int] | None:
    """One re-explanation per kept cascade stage (the trained model's map is the stored one)."""
    if explainer_passes is None or model is None:
        return None
    stages = len(_stages(len(params["layers"]) or len(randomisable_layers(model)), params["max_layers"]))
    return stages * explainer_passes[0], stages * explainer_passes[1]


@register_metric("randomisation_ssim", "sanity", higher_is_better=False, needs_model=True, needs_explainer=True,
                 passes=cascade_passes, shares=cascade_key, **_DEFAULTS)
def randomisation_ssim(model, images, targets, maps, explainer, context, sink: dict | None = None, seed: int = 0,
                       max_layers: int | None = 5, abs: bool = True, normalise: bool = True,
                       layers: tuple[str, ...] = (), **_) -> torch.Tensor:
    """Mean SSIM of the map to its maps under cascading parameter randomisation (Adebayo et al. 2018).

    `max_layers` (default 5) evenly spaced cascade stages are re-explained, which keeps a CPU run
    cheap; every layer above a stage is still randomised; 0 re-explains after every layer.
    `layers` (default: every re-initialisable module, top-down) names the modules to randomise.
    With `sink`, sink["curve"] gets the (N, stages) similarities and sink["layers"] the stage names,
    sink["null"] (N, 1) and sink["degenerate"] (N, 2) the sanity verdict's inputs (module docstring).
    """
    return _randomisation_metric("ssim", model, images, targets, maps, explainer, context, sink, seed, max_layers,
                                 abs, normalise, layers)


@register_metric("randomisation_spearman", "sanity", higher_is_better=False, needs_model=True, needs_explainer=True,
                 passes=cascade_passes, shares=cascade_key, **_DEFAULTS)
def randomisation_spearman(model, images, targets, maps, explainer, context, sink: dict | None = None, seed: int = 0,
                           max_layers: int | None = 5, abs: bool = True, normalise: bool = True,
                           layers: tuple[str, ...] = (), **_) -> torch.Tensor:
    """Mean Spearman correlation of the map to its maps under cascading parameter randomisation (Adebayo et al. 2018).

    Parameters and sink as randomisation_ssim.
    """
    return _randomisation_metric("spearman", model, images, targets, maps, explainer, context, sink, seed,
                                 max_layers, abs, normalise, layers)
