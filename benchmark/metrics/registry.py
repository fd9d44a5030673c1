"""Metrics by name, each with its category, direction and needs.

Every metric scores a batch at once: score(model, images, targets, maps, masks, has_mask) -> (N,)
float32 on the device, NaN where the value is undefined (the runner counts NaNs per cell).
Metrics that re-explain (sanity checks) declare `needs_explainer` and also receive the explainer
(anything with .explain(model, images, targets, **context)) and its context; a `sink` dict, when
the caller passes one, collects extra per-image outputs (e.g. a randomisation curve). Metrics that
read the lung fields (lung_mass) declare `needs_lung` and also receive `lung_masks` (N,H,W) bool,
an all-False row where an image has no lung mask (as Batch stores it); when the caller passes none
they score NaN for every image (no lung mask is known). Localisation metrics receive the maps through
the one sign rule (`score(..., sign=)`, the run's metrics.sign; sign.py), never the raw signed maps
unless the rule says "raw".
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch

from cxr_xai_bench.models.precision import pass_precision

from .sign import DEFAULT_SIGN, apply_sign, check_sign

# The known metric categories, in the order of every table and figure: Quantus's six (its
# "randomisation" is this benchmark's "sanity", see ALIASES) and runtime. A plug-in metric may declare
# any other lowercase identifier ("smoothness"): it gets its own tables after the known ones,
# alphabetically (category_key), and the report treats it like complexity (the generic rules).
CATEGORIES = ("faithfulness", "localisation", "robustness", "complexity", "axiomatic", "sanity", "runtime")
ALIASES = {"randomisation": "sanity", "randomization": "sanity", "localization": "localisation"}
_CATEGORY = re.compile(r"[a-z][a-z0-9_]*")
CURVES = (None, "deletion", "insertion", "removal")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    category: str
    higher_is_better: bool
    needs_mask: bool
    needs_model: bool
    fn: Callable[..., torch.Tensor] | None
    defaults: dict
    doc: str
    needs_explainer: bool = False
    needs_lung: bool = False  # receives lung_masks (N,H,W) bool: the job passes the test split's
    # (params, explainer's (forward, backward) per image or None, the model) -> (forward, backward)
    # images through the model per scored image, for the run's time floor; None: unknown
    passes: Callable[[dict, tuple[int, int] | None, object], tuple[int, int] | None] | None = None
    # its model passes may run in bf16 (run.forward_precision): declared by metrics whose scores were
    # measured to move less than a stated tolerance (tests/benchmark/test_forward_precision.py)
    bf16_ok: bool = False
    # (params) -> a key: metrics with equal keys share their model passes on one shard of one explainer
    # (randomisation_ssim and _spearman re-explain one cascade once); the plan counts them once
    shares: Callable[[dict], object] | None = None
    # what its per-image curve (sink["curve"]) is, for the report's headroom check (report/headroom.py):
    # "deletion" (starts at the unperturbed image, ends fully perturbed), "insertion" (starts fully
    # perturbed, ends at the unperturbed image), "removal" (a growing removed share, the unperturbed
    # image not on the curve: ROAD); None for metrics without such a curve
    curve: str | None = None

    @property
    def reads_sign(self) -> bool:
        """Whether `score` hands this metric its maps through the sign rule (metrics.sign, sign.py):
        every localisation metric, so they all read a signed map the same one way."""
        return self.category == "localisation"

    def shared_work(self, params: dict) -> object | None:
        """The key of the work this metric shares with others of equal key (None: shares nothing)."""
        return None if self.shares is None else self.shares({**self.defaults, **params})

    def passes_per_image(self, params: dict, explainer_passes: tuple[int, int] | None, model=None
                         ) -> tuple[int, int] | None:
        """What scoring one image costs in model passes; (0, 0) for metrics that never call the model."""
        if self.passes is not None:
            return self.passes({**self.defaults, **params}, explainer_passes, model)
        return None if (self.needs_model or self.needs_explainer) and self.fn is not None else (0, 0)

    def precision(self, precision: str, device: torch.device | str) -> str:
        """The precision this metric's model passes run at under the run's `run.forward_precision`:
        resolved ("auto": bf16 where the device runs it fast) for metrics that declare bf16_ok (they
        only classify perturbed images, and their scores barely move), fp32 for the rest: faithfulness
        correlation correlates probability drops as small as bf16's rounding, re-explaining metrics
        take gradients."""
        return pass_precision(self.fn is not None and self.bf16_ok and self.needs_model and not self.needs_explainer,
                              precision, device)


METRICS: dict[str, MetricSpec] = {}


def check_category(category: str, name: str = "?") -> str:
    """`category` as registered: a known one (CATEGORIES), an alias of one (ALIASES: Quantus's
    "randomisation" is "sanity"), or a new lowercase identifier; anything else is refused, naming the metric."""
    if not isinstance(category, str) or not _CATEGORY.fullmatch(category):
        raise ValueError(f"metric {name!r}: category {category!r} is not a lowercase identifier (known: "
                         f"{', '.join(CATEGORIES)}; any other such name starts a category of its own)")
    return ALIASES.get(category, category)


def category_key(category: str) -> tuple[int, int, str]:
    """Sort key of a category: the known ones in CATEGORIES order, then the others alphabetically."""
    return (0, CATEGORIES.index(category), "") if category in CATEGORIES else (1, 0, category)


def ordered_categories(categories) -> list[str]:
    """The distinct `categories` in table order (category_key)."""
    return sorted(set(categories), key=category_key)


def register_metric(name: str, category: str, higher_is_better: bool, needs_mask: bool = False,
                    needs_model: bool = False, needs_explainer: bool = False, needs_lung: bool = False, passes=None, bf16_ok: bool = False,
                    shares=None, curve: str | None = None, **defaults):
    category = check_category(category, name)
    if curve not in CURVES:
        raise ValueError(f"metric {name!r}: curve {curve!r} not in {CURVES}")

    def add(fn):
        if name in METRICS:
            raise ValueError(f"metric {name!r} registered twice")
        METRICS[name] = MetricSpec(name, category, higher_is_better, needs_mask, needs_model, fn, defaults,
                                   (fn.__doc__ or "").strip().split("\n")[0], needs_explainer, needs_lung,
                                   passes, bf16_ok, shares, curve)
        return fn
    return add


# runtime is measured by the runner around each explain call, not computed from maps
METRICS["seconds_per_image"] = MetricSpec("seconds_per_image", "runtime", False, False, False, None, {},
                                          "Wall-clock seconds of the explain call divided by the images in it.")
# needs models trained with other seeds (run.repeat_seeds): computed by the runner
METRICS["seed_repeatability"] = MetricSpec("seed_repeatability", "sanity", True, False, True, None, {},
                                           "Spearman rank correlation of the map with the map of the same model "
                                           "trained with another seed (run.repeat_seeds).")
METRICS["peak_memory_mb"] = MetricSpec("peak_memory_mb", "runtime", False, False, False, None, {},
                                       "Peak memory the explain call added (CUDA allocator on a GPU, sampled RSS on "
                                       "the CPU), MiB, shared by the images of one call.")


def get_metric(name: str) -> MetricSpec:
    if name not in METRICS:
        raise KeyError(f"unknown metric {name!r}; registered: {sorted(METRICS)}")
    return METRICS[name]


def score(name: str, model, images: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor,
          masks: torch.Tensor, has_mask: torch.Tensor, *, explainer=None, context: dict | None = None,
          sink: dict | None = None, lung_masks: torch.Tensor | None = None, sign: str = DEFAULT_SIGN,
          **params) -> torch.Tensor:
    """Per-image values (N,) of metric `name`. A localisation metric reads the maps through the sign
    rule `sign` (sign.py: "positive" part by default, "absolute" or "raw"); other metrics ignore it."""
    check_sign(sign)
    spec = get_metric(name)
    if spec.fn is None:
        raise ValueError(f"metric {name!r} is measured by the runner, not scored from maps")
    unknown = set(params) - set(spec.defaults)
    if unknown:
        raise KeyError(f"metric {name!r}: unknown parameters {sorted(unknown)}; allowed: {sorted(spec.defaults)}")
    if maps.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"metric {name!r}: maps {tuple(maps.shape)} do not match images {tuple(images.shape)}")
    if not torch.isfinite(maps).all():
        bad = (~torch.isfinite(maps)).flatten(1).any(1).nonzero().flatten().tolist()
        raise FloatingPointError(f"metric {name!r}: maps hold NaN or inf for images {bad}")
    if spec.needs_mask:
        if masks is None or tuple(masks.shape) != tuple(maps.shape):
            raise ValueError(f"metric {name!r}: masks {None if masks is None else tuple(masks.shape)} "
                             f"do not match maps {tuple(maps.shape)}")
        if has_mask is None or tuple(has_mask.shape) != (maps.shape[0],):
            raise ValueError(f"metric {name!r}: has_mask {None if has_mask is None else tuple(has_mask.shape)} "
                             f"must be ({maps.shape[0]},)")
    extra = {}
    if spec.needs_explainer:
        if explainer is None:
            raise ValueError(f"metric {name!r} re-explains the model: pass explainer=")
        extra = {"explainer": explainer, "context": dict(context or {})}
    if sink is not None:
        extra["sink"] = sink
    if spec.needs_lung:
        if lung_masks is None:  # no lung mask known for any image: NaN, as for an image without one
            lung_masks = torch.zeros_like(maps, dtype=torch.bool)
        if tuple(lung_masks.shape) != tuple(maps.shape):
            raise ValueError(f"metric {name!r}: lung_masks {tuple(lung_masks.shape)} do not match maps {tuple(maps.shape)}")
        extra["lung_masks"] = lung_masks.bool()
    if spec.reads_sign:
        maps = apply_sign(maps, sign)
    return spec.fn(model=model, images=images, targets=targets, maps=maps, masks=masks, has_mask=has_mask,
                   **extra, **{**spec.defaults, **params})
