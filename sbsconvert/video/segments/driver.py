"""A video job in segments, from end to end: index and trim the source, plan the segments, open (or
resume) the work folder, find the shots when the engine needs their anchors, run the pending
segments (here, or through a runner on other workers) and join them into the outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

from sbsconvert.core import Job, JobResult
from sbsconvert.errors import SbsError
from sbsconvert.progress import progress as progress_counter
from sbsconvert.video.audio import plan_audio
from sbsconvert.video.decode import check_complete, open_frames
from sbsconvert.video.encode import CONTAINERS, VideoSettings
from sbsconvert.video.segments.index import FrameIndex, read_index, select_frames
from sbsconvert.video.segments.join import join_frame_folders, join_spatial, join_videos
from sbsconvert.video.segments.plan import WARMUP_FRAMES, Segment, assign_anchors, find_shot_starts, plan_segments
from sbsconvert.video.segments.workfolder import WorkFolder

DEFAULT_SEGMENT_SECONDS = 30.0


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
    bar = progress_counter(len(frames), desc=job.source.name, unit="frame", enabled=progress, counts_job=True)
    bar.update(len(frames) - sum(len(s.frames) for s in pending))  # resumed segments

    def finished(segment: Segment, part: JobResult) -> None:
        folder.mark_done(segment)
        bar.update(len(segment.frames))
        result.notes.extend(note for note in part.notes if note not in result.notes)
        result.details.extend(part.details)
        result.add_part(part)

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
