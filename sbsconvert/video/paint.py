"""Diffusion only where no frame saw (`--engine diffusion` on videos, `--video-paint keyframes`).

The background plate (video/plate.py) fills a frame's holes with what the shot's other frames
really saw. What it leaves is painted by the diffusion engine, but not on every frame:

- A keyframe is a frame whose unpainted holes (left by the plate and by the paint carried so far)
  cover more than `repaint_area` of the frame. It is diffused once (DiffusionEngine.paint_holes,
  through the shot's cross-frame attention anchor), and its painting goes into a paint layer: the
  paint of every hole of that frame, kept where the layer had none (earlier paint stays as it was,
  so painted regions do not change from one keyframe to the next).
- Every later frame of the shot takes the layer's paint for the holes the plate leaves, aligned
  by the camera motion the plate measured (a still camera: copied, not resampled; the layer is
  resampled once per keyframe, when it is brought into that keyframe's coordinates).
- Thin new holes: where a hole grows by a sliver beside pixels the plate or the layer filled (its
  edge moves a little from frame to frame), the sliver continues them: each of its pixels takes
  the colour of the nearest filled hole pixel within EXTEND_PIXELS. Slivers do not make keyframes.
- Other holes neither the plate nor the layer covers, where they are too few for a keyframe, keep
  the engine's own fill (`background`).

A frame with nothing new to paint therefore costs no UNet call. The layer is dropped at a scene
cut. A frame whose camera motion could not be measured (too dark or flat to track: a fade, a night
sky; or blurred) keeps the layer where it was, as for a still camera: dropping it would repaint
every such frame, each painting differing from the last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import cv2
import numpy as np

from sbsconvert.choices import DEFAULT_REPAINT_AREA
from sbsconvert.engines.base import StereoRequest
from sbsconvert.engines.warp import SynthesizedView
from sbsconvert.video.plate import PlateCounts, PlateFrame, is_still, sample_view

EXTEND_PIXELS = 4  # a new hole pixel this close to a filled one continues it (no keyframe for slivers)
PaintFrame = Callable[[StereoRequest, int], list[np.ndarray]]  # (request, shot) -> per eye, the painted holes


@dataclass
class _Layer:
    """Paint carried forward for one eye, in the pixel coordinates of the last keyframe."""

    colour: np.ndarray  # HxWxC
    painted: np.ndarray  # HxW bool

    def as_view(self) -> SynthesizedView:
        """The layer as a view the plate's sampler reads (painted pixels are its landed ones)."""
        return SynthesizedView(self.colour, ~self.painted, np.zeros(self.painted.shape, np.float32))


class KeyframePainter:
    """The plate's painter (video/plate.py Painter) for the diffusion engine: paints on keyframes
    and carries the paint to the frames after them."""

    def __init__(self, paint: PaintFrame, counts: PlateCounts, repaint_area: float = DEFAULT_REPAINT_AREA):
        self.paint = paint
        self.counts = counts
        self.repaint_area = repaint_area
        self.keyframes = 0
        self._shot: int | None = None
        self._layers: list[_Layer] | None = None
        self._to_layer: np.ndarray | None = None  # 3x3: this frame's pixel coordinates -> the layer's (None: the same)

    def __call__(self, frame: PlateFrame[Any], unfilled: list[np.ndarray], with_plate: list[np.ndarray]
                 ) -> list[np.ndarray]:
        """See plate.Painter; `with_plate`: each eye's image with the plate's pixels put in."""
        shot_begins = self._follow(frame)
        carried = [self._carried(eye, mask) for eye, mask in enumerate(unfilled)]
        images, new = [], []
        for view, mask, (got, colour), plate_image in zip(frame.views, unfilled, carried, with_plate):
            image = view.image.copy()
            image[got] = colour
            fresh = mask & ~got
            # Slivers continue the hole pixels the plate or the layer filled.
            filled = plate_image.copy()
            filled[got] = colour
            sliver = _nearest_within(view.holes & ~fresh, fresh, EXTEND_PIXELS)
            image[fresh] = np.where(sliver.found[:, None], filled[sliver.ys, sliver.xs], image[fresh])
            self.counts.carried += int(got.sum())
            self.counts.extended += int(sliver.found.sum())
            fresh[fresh] = ~sliver.found
            images.append(image)
            new.append(fresh)
        new_pixels = sum(int(mask.sum()) for mask in new)
        height, width = unfilled[0].shape
        # A shot's first frame is always one: it records the shot's attention anchor, as a segment
        # beginning mid-shot records it from that frame (pipeline.ShotRenderer.prime).
        keyframe = shot_begins or new_pixels > self.repaint_area * height * width * len(unfilled)
        if not keyframe:
            self.counts.fallback += new_pixels
            return images
        self.keyframes += 1
        self.counts.painted += new_pixels
        fills = self.paint(frame.request, frame.shot)
        for image, fresh, fill in zip(images, new, fills):
            image[fresh] = fill[fresh]
        self._keep(frame, fills)
        return images

    def _follow(self, frame: PlateFrame[Any]) -> bool:
        """Bring the layer's alignment up to `frame` (drop it at a cut; an unknown motion moves it
        not at all); whether `frame` begins a shot (or a segment: the first frame seen)."""
        if frame.shot != self._shot:
            self._shot, self._layers, self._to_layer = frame.shot, None, None
            return True
        move = frame.to_previous
        if self._layers is not None and move is not None and not is_still(move, *frame.request.image.shape[1::-1]):
            self._to_layer = move if self._to_layer is None else self._to_layer @ move
        return False

    def _carried(self, eye: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(HxW bool, its pixels' colours): the pixels of `mask` the layer has paint for."""
        got = np.zeros(mask.shape, bool)
        if self._layers is None or not mask.any():
            return got, np.zeros((0, 3), np.float32)  # paint is RGB (DiffusionEngine.paint_holes)
        ys, xs = np.nonzero(mask)
        colour, painted, _ = sample_view(self._layers[eye].as_view(), xs, ys, self._to_layer)
        got[ys[painted], xs[painted]] = True
        return got, colour[painted]

    def _keep(self, frame: PlateFrame[Any], fills: list[np.ndarray]) -> None:
        """Make `frame` the layer's keyframe: the paint so far brought to its coordinates, and its
        own painting of every hole where there was none."""
        layers = []
        for eye, (view, fill) in enumerate(zip(frame.views, fills)):
            if self._layers is None:
                colour, painted = np.zeros_like(fill), np.zeros(view.holes.shape, bool)
            elif self._to_layer is None:
                colour, painted = self._layers[eye].colour.copy(), self._layers[eye].painted.copy()
            else:
                height, width = view.holes.shape
                ys, xs = (axis.ravel() for axis in np.indices((height, width)))
                values, landed, _ = sample_view(self._layers[eye].as_view(), xs, ys, self._to_layer)
                colour, painted = values.reshape(height, width, -1), landed.reshape(height, width)
            add = view.holes & ~painted
            colour[add] = fill[add]
            layers.append(_Layer(colour, painted | add))
        self._layers, self._to_layer = layers, None


@dataclass
class _Nearest:
    """For the pixels of a mask, in order: whether a source pixel lies within reach, and where the
    nearest one is (ys, xs; meaningless where not found)."""

    found: np.ndarray
    ys: np.ndarray
    xs: np.ndarray


def _nearest_within(sources: np.ndarray, targets: np.ndarray, reach: float) -> _Nearest:
    """The nearest `sources` pixel (HxW bool) of each `targets` pixel, if within `reach` pixels."""
    count = int(targets.sum())
    if count == 0 or not sources.any():
        empty = np.zeros(count, np.intp)
        return _Nearest(np.zeros(count, bool), empty, empty)
    # With DIST_LABEL_PIXEL every zero (source) pixel is labelled 1.. in raster order, as np.nonzero lists them.
    distance, labels = cv2.distanceTransformWithLabels(np.where(sources, 0, 1).astype(np.uint8), cv2.DIST_L2, 3,
                                                       labelType=cv2.DIST_LABEL_PIXEL)
    source_ys, source_xs = np.nonzero(sources)
    nearest = labels[targets] - 1
    return _Nearest(distance[targets] <= reach, source_ys[nearest], source_xs[nearest])
