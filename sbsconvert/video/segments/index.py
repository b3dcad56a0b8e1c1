"""Which frames a segmented run converts: the source's frame index (every frame's time and its
keyframes, read without decoding) and the trimming (--start/--end, --max-fps) applied to it."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from sbsconvert.errors import SbsError, first_line
from sbsconvert.video.decode import open_frames


@dataclass(frozen=True)
class FrameIndex:
    """Every frame's presentation time (sorted) and which ones are keyframes, read from the
    container's packets without decoding."""

    pts: list[int]
    keyframes: frozenset[int]
    time_base: Fraction
    frame_rate: Fraction | None

    def seconds(self, pts: int) -> float:
        return float(pts * self.time_base)

    @property
    def reached(self) -> Fraction:
        """Seconds from 0 to the end of the last frame (a nominal frame time after its start)."""
        frame_time = 1 / self.frame_rate if self.frame_rate else Fraction(0)
        return (self.pts[-1] - min(self.pts[0], 0)) * self.time_base + frame_time


def read_index(source: Path, frame_rate: Fraction | None = None) -> FrameIndex:
    """The FrameIndex of a video file, or of a folder of frames (every frame a keyframe)."""
    if source.is_dir():
        with open_frames(source, frame_rate) as sequence:
            count, info = len(sequence.paths), sequence.info
        return FrameIndex(list(range(count)), frozenset(range(count)), info.time_base, info.frame_rate)
    try:
        with av.open(str(source)) as container:
            if not container.streams.video:
                raise SbsError(f"{source}: has no video stream")
            stream = container.streams.video[0]
            pts: list[int] = []
            keys: set[int] = set()
            for packet in container.demux(stream):
                if packet.pts is None or packet.size == 0 or packet.is_discard:
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.add(packet.pts)
            return FrameIndex(sorted(set(pts)), frozenset(keys), stream.time_base or Fraction(1, 90000),
                              stream.average_rate or stream.guessed_rate)
    except av.FFmpegError as error:
        raise SbsError(f"{source}: not a readable video ({first_line(error)})") from None


def select_frames(index: FrameIndex, start: float | None, end: float | None, max_fps: float | None) -> list[int]:
    """The pts of the frames to convert: those in [start, end) seconds, at most `max_fps` per
    second (a frame is kept when it is the first in its 1/max_fps slot)."""
    kept = []
    last_slot = None
    for pts in index.pts:
        seconds = index.seconds(pts)
        if (start is not None and seconds < start) or (end is not None and seconds >= end):
            continue
        if max_fps is not None:
            slot = int(seconds * max_fps + 1e-9)
            if slot == last_slot:
                continue
            last_slot = slot
        kept.append(pts)
    return kept


def parse_time(text: str, setting: str) -> float:
    """Seconds from '90', '90.5', '1:30' or '0:01:30.5'."""
    try:
        parts = [float(part) for part in str(text).strip().split(":")]
    except ValueError:
        parts = []
    if not 1 <= len(parts) <= 3 or any(part < 0 for part in parts):
        raise SbsError(f"`{setting}` '{text}' is not a time (seconds, or [HH:]MM:SS such as 1:30)")
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds
