"""Where a run executes: the torch device, seeds, and what the manifest records of the environment."""
from __future__ import annotations

import importlib.metadata as md
import platform
import random
import subprocess
from pathlib import Path

import numpy as np
import torch

RECORDED_PACKAGES = ("torch", "torchvision", "captum", "lime", "zennit", "quantus", "numpy", "scipy", "pandas",
                     "seaborn", "ray")
PACKAGE = "cxr-xai-bench"


def package_version() -> str:
    """This package's version: the installed distribution's, else pyproject.toml's in a source checkout."""
    try:
        return md.version(PACKAGE)
    except md.PackageNotFoundError:
        pass
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        import tomllib
        return str(tomllib.loads(pyproject.read_text())["project"]["version"])
    except (OSError, KeyError, ValueError):
        return "unknown"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but CUDA is not available here")
    return torch.device(name)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # warn_only: ops without a deterministic kernel (some CUDA backward passes) still run
        torch.use_deterministic_algorithms(True, warn_only=True)


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    out = {PACKAGE: package_version(), "python": platform.python_version()}
    for pkg in RECORDED_PACKAGES:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "absent"
    return out
