"""What a run without a training or selection split leaves out, decided once before it starts.

- No training split (an evaluate-only run): `mask_prior` (the training split's mean lesion mask)
  is left out unless `data.prior_file` gives the prior.
- No selection split: IoU / Dice thresholds set to "tuned" fall back to Otsu's threshold.
Each choice is one line in the manifest ("left_out") and in the report.
"""
from __future__ import annotations

from .config import Config
from .data import evaluate_only, has_role


def resolve_missing_roles(cfg: Config) -> list[str]:
    """Apply the rules above to `cfg` (the runner's own copy); the lines that say what changed."""
    notes = []
    if evaluate_only(cfg) and "mask_prior" in cfg.explain.names and not cfg.data.prior_file:
        cfg.explain.names = [e for e in cfg.explain.names if e != "mask_prior"]
        for spec in cfg.explain.per_model.values():
            if "mask_prior" in spec.get("exclude", []):
                spec["exclude"] = [e for e in spec["exclude"] if e != "mask_prior"]
        notes.append("mask_prior left out: it is the training split's mean lesion mask and this run has no "
                     "training split (give one with data.prior_file)")
    if not has_role(cfg, "val"):
        tuned = [m for m in cfg.metrics.names if cfg.metrics.params.get(m, {}).get("threshold") == "tuned"]
        for m in tuned:
            cfg.metrics.params[m] = {**cfg.metrics.params[m], "threshold": "otsu"}
        if tuned:
            notes.append(f"{', '.join(tuned)}: threshold \"tuned\" needs a selection split (data.splits.val); "
                         f"this run has none, so Otsu's threshold is used")
    return notes
