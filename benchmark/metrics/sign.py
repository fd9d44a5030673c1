"""The one sign rule of the localisation metrics: how a signed attribution map is read.

LRP, LIME, Integrated Gradients and occlusion return signed maps: positive relevance is evidence for
the explained class, negative relevance evidence against it. Every localisation metric (pointing
game, relevance mass and rank, top-k, pixel AUROC / AUPRC, IoU / Dice through the segmentation, the
lung mass, and any plug-in metric of that category) reads a map the same one way, chosen once per
run (`metrics.sign`) and in `benchmark.metrics.score` / `score_maps` (`sign=`):

- "positive" (default): the positive part max(map, 0), the evidence for the target. Negative
  relevance elsewhere changes nothing: a map's IoU does not drop because it also holds strong
  counter-evidence away from the lesion (min-max normalising the signed range before Otsu did that).
- "absolute": |map|, evidence for and against alike (the magnitude of relevance).
- "raw": the map as the explainer returned it (what the metrics read before this rule: the signed
  range min-max normalised before segmentation, the least negative pixel as the pointing game's
  maximum; relevance mass and lung mass then sum signed relevance, as Quantus does).

On non-negative maps (Grad-CAM, the baselines) the three are identical. Faithfulness and sanity
metrics are not affected: they order or compare the maps as returned.
"""
from __future__ import annotations

import torch

SIGNS = ("positive", "absolute", "raw")
DEFAULT_SIGN = "positive"

_READS = {"positive": "the positive part of each map, the evidence for the explained class",
          "absolute": "the absolute value of each map, evidence for and against alike",
          "raw": "each map as the explainer returned it, negative relevance included"}


def check_sign(sign: object, key: str = "sign") -> str:
    """`sign` if it is one of SIGNS, else a ValueError naming `key` and the allowed values."""
    if not isinstance(sign, str) or sign not in SIGNS:
        raise ValueError(f"{key} = {sign!r}: use one of {list(SIGNS)} (how localisation metrics read a signed map)")
    return sign


def apply_sign(maps: torch.Tensor, sign: str = DEFAULT_SIGN) -> torch.Tensor:
    """The maps (N,H,W) as the sign rule reads them: positive part, absolute value or unchanged."""
    check_sign(sign)
    if sign == "positive":
        return maps.clamp(min=0)
    if sign == "absolute":
        return maps.abs()
    return maps


def sign_sentence(sign: str | None) -> str:
    """One line for a report: how this run's localisation metrics read its maps (None: a run folder
    written before `metrics.sign` existed)."""
    if sign is None:
        return ("Localisation metrics read each map as the explainer returned it (raw; relevance_mass and "
                "lung_mass its positive part): this run predates `metrics.sign`.")
    return f"Localisation metrics read {_READS.get(sign, repr(sign))} (`metrics.sign = \"{sign}\"`)."
