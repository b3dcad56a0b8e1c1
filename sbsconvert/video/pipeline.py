"""The video pipeline: the still-image stages run frame by frame on a stream, so memory stays flat
with length. decode -> disparity (smoothed over time) -> stereo engine -> layout -> encode, the
decoder and the encoder each in a thread beside the rest (video/ahead.py). A stereo source (two
views, or frames packing both eyes: --input-layout) skips disparity and engine: its own eyes go
straight to the layout."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, TypeVar

import numpy as np

from sbsconvert.choices import PLATE_FILL
from sbsconvert.convert import ConvertSettings, layout_frames, own_eyes_note, stereo_request, with_source_camera
from sbsconvert.core import Job, JobResult, StageTimer
from sbsconvert.decode import Picture
from sbsconvert.disparity import Disparity
from sbsconvert.engines.base import StereoEngine, StereoPair, StereoRequest
from sbsconvert.layout import PACKED_LAYOUTS, RGBD_LAYOUTS, split, split_rgbd
from sbsconvert.output import atomic_path
from sbsconvert.progress import progress as progress_counter
from sbsconvert.video.ahead import Ahead
from sbsconvert.video.decode import Frame, VideoInfo, open_frames
from sbsconvert.video.encode import FrameFolderWriter, FrameWriter, VideoSettings, VideoWriter
from sbsconvert.video.temporal import FlickerMeter, FlowStabilizer, TemporalSmoother

if TYPE_CHECKING:
    from sbsconvert.video.paint import KeyframePainter
    from sbsconvert.video.plate import PlateRenderer
    from sbsconvert.video.segments import Segment
    from sbsconvert.video.spatial import SpatialMetadata


def convert_video(
    job: Job,
    settings: ConvertSettings,
    engine: StereoEngine,
    disparity_for: Callable[[Path, Picture], Disparity],
    video: VideoSettings,
    *,
    smoother: TemporalSmoother | FlowStabilizer | None = None,
    progress: bool = True,
    frame_rate: Fraction | None = None,
    frames_out: bool = False,
    segment: Segment | None = None,
    pipelined: bool = True,
    batch_size: int = 1,
) -> JobResult:
    """Convert one video job and write its output file(s); `disparity_for` is asked once per frame
    (with the frame as a Picture) and its answers are smoothed over time by `smoother`.

    The source is a video file, or a folder of numbered frames played at `frame_rate`; with
    `frames_out` each output is a folder of numbered images instead of a video file. A `segment`
    converts only its frames, into its files (see video/segments/).

    `pipelined` runs decoding; disparity, smoothing, engine and layout; and encoding in threads
    of their own (a few frames in flight between them); without it they take turns on one thread.
    Both give the same frames in the same order. A `disparity_for` with a `many(source, pictures)`
    method (DisparityProvider) is asked for `batch_size` frames at a time."""
    smoother = smoother if smoother is not None else TemporalSmoother()
    timer = StageTimer()
    flicker = FlickerMeter()  # of the synthesised right view, reported with --verbose
    notes: list[str] = []
    frames_done = 0
    render = ShotRenderer(engine)
    model = getattr(engine, "model", None)  # the diffusion engine counts its UNet evaluations
    unet_calls_before = getattr(model, "unet_calls", None)
    plate, painter = None, None
    if getattr(engine, "fill", None) == PLATE_FILL:  # the warp engine's --fill plate (video/plate.py)
        from sbsconvert.video.plate import PlateRenderer

        plate = PlateRenderer(engine, timer=timer)
    elif paints_keyframes(engine):  # the diffusion engine paints what the plate leaves (video/paint.py)
        plate, painter, render = keyframe_renderer(engine, timer)
    elif getattr(getattr(engine, "settings", None), "video_paint", None) == "keyframes":
        notes.append(f"{job.source.name}: every frame is diffused in full: keyframe painting paints the holes of "
                     "--composite hybrid, and --composite latent replaces the whole view")
    with contextlib.ExitStack() as stack:
        # A two-view source's second view is decoded only when it is to be used.
        reader = stack.enter_context(open_frames(job.source, frame_rate, all_views=settings.input_layout == "auto"))
        if reader.info.stereo:  # a spatial video written again keeps the camera it records
            from sbsconvert.video.spatial import spatial_video_camera

            settings = with_source_camera(settings, *spatial_video_camera(job.source))
        writers: list[FrameWriter | None]
        if segment is not None:
            from sbsconvert.video.segments.join import segment_writers

            writers = segment_writers(segment, video, reader.info, source=None if job.source.is_dir() else job.source,
                                      image_type=settings.image_type, quality=settings.quality,
                                      png_compression=settings.png_compression,
                                      spatial=spatial_metadata(settings) if settings.layout == "spatial" else None)
        elif frames_out:
            writers = [
                FrameFolderWriter(folder, "." + (settings.image_type or "png"), force=settings.force,
                                  skip_existing=settings.skip_existing, quality=settings.quality,
                                  png_compression=settings.png_compression, source_bits=reader.info.bit_depth,
                                  colour=reader.info.colour, source_name=job.source.name)
                for folder in job.outputs
            ]
            if reader.info.audio:
                notes.append(f"{job.source.name}: its audio is not written (a folder of frames holds images only)")
        else:
            writers = _video_writers(stack, job, settings, video, reader.info)
        stack.callback(_abort_all, writers)  # closes files if anything below fails
        total = len(segment.frames) if segment is not None else reader.info.expected_frames
        # A segment's frames are counted by the segments' driver, over the whole video.
        bar = stack.enter_context(progress_counter(total, desc=job.source.name, unit="frame", enabled=progress,
                                                   counts_job=segment is None))
        stop = threading.Event()
        packed = settings.input_layout in PACKED_LAYOUTS
        stereo_source = reader.info.stereo or packed
        if stereo_source:
            notes.append(own_eyes_note(job.source.name, settings.input_layout, "video (two views)"))
        offset = segment.offset if segment is not None else 0  # a segment's frames come with output timestamps

        def picture(frame: Frame, shift: int = 0) -> Picture:
            """The frame for `disparity_for`: with its source timestamp (per-frame maps) and depth."""
            return Picture(frame.pixels, source=job.source, frame=frame.pts + shift, depth=frame.depth)

        if segment is not None and segment.anchor and render.cross_frame and not stereo_source:
            # A segment that begins mid-shot: its shot's anchor, recorded as a one-piece run records it.
            anchor = [with_depth(frame, settings.input_layout) for frame in segment.read_anchor(reader)]
            maps = [disparity_for(job.source, picture(frame)) for frame in anchor]
            first, disparity, _ = next(smoother.fresh().smooth(
                (frame, frame.pixels, one) for frame, one in zip(anchor, maps)))
            with timer(engine.name):
                render.prime(stereo_request(first.pixels, disparity, settings))
        # A video depth model sees the frames in windows, as one stream (None: a map per frame, or
        # RGB+depth frames that bring their own).
        carries_depth = settings.input_layout in RGBD_LAYOUTS
        stream = None if stereo_source or carries_depth else getattr(disparity_for, "video_stream", lambda: None)()
        warmup: list[Frame] = []  # for the stream: warm-up frames to push ahead of the segment's own

        def warm_with(frame: Frame, disparity: Disparity) -> None:
            """A frame before a segment (its warm-up) goes to the smoother, and to the plate, which
            fills holes from it."""
            smoothed = smoother(frame.pixels, disparity)
            if plate is not None:
                plate.warm(stereo_request(frame.pixels, smoothed, settings), smoother.cuts)

        def warm(frame: Frame) -> None:
            # A segment's reader first hands over the frames before it; with a video depth model
            # they first go through its windows, ahead of the segment's own frames.
            if stereo_source:
                return
            frame = with_depth(frame, settings.input_layout)
            if stream is not None:
                warmup.append(frame)
            else:
                warm_with(frame, disparity_for(job.source, picture(frame)))

        source_frames = (with_depth(frame, settings.input_layout)
                         for frame in (reader.frames() if segment is None else segment.read(reader, warm)))
        frames: Iterable[Frame] = _timed(timer, "decode", source_frames)
        if pipelined:
            frames = decoded = Ahead(frames, "decode", stop)
            stack.callback(decoded.join)  # decoding ends before the source closes

        def with_disparity(frames: Iterable[Frame]) -> Iterator[tuple[Frame, np.ndarray, Disparity]]:
            if stream is not None:
                yield from streamed_disparity(frames)
                return
            # A provider that can (a depth model) is asked for `batch_size` frames at once.
            many = getattr(disparity_for, "many", None)
            for group in _groups(frames, batch_size if many is not None else 1):
                pictures = [picture(frame, offset) for frame in group]
                with timer("disparity"):
                    maps = many(job.source, pictures) if many is not None and len(group) > 1 else [
                        disparity_for(job.source, picture) for picture in pictures]
                yield from ((frame, frame.pixels, disparity) for frame, disparity in zip(group, maps))

        def streamed_disparity(frames: Iterable[Frame]) -> Iterator[tuple[Frame, np.ndarray, Disparity]]:
            waiting: deque[tuple[Frame, bool]] = deque()  # pushed, and whether it is a warm-up frame

            def answered(maps: list[Disparity]) -> Iterator[tuple[Frame, np.ndarray, Disparity]]:
                for disparity in maps:
                    frame, warming = waiting.popleft()
                    if warming:  # (all come before the segment's own frames reach the smoother)
                        warm_with(frame, disparity)
                    else:
                        yield frame, frame.pixels, disparity

            assert stream is not None
            for frame in frames:
                # The reader hands over the warm-up frames before the segment's first frame.
                pushed = [(early, True) for early in warmup] + [(frame, False)]
                warmup.clear()
                for item in pushed:
                    waiting.append(item)
                    with timer("disparity"):
                        maps = stream.push(item[0].pixels)
                    yield from answered(maps)
            with timer("disparity"):
                maps = stream.finish()
            yield from answered(maps)

        def stereo_views(pair: StereoPair) -> list[np.ndarray]:
            with timer("layout"):
                flicker.add(pair.right)
                return layout_frames(pair, settings)

        def own_views(frame: Frame) -> list[np.ndarray]:
            with timer("layout"):
                if packed:
                    return layout_frames(StereoPair(*split(frame.pixels, settings.input_layout)), settings)
                assert frame.right is not None
                return layout_frames(StereoPair(frame.pixels, frame.right), settings)

        stereo: Iterable[tuple[int, list[np.ndarray]]]
        if stereo_source:
            stereo = ((frame.pts, own_views(frame)) for frame in frames if segment is None or segment.writes(frame.pts))
        else:  # Smoothing holds a few frames back (its look-ahead) and gives them back in order.
            smoothed = ((frame, stereo_request(frame.pixels, disparity, settings), shot)
                        for frame, disparity, shot in smoother.smooth(with_disparity(frames)))
            writes = lambda frame: segment is None or segment.writes(frame.pts)
            if plate is not None:  # a segment's look-ahead frames fill holes too (they are not written)
                pairs = plate.stream((frame, request, shot, writes(frame)) for frame, request, shot in smoothed)
            else:  # a segment's look-ahead frames are smoothed only
                pairs = ((frame, _rendered(timer, engine.name, render, request, shot))
                         for frame, request, shot in smoothed if writes(frame))
            stereo = ((frame.pts, stereo_views(pair)) for frame, pair in pairs)
        if pipelined:
            stereo = Ahead(stereo, "stereo", stop)
            # The stereo stage holds no file; after Ctrl-C it is not waited for (a diffusion frame
            # can take minutes).
            stack.push(_join_unless_interrupted(stereo))
            stack.callback(stop.set)  # first thing on the way out: every stage ends at its next frame
        views: list[np.ndarray] = []
        for pts, views in stereo:
            with timer("encode"):
                for writer, view in zip(writers, views):
                    if writer is not None:
                        writer.write(view, pts)
            frames_done += 1
            bar.update()
        with timer("encode"):
            for writer in writers:
                if writer is not None:
                    writer.close()
        notes += dict.fromkeys(note for writer in writers if writer is not None for note in writer.notes)
        if not frames_out and views and any(size % 2 for size in views[0].shape[:2]):
            notes.append(f"{job.source.name}: frame size {views[0].shape[1]}x{views[0].shape[0]} is odd; "
                         "padded by one pixel (edge repeated) for yuv420")
    details = [f"{job.source.name}: {frames_done} frames, {timer}"
               + ("" if stereo_source else f", right-view flicker {flicker.value:.4f}")]
    if smoother.cuts:
        details.append(f"{job.source.name}: {smoother.cuts} scene cuts reset the disparity smoothing")
    result = JobResult(notes=notes, details=details, frames=frames_done)
    if plate is not None:
        details.append(f"{job.source.name}: {plate.counts.line()}")
        result.hole_fill = plate.counts.as_dict()
    if unet_calls_before is not None:
        result.unet_calls = engine.model.unet_calls - unet_calls_before  # type: ignore[attr-defined]
        keyframes = f" on {painter.keyframes} keyframes" if painter is not None else ""
        details.append(f"{job.source.name}: {result.unet_calls} UNet evaluations{keyframes}, "
                       f"{result.unet_calls / max(1, frames_done):.1f} per frame")
    return result


def _rendered(timer: StageTimer, stage: str, render: ShotRenderer, request: StereoRequest, shot: int) -> StereoPair:
    with timer(stage):
        return render(request, shot=shot)


class ShotRenderer:
    """engine.render for the frames of a video, in order.

    Engines with cross-frame attention (the diffusion engine) record the self-attention keys and
    values of the first frame of each shot (the anchor) and let the right view of every later
    frame of the shot attend to them too, so disocclusions are painted alike from frame to frame
    instead of being re-imagined each time. A scene cut starts a new anchor.
    """

    def __init__(self, engine: StereoEngine, draw: Callable[..., Any] | None = None):
        """draw: the engine's method that renders a frame (engine.render; the diffusion engine's
        paint_holes for keyframes); it takes record= and reference= where cross_frame is set."""
        self.engine = engine
        self.draw = draw or engine.render
        self.cross_frame = getattr(engine, "cross_frame_attention", False)
        self.anchor: object | None = None
        self.shot: int | None = None  # which shot the anchor belongs to (None with an anchor: from prime())

    def prime(self, request: StereoRequest) -> None:
        """Record the anchor of the shot a segment begins in from that shot's first frame (rendered
        for its keys and values only), for the segment's first frames to attend to."""
        from sbsconvert.engines.diffusion.attention import KVCache

        self.anchor = KVCache()
        self.draw(request, record=self.anchor)

    def __call__(self, request: StereoRequest, *, shot: int) -> Any:
        """Render a frame of shot number `shot` (it changes at every scene cut)."""
        if not self.cross_frame:
            return self.draw(request)
        from sbsconvert.engines.diffusion.attention import KVCache

        if self.shot is None and self.anchor is not None:  # the first frame's shot: prime() recorded its anchor
            self.shot = shot
        if shot != self.shot:
            self.anchor = None  # free the old shot's keys/values before recording new ones
            anchor = KVCache()
            drawn = self.draw(request, record=anchor)
            self.anchor, self.shot = anchor, shot
            return drawn
        return self.draw(request, reference=self.anchor)


def paints_keyframes(engine: StereoEngine) -> bool:
    """Whether the engine paints a video's holes on keyframes only (the diffusion engine's
    video_paint "keyframes"; its hybrid composite is what paints holes alone)."""
    settings = getattr(engine, "settings", None)
    return getattr(settings, "video_paint", None) == "keyframes" and getattr(settings, "composite", None) == "hybrid"


def keyframe_renderer(engine: Any, timer: StageTimer) -> tuple[PlateRenderer[Frame], KeyframePainter, ShotRenderer]:
    """The plate with the diffusion engine painting what it leaves on keyframes (video/paint.py),
    through a ShotRenderer (the shot's cross-frame attention anchor) for the engine's paint_holes."""
    from sbsconvert.engines.warp import WarpEngine
    from sbsconvert.video.paint import KeyframePainter
    from sbsconvert.video.plate import PlateCounts, PlateRenderer

    render = ShotRenderer(engine, draw=engine.paint_holes)

    def paint(request: StereoRequest, shot: int) -> list[np.ndarray]:
        with timer(engine.name):
            return render(request, shot=shot)  # type: ignore[no-any-return]

    counts = PlateCounts()
    painter = KeyframePainter(paint, counts, engine.settings.repaint_area)
    # The plate's warp is the one the hybrid composite paints the holes of: `background` fill.
    warp = WarpEngine(fill="background", device=engine.compute.device)
    return PlateRenderer(warp, timer=timer, counts=counts, painter=painter), painter, render


def with_depth(frame: Frame, input_layout: str) -> Frame:
    """An RGB+depth frame (--input-layout rgbd, rgbd-tb) as its colour half carrying its depth half."""
    if input_layout not in RGBD_LAYOUTS:
        return frame
    colour, depth = split_rgbd(frame.pixels, input_layout)
    return dataclasses.replace(frame, pixels=colour, depth=depth)


def _video_writers(
    stack: contextlib.ExitStack, job: Job, settings: ConvertSettings, video: VideoSettings, info: VideoInfo
) -> list[FrameWriter | None]:
    """A VideoWriter per output file, each into a temp file published when the stack closes cleanly."""
    # Outputs already finished by an interrupted --skip-existing run stay as they are (lr-pair).
    targets = [None if settings.skip_existing and target.exists() else target for target in job.outputs]
    temps = [None if target is None else stack.enter_context(atomic_path(target, settings.force)) for target in targets]
    # Audio and tags come from a video file; a folder of frames has neither.
    source = None if job.source.is_dir() else job.source
    if settings.layout == "spatial" and temps[0] is not None:  # both eyes in one MV-HEVC file
        from sbsconvert.video.spatial import SpatialVideoWriter

        return SpatialVideoWriter(temps[0], video, frame_rate=info.frame_rate, time_base=info.time_base, source=source,
                                  metadata=spatial_metadata(settings), container_suffix=job.outputs[0].suffix,
                                  colour=info.colour, source_bits=info.bit_depth).eye_writers()
    return [
        None if temp is None or target is None else VideoWriter(
            temp, video, frame_rate=info.frame_rate, time_base=info.time_base,
            source=source, layout=settings.layout, container_suffix=target.suffix,
            colour=info.colour, source_bits=info.bit_depth,
        )
        for temp, target in zip(temps, targets)
    ]


def spatial_metadata(settings: ConvertSettings) -> SpatialMetadata:
    """The stereo camera a spatial video describes (--baseline-mm, and --hfov or the default), and
    its layer structure (--mvhevc-structure)."""
    from sbsconvert.spatial_photo import DEFAULT_BASELINE_MM, DEFAULT_HFOV
    from sbsconvert.video.spatial import SpatialMetadata

    hfov = settings.hfov_degrees if settings.hfov_degrees is not None else DEFAULT_HFOV
    return SpatialMetadata(settings.baseline_mm if settings.baseline_mm is not None else DEFAULT_BASELINE_MM, hfov,
                           settings.mvhevc_structure)


T = TypeVar("T")


def _timed(timer: StageTimer, stage: str, items: Iterable[T]) -> Iterator[T]:
    """`items`, the time spent producing each one counted as `stage`."""
    iterator = iter(items)
    while True:
        with timer(stage):
            item = next(iterator, _END)
        if item is _END:
            return
        yield item  # type: ignore[misc]


_END = object()


def _groups(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of `size` (the last may be shorter)."""
    group: list[T] = []
    for item in items:
        group.append(item)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def _join_unless_interrupted(stage: Ahead) -> Callable[..., bool]:
    def exit_(kind: type[BaseException] | None, *_: object) -> bool:
        if kind is None or not issubclass(kind, KeyboardInterrupt):
            stage.join()
        return False

    return exit_


def _abort_all(writers: list[FrameWriter | None]) -> None:
    for writer in writers:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.abort()
