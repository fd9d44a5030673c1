"""Reduced precision where the hardware runs it fast: bf16 autocast on CUDA and on CPUs with AMX
tiles (Intel Sapphire Rapids and later), where oneDNN runs bf16 convolutions several times faster
than float32 (VGG16-BN at 64 px on this project's 2-core CPU: training 2.8x, forward 4x); float32
elsewhere, where bf16 would be emulated and slower."""
from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("auto", "bf16", "fp32")


def fast_bf16(device: torch.device | str) -> bool:
    """Whether `device` runs bf16 convolutions natively (CUDA, or a CPU with AMX tiles)."""
    device = torch.device(device)
    if device.type == "cuda":
        return True
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return device.type == "cpu" and amx is not None and bool(amx())


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """"auto" -> "bf16" where fast_bf16(device), else "fp32"; "bf16" and "fp32" stay as they are."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if fast_bf16(device) else "fp32"
    return precision


def pass_precision(forward_only: bool, precision: str, device: torch.device | str) -> str:
    """The precision of a method's model passes: `precision` resolved for one that only classifies
    images (forward_only), "fp32" for one that takes gradients."""
    return resolve_precision(precision, device) if forward_only else "fp32"


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """bf16 autocast on `device` when `precision` resolves to bf16; a no-op context otherwise.
    Autocast leaves float64 work (the ROAD imputation) and the ops it does not list in float32."""
    device = torch.device(device)
    if resolve_precision(precision, device) == "bf16" and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
