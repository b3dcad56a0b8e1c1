"""A temporal background plate (--fill plate): a video's disocclusions filled with what the video
has really seen, instead of pixels stretched or inpainted from each hole's border.

A synthesised eye's holes are background a near object hides from the left eye. In a video that
background was often in plain view a moment earlier or later (someone walks across a still room;
the camera pans past a pillar). Every frame is warped to the synthesised eye by the warp engine
itself, which also says where the warp landed and how near each landed pixel is. A hole pixel of
frame t is then looked up in the synthesised eyes of the frames around it, in the same shot,
nearest in time first: the first frame whose warp landed there with background (no nearer than
the hole's own background border, within NEAR_TOLERANCE) gives the pixel. Frames are aligned by
the camera's motion: a similarity transform (shift, rotation, zoom) fitted with RANSAC to
background corners tracked from each frame to the one before (pyramidal Lucas-Kanade on a
downscaled grey copy), composed along the shot; a still camera needs no resampling at all.

Holes no frame saw keep the engine's own `background` fill; where they meet plate pixels, the
plate pixels fade into that fill over FEATHER_PIXELS. Pixels the warp landed on (not holes) are
the engine's, bit for bit.

The plate of a frame is built from the PAST_FRAMES frames before it and the AHEAD_FRAMES after it,
never across a scene cut. Both bounds are what a segment of a long video decodes around its own
frames (segments/plan.py: warm-up and look-ahead), so a segment that begins mid-shot builds the plate a
one-piece run builds (exactly so where the disparity of its warm-up frames is too: a given map, or
no smoothing; see video/segments/ for the smoothing's own seam).
"""

from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Generic, Iterable, Iterator, Protocol, TypeVar

import cv2
import numpy as np

from sbsconvert.engines.base import StereoPair, StereoRequest
from sbsconvert.engines.warp import SynthesizedView, WarpEngine
from sbsconvert.video.segments import LOOK_AHEAD_FRAMES, WARMUP_FRAMES
from sbsconvert.video.temporal import DEFAULT_LOOK_AHEAD

PAST_FRAMES = WARMUP_FRAMES  # a segment's warm-up frames: it sees as far back as a one-piece run
AHEAD_FRAMES = LOOK_AHEAD_FRAMES - DEFAULT_LOOK_AHEAD  # look-ahead frames whose smoothed disparity a segment knows
NEAR_TOLERANCE = 0.02  # a seen pixel counts as background up to this share of the frame's nearness range nearer
FEATHER_PIXELS = 3  # plate pixels fade into the fallback fill over this distance from it
ALIGN_WIDTH = 480  # camera motion is tracked on frames this wide
MIN_TRACKS = 12  # background corners that must agree on a motion; fewer: the frames are not aligned
STILL_PIXELS = 0.05  # a motion moving no frame corner farther than this (full-size pixels) is no motion
BACKGROUND_SHARE = 60  # corners are tracked on the farthest 60 % of the frame (a moving subject is not the camera)
CONTRAST_FLOOR = 2 / 255  # a frame whose grey range is narrower than this is left as it is (black, noise)
_MAP_COLUMNS = 4096
T = TypeVar("T")
Timer = Callable[[str], ContextManager[None]]


@dataclass
class PlateCounts:
    """Hole pixels of the written frames, by what filled them: the plate; with the diffusion engine
    paint carried from a keyframe, slivers continued from their filled neighbours and paint new on
    a keyframe (video/paint.py); the engine's own fill (the fallback)."""

    plate: int = 0
    carried: int = 0
    extended: int = 0  # slivers continuing the filled pixels next to them
    painted: int = 0
    fallback: int = 0

    @property
    def plate_share(self) -> float:
        return self.plate / max(1, sum(self.as_dict().values()))

    def as_dict(self) -> dict[str, int]:
        counts = {"plate": self.plate, "carried": self.carried, "extended": self.extended, "painted": self.painted,
                  "fallback": self.fallback}
        return {source: pixels for source, pixels in counts.items() if pixels or source in ("plate", "fallback")}

    def line(self) -> str:
        total = sum(self.as_dict().values())
        share = lambda pixels: f"{100 * pixels / max(1, total):.1f} %"
        painting = (f", {share(self.carried)} carried paint, {share(self.extended)} continued from their "
                    f"neighbours, {share(self.painted)} new paint" if self.carried or self.painted else "")
        return (f"hole pixels: {share(self.plate)} from the video's other frames (plate){painting}, "
                f"{share(self.fallback)} by the background fill ({total} in all)")


@dataclass
class _Seen:
    """A view's hole pixels (ys, xs) and those the plate found (`found`, their `values`)."""

    ys: np.ndarray
    xs: np.ndarray
    values: np.ndarray
    found: np.ndarray

    def unfilled(self, holes: np.ndarray) -> np.ndarray:
        """HxW bool: the holes the plate left."""
        left = holes.copy()
        left[self.ys[self.found], self.xs[self.found]] = False
        return left


class Painter(Protocol):
    def __call__(self, frame: PlateFrame[Any], unfilled: list[np.ndarray], with_plate: list[np.ndarray]
                 ) -> list[np.ndarray]:
        """Each eye's image of `frame` (its view's image, the engine's fill in the holes) with the
        holes the plate left (`unfilled`, per eye) painted where it can; `with_plate`: each eye's
        image with the plate's pixels put in."""
        ...


@dataclass
class PlateFrame(Generic[T]):
    number: int
    payload: T | None
    request: StereoRequest
    shot: int
    wanted: bool  # written (not a warm-up or look-ahead frame of a segment)
    views: list[SynthesizedView]
    probe: np.ndarray  # small grey copy, for motion tracking
    background: np.ndarray  # where on the probe the far part of the frame is
    to_previous: np.ndarray | None = None  # 3x3: this frame's pixel coordinates -> the previous frame's


class PlateRenderer(Generic[T]):
    """The warp engine's stereo pairs for a video's frames, in order, holes filled from the plate."""

    def __init__(self, engine: WarpEngine, past: int = PAST_FRAMES, ahead: int = AHEAD_FRAMES,
                 timer: Timer | None = None, counts: PlateCounts | None = None, painter: Painter | None = None):
        """painter: paints what the plate leaves (the diffusion engine's keyframes); without one
        the engine's own fill stays there. counts: where to count the hole pixels (shared with it)."""
        self.engine = engine
        self.past, self.ahead = past, ahead
        self.counts = counts or PlateCounts()
        self.painter = painter
        self._timer = timer or (lambda stage: contextlib.nullcontext())
        self._window: deque[PlateFrame[T]] = deque()
        self._next = 0  # number of the next frame to render
        self._count = 0

    def warm(self, request: StereoRequest, shot: int) -> None:
        """Take in a frame that comes before the ones to render (a segment's warm-up)."""
        self._add(None, request, shot, wanted=False)
        self._next = self._count
        self._trim()

    def stream(self, items: Iterable[tuple[T, StereoRequest, int, bool]]) -> Iterator[tuple[T, StereoPair]]:
        """(payload, request, shot number, wanted) in order -> (payload, stereo pair) for the wanted
        ones, `ahead` frames later (the frames after them fill their holes too)."""
        for payload, request, shot, wanted in items:
            self._add(payload, request, shot, wanted)
            while self._count - 1 - self._next >= self.ahead:
                yield from self._render_next()
        while self._next < self._count:
            yield from self._render_next()

    def _add(self, payload: T | None, request: StereoRequest, shot: int, wanted: bool) -> None:
        with self._timer(self.engine.name):
            views = self.engine.synthesize_views(request)
        with self._timer("plate"):
            probe, background = _probe(request)
            previous = self._window[-1] if self._window else None
            frame = PlateFrame(self._count, payload, request, shot, wanted, views, probe, background)
            if previous is not None and previous.shot == shot and previous.probe.shape == probe.shape:
                frame.to_previous = estimate_motion(probe, previous.probe, background, request.image.shape[1])
        self._window.append(frame)
        self._count += 1

    def _render_next(self) -> Iterator[tuple[T, StereoPair]]:
        frame = next(f for f in self._window if f.number == self._next)
        self._next += 1
        if frame.wanted:
            with self._timer("plate"):
                seen = [self._seen(frame, eye) for eye in range(len(frame.views))]
            unfilled = [found.unfilled(view.holes) for found, view in zip(seen, frame.views)]
            self.counts.plate += sum(int(found.found.sum()) for found in seen)
            if self.painter is not None:
                own = self.painter(frame, unfilled, [_compose(view.image, found, None) for view, found
                                                     in zip(frame.views, seen)])
            else:
                own = [view.image for view in frame.views]
                self.counts.fallback += sum(int(mask.sum()) for mask in unfilled)
            with self._timer("plate"):
                images = [_compose(*parts) for parts in zip(own, seen, unfilled)]
            pair = StereoPair(frame.request.image, images[0]) if frame.request.eye == "right" else StereoPair(*images)
            yield frame.payload, pair  # type: ignore[misc]
        self._trim()

    def _trim(self) -> None:
        while self._window and self._window[0].number < self._next - self.past:
            self._window.popleft()

    def _seen(self, frame: PlateFrame[T], eye: int) -> _Seen:
        """The holes of eye `eye` of `frame` and what the other frames saw there."""
        view = frame.views[eye]
        ys, xs = np.nonzero(view.holes)
        values = np.zeros((ys.size, view.image.shape[2]), np.float32)
        found = np.zeros(ys.size, bool)
        if ys.size == 0:
            return _Seen(ys, xs, values, found)
        limit = _background_limit(view, ys, xs) + NEAR_TOLERANCE * float(np.ptp(frame.request.nearness))
        for other, motion in self._aligned(frame):
            open_ = np.flatnonzero(~found)
            if open_.size == 0:
                break
            colour, landed, nearness = sample_view(other.views[eye], xs[open_], ys[open_], motion)
            take = landed & (nearness <= limit[open_])
            values[open_[take]] = colour[take]
            found[open_[take]] = True
        return _Seen(ys, xs, values, found)

    def _aligned(self, frame: PlateFrame[T]) -> Iterator[tuple[PlateFrame[T], np.ndarray | None]]:
        """The frames of `frame`'s shot in the window that can be aligned with it, nearest in time
        first (the earlier one first at equal distance), each with the 3x3 matrix taking `frame`'s
        pixel coordinates to its own (None: the same coordinates)."""
        by_number = {f.number: f for f in self._window}
        motions: dict[int, np.ndarray | None] = {frame.number: None}
        for step in (-1, 1):  # walk back along to_previous, forward along the inverse of the next frame's
            number, motion = frame.number, None
            while True:
                link = by_number.get(number) if step < 0 else by_number.get(number + 1)
                if link is None or link.to_previous is None or link.shot != frame.shot:
                    break
                move = link.to_previous if step < 0 else np.linalg.inv(link.to_previous)
                size = frame.request.image.shape[1::-1]
                motion = None if motion is None and is_still(move, *size) else move if motion is None else move @ motion
                number += step
                if number not in by_number:
                    break
                motions[number] = motion
        order = sorted((n for n in motions if n != frame.number), key=lambda n: (abs(n - frame.number), n))
        return ((by_number[n], motions[n]) for n in order)


def _compose(own: np.ndarray, seen: _Seen, unfilled: np.ndarray | None) -> np.ndarray:
    """`own` (the view with the engine's fill, or paint, in its holes) with the plate's pixels put
    in; where they meet what the plate left (`unfilled`; None: no fading) they fade into `own`
    over FEATHER_PIXELS."""
    found = seen.found
    if not found.any():
        return own
    ys, xs = seen.ys[found], seen.xs[found]
    image = own.copy()
    image[ys, xs] = seen.values[found]
    if unfilled is not None and unfilled.any():  # no hard seam inside a hole
        distance = cv2.distanceTransform((~unfilled).astype(np.uint8), cv2.DIST_L2, 3)
        weight = np.clip(distance[ys, xs] / (FEATHER_PIXELS + 1), 0, 1)[:, None]
        image[ys, xs] = own[ys, xs] + weight * (seen.values[found] - own[ys, xs])
    return image


def _probe(request: StereoRequest) -> tuple[np.ndarray, np.ndarray]:
    """A grey 8-bit copy of the frame ALIGN_WIDTH wide at most, and where its far part is."""
    image = np.asarray(request.image[..., :3], np.float32)
    height, width = image.shape[:2]
    scale = min(1.0, ALIGN_WIDTH / width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if scale < 1 else image
    grey = np.clip(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), 0, 1)
    # Stretched to its own range: a dark or hazy frame (a fade) has corners to track too.
    low, high = np.percentile(grey, (1, 99))
    if high - low > CONTRAST_FLOOR:
        grey = np.clip((grey - low) / (high - low), 0, 1)
    grey = np.round(grey * 255).astype(np.uint8)
    nearness = cv2.resize(np.asarray(request.nearness, np.float32), size, interpolation=cv2.INTER_NEAREST)
    background = nearness <= np.percentile(nearness, BACKGROUND_SHARE)
    return grey, background.astype(np.uint8)


def estimate_motion(probe: np.ndarray, previous: np.ndarray, background: np.ndarray, width: int) -> np.ndarray | None:
    """3x3 matrix taking full-size pixel coordinates of a frame to those of the frame before it,
    from the probes (_probe) of both: background corners tracked back and fitted with a similarity
    transform. None where too few corners agree (a blank or blurred frame: no alignment)."""
    corners = cv2.goodFeaturesToTrack(probe, maxCorners=400, qualityLevel=0.01, minDistance=5, mask=background)
    if corners is None or len(corners) < MIN_TRACKS:
        return None
    tracked, status, _ = cv2.calcOpticalFlowPyrLK(probe, previous, corners, None, winSize=(21, 21), maxLevel=3)
    kept = status.ravel() == 1
    if kept.sum() < MIN_TRACKS:
        return None
    fitted, inliers = cv2.estimateAffinePartial2D(corners[kept], tracked[kept], method=cv2.RANSAC,
                                                  ransacReprojThreshold=0.5)
    if fitted is None or int(inliers.sum()) < MIN_TRACKS:
        return None
    # Probe pixel centres sit at (x + 0.5) * scale - 0.5 of the full-size ones.
    scale = probe.shape[1] / width
    to_probe = np.array([[scale, 0, 0.5 * scale - 0.5], [0, scale, 0.5 * scale - 0.5], [0, 0, 1]])
    motion = np.linalg.inv(to_probe) @ np.vstack([fitted, [0, 0, 1]]) @ to_probe
    return motion


def is_still(motion: np.ndarray, width: int, height: int) -> bool:
    """Whether `motion` moves no corner of a `width` x `height` frame measurably: a still camera is
    taken as still, so its frames are copied, not resampled."""
    corners = np.array([[0, 0, 1], [width, 0, 1], [0, height, 1], [width, height, 1]], np.float64).T
    moved = motion @ corners
    return float(np.abs(moved[:2] / moved[2] - corners[:2]).max()) < STILL_PIXELS


def _background_limit(view: SynthesizedView, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Per hole pixel, the nearness of the hole's background border: the farther of the landed pixels
    left and right of it on its row (the side the engine's background fill copies; +inf with neither)."""
    from sbsconvert.engines.warp_kernel import hole_backgrounds  # numba loads only when needed

    return hole_backgrounds(~view.holes, np.asarray(view.nearness, np.float32))[ys, xs]


def sample_view(view: SynthesizedView, xs: np.ndarray, ys: np.ndarray, motion: np.ndarray | None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(colour, landed, nearness) of `view` at the points (xs, ys) of another frame moved by `motion`."""
    if motion is None:
        return view.image[ys, xs], ~view.holes[ys, xs], view.nearness[ys, xs]
    points = motion @ np.stack([xs, ys, np.ones_like(xs)]).astype(np.float64)
    # cv2.remap takes maps under 32767 on each side: the points go in rows of _MAP_COLUMNS, the
    # last one padded with a point off the frame.
    rows = -(-xs.size // _MAP_COLUMNS)
    as_map = lambda values: np.pad(values.astype(np.float32), (0, rows * _MAP_COLUMNS - xs.size),
                                   constant_values=-2).reshape(rows, _MAP_COLUMNS)
    map_x, map_y = as_map(points[0] / points[2]), as_map(points[1] / points[2])
    look = lambda plane: cv2.remap(plane, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                   borderValue=0).reshape(rows * _MAP_COLUMNS, -1)[: xs.size]
    # Bilinear weights of holes (or of points off the frame) pull this below 1: only fully landed points count.
    landed = look((~view.holes).astype(np.float32)).ravel() > 1 - 1e-4
    return look(view.image), landed, look(view.nearness).ravel()
