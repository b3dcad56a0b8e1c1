"""Invert an image latent into the model's noise: DDIM inversion and null-text inversion.

DDIM inversion runs the deterministic DDIM update backwards (clean -> noisy), evaluating the
model at the next, noisier timestep on the current latent (the usual approximation). Null-text
inversion (Mokady et al., CVPR 2023) then optimises, step by step, the unconditional embedding
so that guided DDIM sampling from the inverted noise retraces the inversion trajectory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sbsconvert.engines.diffusion.sampler import Denoiser, Guidance

NULL_TEXT_LEARNING_RATE = 1e-2
NULL_TEXT_TOLERANCE = 1e-5  # per-step early stop on the latent MSE, loosened along the way


@torch.no_grad()
def ddim_inversion(
    denoiser: Denoiser, latent: torch.Tensor, cond: torch.Tensor, extra: torch.Tensor | None = None, first: int = 0
) -> list[torch.Tensor | None]:
    """The trajectory (see sampler) whose last entry is `latent`, inverted back to entry `first`
    (0: its inverted noise). Each entry costs a model call, so the entries before `first`, which a
    run that starts at `first` never reads, are not computed: they are None."""
    from diffusers import DDIMInverseScheduler

    inverse = DDIMInverseScheduler.from_config(denoiser.scheduler.config)
    inverse.set_timesteps(denoiser.steps, device=denoiser.timesteps.device)
    # Inversion step j lands on the timestep that sampling step steps-1-j starts from.
    assert torch.equal(inverse.timesteps.flip(0), denoiser.timesteps), "inverse and sampling schedules differ"
    guidance = Guidance(cond)
    trajectory = [latent]
    for j in denoiser.bar(range(denoiser.steps - first), "inversion"):
        step = denoiser.steps - 1 - j
        current = trajectory[-1]
        output = denoiser.predict(current, step, guidance, extra)
        trajectory.append(inverse.step(output, inverse.timesteps[j], current).prev_sample)
    return [None] * first + trajectory[::-1]


def null_text_inversion(
    denoiser: Denoiser,
    trajectory: list[torch.Tensor],
    cond: torch.Tensor,
    uncond: torch.Tensor,
    scale: float,
    iterations: int,
    extra: torch.Tensor | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per-step unconditional embeddings and the trajectory guided sampling follows with them.

    Starting from the inverted noise, step i optimises the unconditional embedding (initialised
    with step i-1's) so that one guided DDIM step lands on trajectory[i+1], for at most
    `iterations` Adam steps; the learning rate decays linearly to half over the run.
    """
    embeddings: list[torch.Tensor] = []
    current = trajectory[0]
    followed = [current]
    optimised = uncond.detach().float()
    with_cond = Guidance(cond)
    for step in denoiser.bar(range(denoiser.steps), "null-text inversion"):
        with torch.no_grad():
            cond_output = denoiser.predict(current, step, with_cond, extra)
        optimised = optimised.clone().requires_grad_(True)
        optimiser = torch.optim.Adam([optimised], lr=NULL_TEXT_LEARNING_RATE * (1 - step / (2 * denoiser.steps)))
        tolerance = NULL_TEXT_TOLERANCE * (1 + 100 * step / denoiser.steps)
        for _ in range(iterations):
            uncond_output = denoiser.predict(current, step, Guidance(optimised), extra)
            guided = uncond_output + scale * (cond_output - uncond_output)
            loss = F.mse_loss(denoiser.step(guided, step, current), trajectory[step + 1])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if loss.item() < tolerance:
                break
        optimised = optimised.detach()
        embeddings.append(optimised)
        with torch.no_grad():
            uncond_output = denoiser.predict(current, step, Guidance(optimised), extra)
            current = denoiser.step(uncond_output + scale * (cond_output - uncond_output), step, current)
        followed.append(current)
    return embeddings, followed
