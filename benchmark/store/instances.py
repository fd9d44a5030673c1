"""Model instances: one architecture trained once per seed of `train.seeds`.

An instance's name is what every table row, store key and file name carries as its `model`: the
architecture's own name when `train.seeds` is empty (one instance trained with run.seed, exactly as
before the setting existed), `<architecture>@s<seed>` otherwise (`resnet50@s1`). Running and
reporting both map a name back with `architecture` and `seed_of`, so this lives in the store (the
leaf both import). A model given as a checkpoint (models.checkpoints) is not trained here, so it
stays one instance under its architecture's name whatever train.seeds holds.
"""
from __future__ import annotations

from typing import Iterable

SEP = "@s"  # no "-": run-folder names split "<model>-<explainer>-<metric>-<key>" on it


def instance_name(arch: str, seed: int) -> str:
    """`resnet50`, 1 -> `resnet50@s1`."""
    return f"{arch}{SEP}{seed}"


def architecture(name: str) -> str:
    """The architecture of an instance name (`resnet50@s1` -> `resnet50`; a plain name is its own)."""
    return name.split(SEP, 1)[0]


def seed_of(name: str) -> int | None:
    """The training seed an instance name carries (`resnet50@s1` -> 1); None for a plain name (run.seed)."""
    if SEP not in name:
        return None
    tail = name.split(SEP, 1)[1]
    try:
        return int(tail)
    except ValueError:
        raise ValueError(f"model instance {name!r}: {tail!r} after {SEP!r} is not a training seed") from None


def instances(names: Iterable[str], seeds: Iterable[int], given: Iterable[str] = ()) -> list[tuple[str, str, int | None]]:
    """(instance name, architecture, training seed or None for run.seed) of every model a run trains or
    loads, in models.names order, each architecture's instances in train.seeds order."""
    seeds, given = list(seeds), set(given)
    out: list[tuple[str, str, int | None]] = []
    for arch in names:
        if not seeds or arch in given:
            out.append((arch, arch, None))
        else:
            out.extend((instance_name(arch, s), arch, s) for s in seeds)
    return out


def by_architecture(models: Iterable[str]) -> dict[str, list[str]]:
    """Architecture -> its instance names among `models` (first-seen order), e.g. the `model` column of
    a score table."""
    out: dict[str, list[str]] = {}
    for m in dict.fromkeys(models):
        out.setdefault(architecture(str(m)), []).append(str(m))
    return out
