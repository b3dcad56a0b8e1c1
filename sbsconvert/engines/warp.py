"""Model-free stereo: forward warp with nearest-wins occlusion, then fill the disocclusions.

The warp treats each image row as a strip of connected samples: consecutive source pixels form
a segment that is rasterised into the target row (sub-pixel exact, no cracks on stretched
surfaces), unless the segment stretches wider than `max_stretch` pixels (a depth edge opening a
hole) or folds back (a surface turned away). Where several samples land on one target pixel the
nearest wins (z-buffer on nearness). The winning source coordinate is then sampled from the
input with linear interpolation, so fronto-parallel regions with integer shifts are copied exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from sbsconvert.engines.base import StereoPair, StereoRequest
from sbsconvert.errors import SbsError

FILL_METHODS = ("inpaint", "background", "stretch", "blank")
# A video's holes filled from what its other frames saw (sbsconvert/video/plate.py); the engine
# itself (a photo, and the holes no frame saw) fills them like `background`.
PLATE_FILL = "plate"
FILL_CHOICES = (*FILL_METHODS, PLATE_FILL)
BAND_PIXELS = 1 << 21  # pixels warped at once; bounds peak memory (about 100 bytes per pixel)


@dataclass
class SynthesizedView:
    """One synthesised eye and what its warp left: the plate fill (video/plate.py) needs all three."""

    image: np.ndarray  # HxWxC float32 in [0, 1], holes filled by the engine's fill
    holes: np.ndarray  # HxW bool, True in disocclusions
    nearness: np.ndarray  # HxW float32, nearness of the winning sample, 0 in holes


@dataclass
class WarpResult:
    image: torch.Tensor  # CxHxW, holes hold zeros
    valid: torch.Tensor  # HxW bool, False in disocclusions
    nearness: torch.Tensor  # HxW nearness of the winning sample, 0 in holes


def forward_warp(
    image: torch.Tensor, shift: torch.Tensor, nearness: torch.Tensor, max_stretch: float = 2.0
) -> WarpResult:
    """Move each pixel (x, y) of `image` (CxHxW) to (x - shift, y), nearest wins."""
    channels, height, width = image.shape
    device = image.device
    shift = shift.to(device=device, dtype=torch.float32)
    nearness = nearness.to(device=device, dtype=torch.float32)
    xs = torch.arange(width, device=device, dtype=torch.float32).expand(height, width)
    target = xs - shift

    # Candidate k = 0: every source pixel lands on its nearest target pixel (point sample).
    point_target = torch.round(target)
    point_source = point_target + shift
    targets, sources, nears = [point_target], [point_source], [nearness]
    oks = [(point_source >= 0) & (point_source <= width - 1)]

    # Candidates k >= 1: target pixels covered by the span from x to x+1 (the last column has
    # no right neighbour; it is padded with an invalid span).
    pad = lambda t, value: torch.nn.functional.pad(t, (0, 1), value=value)
    start, end = target, pad(target[:, 1:], -math.inf)
    near_end = pad(nearness[:, 1:], 0.0)
    length = end - start
    forward = (length > 0) & (length <= max_stretch)
    safe_length = torch.where(forward, length, torch.ones_like(length))
    first = torch.ceil(start)
    for step in range(int(math.ceil(max_stretch)) + 1):
        covered = first + step
        fraction = (covered - start) / safe_length
        targets.append(covered)
        sources.append(xs + fraction)
        nears.append(torch.lerp(nearness, near_end, fraction.clamp(0, 1)))
        oks.append(forward & (covered <= end))

    target_all = torch.stack(targets)
    ok = torch.stack(oks) & (target_all >= 0) & (target_all <= width - 1)
    # Rejected candidates go to a spare slot past the end instead of being filtered out
    # (boolean indexing would dominate the run time).
    rows = torch.arange(height, device=device).view(1, height, 1) * width
    spare = height * width
    flat = torch.where(ok, rows + target_all.clamp(0, width - 1).long(), spare).reshape(-1)
    near_all = torch.where(ok, torch.stack(nears), -math.inf).reshape(-1)

    zbuffer = torch.full((spare + 1,), -math.inf, device=device)
    zbuffer.scatter_reduce_(0, flat, near_all, reduce="amax")
    winner = ok.reshape(-1) & (near_all >= zbuffer[flat])
    source_x = torch.full((spare + 1,), -math.inf, device=device)
    source_x.scatter_reduce_(0, flat, torch.where(winner, torch.stack(sources).reshape(-1), -math.inf), reduce="amax")
    zbuffer, source_x = zbuffer[:spare].reshape(height, width), source_x[:spare].reshape(height, width)

    valid = torch.isfinite(zbuffer)
    winner_near = torch.where(valid, zbuffer, torch.zeros_like(zbuffer))
    source_x = torch.where(valid, source_x, torch.zeros_like(source_x))
    edge = (shift[:, 1:] - shift[:, :-1]).abs() > max(max_stretch - 1.0, 0.0)
    warped = _sample_rows(image, source_x.clamp(0, width - 1), nearness, winner_near, edge) * valid
    return WarpResult(image=warped, valid=valid, nearness=winner_near)


def _sample_rows(
    image: torch.Tensor, source_x: torch.Tensor, nearness: torch.Tensor, want: torch.Tensor, edge: torch.Tensor
) -> torch.Tensor:
    """Linear interpolation of each row of `image` (CxHxW) at fractional columns `source_x` (HxW).

    Across a depth edge (`edge[y, x]`: columns x and x+1 belong to different surfaces) blending
    would mix foreground and background colours, so the neighbour whose nearness is closest to
    the winning sample's (`want`) is taken alone.
    """
    width = image.shape[2]
    left = source_x.floor().clamp(0, width - 1).long()
    right = (left + 1).clamp(max=width - 1)
    weight = source_x - left
    across = torch.gather(edge, 1, left.clamp(max=width - 2)) if width > 1 else torch.zeros_like(weight, dtype=torch.bool)
    closer_right = (torch.gather(nearness, 1, right) - want).abs() < (torch.gather(nearness, 1, left) - want).abs()
    weight = torch.where(across, closer_right.float(), weight).unsqueeze(0)
    return _gather_columns(image, left) * (1 - weight) + _gather_columns(image, right) * weight


def _nearest_valid(valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel, the column of the nearest valid pixel to its left and to its right (-1 / W if none)."""
    height, width = valid.shape
    cols = torch.arange(width, device=valid.device).expand(height, width)
    left = torch.where(valid, cols, torch.full_like(cols, -1)).cummax(dim=1).values
    flipped = torch.where(valid, cols, torch.full_like(cols, width)).flip(1)
    right = (-(-flipped).cummax(dim=1).values).flip(1)
    return left, right


def fill_holes(result: WarpResult, method: str) -> torch.Tensor:
    """Fill the disocclusions of a warp. Returns CxHxW."""
    if method not in FILL_METHODS:
        raise SbsError(f"unknown fill method '{method}' (choose from {', '.join(FILL_METHODS)})")
    image, valid = result.image, result.valid
    if method == "blank" or bool(valid.all()) or not bool(valid.any()):
        return image
    if method == "inpaint":
        filled = _inpaint(image, valid)
    else:
        filled = _fill_along_rows(result, method)
    return torch.where(valid.unsqueeze(0), image, filled)


def _fill_along_rows(result: WarpResult, method: str) -> torch.Tensor:
    """`stretch` and `background` fills, from the nearest valid pixels left and right of each hole."""
    image, valid = result.image, result.valid
    width = valid.shape[1]
    left, right = _nearest_valid(valid)
    has_left, has_right = left >= 0, right < width
    left_c, right_c = left.clamp(0, width - 1), right.clamp(0, width - 1)
    left_colour, right_colour = _gather_columns(image, left_c), _gather_columns(image, right_c)
    if method == "stretch":
        span = (right_c - left_c).clamp(min=1).float()
        weight = ((torch.arange(width, device=valid.device) - left_c).float() / span).clamp(0, 1)
        weight = torch.where(has_left, torch.where(has_right, weight, 0.0), 1.0).unsqueeze(0)
        filled = left_colour * (1 - weight) + right_colour * weight
    else:  # background: copy the farther of the two sides across the hole
        near_left = torch.gather(result.nearness, 1, left_c)
        near_right = torch.gather(result.nearness, 1, right_c)
        use_right = (has_right & (~has_left | (near_right < near_left))).unsqueeze(0)
        filled = torch.where(use_right, right_colour, left_colour)
    return filled


def _gather_columns(image: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """image[c, y, columns[y, x]] for every channel c (image CxHxW, columns HxW long)."""
    return torch.gather(image, 2, columns.unsqueeze(0).expand(image.shape[0], -1, -1))


def _inpaint(image: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """OpenCV Telea inpainting, channel by channel at 16 bits so 16-bit input keeps its precision.

    (Telea on float32 planes overshoots far outside the input range; integer planes saturate. Its
    gradient term still steps a little past the values around a hole, so each plane is held to the
    range of its visible pixels: a fill never brighter or darker than anything the eye sees.)
    """
    mask = (~valid).to(torch.uint8).cpu().numpy()
    planes = np.round(image.detach().clamp(0, 1).cpu().numpy() * 65535).astype(np.uint16)
    seen = mask == 0
    filled = []
    for plane in planes:
        lowest, highest = (plane[seen].min(), plane[seen].max()) if seen.any() else (0, 65535)
        filled.append(np.clip(cv2.inpaint(plane, mask, 3, cv2.INPAINT_TELEA), lowest, highest))
    filled = np.stack(filled)
    return torch.from_numpy(filled.astype(np.float32) / 65535).to(image.device)


class WarpEngine:
    """Forward warp plus hole filling; runs on whichever torch device it is given."""

    name = "warp"

    def __init__(
        self,
        fill: str = "background",
        device: torch.device | str = "cpu",
        max_stretch: float = 2.0,
        band_pixels: int = BAND_PIXELS,
        compiled: bool | None = None,
    ):
        if fill not in FILL_CHOICES:
            raise SbsError(f"unknown fill method '{fill}' (choose from {', '.join(FILL_CHOICES)})")
        self.fill = fill
        self.hole_fill = "background" if fill == PLATE_FILL else fill  # what the engine does in every hole
        self.device = torch.device(device)
        self.max_stretch = max_stretch
        self.band_pixels = band_pixels
        # The compiled CPU kernel (warp_kernel.py) or the torch ops; default: compiled on the CPU.
        self.compiled = self.device.type == "cpu" if compiled is None else compiled

    def synthesize(self, image: torch.Tensor, shift: torch.Tensor, nearness: torch.Tensor) -> torch.Tensor:
        return self.synthesize_with_holes(image, shift, nearness)[0]

    def synthesize_with_holes(
        self, image: torch.Tensor, shift: torch.Tensor, nearness: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The filled view (CxHxW) and where the warp left holes (HxW bool, True in disocclusions)."""
        return self._synthesize_layers(image, shift, nearness)[:2]

    def _synthesize_layers(
        self, image: torch.Tensor, shift: torch.Tensor, nearness: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """synthesize_with_holes() and the winning samples' nearness (HxW, 0 in holes)."""
        # On the CPU a compiled kernel does the warp and the row-wise fills (same output, several
        # times faster). Elsewhere: rows warp independently (the shift is horizontal), so bands of
        # rows give the same result while the candidate buffers (several times the image) stay
        # small for any image size. Row-wise fills run per band too; inpainting needs the whole picture.
        if self.compiled:
            warped, valid, near = self._warp_compiled(image.cpu().numpy(), shift.cpu().numpy(), nearness.cpu().numpy())
            to_device = lambda array: torch.from_numpy(array).to(image.device)
            return to_device(warped), to_device(~valid), to_device(near)
        rows = max(1, self.band_pixels // image.shape[2])
        whole_picture_fill = self.hole_fill == "inpaint"
        bands, valid, nears = [], [], []
        for top in range(0, image.shape[1], rows):
            band = forward_warp(image[:, top : top + rows], shift[top : top + rows], nearness[top : top + rows], self.max_stretch)
            valid.append(band.valid)
            nears.append(band.nearness)
            bands.append(band if whole_picture_fill else fill_holes(band, self.hole_fill))
        holes, near = ~torch.cat(valid), torch.cat(nears)
        if not whole_picture_fill:
            return torch.cat(bands, dim=1), holes, near
        result = WarpResult(image=torch.cat([band.image for band in bands], dim=1), valid=~holes, nearness=near)
        return fill_holes(result, self.hole_fill), holes, near

    def _warp_compiled(
        self, image: np.ndarray, shift: np.ndarray, nearness: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """_synthesize_layers() with the compiled kernel, on arrays: the filled view (CxHxW), where
        the warp landed (HxW bool, False in disocclusions) and the winning nearness."""
        from sbsconvert.engines.warp_kernel import warp_and_fill  # numba loads only when needed

        warped, valid, winner_near = warp_and_fill(image, shift, nearness, self.max_stretch, self.hole_fill)
        if self.hole_fill != "inpaint":
            return warped, valid, winner_near
        result = WarpResult(torch.from_numpy(warped), torch.from_numpy(valid), torch.from_numpy(winner_near))
        return fill_holes(result, self.hole_fill).numpy(), valid, winner_near

    def render(self, request: StereoRequest) -> StereoPair:
        views = [view.image for view in self.synthesize_views(request)]
        return StereoPair(left=request.image, right=views[0]) if request.eye == "right" else StereoPair(*views)

    def synthesize_views(self, request: StereoRequest) -> list[SynthesizedView]:
        """The eyes the request asks for, each with its holes: [right] (eye "right"), [left, right] (eye "both")."""
        if self.compiled:
            # numpy throughout: no torch op, so no OpenMP threads waiting on cores a video's
            # decoder and encoder keep busy.
            image = np.asarray(request.image, dtype=np.float32).transpose(2, 0, 1)
            shift = np.asarray(request.shift, dtype=np.float32)
            layers = lambda shift: self._warp_compiled(image, shift, request.nearness)
            to_array = lambda warped: np.ascontiguousarray(np.clip(warped.transpose(1, 2, 0), 0, 1))
            view = lambda warped, valid, near: SynthesizedView(to_array(warped), ~valid, near)
        else:
            to_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(self.device)
            image = to_tensor(request.image).permute(2, 0, 1).float()
            shift, nearness = to_tensor(request.shift), to_tensor(request.nearness)
            layers = lambda shift: self._synthesize_layers(image, shift, nearness)
            view = lambda warped, holes, near: SynthesizedView(
                warped.clamp(0, 1).permute(1, 2, 0).cpu().numpy(), holes.cpu().numpy(), near.cpu().numpy())
        if request.eye == "right":
            return [view(*layers(shift))]
        half = shift / 2
        return [view(*layers(-half)), view(*layers(half))]
