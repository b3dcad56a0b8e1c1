"""Temporal consistency for video: smooth each frame's disparity over time, reset at scene cuts,
keep each shot's disparity range steady, and measure flicker.

A depth model estimates every frame on its own, and relative maps are renormalised per frame, so
a still scene's disparity jitters a little from frame to frame; the warp turns that jitter into
shimmering edges and holes. An exponential moving average damps it. A causal average lags: a
moving object's disparity trails by about (1 - weight) / weight frames. With a look-ahead of L
frames the average is centred instead: frame t is combined with the frames after it, weighted
like the frames before it (weight (1 - weight)^k at distance k, the last one standing in for the
rest), so a steady change is followed without delay. The average restarts at a scene cut, where
the old depth would be plainly wrong, and never reaches across one.

Per-shot range normalisation: a per-frame min/max normalisation lets a few extreme pixels (noise,
an object at the edge) stretch or squeeze the whole frame's depth from one frame to the next. The
robust range (1st to 99th percentile) of each frame is averaged over the shot like the maps, and
the smoothed map is mapped so that range spans 0 to 1.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, Iterable, Iterator, TypeVar

import cv2
import numpy as np

from sbsconvert.disparity import Disparity

DEFAULT_WEIGHT = 0.4  # share of the current frame's disparity in the average
DEFAULT_CUT_THRESHOLD = 0.12  # mean absolute change of the (grey, downscaled) frame that marks a cut
DEFAULT_LOOK_AHEAD = 4  # frames held back to centre the average (lag on a steady change: 0.12 frames)
_PROBE_WIDTH = 64  # frames are compared at this width: cheap, and insensitive to noise and grain
_RANGE_PERCENTILES = (1.0, 99.0)
_RANGE_SAMPLES = 4096  # pixels sampled per frame for its range
T = TypeVar("T")


def _probe(pixels: np.ndarray) -> np.ndarray:
    """A small grey copy of a frame (downscaled first: the grey conversion then costs nothing)."""
    pixels = np.asarray(pixels[..., :3] if pixels.ndim == 3 else pixels, dtype=np.float32)
    height, width = pixels.shape[:2]
    if width > _PROBE_WIDTH:
        size = (_PROBE_WIDTH, max(1, round(height * _PROBE_WIDTH / width)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return pixels.mean(axis=2) if pixels.ndim == 3 else pixels


def _is_cut(previous: np.ndarray, current: np.ndarray, threshold: float) -> bool:
    """Whether two consecutive frames' probes are different shots."""
    return float(np.abs(current - previous).mean()) > threshold


def shot_starts(frames: Iterable[tuple[int, np.ndarray]], cut_threshold: float = DEFAULT_CUT_THRESHOLD) -> list[int]:
    """The pts of the frames (pts, pixels, in order) that start a shot, the first one included:
    where a TemporalSmoother with this threshold, given the same frames, restarts at a cut."""
    starts: list[int] = []
    previous = None
    for pts, pixels in frames:
        probe = _probe(pixels)
        if previous is None or (probe.shape == previous.shape and _is_cut(previous, probe, cut_threshold)):
            starts.append(pts)
        previous = probe
    return starts


def robust_range(values: np.ndarray) -> np.ndarray:
    """The 1st and 99th percentiles of a map, from an even sample of its pixels."""
    flat = values.reshape(-1)
    step = max(1, flat.size // _RANGE_SAMPLES)
    return np.percentile(flat[::step], _RANGE_PERCENTILES).astype(np.float32)


@dataclass
class _Held(Generic[T]):
    """A frame waiting for its look-ahead."""

    payload: T
    shot: int
    disparity: Disparity
    average: np.ndarray  # the causal average up to this frame (never changed in place)
    range: np.ndarray  # its robust range, causally averaged (normalising only)
    own_range: np.ndarray  # its own robust range (normalising only)


class TemporalSmoother:
    """Exponential moving average of per-frame disparity that restarts at scene cuts, centred by
    `look_ahead` frames, optionally normalising each shot's disparity range.

    `smooth()` takes the frames in order and gives them back `look_ahead` frames later with the
    disparity to use; calling the smoother on one frame at a time is the causal average (no
    look-ahead). weight=1 turns smoothing off.
    """

    def __init__(self, weight: float = DEFAULT_WEIGHT, cut_threshold: float = DEFAULT_CUT_THRESHOLD,
                 look_ahead: int = DEFAULT_LOOK_AHEAD, normalize_range: bool = False):
        if not 0 < weight <= 1:
            raise ValueError(f"smoothing weight must be in (0, 1], got {weight}")
        if look_ahead < 0:
            raise ValueError(f"look-ahead must be 0 or more frames, got {look_ahead}")
        self.weight = weight
        self.cut_threshold = cut_threshold
        self.look_ahead = look_ahead
        self.normalize_range = normalize_range
        self.cuts = 0  # scene cuts seen (after the first frame)
        self._average: Disparity | None = None
        self._range: np.ndarray | None = None
        self._probe: np.ndarray | None = None

    def fresh(self) -> TemporalSmoother:
        """A smoother with these settings and no history."""
        return TemporalSmoother(self.weight, self.cut_threshold, self.look_ahead, self.normalize_range)

    def __call__(self, pixels: np.ndarray, disparity: Disparity) -> Disparity:
        held = self._advance(None, pixels, disparity)
        return self._combine(held, [])

    def smooth(self, frames: Iterable[tuple[T, np.ndarray, Disparity]]) -> Iterator[tuple[T, Disparity, int]]:
        """(payload, pixels, raw disparity) in order -> (payload, disparity to use, shot number)."""
        held: deque[_Held[T]] = deque()
        for payload, pixels, disparity in frames:
            held.append(self._advance(payload, pixels, disparity))
            if len(held) > self.look_ahead:
                first = held.popleft()
                yield first.payload, self._combine(first, list(held)), first.shot
        while held:
            first = held.popleft()
            yield first.payload, self._combine(first, list(held)), first.shot

    def _advance(self, payload: T, pixels: np.ndarray, disparity: Disparity) -> _Held[T]:
        """Take in the next frame: find cuts and update the causal averages."""
        probe = _probe(pixels)
        restart = (
            self._average is None
            or self._probe is None
            or probe.shape != self._probe.shape
            or self._average.shape != disparity.shape
            or self._average.absolute != disparity.absolute
        )
        if not restart and _is_cut(self._probe, probe, self.cut_threshold):
            restart = True
            self.cuts += 1
        self._probe = probe
        own_range = robust_range(disparity.values) if self._normalizes(disparity) else np.zeros(2, np.float32)
        previous = self._average
        if restart or self.weight == 1:
            self._average, self._range = disparity, own_range
        elif previous is not None and previous.values is disparity.values:
            pass  # the same map again (a fixed --disparity map): its average is itself, nothing to compute
        else:
            assert previous is not None and self._range is not None
            values = previous.values * (1 - self.weight)  # a new array: held frames keep the old one
            values += self.weight * disparity.values
            self._average = Disparity(values, disparity.absolute)
            self._range = (1 - self.weight) * self._range + self.weight * own_range
        return _Held(payload, self.cuts, disparity, self._average.values, self._range, own_range)

    def _combine(self, current: _Held[T], later: list[_Held[T]]) -> Disparity:
        """The centred average: the causal average plus the later frames of the same shot."""
        decay = 1 - self.weight
        values, value_range, total = current.average, current.range, 1.0
        future = [frame for frame in later if frame.shot == current.shot][: self.look_ahead]
        if all(frame.disparity.values is values for frame in future):
            future = []  # one fixed map throughout: the average is that map
        if future and self.weight < 1:
            values = values.copy()
            for distance, frame in enumerate(future, start=1):
                # The frame at the look-ahead's end also stands for the ones beyond it.
                share = self.weight * decay**distance / (self.weight if distance == self.look_ahead else 1)
                values += share * frame.disparity.values
                value_range = value_range + share * frame.own_range
                total += share
            values /= total
            value_range = value_range / total
        if self._normalizes(current.disparity):
            low, high = float(value_range[0]), float(value_range[1])
            if high - low > 1e-6:
                values = np.clip((values - low) / (high - low), 0, 1)
        return Disparity(np.asarray(values, dtype=np.float32), current.disparity.absolute)

    def _normalizes(self, disparity: Disparity) -> bool:
        return self.normalize_range and not disparity.absolute


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
