"""Hybrid composite: a right view at the photo's own resolution whose visible pixels are the warp
engine's sub-pixel forward warp and whose disocclusions are painted by the diffusion.

The warp's hole mask is pixel-accurate. It is grown by GROW_PIXELS (the warp's pixels next to a
depth edge are the least reliable) and feathered to zero over FEATHER_PIXELS, so every pixel
farther than SEAM_BAND_PIXELS from a hole is the warp engine's pixel, bit for bit. The painted
view comes from a VAE decode at the model's resolution, whose colours drift from the photo's;
before it is upscaled into the holes it gets a smooth per-channel offset that makes it agree with
the warp's visible pixels around each hole (normalised convolution of the difference).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

GROW_PIXELS = 2
FEATHER_PIXELS = 4
SEAM_BAND_PIXELS = GROW_PIXELS + FEATHER_PIXELS  # pixels farther than this from a hole are the warp's
MATCH_SIGMA = 1 / 32  # spread of the colour matching, as a fraction of the painted view's width
_FAR_FROM_VISIBLE = 1e-3  # weight of the view-wide offset where no visible pixel is near


def hole_weight(holes: torch.Tensor) -> torch.Tensor:
    """HxW float32: 1 on the holes grown by GROW_PIXELS, falling linearly to 0 at
    SEAM_BAND_PIXELS + 1 pixels (Euclidean) from the nearest hole."""
    if not bool(holes.any()):
        return torch.zeros(holes.shape, dtype=torch.float32, device=holes.device)
    visible = (~holes).cpu().numpy().astype(np.uint8)
    distance = cv2.distanceTransform(visible, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    weight = np.clip((SEAM_BAND_PIXELS + 1 - distance) / (FEATHER_PIXELS + 1), 0, 1)
    return torch.from_numpy(weight.astype(np.float32)).to(holes.device)


def match_colours(painted: torch.Tensor, warped: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
    """`painted` (3 x h x w, any size) plus the local mean of (warp - painted) over the warp's
    visible pixels, per channel: colour and brightness of the painted view follow the photo's
    surroundings while its detail is kept. `warped` is 3 x H x W, `holes` H x W."""
    height, width = painted.shape[1:]
    visible = (~holes).to(painted.dtype)[None, None]
    # Per painted pixel: the share of visible warp pixels it covers and their summed colour.
    coverage = F.interpolate(visible, size=(height, width), mode="area")[0]
    colour_sum = F.interpolate(warped[None] * visible, size=(height, width), mode="area")[0]
    difference = colour_sum - coverage * painted
    sigma = max(1.0, MATCH_SIGMA * width)
    blur = lambda planes: torch.from_numpy(
        np.stack([cv2.GaussianBlur(plane, (0, 0), sigma) for plane in planes.cpu().numpy()])
    ).to(painted.device)
    near_difference, near_coverage = blur(difference), blur(coverage)
    overall = difference.sum(dim=(1, 2), keepdim=True) / coverage.sum().clamp(min=1e-6)
    offset = (near_difference + _FAR_FROM_VISIBLE * overall) / (near_coverage + _FAR_FROM_VISIBLE)
    return painted + offset


def painted_fill(painted: torch.Tensor, warped: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
    """The decoded diffusion view (3 x h x w) colour-matched to the warp (C x H x W, holes H x W)
    and upscaled to H x W."""
    matched = match_colours(painted, warped[:3], holes)[None]
    return F.interpolate(matched, size=holes.shape, mode="bicubic", align_corners=False)[0].clamp(0, 1)


def hybrid_view(warped: torch.Tensor, holes: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """The warp engine's view (C x H x W, filled) with its holes (H x W) taken from `fill`
    (3 x H x W) over the grown, feathered hole mask. Channels past the third (alpha) stay the warp's."""
    weight = hole_weight(holes)
    colour = warped[:3]
    blended = torch.where(weight > 0, torch.lerp(colour, fill, weight), colour)
    return torch.cat([blended, warped[3:]])
