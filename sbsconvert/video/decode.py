"""Decode a video as a stream of upright RGB frames (float32 [0, 1]) with their own timestamps."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from sbsconvert.errors import SbsError, first_line


@dataclass
class Frame:
    pixels: np.ndarray  # HxWx3 float32 in [0, 1], display orientation
    pts: int  # presentation time in units of the stream's time base (kept for the output: VFR survives)
    time_base: Fraction

    @property
    def time(self) -> float:
        return float(self.pts * self.time_base)


@dataclass
class VideoInfo:
    frame_rate: Fraction | None  # average rate; the output's nominal rate
    time_base: Fraction
    frame_count: int  # from the container header; 0 when it does not say
    codec: str


class VideoReader:
    """Open a video file's first video stream; `frames()` yields it frame by frame (nothing is kept)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise SbsError(f"{self.path}: no such file")
        if self.path.stat().st_size == 0:
            raise SbsError(f"{self.path}: the file is empty")
        try:
            self.container = av.open(str(self.path))
        except av.FFmpegError as error:
            raise SbsError(f"{self.path}: not a readable video ({first_line(error)})") from None
        try:
            self.stream = self._video_stream()
            self.info = self._read_info()
        except BaseException:
            self.container.close()
            raise

    def _video_stream(self) -> av.video.stream.VideoStream:
        if not self.container.streams.video:
            raise SbsError(f"{self.path}: has no video stream")
        stream = self.container.streams.video[0]
        if stream.codec_context is None:
            raise SbsError(f"{self.path}: its video codec cannot be decoded by this FFmpeg build (unsupported codec)")
        stream.thread_type = "AUTO"  # frame threads: decoding keeps up with the warp
        return stream

    def _read_info(self) -> VideoInfo:
        stream = self.stream
        width, height = stream.codec_context.width, stream.codec_context.height
        if 0 < min(width, height) < 2:
            raise SbsError(f"{self.path}: video is {width}x{height}, too small to convert")
        return VideoInfo(
            frame_rate=stream.average_rate or stream.guessed_rate,
            time_base=stream.time_base or Fraction(1, 90000),
            frame_count=stream.frames or 0,
            codec=stream.codec_context.name,
        )

    def frames(self) -> Iterator[Frame]:
        time_base = self.info.time_base
        # Frames without a timestamp (rare, raw streams) continue from the last one at the nominal rate.
        step = max(1, round(1 / (self.info.frame_rate * time_base))) if self.info.frame_rate else 1
        last_pts: int | None = None
        count = 0
        try:
            for frame in self.container.decode(self.stream):
                pts = frame.pts if frame.pts is not None else (0 if last_pts is None else last_pts + step)
                last_pts = pts
                count += 1
                yield Frame(pixels=_upright_rgb(frame), pts=pts, time_base=time_base)
        except av.FFmpegError as error:
            raise SbsError(f"{self.path}: video data is corrupt or truncated after {count} frames ({first_line(error)})") from None
        if count == 0:
            raise SbsError(f"{self.path}: the video has no decodable frames")
        # A cut-off file whose index sits at the front decodes "fine", just shorter; the index says
        # how many frames there should be (a little slack: edit lists may hide a frame or two).
        expected = self.info.frame_count
        if expected and count < expected - max(1, expected // 50):
            raise SbsError(f"{self.path}: the video is truncated ({count} of its {expected} frames decode)")

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _upright_rgb(frame: av.VideoFrame) -> np.ndarray:
    """The frame as displayed: FFmpeg hands the container's display matrix (phones record portrait
    clips as rotated landscape frames) to every frame; its rotation is counter-clockwise degrees."""
    # 10/12-bit sources go through 16-bit RGB so their extra precision reaches the warp.
    deep = max(component.bits for component in frame.format.components) > 8
    pixels = frame.to_ndarray(format="rgb48le" if deep else "rgb24")
    pixels = pixels.astype(np.float32) / (65535.0 if deep else 255.0)
    turns = round(frame.rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(pixels, turns)) if turns else pixels
