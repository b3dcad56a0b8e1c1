"""Arrange a stereo pair into the frame layouts headsets and viewers expect."""

from __future__ import annotations

import cv2
import numpy as np

from sbsconvert.choices import LAYOUTS, PACKED_LAYOUTS, RGBD_LAYOUTS, Layout
from sbsconvert.errors import SbsError

# Dubois least-squares red-cyan matrices (rows: output R, G, B; applied to linear RGB).
DUBOIS_LEFT = np.array(
    [[0.456, 0.500, 0.176], [-0.040, -0.038, -0.016], [-0.015, -0.021, -0.005]], dtype=np.float32
)
DUBOIS_RIGHT = np.array(
    [[-0.043, -0.088, -0.002], [0.378, 0.734, -0.018], [-0.072, -0.113, 1.226]], dtype=np.float32
)


def get_layout(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise SbsError(f"unknown format '{name}' (choose from {', '.join(LAYOUTS)})") from None


def compose(left: np.ndarray, right: np.ndarray, layout_name: str) -> list[np.ndarray]:
    """Arrange HxWxC views; returns one frame, or two (left, right) for `lr-pair`, `mpo` and `spatial`."""
    if left.shape != right.shape:
        raise ValueError(f"left {left.shape} and right {right.shape} views differ in size")
    name = get_layout(layout_name).name
    if name == "sbs":
        return [np.concatenate([left, right], axis=1)]
    if name == "crosseye":
        return [np.concatenate([right, left], axis=1)]
    if name == "tb":
        return [np.concatenate([left, right], axis=0)]
    if name == "hsbs":
        half = lambda view: _resize(view, _half(view.shape[1]), view.shape[0])
        return [np.concatenate([half(left), half(right)], axis=1)]
    if name == "htb":
        half = lambda view: _resize(view, view.shape[1], _half(view.shape[0]))
        return [np.concatenate([half(left), half(right)], axis=0)]
    if name == "anaglyph":
        return [anaglyph(left, right)]
    return [left, right]


def split(frame: np.ndarray, layout_name: str) -> tuple[np.ndarray, np.ndarray]:
    """The (left, right) eyes of a frame that packs both (the inverse of compose()); a half-width
    or half-height eye is stretched back to the frame's size, the shape it is shown at."""
    if layout_name not in PACKED_LAYOUTS:
        raise SbsError(f"unknown packed layout '{layout_name}' (choose from {', '.join(PACKED_LAYOUTS)})")
    height, width = frame.shape[:2]
    across = layout_name in ("sbs", "hsbs", "crosseye")
    if (width if across else height) % 2:
        side = "wide" if across else "high"
        raise SbsError(f"a {layout_name} frame holds two equal halves; this one is {width}x{height}, "
                       f"an odd number of pixels {side}")
    if across:
        first, second = frame[:, : width // 2], frame[:, width // 2 :]
    else:
        first, second = frame[: height // 2], frame[height // 2 :]
    if layout_name in ("hsbs", "htb"):
        first, second = (_stretch(half, width, height) for half in (first, second))
    left, right = (second, first) if layout_name == "crosseye" else (first, second)
    return np.ascontiguousarray(left), np.ascontiguousarray(right)


def split_rgbd(frame: np.ndarray, layout_name: str) -> tuple[np.ndarray, np.ndarray]:
    """The colour (left or top half) and grey depth (HxW, the other half) of an RGB+depth frame."""
    colour, depth = split(frame[..., :3], RGBD_LAYOUTS[layout_name])
    return colour, np.ascontiguousarray(depth.mean(axis=2))


def _stretch(view: np.ndarray, width: int, height: int) -> np.ndarray:
    """Enlarge a squeezed eye (bicubic, clipped back into range)."""
    stretched = cv2.resize(view, (width, height), interpolation=cv2.INTER_CUBIC)
    stretched = stretched if stretched.ndim == 3 else stretched[:, :, None]
    return np.clip(stretched, 0.0, 1.0)


# The anaglyph is mixed in bands of about this many pixels: its temporaries stay in the CPU cache and
# are reused, where whole-frame ones cost page faults and memory traffic (bench/RESULTS.md).
ANAGLYPH_BAND_PIXELS = 32_768
# sRGB's curve is a straight line below these knees (encoded, linear) and a power above them.
_ENCODED_KNEE = np.float32(0.04045)
_LINEAR_KNEE = np.float32(0.0031308)


def anaglyph(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Dubois red-cyan anaglyph; the mix is done in linear light as the matrices were fitted there."""
    height, width = left.shape[:2]
    mixed = np.empty((height, width, 3), dtype=np.float32)
    rows = max(1, ANAGLYPH_BAND_PIXELS // width)
    for top in range(0, height, rows):
        band = slice(top, top + rows)
        linear = cv2.transform(srgb_to_linear(left[band, :, :3]), DUBOIS_LEFT)
        linear += cv2.transform(srgb_to_linear(right[band, :, :3]), DUBOIS_RIGHT)
        np.clip(linear, 0.0, 1.0, out=linear)
        mixed[band] = linear_to_srgb(linear)
    return mixed


# Both curves are written without masks or branches (a masked select over a frame cost more than
# the powers): each piece is computed on every value, clamped so the other piece wins past the knee.
def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    linear = np.maximum(values, _ENCODED_KNEE)
    linear += np.float32(0.055)
    linear *= np.float32(1 / 1.055)
    np.power(linear, np.float32(2.4), out=linear)
    # Below the knee the power part is its value at the knee, which equals the line's there:
    # adding the line's (negative) distance from it gives the line.
    below = np.subtract(values, _ENCODED_KNEE)
    np.minimum(below, 0.0, out=below)
    below *= np.float32(1 / 12.92)
    linear += below
    return linear


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    encoded = np.maximum(values, _LINEAR_KNEE)
    np.power(encoded, np.float32(1 / 2.4), out=encoded)
    encoded *= np.float32(1.055)
    encoded -= np.float32(0.055)
    # Before the knee the clamped power part is its value at the knee, above the line; past it the
    # power curve is below the line: the smaller of the two is sRGB.
    return np.minimum(encoded, values * np.float32(12.92), out=encoded)


def _half(size: int) -> int:
    return max(1, size // 2)


def _resize(view: np.ndarray, width: int, height: int) -> np.ndarray:
    resized = cv2.resize(view, (width, height), interpolation=cv2.INTER_AREA)
    return resized if resized.ndim == 3 else resized[:, :, None]


def fit_width(view: np.ndarray, max_width: int | None) -> np.ndarray:
    """Downscale a view (keeping its aspect) so it is at most `max_width` wide."""
    height, width = view.shape[:2]
    if not max_width or width <= max_width:
        return view
    return _resize(view, max_width, max(1, round(height * max_width / width)))
