"""Chest X-ray datasets yielding the Sample contract (see sample.py)."""
from .registry import DATASETS, build_dataset, register_dataset
from .sample import Batch, Sample, collate
from . import covid_qu_ex, manifest, phantom, planted, rsna  # noqa: F401  (register the entries)

__all__ = ["DATASETS", "Batch", "Sample", "build_dataset", "collate", "register_dataset"]
