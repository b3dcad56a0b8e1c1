"""Pick the torch device and dtype once, for every stage that runs a model."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch

from sbsconvert.errors import SbsError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16", "fp16")


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
        raise SbsError("`device` cuda was asked for but no CUDA GPU is available")
    if preference == "mps" and not torch.backends.mps.is_available():
        raise SbsError("`device` mps was asked for but Apple MPS is not available")
    device = torch.device(preference)
    return Compute(device=device, dtype=_network_dtype(device, precision))


def _network_dtype(device: torch.device, precision: str) -> torch.dtype:
    named = dict(zip(PRECISIONS, (torch.float32, torch.bfloat16, torch.float16)))
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


@contextlib.contextmanager
def memory_guard(what: str) -> Iterator[None]:
    """Turn running out of GPU or host memory while doing `what` into one line with advice."""
    try:
        yield
    except MemoryError:
        raise SbsError(f"out of memory while {what}; try a smaller input or close other programs") from None
    except RuntimeError as error:  # torch.cuda.OutOfMemoryError is a RuntimeError, as are MPS/HIP ones
        if "can't allocate memory" in str(error):  # torch's CPU allocator: host memory, not the GPU's
            raise SbsError(f"out of memory while {what}; try a smaller input or close other programs") from None
        if "out of memory" not in str(error).lower():
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # give the memory back so the rest of the batch can run
        raise SbsError(
            f"out of GPU memory while {what}; try a smaller input, fewer `steps` or `device` cpu"
        ) from None
