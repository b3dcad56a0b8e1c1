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

import functools
import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Generic, Iterable, Iterator, TypeVar

import cv2
import numpy as np

from sbsconvert.choices import DEFAULT_CUT_THRESHOLD, DEFAULT_STRENGTH, DEFAULT_TEMPORAL, TEMPORAL_METHODS
from sbsconvert.disparity import Disparity

DEFAULT_WEIGHT = 0.4  # share of the current frame's disparity in the average
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


_FLOW_WIDTH = 320  # frames are matched at this width: DIS flow there costs a few ms a frame
_WORK_WIDTH = 640  # maps are filtered at most this wide (a depth model's are about 518 px)
# The current map's share at strength 0.5 (flow: no trail, so it can be low). 0.144 (0.25 before,
# now what strength 0.7 gave): on the clips of bench/RESULTS.md ("Flicker ... on real clips") it
# flickers less everywhere (the moving disc 2.2 -> 1.9 x the clean run's) at the same PSNR (+- 0.15
# dB), with trails still under 0.05; ema, sharing --temporal-strength, loses PSNR when steadier.
_FLOW_SHARE = 0.144
# The share of the map's own scale and offset kept when it is aligned to the previous one: the
# whole map's scale and offset then keep the blend's share x this of each new frame's (a
# segment's warm-up must outlast that memory: 81 frames at the default strength).
_ALIGN_SHARE = 0.5
_FLOW_ERROR_PX = 1.0  # forward-backward flow mismatch (flow-width pixels) at which trust falls to 1/e
_COLOUR_ERROR = 0.06  # grey difference along the flow at which trust falls to 1/e
_FORGOTTEN = 0.0025  # what a segment's warm-up may leave of the filter's start (0.6^12 = 0.0022: the average's 12)
_DISPARITY_ERROR = 0.15  # disparity change (of the robust range) at which trust falls to 1/e: real change


def share_for(strength: float, base: float) -> float:
    """The current frame's share in a recursive filter: 1 at strength 0, `base` at 0.5, base² at 1."""
    if not 0 <= strength <= 1:
        raise ValueError(f"temporal strength must be between 0 and 1, got {strength}")
    return base ** (2 * strength)


def warmup_frames(method: str = DEFAULT_TEMPORAL, strength: float = DEFAULT_STRENGTH) -> int:
    """Frames a filter must see before a segment so that what is left of its start is under
    _FORGOTTEN (so a segmented run matches a one-piece one): 12 for the default moving average."""
    if method == "none":
        return 0
    share = FlowStabilizer(strength).slowest_share if method == "flow" else share_for(strength, DEFAULT_WEIGHT)
    return 0 if share >= 1 else max(1, math.ceil(math.log(_FORGOTTEN) / math.log(1 - share)))


def make_smoother(method: str = DEFAULT_TEMPORAL, strength: float = DEFAULT_STRENGTH,
                  cut_threshold: float = DEFAULT_CUT_THRESHOLD, normalize_range: bool = False
                  ) -> TemporalSmoother | FlowStabilizer:
    """The temporal filter `--temporal` names: none (each frame's own map; cuts still counted),
    ema (the centred moving average) or flow (motion-compensated)."""
    if method == "flow":
        return FlowStabilizer(strength, cut_threshold, normalize_range)
    if method not in TEMPORAL_METHODS:
        raise ValueError(f"unknown temporal method '{method}' (choose from {', '.join(TEMPORAL_METHODS)})")
    weight = 1.0 if method == "none" else share_for(strength, DEFAULT_WEIGHT)
    return TemporalSmoother(weight, cut_threshold, DEFAULT_LOOK_AHEAD if method == "ema" else 0,
                            normalize_range and method == "ema")


class FlowStabilizer:
    """Motion-compensated temporal filtering of per-frame disparity.

    An average at fixed pixels cannot tell a moving person from a flickering wall: it smears the
    person's disparity into a trail, or (weighted lightly) leaves the wall's flicker. Here the
    previous frame's stabilised map is first carried along the image motion (DIS optical flow
    between small grey copies of the frames), so each pixel is averaged with the same surface point
    one frame earlier. Per pixel, the carried map is trusted by how well the flow holds there:
    forward and backward flow agree (not an occlusion), the colours it pairs agree, and the
    disparity has not plainly changed (a real change, followed at once). Before blending, the
    current map is aligned to the carried one by robust anchors over the trusted pixels (median and
    10th-90th percentile spread, not min/max): per-frame depth models rescale and shift the whole
    map from frame to frame, the commonest flicker, which this removes without touching motion. The
    alignment is leaky (the map's own scale keeps a share), so the filter forgets its start
    geometrically, like the moving average: a segment's warm-up frames give the seam the state a
    one-piece run has there. It restarts at a scene cut (the moving average's cut test).

    Causal (no look-ahead): nothing lags, since the motion is followed by the flow. Same interface
    as TemporalSmoother.
    """

    look_ahead = 0

    def __init__(self, strength: float = DEFAULT_STRENGTH, cut_threshold: float = DEFAULT_CUT_THRESHOLD,
                 normalize_range: bool = False):
        self.strength = strength
        self.share = share_for(strength, _FLOW_SHARE)
        self.align_share = _ALIGN_SHARE
        self.cut_threshold = cut_threshold
        self.normalize_range = normalize_range
        self.cuts = 0
        self._flow: Any = None  # made on first use (a warm-up count needs none)
        self._probe: np.ndarray | None = None
        self._grey: np.ndarray | None = None
        self._state: np.ndarray | None = None  # the previous stabilised map, at the working size
        self._input: np.ndarray | None = None  # the previous frame's own map
        self._output: Disparity | None = None  # and what it became
        self._range: np.ndarray | None = None

    @property
    def slowest_share(self) -> float:
        """The new frame's share in what the filter keeps longest: the map's scale and offset."""
        return self.share * self.align_share

    def fresh(self) -> FlowStabilizer:
        return FlowStabilizer(self.strength, self.cut_threshold, self.normalize_range)

    def smooth(self, frames: Iterable[tuple[T, np.ndarray, Disparity]]) -> Iterator[tuple[T, Disparity, int]]:
        for payload, pixels, disparity in frames:
            yield payload, self(pixels, disparity), self.cuts

    def __call__(self, pixels: np.ndarray, disparity: Disparity) -> Disparity:
        probe, grey = _probe(pixels), _flow_grey(pixels)
        restart = (
            self._state is None or self._probe is None or self._grey is None or self._output is None
            or probe.shape != self._probe.shape or grey.shape != self._grey.shape
            or self._output.shape != disparity.shape or self._output.absolute != disparity.absolute
        )
        if not restart and _is_cut(self._probe, probe, self.cut_threshold):
            restart = True
            self.cuts += 1
        previous_grey, self._probe, self._grey = self._grey, probe, grey
        if not restart and disparity.values is self._input:
            assert self._output is not None
            return self._output  # one fixed map throughout: it is its own average
        current = disparity.values
        work = _work_copy(current)
        gain, offset = 1.0, 0.0
        if restart or self.share == 1:
            self._state = work
        else:
            assert self._state is not None and previous_grey is not None
            self._state, gain, offset = self._blend(self._state, previous_grey, grey, work)
        # With range normalisation (relative maps) the shot's robust range, averaged, spans 0-1.
        low, high = 0.0, 1.0
        if self.normalize_range and not disparity.absolute:
            own = robust_range(self._state)
            self._range = own if restart or self._range is None else (1 - self.share) * self._range + self.share * own
            if float(self._range[1] - self._range[0]) > 1e-6:
                low, high = float(self._range[0]), float(self._range[1])
        scale = 1 / (high - low)
        if work is current:
            values = (self._state - np.float32(low)) * np.float32(scale)
        else:  # the filter's change, made at the working size, added to the full-size aligned map (one pass)
            height, width = current.shape
            change = cv2.resize(self._state - (work * np.float32(gain) + np.float32(offset)), (width, height),
                                interpolation=cv2.INTER_LINEAR)
            values = cv2.addWeighted(current, gain * scale, change, scale, (offset - low) * scale)
        if (low, high) != (0.0, 1.0):
            np.clip(values, 0, 1, out=values)
        self._input = disparity.values
        self._output = Disparity(values.astype(np.float32, copy=False), disparity.absolute)
        return self._output

    def _blend(self, previous: np.ndarray, previous_grey: np.ndarray, grey: np.ndarray, current: np.ndarray
               ) -> tuple[np.ndarray, float, float]:
        """The stabilised map (at the working size) and the gain and offset that aligned `current`."""
        if self._flow is None:
            self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        backward = self._flow.calc(grey, previous_grey, None)  # where each pixel now was a frame ago
        forward = self._flow.calc(previous_grey, grey, None)
        trust = _flow_trust(backward, forward, grey, previous_grey)
        height, width = current.shape
        if (width, height) != (grey.shape[1], grey.shape[0]):
            backward = cv2.resize(backward, (width, height), interpolation=cv2.INTER_LINEAR) * (width / grey.shape[1])
            trust = cv2.resize(trust, (width, height), interpolation=cv2.INTER_LINEAR)
        carried = cv2.remap(previous, backward + _grid(height, width), None, cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
        gain, offset = self._alignment(current, carried, trust)
        aligned = current * np.float32(gain) + np.float32(offset)
        spread = max(float(np.subtract(*robust_range(carried)[::-1])), 1e-6)
        change = (aligned - carried) / (_DISPARITY_ERROR * spread)
        weight = (1 - self.share) * trust * np.exp(-change * change)
        return (aligned + weight * (carried - aligned)).astype(np.float32), gain, offset

    def _alignment(self, current: np.ndarray, carried: np.ndarray, trust: np.ndarray) -> tuple[float, float]:
        """The gain and offset that give `current` the median, and the mean distance from the
        median, that the carried map has over the trusted pixels (robust anchors: a few wild
        pixels move neither, unlike min/max; and unlike a percentile spread they do not vanish on
        a map of a few flat layers), by the filter's align share less than fully."""
        trusted = np.flatnonzero(trust.reshape(-1) > 0.5)
        if trusted.size < 64:
            return 1.0, 0.0
        trusted = trusted[:: max(1, trusted.size // _RANGE_SAMPLES)]
        ours, theirs = current.reshape(-1)[trusted], carried.reshape(-1)[trusted]
        our_median, their_median = float(np.median(ours)), float(np.median(theirs))
        our_spread = float(np.abs(ours - our_median).mean())
        if our_spread <= 1e-6:
            return 1.0, 0.0
        gain = float(np.abs(theirs - their_median).mean()) / our_spread
        offset = their_median - gain * our_median
        # The leak: the map's own scale keeps a share, so the start is forgotten geometrically.
        return self.align_share + (1 - self.align_share) * gain, (1 - self.align_share) * offset


def _work_copy(values: np.ndarray) -> np.ndarray:
    """A map at most _WORK_WIDTH wide (itself if no wider): the filter runs at this size, and only
    the change it makes is enlarged back (a depth model's maps hold no finer detail)."""
    height, width = values.shape
    if width <= _WORK_WIDTH:
        return values
    return cv2.resize(values, (_WORK_WIDTH, max(2, round(height * _WORK_WIDTH / width))), interpolation=cv2.INTER_AREA)


def _flow_grey(pixels: np.ndarray) -> np.ndarray:
    """A grey 8-bit copy at the flow's width (DIS takes 8-bit single-channel frames)."""
    height, width = pixels.shape[:2]
    if width > _FLOW_WIDTH:
        pixels = cv2.resize(pixels, (_FLOW_WIDTH, max(8, round(height * _FLOW_WIDTH / width))),
                            interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(pixels[..., :3], cv2.COLOR_RGB2GRAY) if pixels.ndim == 3 else pixels
    return np.clip(grey * 255 + 0.5, 0, 255).astype(np.uint8)


def _flow_trust(backward: np.ndarray, forward: np.ndarray, grey: np.ndarray, previous_grey: np.ndarray) -> np.ndarray:
    """Per pixel of the current frame (flow size), 0-1: how far the backward flow can be trusted."""
    height, width = grey.shape
    where = backward + _grid(height, width)
    round_trip = backward + cv2.remap(forward, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mismatch = (round_trip * round_trip).sum(axis=2) / (_FLOW_ERROR_PX * _FLOW_ERROR_PX)
    paired = cv2.remap(previous_grey, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    colour = (grey.astype(np.float32) - paired.astype(np.float32)) / (255 * _COLOUR_ERROR)
    inside = (where[..., 0] >= 0) & (where[..., 0] <= width - 1) & (where[..., 1] >= 0) & (where[..., 1] <= height - 1)
    return (np.exp(-mismatch - colour * colour) * inside).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _grid(height: int, width: int) -> np.ndarray:
    """Each pixel's own (x, y), for turning a flow into a remap table (read only)."""
    grid = np.stack(np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)), axis=2)
    grid.flags.writeable = False
    return grid
