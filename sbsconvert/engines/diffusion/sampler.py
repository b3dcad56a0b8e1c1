"""DDIM denoising of one view, and of a source view with its shifted target views (SPSMD).

Latents stay float32 between steps (the UNet runs in the compute dtype). A trajectory is the list
of latents before each denoising step, with the final latent last: trajectory[i] sits at
timestep timesteps[i], trajectory[steps] is the clean latent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from sbsconvert.engines.diffusion.attention import AttentionState
from sbsconvert.engines.diffusion.models import StableDiffusion
from sbsconvert.engines.diffusion.shift import LatentShift
from sbsconvert.progress import progress


@dataclass
class Guidance:
    """Text conditioning: the prompt's embedding and, for classifier-free guidance, the
    unconditional one (a list: one per step, from null-text inversion)."""

    cond: torch.Tensor  # 1 x tokens x width
    uncond: torch.Tensor | list[torch.Tensor] | None = None  # None: no guidance (one batch half)
    scale: float = 1.0

    @property
    def groups(self) -> int:
        return 1 if self.uncond is None else 2

    def embeddings(self, step: int, views: int) -> torch.Tensor:
        """Batch rows (uncond view 0..V-1, cond view 0..V-1), or just the cond rows."""
        cond = self.cond.expand(views, -1, -1)
        if self.uncond is None:
            return cond
        uncond = self.uncond[step] if isinstance(self.uncond, list) else self.uncond
        return torch.cat([uncond.expand(views, -1, -1), cond])

    def combine(self, output: torch.Tensor) -> torch.Tensor:
        if self.uncond is None:
            return output
        uncond, cond = output.chunk(2)
        return uncond + self.scale * (cond - uncond)


class Denoiser:
    """A model, its attention state and a DDIM schedule of `steps` steps (eta = 0)."""

    def __init__(self, model: StableDiffusion, attention: AttentionState, steps: int, progress: bool):
        from diffusers import DDIMScheduler

        self.model = model
        self.attention = attention
        self.scheduler = DDIMScheduler.from_config(model.scheduler.config)  # a fresh one: no shared state
        self.scheduler.set_timesteps(steps, device=model.compute.device)
        self.timesteps = self.scheduler.timesteps
        self.steps = steps
        self.progress = progress

    def predict(
        self, latents: torch.Tensor, step: int, guidance: Guidance, extra: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Guided model output for V views stacked on the batch axis (V x C x h x w).

        `extra`: V x k x h x w additional UNet input channels (the depth of SD 2 depth).
        """
        views = latents.shape[0]
        sample = latents if extra is None else torch.cat([latents, extra], dim=1)
        self.attention.views, self.attention.step = views, step
        output = self.model.predict(
            sample.repeat(guidance.groups, 1, 1, 1), self.timesteps[step], guidance.embeddings(step, views)
        )
        return guidance.combine(output)

    def step(self, output: torch.Tensor, step: int, latents: torch.Tensor) -> torch.Tensor:
        """One DDIM step from timesteps[step] to the next (lower) timestep."""
        return self.scheduler.step(output, self.timesteps[step], latents).prev_sample

    def bar(self, steps: range, stage: str) -> Iterator[int]:
        """`steps`, counted on the shared progress display (a bar on a terminal, plain lines in logs)."""
        with progress(len(steps), desc=stage, unit="step", enabled=self.progress) as counter:
            for step in steps:
                yield step
                counter.update()


@torch.no_grad()
def sample(denoiser: Denoiser, noise: torch.Tensor, guidance: Guidance, extra: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Plain DDIM sampling of one view from pure noise; returns the whole trajectory."""
    trajectory = [noise]
    for step in denoiser.bar(range(denoiser.steps), "generate left"):
        latents = trajectory[-1]
        trajectory.append(denoiser.step(denoiser.predict(latents, step, guidance, extra), step, latents))
    return trajectory


@dataclass
class StereoPlan:
    """How the target views are made from the source view's trajectory."""

    trajectory: list[torch.Tensor | None]  # the source view's latents (1 x C x h x w), see module docstring;
    # those before `start` are never read (None where they were not computed)
    shifts: list[LatentShift]  # one per target view
    start: int  # the shift step
    replay: bool  # the source follows `trajectory` (its attention is unchanged) instead of being denoised
    spsmd: bool  # re-impose the shifted source on the targets outside their masks (see composites_at)
    fills: list[torch.Tensor] | None = None  # initial content of each target's mask (deblur); None: zeros
    spsmd_every: int = 1  # steps between two SPSMD composites

    def composites_at(self, index: int, steps: int) -> bool:
        """Whether SPSMD re-imposes the shifted source on trajectory latent `index` (the input of
        denoising step `index`; `steps` is the clean result). The shift itself is the composite at
        `start`; then every `spsmd_every` steps while steps remain, as the authors' code does
        (shift at 10, composites at 20, 30, 40 of 50), so the last steps smooth the seams. Every
        step (spsmd_every 1) also re-imposes it on the result, the engine's earlier behaviour."""
        if not self.spsmd or index <= self.start or (index - self.start) % self.spsmd_every:
            return False
        return index < steps or self.spsmd_every == 1


@torch.no_grad()
def denoise_stereo(
    denoiser: Denoiser, plan: StereoPlan, guidance: Guidance, extra: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stereo Pixel Shift at plan.start, then joint denoising of source and targets to the end.

    Returns the final source latent (1 x C x h x w) and target latents (T x C x h x w).
    `extra`: (1 + T) x k x h x w extra UNet input channels, source first.
    """
    source = plan.trajectory[plan.start]
    targets = [shift.apply(source) for shift in plan.shifts]
    if plan.fills is not None:
        targets = [torch.where(shift.mask, fill, target) for shift, fill, target in zip(plan.shifts, plan.fills, targets)]
    stacked = torch.cat(targets)
    for step in denoiser.bar(range(plan.start, denoiser.steps), "denoise"):
        latents = torch.cat([source, stacked])
        stepped = denoiser.step(denoiser.predict(latents, step, guidance, extra), step, latents)
        source = plan.trajectory[step + 1] if plan.replay else stepped[:1]
        stacked = stepped[1:]
        if plan.composites_at(step + 1, denoiser.steps):
            stacked = torch.cat([shift.compose(stacked[i : i + 1], source) for i, shift in enumerate(plan.shifts)])
    return source, stacked
