"""Pick the torch device and dtype once, for every stage that runs a model."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sbsconvert.errors import SbsError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class Compute:
    device: torch.device
    dtype: torch.dtype  # dtype for neural networks; geometry always runs in float32


def select_compute(preference: str = "auto", precision: str = "auto") -> Compute:
    if preference not in DEVICE_CHOICES:
        raise SbsError(f"unknown device '{preference}' (choose from {', '.join(DEVICE_CHOICES)})")
    if preference == "auto":
        if torch.cuda.is_available():
            preference = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            preference = "mps"
        else:
            preference = "cpu"
    if preference == "cuda" and not torch.cuda.is_available():
        raise SbsError("--device cuda was asked for but no CUDA GPU is available")
    if preference == "mps" and not torch.backends.mps.is_available():
        raise SbsError("--device mps was asked for but Apple MPS is not available")
    device = torch.device(preference)
    return Compute(device=device, dtype=_network_dtype(device, precision))


def _network_dtype(device: torch.device, precision: str) -> torch.dtype:
    named = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if precision != "auto":
        if precision not in named:
            raise SbsError(f"unknown precision '{precision}' (choose from auto, {', '.join(named)})")
        if device.type == "cpu" and precision == "fp16":
            raise SbsError("fp16 is not supported on the CPU; use fp32 or bf16")
        return named[precision]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    # Half precision on CPU is slow or unsupported for many kernels.
    return torch.float32
