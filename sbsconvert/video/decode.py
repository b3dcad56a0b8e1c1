"""Decode a video, or a folder of numbered frames (an image sequence), as a stream of upright RGB
frames (float32 [0, 1]) with their own timestamps. A stereo video (MV-HEVC with two views, such as
Apple spatial video) gives both of its eyes with each frame."""

from __future__ import annotations

import contextlib
import functools
import heapq
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import av
import numpy as np
from PIL import Image

from sbsconvert.decode import is_image_path, load_picture
from sbsconvert.errors import SbsError, first_line
from sbsconvert.isobmff.boxes import read_video_sample_entry
from sbsconvert.jobs import natural_key
from sbsconvert.video.colour import Colour
from sbsconvert.video.riff import avi_has_index
from sbsconvert.video.st3d import ST3D_PACKINGS, read_st3d


# FFmpeg's demuxers of still images (besides its "..._pipe" ones): a picture is not a video.
STILL_IMAGE_DEMUXERS = ("image2", "gif", "apng")


@dataclass
class Frame:
    pixels: np.ndarray  # HxWx3 float32 in [0, 1], display orientation
    pts: int  # presentation time in units of the stream's time base (kept for the output: VFR survives)
    time_base: Fraction
    right: np.ndarray | None = None  # a stereo source's own right eye (pixels is then its left eye)
    depth: np.ndarray | None = None  # HxW depth that came with the pixels (--input-layout rgbd)

    @property
    def time(self) -> float:
        return float(self.pts * self.time_base)


@dataclass
class VideoInfo:
    frame_rate: Fraction | None  # average rate; the output's nominal rate
    time_base: Fraction
    frame_count: int  # from the container header; 0 when it does not say
    codec: str
    audio: bool = False  # the source has an audio stream
    duration: Fraction | None = None  # seconds the video stream lasts, when the file says
    colour: Colour = Colour()
    bit_depth: int = 8  # bits per sample of the source's pixels
    stereo: bool = False  # two views (MV-HEVC) read with all_views: each frame brings its right eye
    indexed: bool | None = None  # an AVI holds its frame index whole (None: not an AVI)

    @property
    def expected_frames(self) -> int | None:
        """Frames to expect, for progress: the header's count, else duration x rate (Matroska has no count)."""
        if self.frame_count:
            return self.frame_count
        if self.duration and self.frame_rate:
            return max(1, round(self.duration * self.frame_rate))
        return None


class VideoReader:
    """Open a video file's first video stream; `frames()` yields it frame by frame (nothing is kept).
    With `all_views`, a two-view (MV-HEVC) stream gives both eyes of each frame; else its base view."""

    def __init__(self, path: Path, all_views: bool = False):
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
            self.info = self._read_info(all_views)
            if self.info.stereo:
                self.stream.codec_context.options = dict(ALL_VIEWS)
            self._base_is_right = self.info.stereo and hero_eye(self.path) == HERO_RIGHT
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

    def _read_info(self, all_views: bool) -> VideoInfo:
        stream = self.stream
        context = stream.codec_context
        width, height = context.width, context.height
        if 0 < min(width, height) < 2:
            raise SbsError(f"{self.path}: video is {width}x{height}, too small to convert")
        return VideoInfo(
            frame_rate=stream.average_rate or stream.guessed_rate,
            time_base=stream.time_base or Fraction(1, 90000),
            frame_count=stream.frames or 0,
            codec=stream.codec_context.name,
            audio=bool(self.container.streams.audio),
            duration=_stream_duration(self.container, stream),
            colour=Colour.of(context.color_primaries, context.color_trc, context.colorspace, context.color_range),
            bit_depth=_bits(context.format),
            stereo=all_views and _has_two_views(self.path, stream),
            indexed=avi_has_index(self.path) if self.container.format.name == "avi" else None,
        )

    def frames(self, seek: int | None = None) -> Iterator[Frame]:
        """The frames in presentation order, each with its own timestamp (see presentation_order);
        with `seek` (a pts) from a keyframe shown before it on (a part of the video, whose length
        is then not checked); the frames from `seek` on get the stamps a whole decode gives them."""
        if seek is not None:
            self.container.seek(self._seek_target(seek), stream=self.stream, backward=True)
        time_base = self.info.time_base
        step = max(1, round(1 / (self.info.frame_rate * time_base))) if self.info.frame_rate else 1
        count, first, end = 0, None, None
        decoded = self.container.decode(self.stream)
        # A stereo source's views come out one after the other, the base (left) view first.
        pictures = _view_pairs(decoded, self.path) if self.info.stereo else ((frame, None) for frame in decoded)
        if self._base_is_right:
            pictures = ((left, right) for right, left in pictures)
        try:
            for (frame, right), pts in presentation_order(pictures, lambda pair: pair[0].pts, step):
                count += 1
                first = pts if first is None else first
                end = pts + (frame.duration or step)
                yield Frame(pixels=_upright_rgb(frame), pts=pts, time_base=time_base,
                            right=None if right is None else _upright_rgb(right))
        except av.FFmpegError as error:
            raise SbsError(f"{self.path}: video data is corrupt or truncated after {count} frames ({first_line(error)})") from None
        if count == 0:
            raise SbsError(f"{self.path}: the video has no decodable frames")
        assert first is not None and end is not None
        if seek is not None:
            return
        # Measured from 0 (files differ on whether a duration counts from 0 or from the first frame).
        check_complete(self.path, self.info, count, (end - min(first, 0)) * time_base)

    def _seek_target(self, pts: int) -> int:
        """A timestamp to seek to whose keyframe is shown before `pts` (or is the first one). The
        keyframe a seek to `pts` finds may be shown at or after it: demuxers seek by decode time
        (AVI, MP4)."""
        target, landed = self._step_back(pts, pts, self._landing(pts))
        if self.info.codec == "mpeg4" and landed is not None:
            # DivX/XviD packed B-frames: a B-frame packed into the keyframe's chunk shows before the
            # keyframe but cannot be decoded from it, and the stamps of the frames decoded first go
            # astray with it; from the keyframe before, they have settled by then.
            target, landed = self._step_back(landed.pts, target, landed)
        return target

    def _step_back(self, pts: int, target: int, landed: av.Packet | None) -> tuple[int, av.Packet | None]:
        """From the keyframe `landed` that a seek to `target` reaches, back to one shown before `pts`."""
        while landed is not None and landed.pts >= pts:
            earlier = (landed.pts if landed.dts is None else min(landed.dts, landed.pts)) - 1
            before = self._landing(earlier)
            if before is None or before.pts >= landed.pts:  # the first keyframe: nothing earlier
                break
            target, landed = earlier, before
        return target, landed

    def _landing(self, target: int) -> av.Packet | None:
        """The first packet (with a timestamp) a backward seek to `target` reaches; None if the seek fails."""
        try:
            self.container.seek(target, stream=self.stream, backward=True)
            return next((packet for packet in self.container.demux(self.stream) if packet.pts is not None), None)
        except av.FFmpegError:
            return None

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_complete(path: Path, info: VideoInfo, count: int, reached: Fraction) -> None:
    """Refuse a cut-off video: `count` frames whose data reaches `reached` seconds (from 0) must
    reach what the file says it holds, less some slack (an edit list may hide a frame or two).

    Completeness is judged by time, not by counting frames: capture tools leave skipped (unchanged)
    frames out of an AVI's index while its header counts them, so fewer frames than the header says
    is no proof of a cut. An AVI without its index (a recording or download cut off before the
    index at its end was written) is judged by its header's count times the frame time, since FFmpeg
    then guesses the duration from the bytes there. Otherwise the stream's duration decides (an
    MP4's sample tables and a Matroska header give it from the start of the file), and the header's
    frame count only when the file gives no duration."""
    frame_time = 1 / info.frame_rate if info.frame_rate else None
    if info.indexed is False and info.frame_count and frame_time:
        header = info.frame_count * frame_time
        if reached < header - _slack(header, frame_time):
            raise SbsError(f"{path}: the video is truncated: its header counts {info.frame_count} frames of "
                           f"{float(frame_time):.3f} s ({float(header):.2f} s) but the data stops at "
                           f"{float(reached):.2f} s and the file has no index")
    elif info.duration:
        if reached < info.duration - _slack(info.duration, frame_time):
            raise SbsError(f"{path}: the video is truncated: its frames stop at {float(reached):.2f} s "
                           f"of the {float(info.duration):.2f} s the file says it lasts")
    elif info.frame_count and count < info.frame_count - max(1, info.frame_count // 50):
        raise SbsError(f"{path}: the video is truncated ({count} of its {info.frame_count} frames decode)")


def _slack(length: Fraction, frame_time: Fraction | None) -> Fraction:
    return max(2 * frame_time if frame_time else Fraction(0), length / 50)


class FrameSequenceReader:
    """A folder of numbered frames (frame1.png ... frame10.png, in natural order) read as one video at
    `frame_rate`, with the interface of VideoReader. Frames are decoded one at a time as they are asked for."""

    def __init__(self, folder: Path, frame_rate: Fraction):
        self.path = Path(folder)
        if not self.path.is_dir():
            raise SbsError(f"{self.path}: `sequence` reads a folder of numbered frames, not a file")
        self.paths = sorted(
            (path for path in self.path.iterdir() if path.is_file() and is_image_path(path) and not path.name.startswith(".")),
            key=natural_key,
        )
        if not self.paths:
            raise SbsError(f"{self.path}: the folder holds no image frames")
        # All frames are checked (headers only) before any work, so an odd one leaves no output behind.
        self.size = _header_size(self.paths[0])
        for path in self.paths[1:]:
            _check_frame_size(path, _header_size(path), self.size, self.paths[0])
        self.info = VideoInfo(frame_rate=frame_rate, time_base=1 / frame_rate, frame_count=len(self.paths), codec="images")

    def frames(self, seek: int | None = None) -> Iterator[Frame]:
        # One frame per time base unit: pts is the frame's index.
        for index, path in enumerate(self.paths[seek or 0 :], start=seek or 0):
            pixels = load_picture(path).pixels[..., :3]  # the alpha channel of PNG frames is dropped
            _check_frame_size(path, (pixels.shape[1], pixels.shape[0]), self.size, self.paths[0])
            yield Frame(pixels=pixels, pts=index, time_base=self.info.time_base)

    def close(self) -> None:
        """Nothing stays open between frames."""

    def __enter__(self) -> FrameSequenceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def probe_video(path: Path) -> str | None:
    """Why FFmpeg, reading `path` by its content whatever its name, finds no video in it (None: it
    finds a video stream, not a still image, and decodes a frame of it). Asked again for the same
    unchanged file, it answers from memory."""
    status = path.stat()
    return _probe_video(str(path.resolve()), status.st_mtime_ns, status.st_size)


@functools.lru_cache(maxsize=1024)
def _probe_video(path: str, _modified: int, size: int) -> str | None:
    if size == 0:
        return "the file is empty"
    try:
        with av.open(path) as container:
            demuxer = container.format.name
            if demuxer.endswith("_pipe") or demuxer in STILL_IMAGE_DEMUXERS:
                return f"a still {demuxer.removesuffix('_pipe').upper()} image"
            if not container.streams.video:
                return "sound only, no video stream" if container.streams.audio else "no video stream"
            if container.streams.video[0].codec_context is None:
                return "its video codec cannot be decoded by this FFmpeg build"
            for _ in container.decode(container.streams.video[0]):
                return None
            return "its video stream holds no frames"
    except (av.FFmpegError, ValueError):
        return "not a media file FFmpeg reads"


def open_frames(path: Path, frame_rate: Fraction | None = None, all_views: bool = False
                ) -> VideoReader | FrameSequenceReader:
    """A reader for a video file (with `all_views`: both eyes of a two-view one), or for a folder
    of frames played at `frame_rate`."""
    if Path(path).is_dir():
        return FrameSequenceReader(path, frame_rate or DEFAULT_SEQUENCE_RATE)
    return VideoReader(path, all_views)


Item = TypeVar("Item")
# Decoded frames held to sort their timestamps: packed B-frames displace a stamp by one or two frames.
REORDER_WINDOW = 4


def presentation_order(
    frames: Iterable[Item], stamp: Callable[[Item], int | None], step: int, window: int = REORDER_WINDOW
) -> Iterator[tuple[Item, int]]:
    """Pair each decoded frame with its presentation timestamp, never dropping or repeating one.

    A decoder hands out pictures in display order, but the timestamps attached to them can come
    shuffled: XviD/DivX "packed B-frames" in AVI decode as 1, 3, 2, 5, 4, ... So the k-th frame gets
    the k-th smallest timestamp, sorted within a window of a few frames. A frame without one
    continues from the latest one at the nominal rate (`step` ticks); a repeated one moves one tick
    on. A clock that jumps back further than the window (joined recordings) is shifted so that the
    timeline goes on at the nominal rate."""
    pending: deque[Item] = deque()
    stamps: list[int] = []
    latest: int | None = None
    last: int | None = None
    offset = 0
    for frame in frames:
        pts = stamp(frame)
        if pts is None:
            pts = 0 if latest is None else latest + step
        else:
            pts += offset
            if latest is not None and pts < latest - window * step:
                offset += latest + step - pts
                pts = latest + step
        latest = pts if latest is None else max(latest, pts)
        heapq.heappush(stamps, pts)
        pending.append(frame)
        if len(pending) > window:
            last = _next_stamp(stamps, last)
            yield pending.popleft(), last
    while pending:
        last = _next_stamp(stamps, last)
        yield pending.popleft(), last


def _next_stamp(stamps: list[int], last: int | None) -> int:
    pts = heapq.heappop(stamps)
    return pts if last is None or pts > last else last + 1


def _stream_duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> Fraction | None:
    """Seconds the video stream lasts: its own duration, Matroska's per-track DURATION tag, or the
    file's duration when the video is its only stream (another stream may run longer)."""
    if stream.duration and stream.time_base:
        return stream.duration * stream.time_base
    tag = next((value for key, value in stream.metadata.items() if key.upper() == "DURATION"), None)
    if tag:
        with contextlib.suppress(ValueError):
            hours, minutes, seconds = tag.split(":")
            return Fraction(int(hours) * 3600 + int(minutes) * 60) + Fraction(seconds)
    if container.duration and len(container.streams) == 1:
        return Fraction(container.duration, av.time_base)
    return None


DEFAULT_SEQUENCE_RATE = Fraction(30)
# Nominal NTSC rates people write as decimals: 23.976 means 24000/1001, 29.97 means 30000/1001.
_NTSC_RATES = {round(base * 1000 / 1001, 2): Fraction(base * 1000, 1001) for base in (24, 30, 48, 60, 120)}


def parse_frame_rate(text: str) -> Fraction:
    """Frames per second from "30", "30000/1001", "25.0" or "29.97" (read as 30000/1001)."""
    try:
        rate = Fraction(str(text).strip())
    except (ValueError, ZeroDivisionError):
        raise SbsError(f"`fps` '{text}' is not a frame rate (e.g. 30, 25, 30000/1001 or 29.97)") from None
    if rate.denominator != 1 and "/" not in str(text):
        rate = _NTSC_RATES.get(round(float(rate), 2), rate)
    if not 0 < rate <= 1000:
        raise SbsError(f"`fps` must be above 0 and at most 1000, got {text}")
    return rate


def _header_size(path: Path) -> tuple[int, int]:
    """Width and height as displayed (EXIF orientation applied), from the header alone."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            turned = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    except (OSError, SyntaxError, ValueError) as error:
        raise SbsError(f"{path}: not a readable image ({first_line(error)})") from None
    return (height, width) if turned else (width, height)


def _check_frame_size(path: Path, size: tuple[int, int], expected: tuple[int, int], first: Path) -> None:
    if size != expected:
        raise SbsError(f"{path}: frame is {size[0]}x{size[1]} but {first.name} is {expected[0]}x{expected[1]}; "
                       "all frames of a sequence must be the same size")


# The hevc decoder's option to output every view of a multiview stream, not only the base one.
ALL_VIEWS = {"view_ids": "-1"}


def _has_two_views(path: Path, stream: av.video.stream.VideoStream) -> bool:
    """True for a multiview HEVC stream (the MP4/MOV sample entry has layer-1 parameter sets,
    `lhvC`) whose first picture decodes as two views. The container's flag alone does not say the
    extra layer is a second view (it might be an auxiliary layer the decoder leaves out)."""
    if stream.codec_context.name != "hevc" or not stream.disposition & av.stream.Disposition.multilayer:
        return False
    with contextlib.suppress(av.FFmpegError), av.open(str(path)) as probe:
        video = probe.streams.video[0]
        video.codec_context.options = dict(ALL_VIEWS)
        first = []
        for frame in probe.decode(video):
            first.append(frame.pts)
            if len(first) == 2:
                return first[0] == first[1]
    return False


HERO_LEFT, HERO_RIGHT = 1, 2  # Apple's hero_eye values


def hero_eye(path: Path) -> int | None:
    """The eye Apple's `hero` box (sample entry > vexu > eyes) names, the one a 2D player shows:
    the base view. None when the file has no such box (then the base view is the left eye)."""
    entry = read_video_sample_entry(path)
    hero = entry.find("vexu/eyes/hero") if entry is not None else None
    return hero.payload[4] if hero is not None and len(hero.payload) > 4 else None  # after version and flags


def declared_packing(path: Path) -> str | None:
    """How the file says each frame packs both eyes: Matroska's StereoMode (FFmpeg's names:
    "left_right", "top_bottom", "right_left"...) or the MP4/MOV `st3d` box; None for 2D."""
    if path.is_dir():
        return None
    with contextlib.suppress(av.FFmpegError), av.open(str(path)) as container:
        if container.streams.video:
            mode = container.streams.video[0].metadata.get("stereo_mode", "mono")
            if mode != "mono":
                return mode
    return ST3D_PACKINGS.get(read_st3d(path))


# --input-layout values for the packings a file may declare (FFmpeg's StereoMode names).
_PACKING_CHOICES = {"left_right": "sbs or hsbs (full- or half-width eyes)",
                    "top_bottom": "tb or htb (full- or half-height eyes)", "right_left": "crosseye"}


def refuse_unsaid_packing(path: Path) -> None:
    """Refuse a video whose file says each frame packs both eyes: converted as 2D, each frame would
    become a stereo pair of a stereo pair. Full- and half-size eyes are signalled alike, so the
    user says which (--input-layout), or 2d to convert it as one picture anyway."""
    packing = declared_packing(path)
    if packing is None:
        return
    choices = _PACKING_CHOICES.get(packing)
    how = f"give `input_layout` {choices} to lay its eyes out" if choices else "sbsconvert cannot read that packing"
    raise SbsError(f"{path}: the file says each frame holds both eyes ({packing}); {how}, or `input_layout` 2d "
                   "to convert it as one 2D picture")


def _view_pairs(frames: Iterable[av.VideoFrame], path: Path) -> Iterator[tuple[av.VideoFrame, av.VideoFrame]]:
    """(left, right) for each picture of a two-view stream, from the decoder's alternating views."""
    iterator = iter(frames)
    for left in iterator:
        right = next(iterator, None)
        if right is None or right.pts != left.pts or (right.width, right.height) != (left.width, left.height):
            raise SbsError(f"{path}: a picture of the stereo video lacks its second view (at pts {left.pts})")
        yield left, right


def _bits(pixel_format: av.VideoFormat | None) -> int:
    return max((component.bits for component in pixel_format.components), default=8) if pixel_format else 8


def _upright_rgb(frame: av.VideoFrame) -> np.ndarray:
    """The frame as displayed: FFmpeg hands the container's display matrix (phones record portrait
    clips as rotated landscape frames) to every frame; its rotation is counter-clockwise degrees."""
    # 10/12-bit sources go through 16-bit RGB so their extra precision reaches the warp.
    deep = _bits(frame.format) > 8
    # swscale reads the frame's own matrix and range (BT.2020, full range...) from its tags.
    pixels = frame.to_ndarray(format="rgb48le" if deep else "rgb24")
    pixels = pixels.astype(np.float32) / (65535.0 if deep else 255.0)
    turns = round(frame.rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(pixels, turns)) if turns else pixels
