"""A synthetic stereo scene with exact ground truth: textured layers at known disparities.

Each layer is defined in left-view coordinates by a mask, a per-row disparity (pixels) and a
smooth texture. The left view shows, at every pixel, the nearest layer covering it; the right
pixel (x, y) sees the nearest layer whose mask covers (x + d, y) in the left view. A right pixel
is *non-occluded* when the left pixels on both sides of that point show the same surface, so it
can be predicted from the left view's pixels alone; the rest are disocclusions (or beyond the left image's border).
Textures are band-limited so sub-pixel sampling of the left view is accurate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

Texture = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (x, y) float grids -> HxWx3


@dataclass
class Layer:
    mask: Callable[[np.ndarray, np.ndarray], np.ndarray]  # left-view coords -> bool
    disparity: Callable[[np.ndarray], np.ndarray]  # row index grid -> pixels
    texture: Texture


@dataclass
class StereoScene:
    left: np.ndarray  # HxWx3 float32
    right: np.ndarray  # HxWx3 float32, the true right view
    disparity: np.ndarray  # HxW float32 pixels, left view
    right_disparity: np.ndarray  # HxW float32 pixels, right view
    non_occluded: np.ndarray  # HxW bool, right-view pixels predictable from the left view


def smooth_texture(seed: int, base: tuple[float, float, float], period: float) -> Texture:
    rng = np.random.default_rng(seed)
    waves = [
        (rng.uniform(0, 2 * np.pi), rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.04, 0.12, size=3))
        for _ in range(4)
    ]

    def texture(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        colour = np.broadcast_to(np.asarray(base, dtype=np.float64), x.shape + (3,)).copy()
        for phase, fx, fy, amplitude in waves:
            norm = np.hypot(fx, fy) + 1e-9
            wave = np.sin(2 * np.pi * (fx * x + fy * y) / (norm * period) + phase)
            colour += wave[..., None] * amplitude
        return np.clip(colour, 0.0, 1.0)

    return texture


def default_layers(width: int, height: int) -> list[Layer]:
    """Far wall, a receding floor, a box and a disc in front of the box (they overlap)."""
    unit = width / 320.0  # disparities scale with the image so the scene looks the same at any size
    horizon = 0.62 * height
    constant = lambda value: (lambda rows: np.full_like(rows, value, dtype=np.float64))
    floor_disparity = lambda rows: 3 * unit + 9 * unit * np.clip((rows - horizon) / (height - horizon), 0, 1)
    return [
        Layer(lambda x, y: np.ones_like(x, dtype=bool), constant(round(2 * unit)), smooth_texture(1, (0.55, 0.6, 0.7), 23)),
        Layer(lambda x, y: y >= horizon, floor_disparity, smooth_texture(2, (0.5, 0.42, 0.3), 17)),
        Layer(
            lambda x, y: (abs(x - 0.36 * width) < 0.14 * width) & (abs(y - 0.45 * height) < 0.22 * height),
            constant(round(10 * unit)),
            smooth_texture(3, (0.75, 0.35, 0.3), 13),
        ),
        Layer(
            lambda x, y: (x - 0.5 * width) ** 2 + (y - 0.55 * height) ** 2 < (0.13 * width) ** 2,
            constant(round(20 * unit)),
            smooth_texture(4, (0.3, 0.65, 0.35), 11),
        ),
    ]


def _visible(layers: list[Layer], x_left: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query, the index and disparity of the nearest layer covering it (left coords)."""
    best = np.full(x_left.shape, -1, dtype=np.int64)
    best_d = np.full(x_left.shape, -np.inf)
    for index, layer in enumerate(layers):
        d = layer.disparity(y)
        hit = layer.mask(x_left, y) & (d > best_d)
        best = np.where(hit, index, best)
        best_d = np.where(hit, d, best_d)
    return best, best_d


def render_scene(width: int = 320, height: int = 240, layers: list[Layer] | None = None) -> StereoScene:
    layers = layers if layers is not None else default_layers(width, height)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    left_index, left_d = _visible(layers, x, y)
    left = _shade(layers, left_index, x, y)

    # Right pixel x sees, for layer i, the point x + d_i in left coordinates; nearest wins.
    right_index = np.full(x.shape, -1, dtype=np.int64)
    right_d = np.full(x.shape, -np.inf)
    for index, layer in enumerate(layers):
        d = layer.disparity(y)
        hit = layer.mask(x + d, y) & (d > right_d)
        right_index = np.where(hit, index, right_index)
        right_d = np.where(hit, d, right_d)
    source_x = x + right_d
    right = _shade(layers, right_index, source_x, y)

    # Predictable = the left pixels on both sides of the source point show the same surface.
    inside = source_x <= width - 1
    seen_before, _ = _visible(layers, np.floor(source_x), y)
    seen_after, _ = _visible(layers, np.ceil(source_x), y)
    non_occluded = inside & (seen_before == right_index) & (seen_after == right_index)
    return StereoScene(
        left=left.astype(np.float32),
        right=right.astype(np.float32),
        disparity=left_d.astype(np.float32),
        right_disparity=right_d.astype(np.float32),
        non_occluded=non_occluded,
    )


def _shade(layers: list[Layer], index: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    image = np.zeros(x.shape + (3,))
    for number, layer in enumerate(layers):
        where = index == number
        if where.any():
            image[where] = layer.texture(x[where], y[where])
    return image



def video_layers(width: int, height: int, frame: int, *, walk: float = 0.0, pan: float = 0.0) -> list[Layer]:
    """Frame `frame` of a video of a textured far wall, a pillar and a near box: the box walks
    `walk` pixels per frame to the right over the still scene, and the camera travels sideways so
    that the wall moves `pan` pixels per frame to the left and nearer layers faster, in proportion
    to their disparity (parallax: the pillar and the box uncover the wall behind them)."""
    unit = width / 320.0
    wall, pillar, box = max(1, round(2 * unit)), round(9 * unit), round(16 * unit)
    offset = lambda disparity: pan * frame * disparity / wall  # view x + offset = the scene's x
    constant = lambda value: (lambda rows: np.full_like(rows, value, dtype=np.float64))
    box_left = 0.2 * width + walk * frame - offset(box)
    wall_texture, pillar_texture, box_texture = (smooth_texture(seed, base, period) for seed, base, period in (
        (5, (0.5, 0.55, 0.6), 19), (6, (0.6, 0.5, 0.35), 13), (7, (0.7, 0.3, 0.3), 11)))
    return [
        Layer(lambda x, y: np.ones_like(x, dtype=bool), constant(wall), lambda x, y: wall_texture(x + offset(wall), y)),
        Layer(lambda x, y: abs(x + offset(pillar) - 0.7 * width) < 0.04 * width, constant(pillar),
              lambda x, y: pillar_texture(x + offset(pillar), y)),
        Layer(lambda x, y: (x - box_left >= 0) & (x - box_left < 0.2 * width) & (abs(y - 0.5 * height) < 0.25 * height),
              constant(box), lambda x, y: box_texture(x - box_left, y)),
    ]


def render_video(width: int, height: int, frames: int, *, walk: float = 0.0, pan: float = 0.0) -> list[StereoScene]:
    """The frames of video_layers' video, each with its exact right view and disparity."""
    return [render_scene(width, height, video_layers(width, height, frame, walk=walk, pan=pan)) for frame in range(frames)]
