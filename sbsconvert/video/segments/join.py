"""A segment's files and their joining: each segment's encoded packets (or two-view stream, or
numbered frames) kept with their exact timestamps, then muxed or moved, in order, into the outputs
through the writers a one-piece run uses."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from sbsconvert.core import Job
from sbsconvert.output import atomic_path
from sbsconvert.video.decode import VideoInfo
from sbsconvert.video.encode import (CONTAINERS, FrameFolderWriter, FrameWriter, VideoSettings, VideoWriter, frame_name,
                                     numbered_frames)
from sbsconvert.video.segments.plan import Segment
from sbsconvert.video.spatial import (SpatialMetadata, SpatialVideoWriter, raw_stream_path, spatial_audio,
                                      write_spatial_file)


def pixel_source(info: VideoInfo) -> dict[str, object]:
    """What a VideoWriter must know of the source's pixels to encode them as a one-piece run does."""
    return {"colour": info.colour, "source_bits": info.bit_depth}


def segment_writers(segment: Segment, settings: VideoSettings, info: VideoInfo, *, source: Path | None,
                    image_type: str | None, quality: int, png_compression: int,
                    spatial: SpatialMetadata | None) -> list[FrameWriter | None]:
    """A writer per view the pipeline hands over: into `segment`'s files. `source` (a video file)
    gives the encoder settings that follow it (HDR10 metadata); `spatial`: both views go into one
    MV-HEVC stream."""
    if not segment.container:
        return [FrameFolderWriter(path, "." + (image_type or "png"), force=True, skip_existing=False,
                                  quality=quality, png_compression=png_compression, **pixel_source(info))
                for path in segment.files]
    if spatial is not None:
        return SpatialSegmentWriter(segment.files[0], settings, frame_rate=segment.frame_rate, time_base=info.time_base,
                                    source=source, metadata=spatial, container_suffix=segment.container,
                                    opens_stream=segment.number == 0, **pixel_source(info)).eye_writers()
    return [SegmentWriter(path, settings, segment.frame_rate, info, segment.container, source)
            for path in segment.files]


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
