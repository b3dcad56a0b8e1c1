"""What the diffusion engine can be told: model, schedule and the switches of the paper's ablation."""

from __future__ import annotations

from dataclasses import dataclass

from sbsconvert.choices import (ATTENTION_MODES, COMPOSITES, DEFAULT_REPAINT_AREA, DEFAULT_SD_MODEL, FILL_RESOLUTIONS,
                                INVERSIONS, VIDEO_PAINTS)
from sbsconvert.errors import SbsError


@dataclass
class DiffusionSettings:
    """Settings of one diffusion engine (one loaded model).

    model:          Stable Diffusion 1.x/2.x checkpoint, hub id or local diffusers folder.
    steps:          DDIM steps (eta = 0) for inversion and denoising.
    guidance:       classifier-free guidance scale; 1 (or prompt == negative prompt without
                    null-text inversion) runs without the unconditional half of the batch.
    shift_step:     fraction of the denoising after which the left latent is shifted to the right view.
    inversion:      "ddim": DDIM inversion, and the left view follows its inversion trajectory
                    exactly (measured faster and exact, see bench/RESULTS.md); "null-text": the
                    paper's null-text inversion (per-step optimised unconditional embeddings).
    null_text_iterations: optimiser steps per denoising step for null-text inversion.
    attention:      "uni": the right view's self-attention reads the left view's keys/values (left
                    unchanged); "bi": every view reads all views' keys/values; "off": plain.
    spsmd:          Symmetric Pixel Shift Masking Denoise: at the shift step and then every
                    `spsmd_every` steps, the right latent outside the disocclusion mask is
                    replaced by the shifted left latent.
    spsmd_every:    steps between SPSMD composites; 1: after every step (and on the result).
    deblur:         fill the disocclusions with noise instead of zeros at the shift step.
    seed:           seed of every random draw (initial noise, deblur noise): same seed, same output.
    prompt:         text to generate from; for image->stereo, an optional caption of the photo.
    negative_prompt: text for the unconditional half of classifier-free guidance.
    resolution:     the model works on about resolution x resolution pixels (aspect kept);
                    None: the model's native size (512 for SD 1.5).
    composite:      "hybrid": the right view is the warp engine's forward warp of the photo at its own
                    resolution, and only the disocclusions come from the diffusion (see composite.py);
                    "latent": the paper's output, the whole right view decoded from the latent.
    fill_resolution: hybrid only. "model": the holes come from the whole view diffused at the
                    model's resolution, upscaled; "native": they are painted again by up to
                    MAX_CROPS model-sized crops at the photo's own scale (see crops.py).
    video_paint:    videos, hybrid composite: "keyframes": the holes the shot's other frames saw
                    come from them (the background plate) and the diffusion paints the rest only on
                    keyframes, its paint carried to the frames after (video/paint.py); "every-frame":
                    every frame is diffused in full.
    repaint_area:   keyframes: a frame whose holes left unpainted cover more than this share of
                    its pixels is painted (a keyframe); fewer keep the background fill.
    progress:       show progress bars per stage (stderr).
    """

    model: str = DEFAULT_SD_MODEL
    steps: int = 50
    guidance: float = 7.5
    shift_step: float = 0.2
    inversion: str = "ddim"
    null_text_iterations: int = 10
    attention: str = "uni"
    spsmd: bool = True
    spsmd_every: int = 10
    deblur: bool = False
    seed: int = 0
    prompt: str = ""
    negative_prompt: str = ""
    resolution: int | None = None
    composite: str = "hybrid"
    fill_resolution: str = "model"
    video_paint: str = "keyframes"
    repaint_area: float = DEFAULT_REPAINT_AREA
    progress: bool = True

    def __post_init__(self) -> None:
        if self.inversion not in INVERSIONS:
            raise SbsError(f"unknown inversion '{self.inversion}' (choose from {', '.join(INVERSIONS)})")
        if self.attention not in ATTENTION_MODES:
            raise SbsError(f"unknown attention mode '{self.attention}' (choose from {', '.join(ATTENTION_MODES)})")
        if self.composite not in COMPOSITES:
            raise SbsError(f"unknown composite '{self.composite}' (choose from {', '.join(COMPOSITES)})")
        if self.fill_resolution not in FILL_RESOLUTIONS:
            raise SbsError(f"unknown fill resolution '{self.fill_resolution}' (choose from {', '.join(FILL_RESOLUTIONS)})")
        if self.fill_resolution == "native" and self.composite != "hybrid":
            raise SbsError("`fill_resolution` native paints the holes of the hybrid composite; it needs `composite` hybrid")
        if self.video_paint not in VIDEO_PAINTS:
            raise SbsError(f"unknown video paint '{self.video_paint}' (choose from {', '.join(VIDEO_PAINTS)})")
        if not 0 <= self.repaint_area <= 1:
            raise SbsError(f"`repaint_area` is a share of the frame, between 0 and 1, got {self.repaint_area}")
        if not 1 <= self.steps <= 1000:
            raise SbsError(f"steps must be between 1 and 1000, got {self.steps}")
        if not 0 <= self.shift_step < 1:
            raise SbsError(f"shift step must be a fraction in [0, 1), got {self.shift_step}")
        if self.guidance < 1:
            raise SbsError(f"guidance must be at least 1 (1 = no guidance), got {self.guidance}")
        if self.spsmd_every < 1:
            raise SbsError(f"`spsmd_every` must be at least 1 step, got {self.spsmd_every}")
        if self.null_text_iterations < 1:
            raise SbsError(f"null-text iterations must be at least 1, got {self.null_text_iterations}")
        if self.resolution is not None and self.resolution < 64:
            raise SbsError(f"resolution must be at least 64 pixels, got {self.resolution}")

    @property
    def shift_index(self) -> int:
        """Denoising step at which the left latent is shifted (at least one step remains after it)."""
        return min(round(self.shift_step * self.steps), self.steps - 1)
