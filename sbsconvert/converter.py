"""The Python API, and the one place the pipeline is assembled (the command line and --cluster
workers go through here).

>>> from sbsconvert import StereoConverter
>>> conv = StereoConverter(disparity="samples/disparity/synthetic.pfm")
>>> pair = conv(Image.open("samples/synthetic.png"))      # doctest: +SKIP
>>> pair.compose("sbs").save("synthetic_LR.png")          # doctest: +SKIP
>>> conv.convert("samples/synthetic.png", "out_LR.png")   # doctest: +SKIP

See docs/python-api.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
from PIL import Image

from sbsconvert.batch import Reporter, check_output_folders, check_targets, report_passed_over, run_batch
from sbsconvert.choices import DEFAULT_GPU_BATCH
from sbsconvert.convert import ConvertSettings, convert_image, layout_frames, stereo_request, write_pair
from sbsconvert.core import BatchSummary, Job, JobResult, PassedOver
from sbsconvert.decode import Picture
from sbsconvert.depth_sources import DisparityProvider
from sbsconvert.device import select_compute
from sbsconvert.disparity import Disparity, disparity_from_array, load_disparity_file, resize_disparity
from sbsconvert.engines import create_engine
from sbsconvert.engines.base import StereoEngine, StereoPair
from sbsconvert.errors import SbsError
from sbsconvert.jobs import file_outputs, output_types, plan_jobs, plan_stream_jobs
from sbsconvert.layout import PACKED_LAYOUTS, RGBD_LAYOUTS, get_layout
from sbsconvert.media import is_video_path
from sbsconvert.output import quantize
from sbsconvert.progress import reported_to
from sbsconvert.settings import (
    DIFFUSION_ONLY,
    FIELDS,
    SEGMENT_ONLY,
    SPATIAL_ONLY,
    VIDEO_ONLY,
    Settings,
    build_settings,
    check_divergence,
    fingerprint,
    override,
)
from sbsconvert.video import SPATIAL_CODECS
from sbsconvert.video.encode import VideoSettings


Progress = Callable[[float, int], None]  # (jobs done, with the share of a video being written; jobs in the batch)
ImageLike = Any  # PIL image, numpy array (HxW or HxWxC) or torch tensor (CxHxW or HxW)


@dataclass
class StereoImage:
    """A stereo pair made by StereoConverter: `left` and `right` are HxWx3 (or x4 with alpha)
    float32 arrays in [0, 1]; `disparity` is the HxW map used (float32, larger = nearer: 0-1 for a
    relative map, pixels for a pixel map)."""

    left: np.ndarray
    right: np.ndarray
    disparity: np.ndarray
    max_eye_width: int | None = None

    def frames(self, layout: str = "sbs") -> list[np.ndarray]:
        """The pair laid out as float32 frames, as layout.compose gives them (one frame, or left and
        right for lr-pair, mpo and spatial), each eye at most max_eye_width wide."""
        return layout_frames(StereoPair(self.left, self.right), ConvertSettings(layout=layout,
                                                                               max_eye_width=self.max_eye_width))

    def compose(self, layout: str = "sbs") -> Image.Image:
        """The pair in `layout` as one 8-bit PIL image (RGB, or RGBA with alpha). Layouts of two
        images (lr-pair, mpo, spatial) have no single image: use .left/.right or .frames()."""
        frames = self.frames(layout)
        if len(frames) != 1:
            raise SbsError(f"`format` {get_layout(layout).name} holds two images; use .frames() or .left and .right")
        return Image.fromarray(quantize(frames[0], 255, np.uint8))


class Models:
    """Engines and depth estimators, built once on first use and shared by every conversion with
    the same settings (loading a model takes far longer than converting a photo)."""

    def __init__(self) -> None:
        self._built: dict[str, Any] = {}

    def _get(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._built:
            self._built[key] = make()
        return self._built[key]

    def engine(self, settings: Settings, generating: bool) -> StereoEngine:
        name = "diffusion" if generating else settings.engine.name
        options: dict[str, Any] = {"fill": settings.engine.fill} if name == "warp" else {}
        if name == "diffusion":
            options = dataclasses.asdict(dataclasses.replace(settings.engine.diffusion,
                                                             progress=settings.batch.verbosity > 0))

        def make() -> StereoEngine:
            precision = settings.engine.precision
            compute = select_compute(settings.device, precision) if precision else select_compute(settings.device)
            return create_engine(name, compute, **options)

        return self._get(repr(("engine", name, options, settings.engine.precision, settings.device)), make)

    def estimator(self, settings: Settings) -> Callable[[np.ndarray], Disparity]:
        disparity = settings.disparity

        def make() -> Callable[[np.ndarray], Disparity]:
            from sbsconvert.depth import load_depth_model

            return load_depth_model(disparity.model, select_compute(settings.device), disparity.resolution)

        return self._get(repr(("depth", disparity.model, disparity.resolution, settings.device)), make)


@dataclass
class Assembly:
    """What a process needs to build the converters of a batch: picklable, so --cluster workers
    receive it and build their own (calling it, as cluster.py does, builds with fresh models)."""

    settings: Settings
    generating: bool = False
    video: VideoSettings | None = None  # the checked encoder settings when a job is a video
    frame_rate: Fraction | None = None  # a --sequence's

    def __call__(self) -> tuple[StereoEngine, Callable[[Job], JobResult], Callable | None]:
        return self.build(Models())

    def build(self, models: Models) -> tuple[StereoEngine, Callable[[Job], JobResult], Callable | None]:
        """(engine, convert a photo or generated image, convert a video or one segment of it)."""
        settings = self.settings
        verbosity = settings.batch.verbosity
        reporter = Reporter(verbosity)
        engine = models.engine(settings, self.generating)
        disparity_for = DisparityProvider(
            settings.disparity.map_path,
            settings.disparity.kind,
            "model" if self.generating else settings.disparity.depth_source,
            make_estimator=lambda: models.estimator(settings),
            report=reporter.info,
            frame_rate=self.frame_rate,
        )
        if self.generating:
            depth_image = settings.engine.depth_image
            depth = load_disparity_file(depth_image, settings.disparity.kind) if depth_image else None
            convert_photo = lambda job: _generate_image(job, settings.output, engine, disparity_for, depth)
        else:
            convert_photo = lambda job: convert_image(job, settings.output, engine, disparity_for)
        convert_part = None
        if self.video is not None:
            from sbsconvert.video.pipeline import convert_video
            from sbsconvert.video.temporal import make_smoother

            video, disparity, path = self.video, settings.disparity, settings.disparity.map_path
            # Per-frame maps (a model's, or given per frame) get each shot's range steadied; one given map is kept as it is.
            smoother = lambda: make_smoother(disparity.temporal, disparity.temporal_strength, disparity.cut_threshold,
                                             normalize_range=path is None or path.is_dir() or is_video_path(path))
            cuda = select_compute(settings.device).device.type == "cuda"
            batch_size = settings.disparity.batch_size or (DEFAULT_GPU_BATCH if cuda else 1)
            convert_part = lambda job, segment: convert_video(
                job, settings.output, engine, disparity_for, video, smoother=smoother(),
                progress=verbosity > 0 and segment is None, frame_rate=self.frame_rate,
                frames_out=settings.batch.frames_out, segment=segment, batch_size=batch_size)
        return engine, convert_photo, convert_part


class StereoConverter:
    """Turns 2D photos and videos into stereo: build it once (models load on first use), then
    call it on images, or convert files as the command line does.

    Settings are the command line's options in Python spelling (`format="tb"`, `divergence=2.5`,
    `disparity="map.png"`, `crf=20`, `max_eye_width=2064`, see sbsconvert.settings.FIELDS), over a
    `preset` (explicit values win); or a ready `settings` object (sbsconvert.settings.Settings).

    >>> conv = StereoConverter(engine="warp", divergence=2.5)
    >>> pair = conv(np.zeros((64, 96, 3), np.uint8), disparity=np.tile(np.linspace(0, 1, 96), (64, 1)))
    >>> pair.compose("sbs").size
    (192, 64)
    """

    def __init__(self, *, preset: str | None = None, settings: Settings | None = None, **values: Any):
        if settings is not None and (preset is not None or values):
            raise SbsError("give either `settings` or values (and a `preset`), not both")
        values.setdefault("verbosity", 0)  # a library prints only errors unless asked
        self._preset, self._values, self._from_settings = preset, values, settings is not None
        self.settings = settings if settings is not None else build_settings(values, preset)
        self._models = Models()

    def __call__(self, image: ImageLike, disparity: ImageLike | None = None) -> StereoImage:
        """The stereo pair of one image (PIL, numpy HxW(xC) uint8/uint16/float in [0, 1], or torch
        CxHxW); `disparity` (an HxW array of the settings' disparity kind, any size) replaces the
        depth model or the settings' map file."""
        settings = self.settings
        pixels = to_pixels(image)
        height, width = pixels.shape[:2]
        if disparity is not None:
            found = disparity_from_array(to_map(disparity), settings.disparity.kind, name="disparity")
        elif settings.disparity.map_path is not None and settings.disparity.map_path.is_file():
            found = load_disparity_file(settings.disparity.map_path, settings.disparity.kind)
        else:
            found = self._models.estimator(settings)(pixels)
        found = resize_disparity(found, width, height)
        pair = self._models.engine(settings, False).render(stereo_request(pixels, found, settings.output))
        return StereoImage(pair.left, pair.right, found.values, settings.output.max_eye_width)

    def convert(self, inputs: str | Path | Iterable[str | Path] = (), output: str | Path | None = None, *,
                progress: Progress | None = None, **overrides: Any) -> BatchSummary:
        """Convert photos, albums (folders), videos and frame sequences as `sbsconvert INPUT... -o
        OUTPUT` does, with `overrides` over the converter's settings; returns the batch summary.

        Outputs go next to each input (or into `output`, a file for one input, else a folder);
        existing ones are refused unless force=True or skip_existing=True. A file that fails is
        in the summary's failed outcomes (and printed as an error); the others go on. `progress`,
        when given, is called as progress(done, total) after each job, counted in jobs (files),
        and while a video is converted with the share of its frames written added to `done`
        (2.5 of 4: two files done, the third half written)."""
        inputs = [Path(inputs)] if isinstance(inputs, (str, Path)) else [Path(item) for item in inputs]
        settings = self.settings
        if overrides:
            settings = (override(settings, overrides) if self._from_settings
                        else build_settings({**self._values, **overrides}, self._preset))
        return run(inputs, None if output is None else Path(output), settings, self._models, progress)


def run(inputs: list[Path], output: Path | None, settings: Settings, models: Models,
        progress: Progress | None = None) -> BatchSummary:
    """Plan the jobs of `inputs`, refuse what cannot work before any of them starts, and run them
    (here, or on a Ray cluster)."""
    batch = settings.batch
    reporter = Reporter(batch.verbosity)
    check_divergence(settings)
    generating = _generating(inputs, output, settings)
    frame_rate = _sequence_rate(settings)
    layout = settings.output.layout
    passed_over: list[PassedOver] = []  # files the INPUT folders hold that are not converted
    if generating:
        assert output is not None
        jobs = [_generation_job(output, settings)]
    elif batch.sequence or batch.frames_out:
        jobs = plan_stream_jobs(inputs, output, layout, sequence=batch.sequence, frames_out=batch.frames_out)
    else:
        jobs = plan_jobs(inputs, output, layout, settings.output.image_type, batch.recursive,
                         skip_named_outputs=settings.output.input_layout not in PACKED_LAYOUTS, passed_over=passed_over)
        report_passed_over(passed_over, reporter)
    map_path = settings.disparity.map_path
    if map_path is not None and settings.output.input_layout in RGBD_LAYOUTS:
        raise SbsError(f"`input_layout` {settings.output.input_layout} carries its own depth; drop `disparity`")
    if map_path is not None and len(jobs) > 1 and not map_path.is_dir():
        raise SbsError("`disparity` FILE works with one photo; for several photos give a folder of maps")
    _refuse_unused(settings, SPATIAL_ONLY, "only apply to `format` spatial (the file it describes)",
                   unused=layout != "spatial")
    video = _video_settings(settings, jobs, reporter)
    check_output_folders(jobs)
    force, skip_existing = settings.output.force, settings.output.skip_existing
    if batch.frames_out:
        from sbsconvert.video.encode import check_frame_folder

        for job in jobs:
            for folder in job.outputs:
                check_frame_folder(folder, force, skip_existing)
    else:
        check_targets(jobs, force, skip_existing)
    is_video = lambda job: is_video_path(job.source) or batch.sequence
    convert_video_job = None
    if video is not None:
        from sbsconvert.video.decode import refuse_unsaid_packing
        from sbsconvert.video.segments import convert_in_segments

        from sbsconvert.video.temporal import warmup_frames

        segmenting = dataclasses.replace(settings.segments, fingerprint=fingerprint(settings),
                                         shot_anchors=settings.engine.name == "diffusion",  # frames attend to their shot's first
                                         warmup=warmup_frames(settings.disparity.temporal,
                                                              settings.disparity.temporal_strength))

        def convert_video_job(job: Job, convert_part: Any, runner: Any = None) -> Any:
            if settings.output.input_layout == "auto":
                refuse_unsaid_packing(job.source)
            return convert_in_segments(
                job, segmenting, convert_part, video=None if batch.frames_out else video, layout=layout,
                force=force, image_type=settings.output.image_type, frame_rate=frame_rate, report=reporter.info,
                progress=batch.verbosity > 0, runner=runner)
    else:
        _refuse_unused(settings, SEGMENT_ONLY, "only apply to videos, and no INPUT is a video")
    if batch.workers is not None and batch.cluster is None:
        raise SbsError("`workers` sets the number of `cluster` workers; add `cluster` auto (or an address)")
    assembly = Assembly(settings, generating, video, frame_rate)
    engine = None
    if batch.cluster is not None:
        from sbsconvert.cluster import run_on_cluster

        summary = run_on_cluster(batch.cluster, batch.workers, jobs, assembly, reporter, is_video=is_video,
                                 convert_video_job=convert_video_job, skip_existing=skip_existing)
    else:
        engine, convert_photo, convert_part = assembly.build(models)
        done = 0

        def convert_one(job: Job) -> JobResult:
            nonlocal done
            try:
                if convert_video_job is not None and is_video(job):
                    return convert_video_job(job, convert_part)
                return convert_photo(job)
            finally:
                done += 1
                if progress is not None:
                    progress(done, len(jobs))

        # While a video runs, `done` grows by the share of its frames written.
        listening = (contextlib.nullcontext() if progress is None
                     else reported_to(lambda share: progress(done + share, len(jobs))))
        with listening:
            summary = run_batch(jobs, convert_one, reporter, skip_existing=skip_existing)
    if progress is not None:
        progress(len(jobs), len(jobs))
    summary.add_passed_over(passed_over)
    if len(jobs) > 1 or passed_over or summary.interrupted:
        reporter.info(summary.line())
    stage_times = getattr(engine, "total_timings", None)
    if stage_times is not None and stage_times.seconds:
        reporter.info(f"{engine.name} time per stage: {stage_times}")
    return summary


def _refuse_unused(settings: Settings, names: Iterable[str], why: str, unused: bool = True) -> None:
    """Refuse values given explicitly that nothing would use (a preset's are not refused)."""
    given = [f"`{name}`" for name in names if name in settings.given]
    if given and unused:
        raise SbsError(f"{', '.join(given)} {why}")


def _video_settings(settings: Settings, jobs: list[Job], reporter: Reporter) -> VideoSettings | None:
    """The checked encoder settings when any job is a video, else None."""
    batch, layout = settings.batch, settings.output.layout
    if not batch.sequence and not any(is_video_path(job.source) for job in jobs):
        _refuse_unused(settings, VIDEO_ONLY, "only apply to videos, and no INPUT is a video")
        return None
    if layout == "mpo":
        raise SbsError("`format` mpo is a photo format; for videos choose another `format`")
    spatial = layout == "spatial"
    if spatial and batch.frames_out:
        raise SbsError("`format` spatial writes one MV-HEVC video file; `frames_out` cannot hold it (use lr-pair)")
    if spatial and settings.video.codec not in SPATIAL_CODECS:
        raise SbsError(f"`format` spatial is MV-HEVC made with libx265; drop `codec` {settings.video.codec}")
    if batch.frames_out:
        _refuse_unused(settings, VIDEO_ONLY, "set the video encoder; `frames_out` writes images (see `image_type`, "
                       "`quality`)")
    video = dataclasses.replace(settings.video)
    note = video.check()  # probes the encoder; a hardware one that does not work gives way to software
    if note:
        reporter.info(note)
    if spatial:
        from sbsconvert.video.spatial import check_spatial_settings

        for job in jobs:
            if batch.sequence or is_video_path(job.source):  # photos become .heic files
                check_spatial_settings(video, job.outputs[0].suffix)
    return video


def _sequence_rate(settings: Settings) -> Fraction | None:
    """The frame rate of a sequence (None otherwise); a rate without a sequence is refused."""
    if settings.batch.fps is None:
        return None
    if not settings.batch.sequence:
        raise SbsError("`fps` sets the frame rate of a `sequence` folder; a video keeps its own rate")
    from sbsconvert.video.decode import parse_frame_rate

    return parse_frame_rate(settings.batch.fps)


def _generating(inputs: list[Path], output: Path | None, settings: Settings) -> bool:
    """True for text/depth -> stereo (a prompt, no input); refuses diffusion settings nothing would use."""
    diffusion, given = settings.engine.diffusion, settings.given
    if "prompt" in given and not inputs:
        if "engine" in given and settings.engine.name != "diffusion":
            raise SbsError(f"`prompt` without INPUT generates with the diffusion engine; drop `engine` "
                           f"{settings.engine.name}")
        if output is None:
            raise SbsError("`prompt` without INPUT makes a new image: name the file to write with `output` OUT.jpg")
        if settings.output.eye == "both":
            raise SbsError("`eye` both needs a photo as the centre view; it does not apply to `prompt`")
        if settings.output.input_layout != "auto":
            raise SbsError("`input_layout` says how an INPUT packs both eyes; it does not apply to `prompt`")
        if diffusion.fill_resolution == "native":
            raise SbsError("`fill_resolution` native repaints a photo's holes at the photo's scale; a generated "
                           "image is made at the model's resolution already")
        if settings.disparity.map_path is not None and settings.disparity.map_path.is_dir():
            raise SbsError("with `prompt`, `disparity` must be one map file (for the generated image)")
        return True
    if not inputs:
        raise SbsError("no INPUT given (a photo, or a folder of photos), and no `prompt` to generate from")
    if settings.engine.depth_image is not None:
        raise SbsError("`depth_image` generates a new image with `prompt` and no INPUT; for a photo's depth use "
                       "`disparity`")
    if settings.engine.name != "diffusion":
        _refuse_unused(settings, DIFFUSION_ONLY, "only apply to `engine` diffusion (or to `prompt` without INPUT)")
    return False


def _generation_job(output: Path, settings: Settings) -> Job:
    """The one 'job' of text/depth -> stereo: its input is the depth image or the prompt."""
    layout = settings.output.layout
    if output.suffix.lower() not in output_types(layout):
        raise SbsError(f"`output` {output}: give an image file name ({', '.join(output_types(layout))})")
    depth_image = settings.engine.depth_image
    return Job(source=depth_image if depth_image is not None else Path("prompt"), outputs=file_outputs(output, layout))


def _generate_image(
    job: Job, settings: ConvertSettings, engine: Any, disparity_for: DisparityProvider, depth: Disparity | None
) -> JobResult:
    pair = engine.generate(
        divergence=settings.divergence,
        convergence=settings.convergence,
        disparity_for=lambda pixels: disparity_for(job.source, Picture(pixels)),
        depth=depth,
    )
    write_pair(pair, job, settings)
    return JobResult(details=[f"{job.source.name}: {engine.timings}"])


def to_pixels(image: ImageLike) -> np.ndarray:
    """HxWx3 (or x4) float32 in [0, 1] from a PIL image, a numpy array (HxW or HxWxC; integers are
    scaled by their type's range, floats taken as 0-1) or a torch tensor (CxHxW or HxW, or 1xCxHxW)."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGBA" if "A" in image.getbands() else "RGB"))
    elif type(image).__module__.startswith("torch"):
        tensor = image.detach().cpu()
        tensor = tensor[0] if tensor.ndim == 4 and tensor.shape[0] == 1 else tensor
        image = (tensor.permute(1, 2, 0) if tensor.ndim == 3 else tensor).numpy()
    values = np.asarray(image)
    if values.ndim == 2:
        values = values[:, :, None]
    if values.ndim != 3 or values.shape[2] not in (1, 3, 4) or min(values.shape[:2]) < 2:
        raise SbsError(f"expected an image of HxW or HxWxC (C = 1, 3 or 4) pixels, got shape {values.shape}")
    if values.shape[2] == 1:
        values = np.repeat(values, 3, axis=2)
    if np.issubdtype(values.dtype, np.integer):
        return (values.astype(np.float32) / np.iinfo(values.dtype).max).astype(np.float32)
    return np.clip(values.astype(np.float32), 0, 1)


def to_map(disparity: ImageLike) -> np.ndarray:
    """An HxW float32 map from a numpy array, a torch tensor or a one-channel PIL image."""
    if type(disparity).__module__.startswith("torch"):
        disparity = disparity.detach().cpu().numpy()
    values = np.asarray(disparity, dtype=np.float32).squeeze()
    if values.ndim != 2:
        raise SbsError(f"a disparity map must be HxW, got shape {values.shape}")
    return values


__all__ = ["StereoConverter", "StereoImage", "Settings", "build_settings", "FIELDS"]
