"""Chest X-ray datasets yielding the Sample contract (see sample.py)."""
from .registry import DATASETS, build_dataset, register_dataset
from .sample import Batch, Sample, collate
from . import phantom  # noqa: F401  (registers "phantom")

__all__ = ["DATASETS", "Batch", "Sample", "build_dataset", "collate", "register_dataset"]
