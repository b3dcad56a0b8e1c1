"""Encode stereo frames to H.264/HEVC with PyAV as they come, copying the source's audio.

Each frame keeps its source timestamp (variable frame rate survives) and the stream keeps the
source's time base and nominal rate. Audio packets are remuxed unchanged (no re-encoding), read
from a second demuxer of the source in step with the video, so the file is interleaved and
nothing accumulates. yuv420 formats need even sizes: an odd width or height is padded by one
row/column repeating the last one (cropping would cut a column off one eye).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from sbsconvert.errors import SbsError, first_line
from sbsconvert.output import IMAGE_FORMATS, _quantize, write_image
from sbsconvert.video.encoders import (
    CODEC_CHOICES,
    SOFTWARE,
    encoder_pixel_format,
    has_constant_quality,
    pick_encoder,
    rate_options,
    video_format,
)
from sbsconvert.video.st3d import add_st3d

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


# Encoders without a constant-quality mode get this many bits per pixel and frame by default.
DEFAULT_BITS_PER_PIXEL = {"h264": 0.1, "hevc": 0.07}
DEFAULT_FRAME_RATE = 30  # for a rate per pixel when the source does not say its frame rate


@dataclass
class VideoSettings:
    codec: str = "h264"  # h264 / hevc (software), auto, or an FFmpeg encoder (encoders.CODEC_CHOICES)
    crf: int | None = None  # constant quality (lower = better); the default when no rate is set
    bitrate: str | None = None  # e.g. "12M", "800k"
    bits_per_pixel: float | None = None  # a rate that follows the output: width x height x frames/s x this
    pixel_format: str = "yuv420p"
    encoder: str | None = None  # the FFmpeg encoder; check() picks it from `codec`

    def check(self) -> str | None:
        """Refuse bad settings and pick the encoder; returns a one-line note when a hardware
        encoder asked for does not work here and software stands in."""
        if self.codec not in CODEC_CHOICES:
            raise SbsError(f"unknown video codec '{self.codec}' (choose from {', '.join(CODEC_CHOICES)})")
        if self.pixel_format not in PIXEL_FORMATS:
            raise SbsError(f"unknown pixel format '{self.pixel_format}' (choose from {', '.join(PIXEL_FORMATS)})")
        rates = [name for name, value in (("--crf", self.crf), ("--bitrate", self.bitrate),
                                          ("bits_per_pixel", self.bits_per_pixel)) if value is not None]
        if len(rates) > 1:
            raise SbsError(f"{' and '.join(rates)} contradict each other; give one")
        if self.crf is not None and not 0 <= self.crf <= 51:
            raise SbsError(f"crf must be between 0 and 51, got {self.crf}")
        if self.bitrate is not None:
            parse_bitrate(self.bitrate)
        if self.bits_per_pixel is not None and not 0 < self.bits_per_pixel <= 24:
            raise SbsError(f"bits_per_pixel must be above 0 and at most 24, got {self.bits_per_pixel}")
        self.encoder, note = pick_encoder(self.codec, self.pixel_format)
        return note

    @property
    def format(self) -> str:
        """h264 or hevc."""
        return video_format(self.codec, self.pixel_format)

    def bit_rate(self, width: int, height: int, frame_rate: Fraction | None) -> int | None:
        """Bits per second for a `width` x `height` output, None for constant quality."""
        if self.bitrate is not None:
            return parse_bitrate(self.bitrate)
        bits_per_pixel = self.bits_per_pixel
        if bits_per_pixel is None and not has_constant_quality(self.encoder or SOFTWARE[self.format]):
            bits_per_pixel = DEFAULT_BITS_PER_PIXEL[self.format]
        if bits_per_pixel is None:
            return None
        return round(bits_per_pixel * width * height * float(frame_rate or DEFAULT_FRAME_RATE))


def parse_bitrate(text: str) -> int:
    """Bits per second from '12M', '800k', '2.5M' or '5000000'."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*", str(text))
    if not match:
        raise SbsError(f"bitrate '{text}' is not a number with an optional k/M/G suffix (e.g. 12M)")
    value = float(match.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[match.group(2).lower()]
    if value < 10_000:
        raise SbsError(f"bitrate '{text}' is below 10 kbit/s; give e.g. 8M")
    return int(value)


def even_size(pixels: np.ndarray) -> np.ndarray:
    """Pad an odd width/height by one pixel (repeating the edge) for yuv420's 2x2 chroma blocks."""
    height, width = pixels.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return pixels
    return np.pad(pixels, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


class VideoWriter:
    """Write frames (HxWx3 float [0, 1], same size each time) with their timestamps to `path`.

    `source` gives the audio streams to copy and the metadata to keep; `layout` the stereo mode
    written where the container has a field for it (Matroska)."""

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
    ):
        suffix = (container_suffix or Path(path).suffix).lower()
        if suffix not in CONTAINERS:
            raise SbsError(f"{path}: unsupported video container '{suffix}' (use {', '.join(CONTAINERS)})")
        self.settings = settings
        self.path = Path(path)
        self.frame_rate = frame_rate
        self.time_base = time_base
        self._format = CONTAINERS[suffix]
        self.container = av.open(str(path), "w", format=self._format)
        self.stream: av.video.stream.VideoStream | None = None
        self._layout = layout
        self._audio: _AudioCopy | None = None
        self._source = source
        self._last_pts: int | None = None

    def _open_stream(self, width: int, height: int) -> None:
        settings = self.settings
        encoder = settings.encoder or pick_encoder(settings.codec, settings.pixel_format)[0]
        bit_rate = settings.bit_rate(width, height, self.frame_rate)
        options = {} if bit_rate is not None else rate_options(
            encoder, settings.crf if settings.crf is not None else DEFAULT_CRF[settings.format])
        if encoder == "libx265":
            options["x265-params"] = "log-level=error"  # x265 prints its settings on stderr otherwise
        stream = self.container.add_stream(encoder, rate=self.frame_rate, options=options)
        stream.width, stream.height = width, height
        stream.pix_fmt = encoder_pixel_format(encoder, settings.pixel_format)
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        # BT.709 is what players assume for HD; say so rather than leave it unspecified.
        stream.codec_context.colorspace = stream.codec_context.color_primaries = stream.codec_context.color_trc = 1
        if settings.format == "hevc" and self.container.format.name in ("mp4", "mov"):
            stream.codec_tag = "hvc1"  # Apple players (and Vision Pro) only accept this tag for HEVC
        if self._layout in MATROSKA_STEREO_MODES and self.container.format.name == "matroska":
            stream.metadata["stereo_mode"] = MATROSKA_STEREO_MODES[self._layout]
        self.stream = stream
        if self._source is not None:
            self._audio = _AudioCopy(self._source, self.container)
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
        frame = frame.reformat(format=self.stream.pix_fmt, dst_colorspace="ITU709")
        frame.pts, frame.time_base = pts, self.time_base
        if self._audio is not None:
            self._audio.copy_until(float(pts * self.time_base))
        self._mux(self.stream.encode(frame))

    def _mux(self, packets: list[av.Packet]) -> None:
        try:
            self.container.mux(packets)
        except av.FFmpegError as error:
            raise SbsError(f"{self.path}: cannot write the video ({first_line(error)})") from None

    def close(self) -> None:
        """Flush the encoder, copy the rest of the audio and finish the file."""
        try:
            if self.stream is not None:
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
    """Remux the source's audio streams packet by packet, in step with the video being written."""

    def __init__(self, source: Path, output: av.container.OutputContainer):
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
            if float(packet.dts * packet.time_base) > seconds:
                return
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
