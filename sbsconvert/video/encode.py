"""Encode stereo frames to H.264/HEVC with PyAV as they come, copying the source's audio and subtitles.

Each frame keeps its source timestamp (variable frame rate survives) and the stream keeps the
source's time base and nominal rate. Audio packets are remuxed unchanged where the container holds
them (else re-encoded, see audio.py), read from a second demuxer of the source in step with the
video, so the file is interleaved and nothing accumulates. yuv420 formats need even sizes: an odd
width or height is padded by one row/column repeating the last one (cropping would cut a column
off one eye).
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol

import av
import numpy as np

from sbsconvert.choices import AUDIO_CHOICES, CODEC_CHOICES, PIXEL_FORMATS
from sbsconvert.errors import SbsError, first_line
from sbsconvert.formats.st3d import add_st3d
from sbsconvert.output import DEFAULT_PNG_COMPRESSION, IMAGE_FORMATS, SIXTEEN_BIT_FORMATS, quantize, write_image
from sbsconvert.video.audio import AacEncoder, AudioPlan, plan_audio
from sbsconvert.video.colour import Colour
from sbsconvert.video.encoders import (
    SOFTWARE,
    encoder_pixel_format,
    has_constant_quality,
    pick_encoder,
    rate_options,
    settle_x265_dts,
    video_format,
    x264_params,
)
from sbsconvert.video.hdr import hdr10_x265_params
from sbsconvert.video.timeline import chapters_in, clip_cue, is_chapter_track

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
    codec: str = "h264"  # h264 / hevc (software), auto, or an FFmpeg encoder (choices.CODEC_CHOICES)
    crf: int | None = None  # constant quality (lower = better); the default when no rate is set
    bitrate: str | None = None  # e.g. "12M", "800k"
    bits_per_pixel: float | None = None  # a rate that follows the output: width x height x frames/s x this
    pixel_format: str | None = None  # None: 10-bit for HEVC from a deeper source, else 8-bit
    encoder: str | None = None  # the FFmpeg encoder; check() picks it from `codec`
    audio: str = "auto"  # audio.AUDIO_CHOICES: copy where the container holds it, else AAC

    def check(self) -> str | None:
        """Refuse bad settings and pick the encoder; returns a one-line note when a hardware
        encoder asked for does not work here and software stands in."""
        if self.codec not in CODEC_CHOICES:
            raise SbsError(f"unknown video codec '{self.codec}' (choose from {', '.join(CODEC_CHOICES)})")
        if self.pixel_format is not None and self.pixel_format not in PIXEL_FORMATS:
            raise SbsError(f"unknown pixel format '{self.pixel_format}' (choose from {', '.join(PIXEL_FORMATS)})")
        if self.audio not in AUDIO_CHOICES:
            raise SbsError(f"unknown audio choice '{self.audio}' (choose from {', '.join(AUDIO_CHOICES)})")
        rates = [f"`{name}`" for name, value in (("crf", self.crf), ("bitrate", self.bitrate),
                                                ("bits_per_pixel", self.bits_per_pixel)) if value is not None]
        if len(rates) > 1:
            raise SbsError(f"{' and '.join(rates)} contradict each other; give one")
        if self.crf is not None and not 0 <= self.crf <= 51:
            raise SbsError(f"crf must be between 0 and 51, got {self.crf}")
        if self.bitrate is not None:
            parse_bitrate(self.bitrate)
        if self.bits_per_pixel is not None and not 0 < self.bits_per_pixel <= 24:
            raise SbsError(f"bits_per_pixel must be above 0 and at most 24, got {self.bits_per_pixel}")
        self.encoder, note = pick_encoder(self.codec, self.pixel_format or "yuv420p")
        return note

    @property
    def format(self) -> str:
        """h264 or hevc."""
        return video_format(self.codec, self.pixel_format or "yuv420p")

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


def output_pixel_format(settings: VideoSettings, source_bits: int) -> str:
    """The chosen pixel format, else 10-bit when HEVC can keep a deeper source's precision (8-bit
    H.264 stays the default: 10-bit H.264 plays on few devices)."""
    if settings.pixel_format is not None:
        return settings.pixel_format
    return "yuv420p10le" if settings.format == "hevc" and source_bits > 8 else "yuv420p"


def encoder_options(settings: VideoSettings, encoder: str, bit_rate: int | None,
                    x265_params: Iterable[str] = ()) -> dict[str, str]:
    """FFmpeg options of `encoder`: constant quality unless a bit rate is set; x265 kept quiet,
    x264 deterministic (see x264_params)."""
    options = {} if bit_rate is not None else rate_options(
        encoder, settings.crf if settings.crf is not None else DEFAULT_CRF[settings.format])
    if encoder == SOFTWARE["hevc"]:
        # x265 prints its settings on stderr otherwise
        options["x265-params"] = ":".join(["log-level=error", *x265_params])
    if encoder == SOFTWARE["h264"] and (params := x264_params()) is not None:
        options["x264-params"] = params
    return options


def video_frame(pixels: np.ndarray, pixel_format: str, colour: Colour) -> av.VideoFrame:
    """HxWx3 float [0, 1] pixels (even size) as a frame of `pixel_format` (8 or 10 bits) in the
    matrix and range of `colour`."""
    deep = pixel_format.endswith("10le")
    data = quantize(pixels[..., :3], 65535 if deep else 255, np.uint16 if deep else np.uint8)
    frame = av.VideoFrame.from_ndarray(data, format="rgb48le" if deep else "rgb24")
    return frame.reformat(format=pixel_format, dst_colorspace=colour.swscale_matrix, dst_color_range=colour.range)


def even_size(pixels: np.ndarray) -> np.ndarray:
    """Pad an odd width/height by one pixel (repeating the edge) for yuv420's 2x2 chroma blocks."""
    height, width = pixels.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return pixels
    return np.pad(pixels, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


class FrameWriter(Protocol):
    """Where the video pipeline hands the frames of one view: a video file (VideoWriter), a folder
    of numbered images (FrameFolderWriter), one eye of a spatial video (EyeWriter) or a segment of
    a long video (SegmentWriter). `close` finishes the output; `abort` (after an error or an
    interrupt) releases what is open and leaves no partial output that looks complete."""

    @property
    def notes(self) -> list[str]:
        """What of the source the output cannot keep (one line each), for the user."""

    def write(self, pixels: np.ndarray, pts: int) -> None:
        """One frame (HxWx3 float [0, 1], the same size each time) shown at `pts`."""

    def close(self) -> None: ...

    def abort(self) -> None: ...


class EncodedVideoWriter:
    """What VideoWriter and SpatialVideoWriter share: the file, its encoder settings and container,
    the frame rate and time base the frames' timestamps count in, and the source (`source`: its
    audio and metadata; `colour` and `source_bits`: its pixels, kept as far as the output allows).
    A subclass refuses a container it cannot write (check_container) before anything is opened."""

    def __init__(
        self,
        path: Path,
        settings: VideoSettings,
        *,
        frame_rate: Fraction | None,
        time_base: Fraction,
        source: Path | None = None,
        container_suffix: str | None = None,
        colour: Colour = Colour(),
        source_bits: int = 8,
    ):
        self.path = Path(path)
        self.suffix = (container_suffix or self.path.suffix).lower()
        self.check_container(settings, self.suffix)
        self.settings = settings
        self.frame_rate = frame_rate
        self.time_base = time_base
        self.source = source
        self.colour = colour
        self._format = CONTAINERS[self.suffix]
        self.pixel_format = output_pixel_format(settings, source_bits)
        # What of the source the output cannot keep.
        self.notes: list[str] = precision_notes(source or self.path, source_bits, self.pixel_format,
                                                self.codec_format(settings), colour)

    def check_container(self, settings: VideoSettings, suffix: str) -> None:
        if suffix not in CONTAINERS:
            raise SbsError(f"{self.path}: unsupported video container '{suffix}' (use {', '.join(CONTAINERS)})")

    def codec_format(self, settings: VideoSettings) -> str:
        """h264 or hevc: what the file's video is encoded as."""
        return settings.format


class VideoWriter(EncodedVideoWriter):
    """Write frames (HxWx3 float [0, 1], same size each time) with their timestamps to `path`.

    `source` gives the audio streams to copy and the metadata to keep; `layout` the stereo mode
    written where the container has a field for it (Matroska); `colour` and `source_bits` describe
    the source's pixels, kept as far as the output format allows; `audio_window` (start, end
    seconds) copies only that stretch of the audio, subtitles and chapters (a trimmed video).

    With `capture` nothing is written to `path`: the encoded packets are kept in `captured` (a
    segment of a long video, see segments/join.py) as (pts, dts, keyframe, data), encoded exactly as
    this container would take them.
    `copy` muxes such packets into a real file instead of encoding frames."""

    def __init__(self, path: Path, settings: VideoSettings, *, layout: str | None = None, capture: bool = False,
                 audio_window: tuple[float, float] | None = None, **common: Any):
        """`common`: EncodedVideoWriter's keywords (frame_rate, time_base, source, ...)."""
        super().__init__(path, settings, **common)
        source = self.source
        # Decided before any frame is encoded; a segment's audio is decided when the segments are joined.
        self._audio = None if source is None or capture else plan_audio(source, self._format, self.suffix,
                                                                         settings.audio)
        self.captured: list[tuple[int, int, bool, bytes]] | None = [] if capture else None
        # Matroska's muxer draws random segment and track UIDs unless bit-exact: two runs of the
        # same command would differ in those bytes.
        options = {"fflags": "+bitexact"} if self._format == "matroska" else {}
        self.container = av.open(io.BytesIO() if capture else str(path), "w", format=self._format, options=options)
        self.stream: av.video.stream.VideoStream | None = None
        self._layout = layout
        self._copy: StreamCopy | None = None
        self._audio_window = audio_window
        self.notes += self._audio.notes if self._audio else []
        self._copied = False
        self._frames_given = 0  # to the encoder

    def _open_stream(self, width: int, height: int) -> None:
        settings = self.settings
        encoder = settings.encoder or pick_encoder(settings.codec, self.pixel_format)[0]
        bit_rate = settings.bit_rate(width, height, self.frame_rate)
        # An HDR10 source's metadata goes in the HEVC stream.
        hdr10 = hdr10_x265_params(self.source) if self.colour.hdr == "PQ" and self.source else []
        stream = self.container.add_stream(encoder, rate=self.frame_rate,
                                           options=encoder_options(settings, encoder, bit_rate, hdr10))
        stream.width, stream.height = width, height
        stream.pix_fmt = encoder_pixel_format(encoder, self.pixel_format)
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        # The source's colour description (BT.709 where it says nothing: what players assume for HD).
        context = stream.codec_context
        context.color_primaries, context.color_trc = self.colour.primaries, self.colour.transfer
        context.colorspace, context.color_range = self.colour.matrix, self.colour.range
        if settings.format == "hevc" and self.container.format.name in ("mp4", "mov"):
            stream.codec_tag = "hvc1"  # Apple players (and Vision Pro) only accept this tag for HEVC
        if self._layout in MATROSKA_STEREO_MODES and self.container.format.name == "matroska":
            stream.metadata["stereo_mode"] = MATROSKA_STEREO_MODES[self._layout]
        self.stream = stream
        if self.source is not None and self.captured is None:  # a segment's audio is copied when joined
            self._copy = StreamCopy(self.source, self.container, self._audio_window, self._audio)
            self.notes += self._copy.notes
            self._keep_metadata(self._copy.input)  # the source is open for its audio already

    def _keep_metadata(self, original: av.container.InputContainer) -> None:
        self.container.metadata.update(fresh_tags(original.metadata))
        assert self.stream is not None
        if original.streams.video:
            self.stream.metadata.update(fresh_tags(original.streams.video[0].metadata))

    def write(self, pixels: np.ndarray, pts: int) -> None:
        pixels = even_size(pixels)
        if self.stream is None:
            self._open_stream(pixels.shape[1], pixels.shape[0])
        frame = video_frame(pixels, self.stream.pix_fmt, self.colour)
        frame.pts, frame.time_base = pts, self.time_base
        if self._copy is not None:
            self._copy.copy_until(float(pts * self.time_base))
        self._frames_given += 1
        self._mux(self._encode(frame))

    def _encode(self, frame: av.VideoFrame | None) -> list[av.Packet]:
        assert self.stream is not None
        return settle_x265_dts(self.stream.codec_context.name, self.stream.encode(frame), self._frames_given)

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
            if self._copy is not None:
                self._copy.copy_until(float(packet.dts * packet.time_base))
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
                self._mux(self._encode(None))
            if self._copy is not None:
                self._copy.copy_until(float("inf"))
        finally:
            self.abort()
        if self._format in ("mp4", "mov") and self._layout is not None:
            add_st3d(self.path, self._layout)  # MP4/MOV stereo signalling (Matroska has StereoMode)

    def abort(self) -> None:
        if self._copy is not None:
            self._copy.close()
            self._copy = None
        if self.container is not None:
            container, self.container = self.container, None
            try:
                container.close()
            except av.FFmpegError as error:
                raise SbsError(f"{self.path}: cannot finish the video ({first_line(error)})") from None


def precision_notes(source: Path, source_bits: int, pixel_format: str, codec: str, colour: Colour) -> list[str]:
    """One note when `pixel_format` holds fewer bits than the source has, else none."""
    bits = 10 if pixel_format.endswith("10le") else 8
    if source_bits <= bits:
        return []
    what = f"{source_bits}-bit {colour.hdr} HDR" if colour.hdr else f"{source_bits}-bit"
    hint = "" if bits >= 10 else " (--pix-fmt yuv420p10le keeps 10 bits)" if codec == "hevc" else " (--codec hevc keeps 10 bits)"
    return [f"{Path(source).name}: its {what} video is written with {bits} bits, so fine gradients may band{hint}"]


def fresh_tags(tags: dict[str, str]) -> dict[str, str]:
    """The source's metadata tags less those about the source file itself (encoder, rotation,
    duration, brands, statistics), which would be false of the file written."""
    return {key: value for key, value in tags.items() if key.lower() not in _STALE_TAGS and not key.startswith("_STATISTICS")}


# The text subtitle format of each container, for text subtitles it cannot hold as they are.
TEXT_SUBTITLES = {"mp4": "mov_text", "mov": "mov_text", "matroska": "ass"}


class StreamCopy:
    """Remux the source's audio and subtitle streams packet by packet, in step with the video being written.

    Audio streams are copied, re-encoded or left out as the AudioPlan says (None: all copied).
    Subtitles the output cannot hold as they are (SubRip in MP4, mov_text in Matroska) are converted
    when they are text, else left out. Data streams (GoPro telemetry...) are left out: FFmpeg's
    muxers take few of them and would refuse the whole file; a timecode track is the exception, it is
    written anew from the timecode tag. Attachments (the fonts of ASS subtitles) are kept in Matroska
    only. Chapters are kept (an MP4 chapter track is written anew from them), and so is every copied
    stream's disposition (forced, default, hearing impaired...). `notes` says what was left out.

    With a `window` (start, end seconds: a trimmed video) only the audio packets that start in it
    are copied, moved earlier by its start (with `straddle`, also the one running across its start:
    MP4/MOV's edit list hides the part before it, so the track starts at 0 too); subtitle cues and
    chapters that overlap it are cut to it (see timeline.py)."""

    def __init__(self, source: Path, output: av.container.OutputContainer, window: tuple[float, float] | None = None,
                 audio: AudioPlan | None = None, straddle: bool = False):
        self.window = window
        self.straddle = straddle
        self.audio = audio or AudioPlan()
        self.encoders: dict[int, AacEncoder] = {}  # input index -> the audio re-encoded
        self.input = av.open(str(source))
        self.output = output
        self.streams: dict[int, av.stream.Stream] = {}
        self.converters: dict[int, av.codec.context.CodecContext] = {}  # input index -> its decoder
        self.notes: list[str] = []
        try:
            self._add_streams(source)
            # Before the header is written: Matroska writes the chapters there.
            if chapters := chapters_in(self.input.chapters(), window):
                output.set_chapters(chapters)
        except BaseException:
            self.input.close()
            raise
        copied = [stream for stream in self.input.streams if stream.index in self.streams]
        self.packets: Iterator[av.Packet] = iter(self.input.demux(*copied)) if copied else iter(())
        self.pending: av.Packet | None = None

    def _add_streams(self, source: Path) -> None:
        output = self.output
        holds = _codec_ids(output.supported_codecs)
        left_out: list[str] = []
        for stream in self.input.streams:
            if stream.type == "audio" and stream.index in self.audio.dropped:
                continue
            if stream.type == "audio" and stream.index in self.audio.transcoded:
                self.encoders[stream.index] = AacEncoder(stream, output)
                self.streams[stream.index] = self.encoders[stream.index].stream
            elif stream.type == "audio":
                try:
                    self.streams[stream.index] = output.add_stream_from_template(stream)
                except (av.FFmpegError, ValueError) as error:
                    raise SbsError(f"{source}: its {stream.codec_context.name} audio cannot be copied into "
                                   f"{output.format.name} ({first_line(error)})") from None
            elif stream.type == "subtitle":
                codec = stream.codec_context.codec if stream.codec_context is not None else None
                if codec is not None and codec.id in holds:
                    self.streams[stream.index] = output.add_stream_from_template(stream)
                elif codec is not None and codec.text_sub and output.format.name in TEXT_SUBTITLES:
                    self.streams[stream.index] = self._converted(stream, TEXT_SUBTITLES[output.format.name])
                else:
                    left_out.append(_track_words(stream))
            elif stream.type == "attachment" and output.format.name == "matroska":
                output.add_attachment(stream.name, stream.mimetype, stream.data)
            elif stream.type == "data" and ("timecode" in stream.metadata or is_chapter_track(stream)):
                pass  # written anew: a timecode track from the video's timecode tag, a chapter track from the chapters
            elif stream.type in ("data", "attachment"):
                left_out.append(_track_words(stream))
            if stream.index in self.streams:
                self.streams[stream.index].metadata.update(fresh_tags(stream.metadata))
                self.streams[stream.index].disposition = stream.disposition
        if left_out:
            self.notes.append(f"{source.name}: {', '.join(left_out)} left out ({output.format.name} output cannot hold them)")

    def _converted(self, stream: av.subtitles.stream.SubtitleStream, codec: str) -> av.stream.Stream:
        decoder = stream.codec_context
        decoder.open(strict=False)  # its ASS header (styles) is what the new encoder starts from
        copy = self.output.add_stream(codec)
        copy.time_base = copy.codec_context.time_base = stream.time_base
        copy.codec_context.subtitle_header = decoder.subtitle_header
        self.converters[stream.index] = decoder
        return copy

    def copy_until(self, seconds: float) -> None:
        while True:
            if self.pending is None:
                self.pending = next(self.packets, None)
                if self.pending is None:
                    if seconds == float("inf"):  # the end: what the audio encoders hold back
                        for encoder in self.encoders.values():
                            self._mux("audio", encoder.encode(None))
                        self.encoders.clear()
                    return
            packet = self.pending
            if packet.dts is None or packet.size == 0:  # demuxer flush markers carry nothing
                self.pending = None
                continue
            start, end = self.window or (0.0, float("inf"))
            if float(packet.dts * packet.time_base) > seconds + start:
                return
            self.pending = None
            if self.window is not None and packet.stream.type == "subtitle":
                if not clip_cue(packet, self.window):
                    continue
            elif self.window is not None:
                begins = float(packet.pts * packet.time_base)
                ends = float((packet.pts + packet.duration) * packet.time_base)
                if not (begins >= start or (self.straddle and ends > start)) or begins >= end:
                    continue
                shift = round(start / packet.time_base)
                packet.pts, packet.dts = packet.pts - shift, packet.dts - shift
            kind, target = packet.stream.type, self.streams[packet.stream_index]
            if packet.stream_index in self.encoders:
                self._mux(kind, self.encoders[packet.stream_index].encode(packet))
                continue
            if packet.stream_index in self.converters:
                packet = self._convert(packet, self.converters[packet.stream_index], target)
                if packet is None:
                    continue
            packet.stream = target
            self._mux(kind, [packet])

    def _mux(self, kind: str, packets: list[av.Packet]) -> None:
        try:
            self.output.mux(packets)
        except av.FFmpegError as error:
            # (FFmpeg's message would name the output's temp file)
            raise SbsError(f"cannot copy {kind} into {self.output.format.name} ({error.strerror})") from None

    @staticmethod
    def _convert(packet: av.Packet, decoder: av.codec.context.CodecContext, target: av.stream.Stream) -> av.Packet | None:
        """One subtitle packet re-encoded in the target's text format, at the same time."""
        try:
            subtitle = decoder.decode2(packet)
            if subtitle is None:
                return None
            converted = target.codec_context.encode_subtitle(subtitle)
        except (av.FFmpegError, ValueError) as error:
            raise SbsError(f"cannot convert subtitles to {target.codec_context.name} ({first_line(error)})") from None
        converted.pts, converted.dts, converted.duration = packet.pts, packet.dts, packet.duration
        converted.time_base = packet.time_base
        return converted

    def close(self) -> None:
        self.input.close()


# The handler names FFmpeg's MP4/MOV muxer gives tracks: they say nothing of what a track holds.
_FFMPEG_HANDLERS = {"VideoHandler", "SoundHandler", "SubtitleHandler", "DataHandler", "TimeCodeHandler", "HintHandler"}


def _track_words(stream: av.stream.Stream) -> str:
    """A stream left out, as a note names it: "a subtitle track (eng, DVD subtitles)", "a data
    track (GoPro MET)", "an attachment (font.ttf)"."""
    if stream.type == "attachment":
        return f"an attachment ({stream.name})" if stream.name else "an attachment"
    handler = (stream.metadata.get("handler_name") or "").strip()
    details = [stream.metadata.get("language", ""), handler if handler not in _FFMPEG_HANDLERS else ""]
    if stream.type == "subtitle":
        codec = stream.codec_context.codec if stream.codec_context is not None else None
        details.append(codec.long_name if codec is not None else "")
    details = [detail for detail in details if detail and detail != "und"]
    kind = "subtitle track" if stream.type == "subtitle" else "data track"
    return f"a {kind} ({', '.join(details)})" if details else f"a {kind}"


def _codec_ids(names: set[str]) -> set[int]:
    """The codec ids behind codec names (FFmpeg names decoders and encoders of one format apart: srt, subrip)."""
    ids = set()
    for name in names:
        for mode in ("r", "w"):
            with contextlib.suppress(av.FFmpegError, ValueError):
                ids.add(av.Codec(name, mode).id)
                break
    return ids


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
        raise SbsError(f"{folder} is a file; `frames_out` writes a folder of frames there")
    if numbered_frames(folder) and not (force or skip_existing):
        raise SbsError(f"{folder} already holds frames (use `force` to overwrite, `skip_existing` to keep them and "
                       "write the missing ones)")


class FrameFolderWriter:
    """A FrameWriter: each frame as a numbered image (000001.png, ...) in `folder`.

    Every image is published atomically, so a frame that exists is complete: with `skip_existing` an
    interrupted run resumes by writing only the missing ones. Timestamps are not kept, only the order.
    A source deeper than 8 bits gives 16-bit PNG/TIFF frames."""

    def __init__(self, folder: Path, extension: str, *, force: bool, skip_existing: bool, quality: int = 95,
                 png_compression: int = DEFAULT_PNG_COMPRESSION, source_bits: int = 8, colour: Colour | None = None,
                 source_name: str = ""):
        if extension.lower() not in IMAGE_FORMATS:
            raise SbsError(f"unsupported frame image type '{extension}' (use {', '.join(IMAGE_FORMATS)})")
        self.folder = Path(folder)
        self.extension = extension
        self.force = force
        self.skip_existing = skip_existing
        self.quality = quality
        self.png_compression = png_compression
        cicp = colour.png_cicp if colour else None
        self.colour_chunks = ((b"cICP", cicp),) if cicp else ()  # frames of HDR video say how to read them
        self.count = 0
        self.bit_depth = 16 if source_bits > 8 and IMAGE_FORMATS[extension.lower()] in SIXTEEN_BIT_FORMATS else 8
        self.notes = [] if self.bit_depth >= source_bits else [
            f"{source_name}: its {source_bits}-bit video is written as 8-bit {extension} frames (--type png keeps 16 bits)"]

    def write(self, pixels: np.ndarray, pts: int) -> None:
        self.count += 1
        path = self.folder / frame_name(self.count, self.extension)
        if self.skip_existing and path.exists():
            return  # finished by an earlier, interrupted run
        write_image(pixels, path, force=self.force, quality=self.quality, bit_depth=self.bit_depth,
                    colour_chunks=self.colour_chunks, png_compression=self.png_compression)

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
