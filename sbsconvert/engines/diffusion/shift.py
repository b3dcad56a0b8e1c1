"""Stereo Pixel Shift of a latent: move every latent pixel by its disparity, nearest wins.

The same idea as the warp engine (engines/warp.py) at latent resolution, but whole latent pixels
move (a point splat to the nearest latent column, no interpolation): interpolating a noisy
latent would average its noise away and blur the result. Where several pixels land on one
column the one with the largest nearness wins; columns nothing landed on form the disocclusion
mask, which the model fills.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sbsconvert.disparity import Disparity, resize_disparity


@dataclass
class LatentShift:
    """Where each latent pixel of the target view comes from; plan once, apply at every step."""

    source: torch.Tensor  # h x w long: source column landing on (y, x); 0 where `mask`
    mask: torch.Tensor  # h x w bool: True where no source pixel landed (disocclusions)

    @classmethod
    def plan(cls, shift: torch.Tensor, nearness: torch.Tensor) -> LatentShift:
        """`shift` (h x w, latent pixels): the pixel at column x lands on round(x - shift)."""
        height, width = shift.shape
        device = shift.device
        columns = torch.arange(width, device=device).expand(height, width)
        target = torch.floor(columns - shift.float() + 0.5).long()
        inside = (target >= 0) & (target < width)
        # Pixels that leave the view go to a spare slot past the end instead of being filtered.
        spare = height * width
        rows = torch.arange(height, device=device).view(height, 1) * width
        slot = torch.where(inside, rows + target.clamp(0, width - 1), spare).reshape(-1)
        near = torch.where(inside, nearness.float(), -torch.inf).reshape(-1)
        best = torch.full((spare + 1,), -torch.inf, device=device).scatter_reduce(0, slot, near, "amax")
        wins = inside.reshape(-1) & (near == best[slot])
        # Equal nearness landing on one column (only for maps where nearness does not determine
        # the shift): the rightmost source wins, so the result never depends on scatter order.
        candidate = torch.where(wins, columns.reshape(-1), -1)
        source = torch.full((spare + 1,), -1, device=device).scatter_reduce(0, slot, candidate, "amax")
        source = source[:spare].view(height, width)
        mask = source < 0
        return cls(source=source.clamp(min=0), mask=mask)

    def apply(self, latents: torch.Tensor) -> torch.Tensor:
        """Shift B x C x h x w latents; masked positions hold zeros."""
        batch, channels = latents.shape[:2]
        index = self.source.expand(batch, channels, *self.source.shape)
        return torch.gather(latents, 3, index).masked_fill(self.mask, 0.0)

    def compose(self, target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """SPSMD: keep `target` inside the mask, the shifted `source` everywhere else."""
        return torch.where(self.mask, target, self.apply(source))


def plan_latent_shift(
    shift: np.ndarray, nearness: np.ndarray, latent_size: tuple[int, int], device: torch.device
) -> LatentShift:
    """Plan from image-resolution maps (shift in pixels of the image they belong to).

    Shifts scale with the width (a latent pixel is width/latent_width image pixels); both maps
    are area-averaged over each latent pixel.
    """
    latent_width, latent_height = latent_size
    latent_shift = resize_disparity(Disparity(shift.astype(np.float32), absolute=True), latent_width, latent_height)
    latent_near = resize_disparity(Disparity(nearness.astype(np.float32)), latent_width, latent_height)
    to_tensor = lambda values: torch.from_numpy(np.ascontiguousarray(values)).to(device)
    return LatentShift.plan(to_tensor(latent_shift.values), to_tensor(latent_near.values))
