"""Bring a trained classifier: load weights from a user's file into a model built by `build_model`.

Three kinds of file are read (`load_trained`):

- a checkpoint of ours (`save_checkpoint`: {"model": state_dict, "meta": {...}}), e.g. the
  `checkpoints/<model>-<key>.pt` of an earlier run;
- a plain `state_dict`: of the whole `XrayClassifier` (keys `net.*`), or of the torchvision network
  alone (keys as torchvision names them, e.g. `features.0.weight`, `fc.weight`), optionally under
  a "state_dict" / "model_state_dict" key and with DataParallel's `module.` prefix. The network's
  head must have the model's outputs (two, or `num_classes` with `output_index` / `output_class`
  choosing pneumonia among them: models.output_head);
- a whole pickled model (`torch.save(model)`): only with `allow_pickle=True`. Unpickling runs
  arbitrary code from the file (`torch.load(weights_only=False)`), so it is refused unless the user
  says they trust the file; only its `state_dict()` is kept, loaded into the model the config
  builds, so the architecture is always the one the config names.

The file's SHA-256 is returned, so a run keys every downstream stage on the weights themselves.
"""
from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import torch
from torch import nn

BUFFERS = ("mean", "std")  # the wrapper's normalisation buffers: fixed, never part of a user's file


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read(path: Path, allow_pickle: bool) -> tuple[object, str]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True), "weights"
    except pickle.UnpicklingError as err:
        if not allow_pickle:
            raise ValueError(
                f"checkpoint {path} is not a plain state_dict or checkpoint (torch.load with weights_only=True "
                f"refused it: {str(err).splitlines()[0]}). If it is a whole pickled model that you trust, allow "
                f"unpickling it for this model with models.allow_pickle = [\"<model name>\"]: unpickling runs "
                f"code from the file, so only do it for files you made") from None
    return torch.load(path, map_location="cpu", weights_only=False), "pickled"


def _state_dict(obj: object, path: Path) -> tuple[dict, dict, str]:
    """(state_dict, meta, format) from whatever the file held."""
    if isinstance(obj, nn.Module):
        return obj.state_dict(), {}, "pickled_model"
    if not isinstance(obj, dict):
        raise ValueError(f"checkpoint {path} holds a {type(obj).__name__}, not a state_dict or a model")
    if isinstance(obj.get("model"), nn.Module):
        return obj["model"].state_dict(), {}, "pickled_model"
    if isinstance(obj.get("model"), dict):
        return obj["model"], obj.get("meta", {}) if isinstance(obj.get("meta"), dict) else {}, "ours"
    for key in ("state_dict", "model_state_dict"):
        if isinstance(obj.get(key), dict):
            return obj[key], {}, "state_dict"
    return obj, {}, "state_dict"


def load_trained(model: nn.Module, path: str | Path, allow_pickle: bool = False) -> dict:
    """Load the weights in `path` into `model` (an XrayClassifier); returns what was loaded:
    {"source", "sha256", "format" ("ours", "state_dict", "pickled_model"), "meta" (ours only)}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    sha = file_sha256(path)
    obj, _ = _read(path, allow_pickle)
    state, meta, fmt = _state_dict(obj, path)
    if not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(f"checkpoint {path} holds no tensors named by parameter (not a state_dict)")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    whole = any(k.startswith("net.") for k in state)
    target = model if whole else model.net
    if whole:
        state = {**{b: getattr(model, b) for b in BUFFERS if hasattr(model, b)}, **state}
    try:
        target.load_state_dict(state, strict=True)
    except RuntimeError as err:
        arch = getattr(model, "arch", type(model).__name__)
        raise ValueError(f"checkpoint {path} does not fit model {arch} (built from models.params; a torchvision "
                         f"state_dict must have the model's {_outputs(model)}-class head: for another head set "
                         f"num_classes and output_index or output_class): "
                         f"{str(err).splitlines()[0]} {_mismatch(err)}") from None
    return {"source": str(path), "sha256": sha, "format": fmt, "meta": meta}


def _outputs(model: nn.Module) -> str:
    try:
        return str(model.net.get_submodule(model.head_layer_name).out_features)
    except (AttributeError, ValueError):
        return "2"


def _mismatch(err: RuntimeError) -> str:
    lines = [s.strip() for s in str(err).splitlines()[1:] if s.strip()]
    return "; ".join(lines)[:400]
