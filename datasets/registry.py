"""Datasets by name, so the config and `benchmark list` read one dict."""
from __future__ import annotations

from typing import Callable

DATASETS: dict[str, type] = {}


def register_dataset(name: str) -> Callable[[type], type]:
    def add(cls: type) -> type:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} registered twice")
        DATASETS[name] = cls
        return cls
    return add


def build_dataset(name: str, **params):
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; registered: {sorted(DATASETS)}")
    return DATASETS[name](**params)
