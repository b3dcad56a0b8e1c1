"""Long videos in segments: convert runs of frames that start at keyframes one at a time, keep each
finished one in a work folder beside the output, and join them at the end without re-encoding.

A crash, a Ctrl-C or a reboot then costs at most the segment in progress: the next run reads the
work folder's manifest and goes on with the unfinished segments (see `--resume`). The segments are
independent jobs, so they can also run on several workers at once (sbsconvert.cluster).

Each segment is encoded on its own (a fresh encoder: it starts with a closed GOP) with the same
settings, into a packet file that keeps the encoder's timestamps exactly; joining muxes those
packets into the final container through the same VideoWriter a one-piece run uses, which adds the
source's audio, tags and stereo metadata, so only the video packets differ from a one-piece encode.

Temporal state: each segment first decodes the frames before its start (WARMUP_FRAMES, or as many as
the temporal filter needs to forget its start: temporal.warmup_frames) and feeds them to the
disparity smoothing only (no rendering, no output). The exponential average forgets its
start geometrically (0.6^12 = 0.2 % of the difference left at the default weight, well under a
pixel of shift at 1080p), so the seam is invisible, and every segment is a pure function of the
source and the settings: resuming, or running segments on other machines, gives the same bytes.
Carrying the state over instead would chain every segment to the one before it. The smoothing is
also centred (it looks LOOK_AHEAD_FRAMES ahead), so a segment also decodes and smooths the frames
just after its end, as a one-piece run would have, and drops them before rendering.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator

import av
import numpy as np

from sbsconvert.batch import JobResult
from sbsconvert.errors import SbsError, first_line
from sbsconvert.jobs import Job
from sbsconvert.output import atomic_path
from sbsconvert.progress import progress as progress_counter
from sbsconvert.video.audio import plan_audio
from sbsconvert.video.decode import Frame, FrameSequenceReader, VideoInfo, VideoReader, check_complete, open_frames
from sbsconvert.video.encode import CONTAINERS, FrameFolderWriter, VideoSettings, VideoWriter, frame_name, numbered_frames
from sbsconvert.video.spatial import (SpatialMetadata, SpatialVideoWriter, raw_stream_path, spatial_audio,
                                      write_spatial_file)
from sbsconvert.video.temporal import DEFAULT_LOOK_AHEAD, shot_starts

DEFAULT_SEGMENT_SECONDS = 30.0
WARMUP_FRAMES = 12
LOOK_AHEAD_FRAMES = 8  # at least the smoother's look-ahead (temporal.DEFAULT_LOOK_AHEAD)
MANIFEST_VERSION = 1
_HASHED_BYTES = 1 << 20  # head and tail of the source that identify it (with its size and mtime)


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

    def writers(self, settings: VideoSettings, info: VideoInfo, *, source: Path | None, image_type: str | None,
                quality: int, png_compression: int, spatial: SpatialMetadata | None) -> list[Any]:
        """A writer per view the pipeline hands over: into this segment's files. `source` (a video
        file) gives the encoder settings that follow it (HDR10 metadata); `spatial`: both views
        go into one MV-HEVC stream."""
        if not self.container:
            return [FrameFolderWriter(path, "." + (image_type or "png"), force=True, skip_existing=False,
                                      quality=quality, png_compression=png_compression, **pixel_source(info))
                    for path in self.files]
        if spatial is not None:
            return SpatialSegmentWriter(self.files[0], settings, frame_rate=self.frame_rate, time_base=info.time_base,
                                        source=source, metadata=spatial, container_suffix=self.container,
                                        opens_stream=self.number == 0, **pixel_source(info)).eye_writers()
        return [SegmentWriter(path, settings, self.frame_rate, info, self.container, source) for path in self.files]


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


class SegmentWriter:
    """A segment's encoded video: VideoWriter's packets (same encoder, same settings) saved with
    their exact timestamps in an .npz file, published atomically when closed."""

    def __init__(self, path: Path, settings: VideoSettings, frame_rate: Fraction | None, info: VideoInfo, suffix: str,
                 source: Path | None):
        self.path = path
        self.writer = VideoWriter(path, settings, frame_rate=frame_rate, time_base=info.time_base, source=source,
                                  container_suffix=suffix, capture=True, **pixel_source(info))

    @property
    def notes(self) -> list[str]:
        return self.writer.notes

    def write(self, pixels: np.ndarray, pts: int) -> None:
        self.writer.write(pixels, pts)

    def close(self) -> None:
        self.writer.close()
        stream = self.writer.stream
        assert stream is not None and self.writer.captured is not None
        pts, dts, keyframe, data = zip(*self.writer.captured)
        with atomic_path(self.path, force=True) as temp, open(temp, "wb") as handle:
            np.savez(
                handle,
                pts=np.array(pts, np.int64),
                dts=np.array(dts, np.int64),
                keyframe=np.array(keyframe, bool),
                sizes=np.array([len(chunk) for chunk in data], np.int64),
                data=np.frombuffer(b"".join(data), np.uint8),
                extradata=np.frombuffer(stream.codec_context.extradata or b"", np.uint8),
                shape=np.array([stream.width, stream.height], np.int64),
                time_base=np.array([self.writer.time_base.numerator, self.writer.time_base.denominator], np.int64),
            )

    def abort(self) -> None:
        self.writer.abort()


class SpatialSegmentWriter(SpatialVideoWriter):
    """A segment of a spatial video: its raw two-view (MV-HEVC) stream, the access units'
    timestamps and the spatial boxes saved in an .npz file, published atomically when closed, and
    muxed when the segments are joined (join_spatial)."""

    def _plan_audio(self, settings: VideoSettings, suffix: str) -> None:
        return None  # the audio is muxed when the segments are joined

    def close(self) -> None:
        try:
            pts, dts = zip(*self.finish_stream())
            with atomic_path(self.path, force=True) as temp, open(temp, "wb") as handle:
                np.savez(handle, pts=np.array(pts, np.int64), dts=np.array(dts, np.int64),
                         data=np.fromfile(self._raw_path, np.uint8),
                         boxes=np.frombuffer(self.metadata.boxes(), np.uint8))
        finally:
            self.abort()


@dataclass
class SegmentPackets:
    width: int
    height: int
    extradata: bytes
    packets: list[av.Packet]


def load_packets(path: Path) -> SegmentPackets:
    with np.load(path) as stored:
        time_base = Fraction(int(stored["time_base"][0]), int(stored["time_base"][1]))
        data = stored["data"].tobytes()
        packets = []
        start = 0
        for pts, dts, keyframe, size in zip(stored["pts"], stored["dts"], stored["keyframe"], stored["sizes"]):
            packet = av.Packet(data[start : start + int(size)])
            start += int(size)
            packet.pts, packet.dts, packet.time_base = int(pts), int(dts), time_base
            packet.is_keyframe = bool(keyframe)
            packets.append(packet)
        width, height = (int(value) for value in stored["shape"])
        return SegmentPackets(width, height, stored["extradata"].tobytes(), packets)


def source_identity(source: Path) -> dict[str, object]:
    """Size, modification time and a hash of the head and tail: changes when the source does."""
    if source.is_dir():
        entries = sorted((path.name, path.stat().st_size, path.stat().st_mtime_ns) for path in source.iterdir())
        return {"folder": hashlib.sha256(json.dumps(entries).encode()).hexdigest()}
    stat = source.stat()
    digest = hashlib.sha256()
    with open(source, "rb") as handle:
        digest.update(handle.read(_HASHED_BYTES))
        handle.seek(max(0, stat.st_size - _HASHED_BYTES))
        digest.update(handle.read(_HASHED_BYTES))
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest.hexdigest()}


def settings_hash(fingerprint: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()


def work_folder(job: Job) -> Path:
    """Beside the (first) output, hidden: .NAME_LR.mp4.segments/"""
    target = job.outputs[0]
    return target.parent / f".{target.name}.segments"


class WorkFolder:
    """The work folder of one job: segment files and manifest.json (source identity, settings hash,
    segments with their status). Every write is atomic, so a kill at any moment leaves it readable."""

    def __init__(self, path: Path, manifest: dict[str, object]):
        self.path = path
        self.manifest = manifest

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    @classmethod
    def open(cls, job: Job, segments: list[Segment], fingerprint: dict[str, object], *, resume: bool,
             report: Callable[[str], None]) -> WorkFolder:
        """The job's work folder, resumed when its manifest matches this source, these settings and
        this plan; otherwise started afresh (saying why when an old one is dropped)."""
        path = work_folder(job)
        manifest = {
            "version": MANIFEST_VERSION,
            "source": str(job.source),
            "identity": source_identity(job.source),
            "settings": settings_hash(fingerprint),
            "segments": [{"frames": len(segment.frames), "first": segment.frames[0], "done": False} for segment in segments],
        }
        old = _read_manifest(path / "manifest.json")
        if old is not None:
            same_plan = [(s["frames"], s["first"]) for s in old.get("segments", [])] == \
                        [(s["frames"], s["first"]) for s in manifest["segments"]]
            why = ("--no-resume was given" if not resume
                   else "the source changed" if old.get("identity") != manifest["identity"]
                   else "the settings changed" if old.get("settings") != manifest["settings"] or not same_plan
                   else None)
            if why is None:
                manifest["segments"] = old["segments"]
                if "shot_starts" in old:
                    manifest["shot_starts"] = old["shot_starts"]
                done = sum(1 for entry in old["segments"] if entry["done"])
                report(f"{job.source.name}: resuming, {done} of {len(segments)} segments already done")
            else:
                report(f"{job.source.name}: starting over, {why} since the unfinished run in {path}")
        if old is None or manifest["segments"] is not old["segments"]:
            shutil.rmtree(path, ignore_errors=True)
        folder = cls(path, manifest)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SbsError(f"cannot write to {path.parent}: {error.strerror or error}") from None
        folder.save()
        return folder

    def assign_files(self, segment: Segment, job: Job, frames_out: bool) -> None:
        segment.files = [self.path / f"{segment.number:05d}.{eye}{'' if frames_out else '.npz'}"
                         for eye in range(len(job.outputs))]

    def is_done(self, segment: Segment) -> bool:
        entry = self.manifest["segments"][segment.number]  # type: ignore[index]
        return bool(entry["done"]) and all(path.exists() for path in segment.files)

    def mark_done(self, segment: Segment) -> None:
        self.manifest["segments"][segment.number]["done"] = True  # type: ignore[index]
        self.save()

    def save(self) -> None:
        with atomic_path(self.manifest_path, force=True) as temp:
            temp.write_text(json.dumps(self.manifest, indent=1))

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _read_manifest(path: Path) -> dict | None:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("version") == MANIFEST_VERSION else None


def pixel_source(info: VideoInfo) -> dict[str, object]:
    """What a VideoWriter must know of the source's pixels to encode them as a one-piece run does."""
    return {"colour": info.colour, "source_bits": info.bit_depth}


def join_videos(segments: list[Segment], job: Job, video: VideoSettings, *, frame_rate: Fraction | None,
                info: VideoInfo, layout: str, force: bool, window: tuple[float, float] | None) -> list[str]:
    """Mux every segment's packets, in order, into each output file (audio, subtitles, tags and
    stereo metadata from the source, as a one-piece run writes them); returns the writers' notes."""
    source = None if job.source.is_dir() else job.source
    notes: list[str] = []
    for number, target in enumerate(job.outputs):
        with atomic_path(target, force) as temp:
            writer = VideoWriter(temp, video, frame_rate=frame_rate, time_base=info.time_base, source=source,
                                 layout=layout, container_suffix=target.suffix, audio_window=window,
                                 **pixel_source(info))
            try:
                for segment in segments:
                    stored = load_packets(segment.files[number])
                    writer.copy(iter(stored.packets), stored.width, stored.height, stored.extradata)
                writer.close()
            except BaseException:
                with contextlib.suppress(Exception):
                    writer.abort()
                raise
        notes += [note for note in writer.notes if note not in notes]
    return notes


def join_spatial(segments: list[Segment], job: Job, video: VideoSettings, *, time_base: Fraction, force: bool,
                 window: tuple[float, float] | None) -> list[str]:
    """Join the segments' two-view streams into one and mux it into the spatial video file, as a
    one-piece run does (each later segment starts with an IDR picture in both layers); returns notes."""
    target = job.outputs[0]
    source = None if job.source.is_dir() else job.source
    audio = None if source is None else spatial_audio(source, video, target.suffix)
    with atomic_path(target, force) as temp:
        raw = raw_stream_path(temp)
        timestamps: list[tuple[int, int]] = []
        boxes = b""
        try:
            with open(raw, "wb") as handle:
                for segment in segments:
                    with np.load(segment.files[0]) as stored:
                        handle.write(stored["data"].tobytes())
                        timestamps += zip(stored["pts"].tolist(), stored["dts"].tolist())
                        boxes = stored["boxes"].tobytes()
            return [*(audio.notes if audio else ()), *write_spatial_file(
                temp, raw, timestamps, container_format=CONTAINERS[target.suffix.lower()], time_base=time_base,
                source=source, boxes=boxes, window=window, audio=audio)]
        finally:
            raw.unlink(missing_ok=True)


def join_frame_folders(segments: list[Segment], job: Job, image_type: str | None, force: bool) -> None:
    """Move every segment's numbered frames into each output folder, numbered on from the last."""
    extension = "." + (image_type or "png")
    for number, target in enumerate(job.outputs):
        target.mkdir(parents=True, exist_ok=True)
        count = 0
        for segment in segments:
            for path in sorted(numbered_frames(segment.files[number])):
                count += 1
                os.replace(path, target / frame_name(count, extension))
        # With --force the folder is replaced as a whole, as a one-piece run does.
        folder = FrameFolderWriter(target, extension, force=force, skip_existing=False)
        folder.count = count
        folder.close()


@dataclass
class SegmentOptions:
    """How a video is cut (see the CLI's --segment-seconds, --start/--end/--preview, --max-fps, --resume)."""

    seconds: float = DEFAULT_SEGMENT_SECONDS
    start: float | None = None
    end: float | None = None
    preview: float | None = None  # seconds from the middle of the video
    max_fps: float | None = None
    resume: bool = True
    shot_anchors: bool = False  # the engine reads a shot anchor (cross-frame attention): find the shots
    warmup: int = WARMUP_FRAMES  # frames before each segment the temporal filter needs (temporal.warmup_frames)
    fingerprint: dict[str, object] = field(default_factory=dict)  # the settings that shape the output

    @property
    def trimmed(self) -> bool:
        return self.start is not None or self.end is not None or self.preview is not None or self.max_fps is not None

    def window(self, index: FrameIndex) -> tuple[float | None, float | None]:
        """--start/--end, or the --preview seconds around the middle."""
        if self.preview is None:
            return self.start, self.end
        first, last = index.seconds(index.pts[0]), index.seconds(index.pts[-1])
        middle = (first + last) / 2
        return middle - self.preview / 2, middle + self.preview / 2


# Runs the pending segments of a job (in any order, on any worker) and calls back as each finishes.
SegmentRunner = Callable[[Job, list[Segment], Callable[[Segment, JobResult], None]], None]


def convert_in_segments(
    job: Job,
    options: SegmentOptions,
    convert_segment: Callable[[Job, Segment | None], JobResult],
    *,
    video: VideoSettings | None,
    layout: str,
    force: bool,
    image_type: str | None,
    frame_rate: Fraction | None,
    report: Callable[[str], None],
    progress: bool = True,
    runner: SegmentRunner | None = None,
) -> JobResult:
    """Convert a video job segment by segment through a work folder, resuming a matching one, and
    join the segments into the outputs. `convert_segment(job, segment)` converts one segment into
    its files (`segment` None: the whole video at once, for a video of one segment)."""
    index = read_index(job.source, frame_rate)
    if video is not None:
        refuse_unwritable_audio(job, video, layout)
    if not index.pts:  # no timestamps to plan with (a raw stream, or no frames): one piece, as before
        if options.trimmed:
            raise SbsError(f"{job.source}: its frames carry no timestamps to trim by")
        return convert_segment(job, None)
    start, end = options.window(index)
    with open_frames(job.source, frame_rate) as reader:
        info = reader.info
    if end is None or end > index.seconds(index.pts[-1]):  # the run goes to the end: is all of it there?
        check_complete(job.source, info, len(index.pts), index.reached)
    frames = select_frames(index, start, end, options.max_fps)
    if not frames:
        raise SbsError(f"{job.source}: no frames between `start` and `end` (the video lasts "
                       f"{index.seconds(index.pts[-1] - index.pts[0]):.1f} s)")
    segments = plan_segments(frames, index, options.seconds, trim=start is not None, warmup=options.warmup)
    if len(segments) == 1 and not options.trimmed:
        return convert_segment(job, None)
    rate = index.frame_rate if options.max_fps is None or index.frame_rate is None else min(
        index.frame_rate, Fraction(options.max_fps).limit_denominator(1001))
    for segment in segments:
        segment.frame_rate, segment.container = rate, "" if video is None else job.outputs[0].suffix
    folder = WorkFolder.open(job, segments, {**options.fingerprint, "plan": [options.seconds, start, end, options.max_fps]},
                             resume=options.resume, report=report)
    for segment in segments:
        folder.assign_files(segment, job, video is None)
    if options.shot_anchors and len(segments) > 1:
        if "shot_starts" not in folder.manifest:  # kept for a resumed run: finding them decodes the whole video
            folder.manifest["shot_starts"] = find_shot_starts(job.source, frames, frame_rate, progress)
            folder.save()
        assign_anchors(segments, frames, folder.manifest["shot_starts"])  # type: ignore[arg-type]
    pending = [segment for segment in segments if not folder.is_done(segment)]
    result = JobResult()
    bar = progress_counter(len(frames), desc=job.source.name, unit="frame", enabled=progress)
    bar.update(len(frames) - sum(len(s.frames) for s in pending))  # resumed segments

    def finished(segment: Segment, part: JobResult) -> None:
        folder.mark_done(segment)
        bar.update(len(segment.frames))
        result.notes.extend(note for note in part.notes if note not in result.notes)
        result.details.extend(part.details)
        result.add_hole_fill(part.hole_fill)

    with bar:
        if runner is None:
            for segment in pending:
                finished(segment, convert_segment(Job(job.source, segment.files), segment))
        else:
            runner(job, pending, finished)
    if video is None:
        join_frame_folders(segments, job, image_type, force)
    else:
        trimmed = start is not None or end is not None
        window = (index.seconds(segments[0].offset), end or float("inf")) if trimmed else None
        if layout == "spatial":
            notes = join_spatial(segments, job, video, time_base=info.time_base, force=force, window=window)
        else:
            notes = join_videos(segments, job, video, frame_rate=rate, info=info, layout=layout, force=force,
                                window=window)
        result.notes.extend(note for note in notes if note not in result.notes)
    folder.remove()
    result.details.append(f"{job.source.name}: {len(segments)} segments, {len(segments) - len(pending)} resumed")
    return result


def refuse_unwritable_audio(job: Job, video: VideoSettings, layout: str) -> None:
    """Refuse, in one line, audio the outputs cannot hold (--audio copy) or that cannot be
    re-encoded: before any frame is encoded and before a work folder is made (the segments' audio
    is only muxed when they are joined)."""
    suffix = job.outputs[0].suffix.lower()
    if not job.source.is_dir() and suffix in CONTAINERS:
        plan_audio(job.source, CONTAINERS[suffix], suffix, video.audio, spatial=layout == "spatial")


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
