"""How a video is cut: segments that start at keyframes, each with the frames before it that warm
the smoothing up and the frames after it that the smoothing looks ahead to; for an engine that
attends to a shot's first frame, also the anchor of the shot each segment begins in."""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from sbsconvert.progress import progress as progress_counter
from sbsconvert.video.decode import Frame, FrameSequenceReader, VideoReader, open_frames
from sbsconvert.video.segments.index import FrameIndex
from sbsconvert.video.temporal import DEFAULT_LOOK_AHEAD, shot_starts

WARMUP_FRAMES = 12
LOOK_AHEAD_FRAMES = 8  # at least the smoother's look-ahead (temporal.DEFAULT_LOOK_AHEAD)


@dataclass
class Segment:
    """A run of frames converted as one job: `frames` (pts) are written; `warmup` (before them)
    and `after` (the smoothing's look-ahead past them) are only smoothed."""

    number: int
    frames: list[int]
    warmup: list[int]
    offset: int = 0  # subtracted from every pts written (a trimmed video starts at 0)
    files: list[Path] = field(default_factory=list)  # one per output, in the work folder
    frame_rate: Fraction | None = None  # the outputs' nominal rate
    container: str = ""  # the outputs' suffix (.mp4...), or "" for folders of frames
    after: list[int] = field(default_factory=list)
    # A segment that begins mid-shot: the shot's first frame (and the frames its smoothing looks
    # ahead to), whose attention keys and values the diffusion engine's frames of the shot read.
    anchor: list[int] = field(default_factory=list)

    def read_anchor(self, reader: VideoReader | FrameSequenceReader) -> list[Frame]:
        """Decode the `anchor` frames (none if the segment begins a shot)."""
        wanted, found = set(self.anchor), []
        if not wanted:
            return found
        frames = reader.frames(seek=self.anchor[0])
        with contextlib.closing(frames):  # the segment's own reading seeks afresh
            for frame in frames:
                if frame.pts in wanted:
                    found.append(frame)
                    if len(found) == len(wanted):
                        break
        return found

    def read(self, reader: VideoReader | FrameSequenceReader, warm: Callable[[Frame], None]) -> Iterator[Frame]:
        """Decode this segment's frames (from the keyframe before its warm-up), hand the warm-up
        frames to `warm` and yield the segment's own, then the `after` ones (for the smoothing's
        look-ahead; `writes` tells them apart), with their output timestamps."""
        warmup, wanted = set(self.warmup), set(self.frames) | set(self.after)
        remaining = len(wanted)
        first = self.warmup[0] if self.warmup else self.frames[0]
        for frame in reader.frames(seek=first):
            if frame.pts in warmup:
                warmup.discard(frame.pts)
                warm(frame)
            elif frame.pts in wanted:
                wanted.discard(frame.pts)
                remaining -= 1
                yield dataclasses.replace(frame, pts=frame.pts - self.offset)
                if remaining == 0:
                    return

    def writes(self, pts: int) -> bool:
        """Whether the frame read with output timestamp `pts` is written (not an `after` frame)."""
        return pts + self.offset <= self.frames[-1]


def find_shot_starts(source: Path, frames: list[int], frame_rate: Fraction | None, progress: bool) -> list[int]:
    """The pts of the frames (of `frames`, the ones converted) that begin a shot, found by decoding
    them all once with the smoothing's own scene-cut test."""
    wanted = set(frames)
    with open_frames(source, frame_rate) as reader, \
            progress_counter(len(frames), desc=f"{source.name}: shots", unit="frame", enabled=progress) as bar:
        def converted() -> Iterator[tuple[int, np.ndarray]]:
            for frame in reader.frames():
                if frame.pts in wanted:
                    bar.update()
                    yield frame.pts, frame.pixels
        return shot_starts(converted())


def assign_anchors(segments: list[Segment], frames: list[int], starts: list[int]) -> None:
    """Give each segment that begins mid-shot its shot's first frame and the frames the smoothing
    looks ahead to from it, so the diffusion engine records the anchor a one-piece run records."""
    place = {pts: number for number, pts in enumerate(frames)}
    for segment in segments:
        begun = [pts for pts in starts if pts <= segment.frames[0]]
        if begun and begun[-1] != segment.frames[0]:
            first = place[begun[-1]]
            segment.anchor = frames[first : first + DEFAULT_LOOK_AHEAD + 1]


def plan_segments(frames: list[int], index: FrameIndex, seconds: float, *, trim: bool,
                  warmup: int = WARMUP_FRAMES) -> list[Segment]:
    """Cut `frames` (not empty) into segments of at least `seconds`, each starting at a keyframe,
    each warmed up on the `warmup` frames before it."""
    starts = [0]
    for number, pts in enumerate(frames):
        if pts in index.keyframes and index.seconds(pts - frames[starts[-1]]) >= seconds:
            starts.append(number)
    offset = frames[0] if trim else 0
    segments = []
    for number, (begin, end) in enumerate(zip(starts, starts[1:] + [len(frames)])):
        # The frames a one-piece run would have smoothed just before (none before a trimmed start).
        segments.append(Segment(number, frames[begin:end], frames[max(0, begin - warmup) : begin], offset,
                                after=frames[end : end + LOOK_AHEAD_FRAMES]))
    return segments
