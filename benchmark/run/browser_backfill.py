"""The HTML case browser's inputs (RUN/browser/<model>.npz) for a finished run folder made before the
report stage wrote them: read from its stored maps and its test split, as the report stage writes them
(`benchmark record` calls this, so an older run still becomes a record with a case browser).

Refused, naming the folders, where a (model, explainer) has more than one stored map folder (maps of
two configs in one folder: which one the scores belong to cannot be told from the folder alone).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cxr_xai_bench.explainers import EXPLAINERS

from ..report.browser_store import write_browser
from ..store.files import read_map_shard
from ..store.runfolder import read_config
from .data import load_split


def _map_folders(run_dir: Path, model: str, explainers: list[str]) -> dict[str, Path]:
    found: dict[str, list[Path]] = {}
    for d in sorted((run_dir / "maps").glob(f"{model}-*")):
        name = d.name[len(model) + 1:].rsplit("-", 1)[0]
        if name in explainers:
            found.setdefault(name, []).append(d)
    twice = {e: [p.name for p in ds] for e, ds in found.items() if len(ds) > 1}
    if twice:
        raise ValueError(f"{run_dir / 'maps'} holds more than one map folder of {model} for {twice}: "
                         "cannot tell which the scores belong to; rerun the report stage instead")
    return {e: ds[0] for e, ds in found.items()}


def backfill_browser(run_dir: Path) -> list[Path]:
    """Write RUN/browser/<model>.npz for every model of a finished run whose maps are stored and whose
    browser file is missing; return the files written (none when the run has them or no maps)."""
    run_dir = Path(run_dir)
    if not (run_dir / "maps").is_dir():
        return []
    cfg = read_config(run_dir)
    scores = pd.read_csv(run_dir / "scores.csv", dtype={"image_id": str})
    models = [m for m in dict.fromkeys(scores["model"]) if not (run_dir / "browser" / f"{m}.npz").exists()]
    if not models:
        return []
    test = load_split(cfg, "test")
    written = []
    for model in models:
        folders = _map_folders(run_dir, model, list(cfg.explain.names))
        maps = {e: np.concatenate([np.asarray(read_map_shard(p).maps) for p in sorted(d.glob("shard-*.npy"))])
                for e, d in folders.items()}
        path = run_dir / "browser" / f"{model}.npz"
        write_browser(path, test.images[:, 0].numpy(), test.lesion_masks.numpy(), test.has_mask.numpy(),
                      list(test.ids), maps, {e: EXPLAINERS[e].signed for e in maps},
                      keep=sorted(set(scores.loc[scores.model == model, "image_id"])))
        written.append(path)
    return written
