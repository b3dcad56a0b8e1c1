"""Temporal consistency for video: smooth each frame's disparity over time, reset at scene cuts,
and measure flicker.

A depth model estimates every frame on its own, and relative maps are renormalised per frame, so
a still scene's disparity jitters a little from frame to frame; the warp turns that jitter into
shimmering edges and holes. An exponential moving average damps it. Its price is lag: a moving
object's disparity trails by about (1 - weight) / weight frames, so the weight stays moderate, and
the average restarts at a scene cut, where the old depth would be plainly wrong.
"""

from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np

from sbsconvert.disparity import Disparity

DEFAULT_WEIGHT = 0.4  # share of the current frame's disparity in the average
DEFAULT_CUT_THRESHOLD = 0.12  # mean absolute change of the (grey, downscaled) frame that marks a cut
_PROBE_WIDTH = 64  # frames are compared at this width: cheap, and insensitive to noise and grain


def frame_change(previous: np.ndarray, current: np.ndarray) -> float:
    """Mean absolute change between two frames (HxWxC or HxW in [0, 1]), on downscaled grey copies."""
    return float(np.abs(_probe(previous) - _probe(current)).mean())


def _probe(pixels: np.ndarray) -> np.ndarray:
    """A small grey copy of a frame (downscaled first: the grey conversion then costs nothing)."""
    pixels = np.asarray(pixels[..., :3] if pixels.ndim == 3 else pixels, dtype=np.float32)
    height, width = pixels.shape[:2]
    if width > _PROBE_WIDTH:
        size = (_PROBE_WIDTH, max(1, round(height * _PROBE_WIDTH / width)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return pixels.mean(axis=2) if pixels.ndim == 3 else pixels


class TemporalSmoother:
    """Exponential moving average of per-frame disparity that restarts at scene cuts.

    Call it once per frame, in order, with the frame and its raw disparity; it returns the
    disparity to use. weight=1 turns smoothing off.
    """

    def __init__(self, weight: float = DEFAULT_WEIGHT, cut_threshold: float = DEFAULT_CUT_THRESHOLD):
        if not 0 < weight <= 1:
            raise ValueError(f"smoothing weight must be in (0, 1], got {weight}")
        self.weight = weight
        self.cut_threshold = cut_threshold
        self.cuts = 0  # scene cuts seen (after the first frame)
        self._average: Disparity | None = None
        self._probe: np.ndarray | None = None

    def __call__(self, pixels: np.ndarray, disparity: Disparity) -> Disparity:
        probe = _probe(pixels)
        restart = (
            self._average is None
            or self._probe is None
            or probe.shape != self._probe.shape
            or self._average.shape != disparity.shape
            or self._average.absolute != disparity.absolute
        )
        if not restart and float(np.abs(probe - self._probe).mean()) > self.cut_threshold:
            restart = True
            self.cuts += 1
        self._probe = probe
        if restart or self.weight == 1:
            self._average = Disparity(disparity.values.astype(np.float32, copy=True), disparity.absolute)
        else:
            assert self._average is not None
            values = self._average.values
            values *= 1 - self.weight  # in place: the average is ours alone
            values += self.weight * disparity.values
        return Disparity(self._average.values.copy(), disparity.absolute)


class FlickerMeter:
    """Flicker of a frame sequence: the mean absolute change between consecutive frames, averaged
    over the sequence (0 = perfectly still). Fed one frame at a time, so it works on streams."""

    def __init__(self) -> None:
        self.total = 0.0
        self.pairs = 0
        self._previous: np.ndarray | None = None

    def add(self, frame: np.ndarray) -> None:
        frame = np.ascontiguousarray(frame, dtype=np.float32)
        if self._previous is not None and self._previous.shape == frame.shape:
            # One pass, no full-size temporaries: it runs on every frame of a video.
            self.total += cv2.norm(frame, self._previous, cv2.NORM_L1) / frame.size
            self.pairs += 1
        self._previous = frame.copy()

    @property
    def value(self) -> float:
        return self.total / self.pairs if self.pairs else 0.0


def flicker(frames: Iterable[np.ndarray]) -> float:
    """Mean absolute frame-to-frame change of a sequence of views (e.g. the synthesised right eye)."""
    meter = FlickerMeter()
    for frame in frames:
        meter.add(frame)
    return meter.value
