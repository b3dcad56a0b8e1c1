"""The forward warp of warp.py, with its row-wise fills, compiled (numba) for the CPU.

warp.py's torch version builds a dozen candidate tensors several times the image and scatters
them through a z-buffer: right for a GPU, but on a CPU it spends its time writing and re-reading
memory. Here each row is one pass over its pixels with a row-sized z-buffer (one thread: a
video runs it beside the decoder and encoder, which take the other cores), and the arithmetic is the torch version's, operation by operation, in float32 (so the
output is the same to the last bit; tests/test_warp.py compares the two).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numba
import numpy as np

FILL_CODES = {"blank": 0, "inpaint": 0, "background": 1, "stretch": 2}  # inpaint runs afterwards, on the whole picture

_F0, _F1 = np.float32(0.0), np.float32(1.0)


def _compiled(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """numba.njit, the machine code cached on disk (compiling costs seconds) where numba finds a
    writable folder: beside this file, or the user's cache folder. A read-only install run by a
    user without a writable home has neither (numba refuses to cache): it compiles once per process."""
    def decorate(function: Callable[..., Any]) -> Any:
        try:
            return numba.njit(cache=True, **options)(function)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return numba.njit(**options)(function)

    return decorate


def warp_and_fill(image: np.ndarray, shift: np.ndarray, nearness: np.ndarray, max_stretch: float, fill: str
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image warped and, for row-wise fills, filled (CxHxW), valid mask, winning nearness)."""
    channels, height, width = image.shape
    # Written channel-last (as views are held) and handed back as a CxHxW view of that memory.
    out = np.empty((height, width, channels), dtype=np.float32).transpose(2, 0, 1)
    valid = np.empty((height, width), dtype=np.bool_)
    winner_near = np.empty((height, width), dtype=np.float32)
    as_float = lambda array: np.asarray(array, dtype=np.float32)
    warp_rows(as_float(image), as_float(shift), as_float(nearness), float(max_stretch), FILL_CODES[fill], out, valid,
              winner_near)
    return out, valid, winner_near


@_compiled(inline="always")
def _lerp(start, end, weight):  # noqa: ANN001, ANN202 - numba types them
    """torch.lerp's formula on the CPU: start + weight * (end - start) for weights below one half,
    end - (end - start) * (1 - weight) above, each product fused with its sum (one rounding)."""
    difference = end - start
    if abs(weight) < np.float32(0.5):
        return np.float32(np.float64(weight) * np.float64(difference) + np.float64(start))
    return np.float32(np.float64(weight - _F1) * np.float64(difference) + np.float64(end))


@_compiled(nogil=True)  # releases the GIL: the decoder and encoder threads run meanwhile
def warp_rows(image, shift, nearness, max_stretch, fill, out, valid, winner_near):  # noqa: ANN001, ANN201
    """Warp `image` (CxHxW float32) by `shift` (HxW), nearest wins, writing the warped (and, with
    `fill` 1 = background or 2 = stretch, filled) image to `out`, the valid mask to `valid` and
    the winning nearness to `winner_near`."""
    channels, height, width = image.shape
    stretch = np.float32(max_stretch)
    edge_limit = np.float32(max(max_stretch - 1.0, 0.0))
    steps = int(math.ceil(max_stretch)) + 1
    last = np.float32(width - 1)
    for y in range(height):
        zbuffer = np.full(width, -np.inf, dtype=np.float32)
        source_x = np.full(width, -np.inf, dtype=np.float32)
        for x in range(width):
            xf = np.float32(x)
            target = xf - shift[y, x]
            near = nearness[y, x]
            # Candidate 0: the sample's nearest target pixel.
            point = np.rint(target)
            source = point + shift[y, x]
            if source >= 0 and source <= last and point >= 0 and point <= last:
                _offer(zbuffer, source_x, int(point), near, source)
            # Candidates 1...: target pixels covered by the span to the next sample.
            if x == width - 1:
                continue
            end = np.float32(x + 1) - shift[y, x + 1]
            length = end - target
            if not (length > 0 and length <= stretch):
                continue
            first = np.ceil(target)
            near_end = nearness[y, x + 1]
            for step in range(steps):
                covered = first + np.float32(step)
                if covered > end or covered > last:
                    break  # covered only grows
                if covered < 0:
                    continue
                fraction = (covered - target) / length
                weight = min(max(fraction, _F0), _F1)
                _offer(zbuffer, source_x, int(covered), _lerp(near, near_end, weight), xf + fraction)
        for x in range(width):
            # Linear interpolation at the winning source column, taking the neighbour whose
            # nearness matches alone across a depth edge (warp.py's _sample_rows). Written out
            # here: as a function taking the arrays it cost 40 % of the kernel's time.
            keep = zbuffer[x] > -np.inf
            want = zbuffer[x] if keep else _F0
            valid[y, x], winner_near[y, x] = keep, want
            source = min(max(source_x[x] if keep else _F0, _F0), last)
            left = min(max(int(np.floor(source)), 0), width - 1)
            right = min(left + 1, width - 1)
            weight = source - np.float32(left)
            if width > 1:
                column = min(left, width - 2)
                if abs(shift[y, column + 1] - shift[y, column]) > edge_limit:
                    closer_right = abs(nearness[y, right] - want) < abs(nearness[y, left] - want)
                    weight = _F1 if closer_right else _F0
            mask = _F1 if keep else _F0
            for c in range(channels):
                out[c, y, x] = (image[c, y, left] * (_F1 - weight) + image[c, y, right] * weight) * mask
        if fill == 1:
            _fill_background(out, valid, winner_near, y)
        elif fill == 2:
            _fill_stretch(out, valid, y)


@_compiled(inline="always")
def _offer(zbuffer, source_x, target, near, source):  # noqa: ANN001, ANN202
    """The nearest candidate wins a pixel; among equally near ones, the largest source column."""
    if near > zbuffer[target]:
        zbuffer[target], source_x[target] = near, source
    elif near == zbuffer[target]:
        source_x[target] = max(source_x[target], source)


@_compiled()
def _nearest_valid_row(valid, y):  # noqa: ANN001, ANN202
    width = valid.shape[1]
    left = np.empty(width, dtype=np.int64)
    right = np.empty(width, dtype=np.int64)
    seen = -1
    for x in range(width):
        if valid[y, x]:
            seen = x
        left[x] = seen
    seen = width
    for x in range(width - 1, -1, -1):
        if valid[y, x]:
            seen = x
        right[x] = seen
    return left, right


@_compiled()
def _fill_background(out, valid, nearness, y):  # noqa: ANN001, ANN202
    """Each hole pixel takes the farther of the nearest valid pixels left and right of it."""
    width = valid.shape[1]
    left, right = _nearest_valid_row(valid, y)
    for x in range(width):
        if valid[y, x]:
            continue
        has_left, has_right = left[x] >= 0, right[x] < width
        left_c, right_c = max(left[x], 0), min(right[x], width - 1)
        use_right = has_right and (not has_left or nearness[y, right_c] < nearness[y, left_c])
        column = right_c if use_right else left_c
        for c in range(out.shape[0]):
            out[c, y, x] = out[c, y, column]


@_compiled()
def _fill_stretch(out, valid, y):  # noqa: ANN001, ANN202
    """Each hole pixel interpolates linearly between the nearest valid pixels left and right of it."""
    width = valid.shape[1]
    left, right = _nearest_valid_row(valid, y)
    for x in range(width):
        if valid[y, x]:
            continue
        has_left, has_right = left[x] >= 0, right[x] < width
        left_c, right_c = max(left[x], 0), min(right[x], width - 1)
        span = np.float32(max(right_c - left_c, 1))
        weight = min(max(np.float32(x - left_c) / span, _F0), _F1)
        if not has_left:
            weight = _F1
        elif not has_right:
            weight = _F0
        for c in range(out.shape[0]):
            out[c, y, x] = out[c, y, left_c] * (_F1 - weight) + out[c, y, right_c] * weight


@_compiled(nogil=True)
def hole_backgrounds(valid, nearness):  # noqa: ANN001, ANN201
    """Per hole pixel, the nearness of the side `_fill_background` copies: the farther of the nearest
    valid pixels left and right of it on its row (+inf where the row has none; 0 on valid pixels)."""
    height, width = valid.shape
    out = np.zeros((height, width), dtype=np.float32)
    for y in range(height):
        left, right = _nearest_valid_row(valid, y)
        for x in range(width):
            if valid[y, x]:
                continue
            far = np.float32(np.inf)
            if left[x] >= 0:
                far = min(far, nearness[y, left[x]])
            if right[x] < width:
                far = min(far, nearness[y, right[x]])
            out[y, x] = far
    return out
