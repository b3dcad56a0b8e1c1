"""Encode stereo frames to H.264/HEVC with PyAV as they come, copying the source's audio.

Each frame keeps its source timestamp (variable frame rate survives) and the stream keeps the
source's time base and nominal rate. Audio packets are remuxed unchanged (no re-encoding), read
from a second demuxer of the source in step with the video, so the file is interleaved and
nothing accumulates. yuv420 formats need even sizes: an odd width or height is padded by one
row/column repeating the last one (cropping would cut a column off one eye).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from sbsconvert.errors import SbsError, first_line
from sbsconvert.output import IMAGE_FORMATS, _quantize, write_image
from sbsconvert.video.st3d import add_st3d

CODECS = {"h264": "libx264", "hevc": "libx265"}
PIXEL_FORMATS = ("yuv420p", "yuv420p10le")
DEFAULT_CRF = {"h264": 18, "hevc": 20}  # visually transparent for most material
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
# Matroska StereoMode per layout (FFmpeg's names); players such as VLC and Kodi read it.
MATROSKA_STEREO_MODES = {
    "sbs": "left_right",
    "hsbs": "left_right",
    "tb": "top_bottom",
    "htb": "top_bottom",
    "crosseye": "right_left",
    "anaglyph": "anaglyph_cyan_red",
}
# Tags describing the old encode that would be wrong on ours.
_STALE_TAGS = {"encoder", "rotate", "duration", "major_brand", "minor_version", "compatible_brands", "bps",
               "number_of_frames", "number_of_bytes"}


@dataclass
class VideoSettings:
    codec: str = "h264"
    crf: int | None = None  # constant quality (lower = better); the default when no bitrate is set
    bitrate: str | None = None  # e.g. "12M", "800k"
    pixel_format: str = "yuv420p"

    def check(self) -> None:
        if self.codec not in CODECS:
            raise SbsError(f"unknown video codec '{self.codec}' (choose from {', '.join(CODECS)})")
        if self.pixel_format not in PIXEL_FORMATS:
            raise SbsError(f"unknown pixel format '{self.pixel_format}' (choose from {', '.join(PIXEL_FORMATS)})")
        if self.crf is not None and self.bitrate is not None:
            raise SbsError("--crf and --bitrate contradict each other; give one")
        if self.crf is not None and not 0 <= self.crf <= 51:
            raise SbsError(f"crf must be between 0 and 51, got {self.crf}")
        if self.bitrate is not None:
            parse_bitrate(self.bitrate)
        encoder_name(self.codec)


def parse_bitrate(text: str) -> int:
    """Bits per second from '12M', '800k', '2.5M' or '5000000'."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*", str(text))
    if not match:
        raise SbsError(f"bitrate '{text}' is not a number with an optional k/M/G suffix (e.g. 12M)")
    value = float(match.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[match.group(2).lower()]
    if value < 10_000:
        raise SbsError(f"bitrate '{text}' is below 10 kbit/s; give e.g. 8M")
    return int(value)


def encoder_name(codec: str) -> str:
    """The FFmpeg encoder for `codec`, refused clearly when this PyAV build lacks it."""
    name = CODECS[codec]
    if name not in av.codecs_available:
        others = [c for c, lib in CODECS.items() if lib in av.codecs_available]
        hint = f"; use --codec {others[0]}" if others else ""
        raise SbsError(f"this FFmpeg build has no {name} encoder for {codec}{hint}")
    return name


def even_size(pixels: np.ndarray) -> np.ndarray:
    """Pad an odd width/height by one pixel (repeating the edge) for yuv420's 2x2 chroma blocks."""
    height, width = pixels.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return pixels
    return np.pad(pixels, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


class VideoWriter:
    """Write frames (HxWx3 float [0, 1], same size each time) with their timestamps to `path`.

    `source` gives the audio streams to copy and the metadata to keep; `layout` the stereo mode
    written where the container has a field for it (Matroska); `audio_window` (start, end seconds)
    copies only that stretch of the audio (a trimmed video).

    With `capture` nothing is written to `path`: the encoded packets are kept in `captured` (a
    segment of a long video, see segments.py) as (pts, dts, keyframe, data), encoded exactly as
    this container would take them.
    `copy` muxes such packets into a real file instead of encoding frames."""

    def __init__(
        self,
        path: Path,
        settings: VideoSettings,
        *,
        frame_rate: Fraction | None,
        time_base: Fraction,
        source: Path | None = None,
        layout: str | None = None,
        container_suffix: str | None = None,
        capture: bool = False,
        audio_window: tuple[float, float] | None = None,
    ):
        suffix = (container_suffix or Path(path).suffix).lower()
        if suffix not in CONTAINERS:
            raise SbsError(f"{path}: unsupported video container '{suffix}' (use {', '.join(CONTAINERS)})")
        self.settings = settings
        self.path = Path(path)
        self.frame_rate = frame_rate
        self.time_base = time_base
        self._format = CONTAINERS[suffix]
        self.captured: list[tuple[int, int, bool, bytes]] | None = [] if capture else None
        self.container = av.open(io.BytesIO() if capture else str(path), "w", format=self._format)
        self.stream: av.video.stream.VideoStream | None = None
        self._layout = layout
        self._audio: _AudioCopy | None = None
        self._source = source
        self._audio_window = audio_window
        self._last_pts: int | None = None
        self._copied = False

    def _open_stream(self, width: int, height: int) -> None:
        settings = self.settings
        options = {}
        if settings.bitrate is None:
            options["crf"] = str(settings.crf if settings.crf is not None else DEFAULT_CRF[settings.codec])
        if settings.codec == "hevc":
            options["x265-params"] = "log-level=error"  # x265 prints its settings on stderr otherwise
        stream = self.container.add_stream(encoder_name(settings.codec), rate=self.frame_rate, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, settings.pixel_format
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        if settings.bitrate is not None:
            stream.bit_rate = parse_bitrate(settings.bitrate)
        # BT.709 is what players assume for HD; say so rather than leave it unspecified.
        stream.codec_context.colorspace = stream.codec_context.color_primaries = stream.codec_context.color_trc = 1
        if settings.codec == "hevc" and self.container.format.name in ("mp4", "mov"):
            stream.codec_tag = "hvc1"  # Apple players (and Vision Pro) only accept this tag for HEVC
        if self._layout in MATROSKA_STEREO_MODES and self.container.format.name == "matroska":
            stream.metadata["stereo_mode"] = MATROSKA_STEREO_MODES[self._layout]
        self.stream = stream
        if self._source is not None:
            self._audio = _AudioCopy(self._source, self.container, self._audio_window)
            self._keep_metadata(self._audio.input)  # the source is open for its audio already

    def _keep_metadata(self, original: av.container.InputContainer) -> None:
        self.container.metadata.update(_fresh_tags(original.metadata))
        assert self.stream is not None
        if original.streams.video:
            self.stream.metadata.update(_fresh_tags(original.streams.video[0].metadata))

    def write(self, pixels: np.ndarray, pts: int) -> None:
        pixels = even_size(pixels)
        if self.stream is None:
            self._open_stream(pixels.shape[1], pixels.shape[0])
        if self._last_pts is not None and pts <= self._last_pts:
            return  # a duplicate timestamp (broken source) cannot be muxed; the frame is dropped
        self._last_pts = pts
        deep = self.settings.pixel_format.endswith("10le")
        data = _quantize(pixels[..., :3], 65535 if deep else 255, np.uint16 if deep else np.uint8)
        frame = av.VideoFrame.from_ndarray(data, format="rgb48le" if deep else "rgb24")
        frame = frame.reformat(format=self.settings.pixel_format, dst_colorspace="ITU709")
        frame.pts, frame.time_base = pts, self.time_base
        if self._audio is not None:
            self._audio.copy_until(float(pts * self.time_base))
        self._mux(self.stream.encode(frame))

    def copy(self, packets: Iterator[av.Packet], width: int, height: int, extradata: bytes | None) -> None:
        """Mux packets captured by a writer with the same settings (no re-encoding); their
        codec headers must be the ones this writer's encoder makes, which is checked."""
        if self.stream is None:
            self._open_stream(width, height)
        assert self.stream is not None
        if not self.stream.codec_context.is_open:
            self.stream.codec_context.open()
        if (self.stream.codec_context.extradata or None) != (extradata or None):
            raise SbsError(f"{self.path}: a segment was encoded with other settings; it cannot be joined")
        for packet in packets:
            packet.stream = self.stream
            if self._audio is not None:
                self._audio.copy_until(float(packet.dts * packet.time_base))
            self._mux([packet])
        self._copied = True

    def _mux(self, packets: list[av.Packet]) -> None:
        if self.captured is not None:
            # Copied now: the encoder may reuse a packet's memory once it is closed.
            self.captured.extend((packet.pts, packet.dts, packet.is_keyframe, bytes(packet)) for packet in packets)
            return
        try:
            self.container.mux(packets)
        except av.FFmpegError as error:
            raise SbsError(f"{self.path}: cannot write the video ({first_line(error)})") from None

    def close(self) -> None:
        """Flush the encoder, copy the rest of the audio and finish the file."""
        try:
            if self.stream is not None and not self._copied:
                self._mux(self.stream.encode(None))
            if self._audio is not None:
                self._audio.copy_until(float("inf"))
        finally:
            self.abort()
        if self._format in ("mp4", "mov") and self._layout is not None:
            add_st3d(self.path, self._layout)  # MP4/MOV stereo signalling (Matroska has StereoMode)

    def abort(self) -> None:
        if self._audio is not None:
            self._audio.close()
            self._audio = None
        if self.container is not None:
            container, self.container = self.container, None
            try:
                container.close()
            except av.FFmpegError as error:
                raise SbsError(f"{self.path}: cannot finish the video ({first_line(error)})") from None


def _fresh_tags(tags: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in tags.items() if key.lower() not in _STALE_TAGS and not key.startswith("_STATISTICS")}


class _AudioCopy:
    """Remux the source's audio streams packet by packet, in step with the video being written.

    With a `window` (start, end seconds: a trimmed video) only the packets that start in it are
    copied, moved earlier by its start."""

    def __init__(self, source: Path, output: av.container.OutputContainer, window: tuple[float, float] | None = None):
        self.window = window
        self.input = av.open(str(source))
        self.output = output
        self.streams = {}
        for stream in self.input.streams.audio:
            try:
                copy = output.add_stream_from_template(stream)
            except (av.FFmpegError, ValueError) as error:
                self.input.close()
                raise SbsError(f"{source}: its {stream.codec_context.name} audio cannot be copied into "
                               f"{output.format.name} ({first_line(error)})") from None
            copy.metadata.update(_fresh_tags(stream.metadata))
            self.streams[stream.index] = copy
        self.packets: Iterator[av.Packet] = (
            iter(self.input.demux(*self.input.streams.audio)) if self.streams else iter(())
        )
        self.pending: av.Packet | None = None

    def copy_until(self, seconds: float) -> None:
        while True:
            if self.pending is None:
                self.pending = next(self.packets, None)
                if self.pending is None:
                    return
            packet = self.pending
            if packet.dts is None or packet.size == 0:  # demuxer flush markers carry nothing
                self.pending = None
                continue
            start, end = self.window or (0.0, float("inf"))
            if float(packet.dts * packet.time_base) > seconds + start:
                return
            if self.window is not None:
                if not start <= float(packet.pts * packet.time_base) < end:
                    self.pending = None
                    continue
                shift = round(start / packet.time_base)
                packet.pts, packet.dts = packet.pts - shift, packet.dts - shift
            packet.stream = self.streams[packet.stream_index]
            try:
                self.output.mux(packet)
            except av.FFmpegError as error:
                raise SbsError(f"cannot copy audio into {self.output.format.name} ({first_line(error)})") from None
            self.pending = None

    def close(self) -> None:
        self.input.close()


FRAME_DIGITS = 6  # 000001.png: a day of 60 fps video still sorts by name


def frame_name(index: int, extension: str) -> str:
    return f"{index:0{FRAME_DIGITS}d}{extension}"


def numbered_frames(folder: Path) -> list[Path]:
    """Frames written by FrameFolderWriter (000001.png ...) that `folder` already holds."""
    if not folder.is_dir():
        return []
    return [path for path in folder.iterdir()
            if path.stem.isdigit() and len(path.stem) == FRAME_DIGITS and path.suffix.lower() in IMAGE_FORMATS]


def check_frame_folder(folder: Path, force: bool, skip_existing: bool) -> None:
    """Refuse before any work when `folder` already holds frames and neither --force nor --skip-existing allows it."""
    if folder.exists() and not folder.is_dir():
        raise SbsError(f"{folder} is a file; --frames-out writes a folder of frames there")
    if numbered_frames(folder) and not (force or skip_existing):
        raise SbsError(f"{folder} already holds frames (use --force to overwrite, --skip-existing to keep them and "
                       "write the missing ones)")


class FrameFolderWriter:
    """Write each frame as a numbered image (000001.png, ...) in `folder`, with VideoWriter's interface.

    Every image is published atomically, so a frame that exists is complete: with `skip_existing` an
    interrupted run resumes by writing only the missing ones. Timestamps are not kept, only the order."""

    def __init__(self, folder: Path, extension: str, *, force: bool, skip_existing: bool, quality: int = 95):
        if extension.lower() not in IMAGE_FORMATS:
            raise SbsError(f"unsupported frame image type '{extension}' (use {', '.join(IMAGE_FORMATS)})")
        self.folder = Path(folder)
        self.extension = extension
        self.force = force
        self.skip_existing = skip_existing
        self.quality = quality
        self.count = 0

    def write(self, pixels: np.ndarray, pts: int) -> None:
        self.count += 1
        path = self.folder / frame_name(self.count, self.extension)
        if self.skip_existing and path.exists():
            return  # finished by an earlier, interrupted run
        write_image(pixels, path, force=self.force, quality=self.quality)

    def close(self) -> None:
        """Each frame was complete when written. With --force the folder is replaced as a whole:
        numbered frames of an earlier, longer (or other image type) run are removed, so the folder
        never mixes two conversions."""
        if not self.force:
            return
        written = {frame_name(index, self.extension) for index in range(1, self.count + 1)}
        for path in numbered_frames(self.folder):
            if path.name not in written:
                path.unlink()

    def abort(self) -> None:
        """Frames already written stay: each is complete, and --skip-existing resumes after them."""
