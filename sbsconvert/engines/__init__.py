"""Stereo engines: `warp` (model-free, fast) and `diffusion` (StereoDiffusion)."""

from __future__ import annotations

from typing import Any

from sbsconvert.choices import ENGINES
from sbsconvert.device import Compute
from sbsconvert.engines.base import StereoEngine
from sbsconvert.errors import SbsError


def create_engine(name: str, compute: Compute, **options: Any) -> StereoEngine:
    """Build an engine by name. Options are the engine's settings (warp: fill, max_stretch;
    diffusion: the fields of DiffusionSettings). Heavy imports happen only for the engine used."""
    if name == "warp":
        from sbsconvert.engines.warp import WarpEngine

        return WarpEngine(device=compute.device, **options)
    if name == "diffusion":
        from sbsconvert.engines.diffusion import DiffusionEngine, DiffusionSettings

        return DiffusionEngine(DiffusionSettings(**options), compute)
    raise SbsError(f"unknown engine '{name}' (choose from {', '.join(ENGINES)})")
