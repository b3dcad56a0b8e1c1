"""Apple spatial video: one MV-HEVC track holding both eyes, with Apple's stereo metadata.

The wheel's libx265 cannot encode two views, so each eye is encoded alone by libx265 under
identical settings, and every picture's type (IDR, P or B) is given to both encoders from one
fixed pattern: x265 otherwise still adapts the GOP to the content (even with b-adapt=0 and
scenecut=0, its first mini-GOPs differed between two eyes in 10-bit), and the two layers' pictures
must pair up. Their packets are
assembled access unit by access unit into one two-layer stream (sbsconvert.formats.hevc.mvhevc: left eye
= layer 0, a plain HEVC stream any player shows in 2D; right eye = layer 1, view 1), written to a
raw Annex B file beside the output, then muxed by FFmpeg with the `multilayer` disposition (it
writes `lhvC` with layer 1's parameter sets next to `hvcC`) keeping the encoder's timestamps,
with the source's audio (AAC copied, other codecs re-encoded as AAC: see audio.py) and the SEI
naming the eyes in `hvcC`. Last, Apple's `vexu` (stereo views, hero eye, baseline, disparity
adjustment) and `hfov` boxes are added to the sample entry, as for `st3d`, and the `sync` sample
group of a layer-1 CRA picture to the sample table (docs/spatial.md compares every field with
Apple's encoder's file). A long video's segments
each keep their raw two-view stream and are muxed as one (video/segments/join.py, write_spatial_file).

Apple's own encoder predicts the right eye from the left; these files do not (each layer-1 slice
switches inter-layer prediction off), so they are larger than Apple's at the same quality.
FFmpeg decodes both views; whether Apple's decoder accepts them is not verified here.
"""

from __future__ import annotations

import contextlib
import itertools
import struct
import time
from collections import deque
from datetime import datetime, timezone
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from sbsconvert.errors import SbsError, first_line
from sbsconvert.formats.hevc.bits import BitstreamError
from sbsconvert.formats.hevc.mvhevc import MultiviewAssembler
from sbsconvert.formats.hevc.nal import CRA_NUT, join_annexb, split_annexb
from sbsconvert.formats.hevc.sei import reference_displays_sei
from sbsconvert.formats.isobmff.boxes import add_to_video_sample_entry, box, full_box, read_video_sample_entry
from sbsconvert.media import SPATIAL_OUTPUT_EXTENSIONS
from sbsconvert.video import SPATIAL_CODECS
from sbsconvert.video.audio import AudioPlan, plan_audio
from sbsconvert.video.colour import Colour
from sbsconvert.video.encode import (CONTAINERS, EncodedVideoWriter, StreamCopy, VideoSettings, encoder_options,
                                     even_size, fresh_tags, video_frame)
from sbsconvert.video.encoders import SOFTWARE, pick_encoder, settle_x265_dts
from sbsconvert.video.hdr import hdr10_x265_params

# --mvhevc-structure: "apple" codes layer 1 as Apple's encoder does (it declares layer 0 as its
# reference layer, and its first picture is a CRA picture beside the base layer's IDR picture,
# marked by a `sync` sample group); "independent" codes two independent layers (an IDR picture in
# both). Later GOPs start with IDR pictures in both layers either way (see hevc/mvhevc.py), and
# neither predicts the right eye from the left (libx265 has no MV-HEVC encoder here).
B_FRAMES = 4  # x265's default run of B-frames between P-frames
# No content-driven picture type decisions; the types are forced anyway (EyeEncoder).
_ALIGNED_GOP = f"scenecut=0:open-gop=0:b-adapt=0:bframes={B_FRAMES}"


def picture_type(index: int, keyint: int) -> av.video.frame.PictureType:
    """The type of picture `index` (from 0): IDR every `keyint`, runs of B_FRAMES B-frames between
    P-frames, and a P-frame closing each GOP."""
    position = index % keyint
    if position == 0:
        return av.video.frame.PictureType.I  # an IDR picture: the encoder's forced-idr option is set
    if position % (B_FRAMES + 1) == 0 or position == keyint - 1:
        return av.video.frame.PictureType.P
    return av.video.frame.PictureType.B


class EyeEncoder:
    """libx265 for one eye, with the picture types forced from picture_type(), so two of them
    given the same number of frames produce the same GOP structure."""

    def __init__(self, width: int, height: int, settings: VideoSettings, *, pixel_format: str, time_base: Fraction,
                 frame_rate: Fraction | None, keyint: int, colour: Colour = Colour(), x265_params: tuple[str, ...] = ()):
        self.keyint = keyint
        self.count = 0
        encoder = pick_encoder("hevc", pixel_format)[0]  # the assembly needs libx265's streams
        assert encoder == SOFTWARE["hevc"]
        context = av.CodecContext.create(encoder, "w")
        context.width, context.height, context.pix_fmt = width, height, pixel_format
        context.time_base = time_base
        if frame_rate:
            context.framerate = frame_rate
        # A bitrate is for both eyes (as for a side-by-side frame of both).
        both_eyes = settings.bit_rate(2 * width, height, frame_rate)
        bit_rate = None if both_eyes is None else both_eyes // 2
        if bit_rate is not None:
            context.bit_rate = bit_rate
        context.color_primaries, context.color_trc = colour.primaries, colour.transfer
        context.colorspace, context.color_range = colour.matrix, colour.range
        gop = f"keyint={keyint}:min-keyint={keyint}:{_ALIGNED_GOP}"
        context.options = {**encoder_options(settings, encoder, bit_rate, (gop, *x265_params)), "forced-idr": "1"}
        self.context = context

    def encode(self, frame: av.VideoFrame | None) -> list[av.Packet]:
        """Packets for `frame` (None: flush), its type set by its place in the sequence."""
        if frame is not None:
            frame.pict_type = picture_type(self.count, self.keyint)
            self.count += 1
        return settle_x265_dts(self.context.name, self.context.encode(frame), self.count)


@dataclass(frozen=True)
class SpatialMetadata:
    """The stereo camera the file describes (see ConvertSettings for the defaults), and how its
    two layers are coded (one of choices.MVHEVC_STRUCTURES)."""

    baseline_mm: float
    hfov_degrees: float
    structure: str = "apple"

    def boxes(self) -> bytes:
        """`vexu` and `hfov` for the sample entry (Apple's ISOBMFF stereo video extensions), as
        Apple's encoder writes them: no projection box (`proj`), which Apple leaves out for an
        ordinary (rectilinear) camera."""
        views = full_box(b"stri", 0, 0, bytes([0b0011]))  # has left and right eye views, not reversed
        hero = full_box(b"hero", 0, 0, bytes([1]))  # the left eye (layer 0) is shown in 2D
        baseline = full_box(b"blin", 0, 0, struct.pack(">I", round(self.baseline_mm * 1000)))  # micrometres
        # No horizontal disparity adjustment: --convergence has already put the zero-parallax plane
        # into the pixels, and a player would shift the eyes once more by a non-zero one.
        adjustment = box(b"cmfy", b"", full_box(b"dadj", 0, 0, struct.pack(">i", 0)))
        # The camera system (cams) and the comfort settings (cmfy) are part of the eye views box
        # (in Apple's files, and FFmpeg's reader agrees).
        eyes = box(b"eyes", b"", views, hero, box(b"cams", b"", baseline), adjustment)
        return box(b"vexu", b"", eyes) + box(b"hfov", struct.pack(">I", round(self.hfov_degrees * 1000)))


def spatial_video_camera(path: Path) -> tuple[float | None, float | None]:
    """(baseline in mm, horizontal field of view in degrees) a spatial video's `blin` and `hfov`
    boxes record; each None when absent."""
    entry = read_video_sample_entry(path)
    if entry is None:
        return None, None
    blin, hfov = entry.find("vexu/eyes/cams/blin"), entry.find("hfov")
    baseline = struct.unpack_from(">I", blin.payload, 4)[0] / 1000 if blin and len(blin.payload) >= 8 else None
    degrees = struct.unpack_from(">I", hfov.payload)[0] / 1000 if hfov and len(hfov.payload) >= 4 else None
    return baseline or None, degrees or None


def check_spatial_settings(settings: VideoSettings, suffix: str) -> None:
    """Refuse what spatial video cannot be, before any work."""
    if settings.codec not in SPATIAL_CODECS:
        raise SbsError(f"`format` spatial writes MV-HEVC; drop `codec` {settings.codec} (or use `codec` hevc)")
    if suffix.lower() not in SPATIAL_OUTPUT_EXTENSIONS:
        raise SbsError(f"`format` spatial writes a {', '.join(SPATIAL_OUTPUT_EXTENSIONS)} file, not "
                       f"{suffix or 'one without extension'}")


class SpatialVideoWriter(EncodedVideoWriter):
    """Write stereo pairs (HxWx3 float [0, 1] each) with their timestamps as one MV-HEVC file."""

    def __init__(self, path: Path, settings: VideoSettings, *, metadata: SpatialMetadata, opens_stream: bool = True,
                 **common: Any):
        """`common`: EncodedVideoWriter's keywords (frame_rate, time_base, source, ...)."""
        super().__init__(path, settings, **common)
        self.metadata = metadata
        self.audio = self._plan_audio(settings, self.suffix)  # before any frame is encoded
        self.notes += self.audio.notes if self.audio else []
        self._raw_path = raw_stream_path(self.path)
        self._raw = open(self._raw_path, "wb")
        self._encoders: list[EyeEncoder] = []
        self._pending: tuple[deque[av.Packet], deque[av.Packet]] = (deque(), deque())
        self._assembler = MultiviewAssembler(independent=metadata.structure == "independent",
                                             opens_stream=opens_stream)
        self._timestamps: list[tuple[int, int]] = []  # (pts, dts) of each access unit
        self._views: list[tuple[np.ndarray, int] | None] = [None, None]  # of the frame being gathered
        self._open_eyes = {0, 1}

    def check_container(self, settings: VideoSettings, suffix: str) -> None:
        check_spatial_settings(settings, suffix)

    def codec_format(self, settings: VideoSettings) -> str:
        return "hevc"  # MV-HEVC whatever the codec setting says

    def _plan_audio(self, settings: VideoSettings, suffix: str) -> AudioPlan | None:
        return None if self.source is None else spatial_audio(self.source, settings, suffix)

    def _open_encoders(self, width: int, height: int) -> None:
        keyint = max(1, round(2 * self.frame_rate)) if self.frame_rate else 60  # a key frame every 2 s
        # An HDR10 source's metadata: both eyes get the same settings; the assembly keeps the base
        # layer's SEI messages (the right eye's are dropped with its other SEI).
        hdr10 = hdr10_x265_params(self.source) if self.colour.hdr == "PQ" and self.source else []
        self._encoders = [EyeEncoder(width, height, self.settings, pixel_format=self.pixel_format,
                                     time_base=self.time_base, frame_rate=self.frame_rate, keyint=keyint,
                                     colour=self.colour, x265_params=tuple(hdr10)) for _ in range(2)]

    def eye_writers(self) -> list[EyeWriter]:
        """Two FrameWriters, one per eye, feeding this file (so the video
        pipeline writes a spatial file as it writes the two files of lr-pair)."""
        return [EyeWriter(self, 0), EyeWriter(self, 1)]

    def write_view(self, eye: int, pixels: np.ndarray, pts: int) -> None:
        """One eye's view (0 left, 1 right) of a frame; the pair is encoded once both are given."""
        self._views[eye] = (pixels, pts)
        if self._views[0] is None or self._views[1] is None:
            return
        (left, left_pts), (right, right_pts) = self._views
        self._views = [None, None]
        if left_pts != right_pts:
            raise SbsError(f"{self.path}: the eyes' frames came with different timestamps")
        self.write_pair(left, right, left_pts)

    def close_view(self, eye: int) -> None:
        """One eye has no more views; the file is finished when both have said so."""
        self._open_eyes.discard(eye)
        if not self._open_eyes:
            self.close()

    def write_pair(self, left: np.ndarray, right: np.ndarray, pts: int) -> None:
        left, right = even_size(left), even_size(right)
        if not self._encoders:
            self._open_encoders(left.shape[1], left.shape[0])
        for encoder, pending, view in zip(self._encoders, self._pending, (left, right)):
            frame = video_frame(view, self.pixel_format, self.colour)
            frame.pts, frame.time_base = pts, self.time_base
            pending.extend(encoder.encode(frame))
        self._assemble()

    def _assemble(self) -> None:
        """Merge the access units both eyes have produced so far into the raw two-view stream."""
        lefts, rights = self._pending
        while lefts and rights:
            left, right = lefts.popleft(), rights.popleft()
            if (left.pts, left.dts) != (right.pts, right.dts):
                raise SbsError(f"{self.path}: the eyes' encodes drifted apart (timestamps {left.pts} and {right.pts})")
            try:
                self._raw.write(self._assembler.access_unit(bytes(left), bytes(right)))
            except BitstreamError as error:
                raise SbsError(f"{self.path}: cannot assemble MV-HEVC ({error})") from None
            self._timestamps.append((left.pts, left.dts))

    def finish_stream(self) -> list[tuple[int, int]]:
        """Flush both encoders and complete the raw two-view stream: the (pts, dts) of its access units."""
        if self._encoders:
            for encoder, pending in zip(self._encoders, self._pending):
                pending.extend(encoder.encode(None))
            self._assemble()
            if any(self._pending):
                raise SbsError(f"{self.path}: the eyes' encodes gave different numbers of pictures")
        self._raw.close()
        if not self._timestamps:
            raise SbsError(f"{self.path}: no frames to write")
        return self._timestamps

    def close(self) -> None:
        """Flush both encoders, mux the two-view stream with the audio, add Apple's boxes."""
        try:
            self.finish_stream()
            self.notes += write_spatial_file(self.path, self._raw_path, self._timestamps, container_format=self._format,
                                             time_base=self.time_base, source=self.source, boxes=self.metadata.boxes(),
                                             audio=self.audio)
        finally:
            self.abort()

    def abort(self) -> None:
        self._encoders.clear()
        if not self._raw.closed:
            self._raw.close()
        with contextlib.suppress(FileNotFoundError):
            self._raw_path.unlink()


def spatial_audio(source: Path, settings: VideoSettings, suffix: str) -> AudioPlan:
    """The audio of a spatial video of `source` (see plan_audio)."""
    return plan_audio(source, CONTAINERS[suffix.lower()], suffix.lower(), settings.audio, spatial=True)


def raw_stream_path(path: Path) -> Path:
    """Where the raw two-view stream of `path` is kept until muxed: beside it, named like its temp
    file (".NAME.PID.xxx.part.mov"), so a killed run's leftover is removed by the next run as that
    temp file is (output.remove_stale_temps)."""
    name = path.name
    return path.with_name(name.replace(".part", ".hevc.part", 1) if ".part" in name else name + ".hevc")


def write_spatial_file(path: Path, raw_path: Path, timestamps: list[tuple[int, int]], *, container_format: str,
                       time_base: Fraction, source: Path | None, boxes: bytes,
                       window: tuple[float, float] | None = None, audio: AudioPlan | None = None) -> list[str]:
    """Mux the raw two-view stream at `raw_path` (its access units' (pts, dts) in `timestamps`)
    into `path` with the source's audio (as `audio` plans it) and subtitles (those in `window`
    seconds, for a trimmed video), then add Apple's boxes to the sample entry and the sample group
    of layer-1 CRA pictures; returns what of the source was left out."""
    notes: list[str] = []
    start = min(pts for pts, _ in timestamps)
    if start:  # a source whose first picture comes late: the file starts with it, without an empty edit
        timestamps = [(pts - start, dts - start) for pts, dts in timestamps]
        begin, end = window or (0.0, float("inf"))
        window = (begin + float(start * time_base), end)  # the audio moves along (what came before is cut)
    with contextlib.ExitStack() as stack:
        raw = stack.enter_context(av.open(str(raw_path), format="hevc"))
        # Composition offsets may be negative (version 1 `ctts`), so that the first picture is shown
        # at media time 0 with B-frames too: the edit list then starts there, as in Apple's files.
        output = stack.enter_context(av.open(str(path), "w", format=container_format,
                                             options={"movflags": "negative_cts_offsets"}))
        template = raw.streams.video[0]
        stream = output.add_stream_from_template(template)
        stream.codec_tag = "hvc1"  # Apple players only accept this tag for HEVC
        # The muxer builds `hvcC` from the parameter sets and SEI of the stream's header: Apple's
        # encoder puts the SEI naming the left and right views there (and not in the stream).
        stream.codec_context.extradata = bytes(template.codec_context.extradata or b"") + join_annexb(
            [reference_displays_sei(left_view_id=0, right_view_id=1)])
        stream.time_base = time_base
        stream.disposition = av.stream.Disposition.default | av.stream.Disposition.multilayer
        copy = None  # the source's audio and subtitles
        if source is not None:
            copy = StreamCopy(source, output, window, audio, straddle=True)
            stack.callback(copy.close)
            notes += copy.notes
            output.metadata.update(fresh_tags(copy.input.metadata))
            if copy.input.streams.video:
                stream.metadata.update(fresh_tags(copy.input.streams.video[0].metadata))
        output.metadata.setdefault("creation_time", recording_time(source))
        durations = _frame_durations([pts for pts, _ in timestamps])
        layer1_cra: list[bool] = []  # per sample
        count = 0
        try:
            for packet in raw.demux(template):
                if packet.size == 0:
                    continue
                if count >= len(timestamps):
                    raise SbsError(f"{path}: the two-view stream splits into more pictures than were encoded")
                # The encoder's own timestamps: the raw stream has none, and B-frames reorder.
                packet.pts, packet.dts = timestamps[count]
                # (the raw demuxer's guess is in its own time base; the last one sets the track's length)
                packet.duration = durations[count]
                layer1_cra.append(packet.is_keyframe and any(  # (the parser marks the IRAP access units)
                    unit.type == CRA_NUT and unit.layer_id == 1 for unit in split_annexb(bytes(packet))))
                packet.time_base = time_base
                packet.stream = stream
                if copy is not None:
                    copy.copy_until(float(packet.dts * time_base))
                output.mux(packet)
                count += 1
            if copy is not None:
                copy.copy_until(float("inf"))
        except av.FFmpegError as error:
            raise SbsError(f"{path}: cannot write the video ({first_line(error)})") from None
        if count != len(timestamps):
            raise SbsError(f"{path}: the two-view stream holds {count} pictures, not {len(timestamps)}")
    if not add_to_video_sample_entry(path, boxes, b"vexu", cra_sample_group(layer1_cra)):
        raise SbsError(f"{path}: cannot add the spatial video boxes to the file")
    return notes


def cra_sample_group(marked: list[bool]) -> bytes:
    """The `sync` sample group (ISO/IEC 14496-15) Apple's files give the samples whose layer-1
    picture is a CRA picture (the base layer's is IDR, a sync sample): a description naming the NAL
    unit type, and the samples' runs mapped to it (1) or to none (0); nothing when no sample is."""
    if not any(marked):
        return b""
    description = full_box(b"sgpd", 1, 0, b"sync" + struct.pack(">II", 1, 1) + bytes([CRA_NUT]))  # 1-byte entries
    runs = [(len(list(run)), int(flag)) for flag, run in itertools.groupby(marked)]
    mapping = full_box(b"sbgp", 0, 0, b"sync" + struct.pack(">I", len(runs)) +
                       b"".join(struct.pack(">II", length, index) for length, index in runs))
    return description + mapping


def recording_time(source: Path | None) -> str:
    """When the video was made, for the file's creation and modification dates (Apple's files
    carry real ones) when the source does not say: its file's modification time, so converting
    the same source again (or resuming it) gives the same bytes; the present without a source."""
    seconds = source.stat().st_mtime if source is not None else time.time()
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _frame_durations(pts: list[int]) -> list[int]:
    """How long each frame (given in decoding order by its pts) is shown: until the next frame in
    presentation order; the last one as long as the one before it."""
    ordered = sorted(pts)
    following = {time: later - time for time, later in zip(ordered, ordered[1:])}
    last = following[ordered[-2]] if len(ordered) > 1 else 1
    return [following.get(time, last) for time in pts]


class EyeWriter:
    """One eye's side of a SpatialVideoWriter: a pair is encoded once both eyes gave their view of
    a frame, and the file is finished when both are closed."""

    def __init__(self, spatial: SpatialVideoWriter, eye: int):
        self.spatial = spatial
        self.eye = eye

    def write(self, pixels: np.ndarray, pts: int) -> None:
        self.spatial.write_view(self.eye, pixels, pts)

    def close(self) -> None:
        self.spatial.close_view(self.eye)

    @property
    def notes(self) -> list[str]:
        return self.spatial.notes

    def abort(self) -> None:
        self.spatial.abort()
