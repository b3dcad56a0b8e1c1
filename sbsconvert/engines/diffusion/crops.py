"""Where to run the diffusion again at the photo's own scale (--fill-resolution native): a bounded
number of overlapping model-sized crops that cover the disocclusions of a full-resolution view.

Candidate crops sit on a grid whose cells overlap by OVERLAP of a crop; crops are picked greedily,
each time the one holding the most hole pixels that no picked crop holds yet, until every hole
pixel is held or MAX_CROPS are picked (the rest keep the model-resolution fill). Each crop's
result is weighted by `crop_weight`, which fades to zero over FADE of a crop towards its sides
inside the photo, so overlapping crops and the model-resolution fill meet without seams.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MAX_CROPS = 8
OVERLAP = 0.25
FADE = 0.125


@dataclass(frozen=True)
class Crop:
    left: int
    top: int
    width: int
    height: int

    @property
    def rows(self) -> slice:
        return slice(self.top, self.top + self.height)

    @property
    def columns(self) -> slice:
        return slice(self.left, self.left + self.width)


def _starts(length: int, side: int) -> list[int]:
    """Grid positions along one axis: overlapping by OVERLAP, the last one flush with the end."""
    stride = max(1, round(side * (1 - OVERLAP)))
    starts = list(range(0, max(1, length - side + 1), stride))
    if starts[-1] != length - side:
        starts.append(max(0, length - side))
    return starts


def plan_crops(holes: torch.Tensor, side: tuple[int, int], max_crops: int = MAX_CROPS) -> list[Crop]:
    """Crops of `side` (width, height) over the hole pixels of `holes` (H x W bool), most holes first."""
    height, width = holes.shape
    crop_width, crop_height = min(side[0], width), min(side[1], height)
    lefts, tops = _starts(width, crop_width), _starts(height, crop_height)
    remaining = holes.clone()
    crops: list[Crop] = []
    while len(crops) < max_crops and bool(remaining.any()):
        # Hole pixels per candidate, from a summed-area table of the remaining holes.
        table = torch.nn.functional.pad(remaining.to(torch.int64).cumsum(0).cumsum(1), (1, 0, 1, 0))
        top = torch.tensor(tops)[:, None]
        left = torch.tensor(lefts)[None, :]
        counts = (
            table[top + crop_height, left + crop_width] - table[top, left + crop_width]
            - table[top + crop_height, left] + table[top, left]
        )  # fmt: skip
        best = int(counts.argmax())
        crop = Crop(lefts[best % len(lefts)], tops[best // len(lefts)], crop_width, crop_height)
        crops.append(crop)
        remaining[crop.rows, crop.columns] = False
    return crops


def crop_weight(crop: Crop, size: tuple[int, int], device: torch.device | str = "cpu") -> torch.Tensor:
    """crop.height x crop.width weights: 1 inside, falling linearly to near 0 over FADE of the crop
    towards each side that lies inside the photo (`size`: width, height); sides on the photo's
    border keep full weight, as nothing lies beyond them."""
    width, height = size

    def ramp(length: int, start: int, total: int) -> torch.Tensor:
        fade = max(1.0, FADE * length)
        position = torch.arange(length, dtype=torch.float32, device=device)
        weight = torch.ones(length, device=device)
        if start > 0:
            weight = torch.minimum(weight, (position + 1) / fade)
        if start + length < total:
            weight = torch.minimum(weight, (length - position) / fade)
        return weight.clamp(max=1)

    return ramp(crop.height, crop.top, height)[:, None] * ramp(crop.width, crop.left, width)[None, :]
