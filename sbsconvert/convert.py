"""The still-image pipeline: decode -> disparity -> stereo engine -> layout -> encode."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from sbsconvert.batch import JobResult
from sbsconvert.decode import Picture, load_picture, load_stereo_eyes
from sbsconvert.disparity import (Disparity, check_map_shape, disparity_from_array, load_disparity_file, pixel_shift,
                                  resize_disparity)
from sbsconvert.engines.base import StereoEngine, StereoPair, StereoRequest
from sbsconvert.engines.warp import PLATE_FILL
from sbsconvert.errors import BatchStop, SbsError
from sbsconvert.jobs import Job, photo_container
from sbsconvert.layout import PACKED_LAYOUTS, RGBD_LAYOUTS, compose, fit_width, get_layout, split, split_rgbd
from sbsconvert.mpo import MPO_EXTENSION, write_mpo
from sbsconvert.output import DEFAULT_PNG_COMPRESSION, IMAGE_FORMATS, SIXTEEN_BIT_FORMATS, write_image
from sbsconvert.spatial_photo import SPATIAL_EXTENSION, photo_cameras, stereo_heic_camera, write_spatial_heic
from sbsconvert.video import is_video_path

if TYPE_CHECKING:
    from sbsconvert.video.framemaps import FrameMaps

DEPTH_SOURCES = ("auto", "embedded", "model")
DISPARITY_MAP_SUFFIXES = ("", "_disp", "_disparity", "_depth")


@dataclass
class ConvertSettings:
    layout: str = "sbs"
    divergence: float = 3.0  # percent of the image width for the nearest point
    convergence: float = 0.0
    eye: str = "right"
    max_eye_width: int | None = None
    image_type: str | None = None
    quality: int = 95
    png_compression: int = DEFAULT_PNG_COMPRESSION
    force: bool = False
    skip_existing: bool = False
    # --format spatial: the stereo camera the file describes. Converted 2D photos have none, so the
    # default baseline is an average adult's distance between the pupils; the field of view is the
    # photo's own (from its EXIF) unless given.
    baseline_mm: float | None = None  # None: a stereo source's own, else DEFAULT_BASELINE_MM
    hfov_degrees: float | None = None
    # A spatial source's own disparity adjustment (ten-thousandths of the width), kept when written as spatial.
    disparity_adjustment: int | None = None
    mvhevc_structure: str = "apple"  # a spatial video's layer structure (video/spatial.py, MVHEVC_STRUCTURES)
    input_layout: str = "auto"  # --input-layout: how the input already holds both eyes, if it does


class DisparityProvider:
    """Finds the disparity for one photo: a given file/folder, depth embedded in it, or a model."""

    def __init__(
        self,
        disparity_path: Path | None,
        kind: str,
        depth_source: str,
        make_estimator: Callable[[], Callable[[np.ndarray], Disparity]],
        report: Callable[[str], None],
        frame_rate: Fraction | None = None,
    ):
        if depth_source not in DEPTH_SOURCES:
            raise SbsError(f"unknown depth source '{depth_source}' (choose from {', '.join(DEPTH_SOURCES)})")
        self.disparity_path = disparity_path
        self.kind = kind
        self.depth_source = depth_source
        self._make_estimator = make_estimator
        self._estimator: Callable[[np.ndarray], Disparity] | None = None
        self._loaded: tuple[Path, Disparity] | None = None  # last map file read (a video asks once per frame)
        self._report = report
        self.frame_rate = frame_rate  # a --sequence's rate (per-frame maps are indexed by the frames' times)
        self._frame_maps: dict[Path, FrameMaps | None] = {}

    def __call__(self, source: Path, picture: Picture) -> Disparity:
        width, height = picture.size
        return resize_disparity(self._find(source, picture), width, height)

    def many(self, source: Path, pictures: list[Picture]) -> list[Disparity]:
        """Disparity for several frames of one video (same size); a depth model sees them in one batch."""
        if (self.disparity_path is not None or self.depth_source == "embedded" or len(pictures) == 1
                or pictures[0].depth is not None):
            return [self(source, picture) for picture in pictures]
        estimator = self._model()
        batch = getattr(estimator, "batch", None)
        if batch is None:
            return [self(source, picture) for picture in pictures]
        width, height = pictures[0].size
        return [resize_disparity(disparity, width, height) for disparity in batch([p.pixels for p in pictures])]

    def video_stream(self) -> Any | None:
        """For a video depth model (one that sees a video's frames in windows): a fresh stream of
        its frames, with push(pixels) and finish() giving disparities in order, up to a window
        late. None for any other source of disparity."""
        if self.disparity_path is not None or self.depth_source == "embedded":
            return None
        stream = getattr(self._model(), "stream", None)
        return stream() if stream is not None else None

    def _model(self) -> Callable[[np.ndarray], Disparity]:
        if self._estimator is None:
            try:
                self._estimator = self._make_estimator()
            except SbsError as error:
                raise BatchStop(str(error)) from None
        return self._estimator

    def _find(self, source: Path, picture: Picture) -> Disparity:
        if picture.depth is not None:
            return disparity_from_array(picture.depth, self.kind, f"{source.name}: its depth half")
        if self.disparity_path is not None and picture.frame is not None:
            frame_maps = self._frame_maps_for(source)
            if frame_maps is not None:
                disparity = frame_maps(picture.frame)
                check_map_shape(disparity, *picture.size, f"{self.disparity_path} frame maps", str(source))
                return disparity
        if self.disparity_path is not None:
            if is_video_path(self.disparity_path):
                raise SbsError(f"{source}: a depth video ({self.disparity_path.name}) gives the maps of a video's "
                               "frames; for a photo give a map file")
            path = self._map_for(source)
            if self._loaded is None or self._loaded[0] != path:
                self._loaded = (path, load_disparity_file(path, self.kind))
            if picture.source is not None:  # (a generated image is drawn at the model's size, to fit the map to)
                check_map_shape(self._loaded[1], *picture.size, f"disparity map {path}", str(source))
            return self._loaded[1]
        if self.depth_source in ("auto", "embedded"):
            from sbsconvert.embedded_depth import read_embedded_depth

            embedded = read_embedded_depth(source)
            if embedded is not None:
                self._report(f"{source.name}: using the depth embedded in the photo ({embedded.source})")
                return embedded.disparity
            if self.depth_source == "embedded":
                raise SbsError(f"{source}: the photo carries no embedded depth map (use `depth_source` model)")
        return self._model()(picture.pixels)

    def _frame_maps_for(self, source: Path) -> FrameMaps | None:
        """A video's per-frame maps: a depth video, or a folder of maps, one per frame (the
        folder's SOURCE_NAME/ subfolder, else the folder itself), unless the folder holds a map
        named like the video (one map for all its frames)."""
        if source not in self._frame_maps:
            from sbsconvert.video.framemaps import FrameMaps

            assert self.disparity_path is not None
            maps: Path | None = self.disparity_path
            if self.disparity_path.is_dir():
                maps = None if self._named_map(source) is not None else (
                    self.disparity_path / source.stem if (self.disparity_path / source.stem).is_dir()
                    else self.disparity_path)
            elif not is_video_path(self.disparity_path):
                maps = None
            self._frame_maps[source] = None if maps is None else FrameMaps(maps, source, self.kind, self.frame_rate)
        return self._frame_maps[source]

    def _named_map(self, source: Path) -> Path | None:
        assert self.disparity_path is not None
        for suffix in DISPARITY_MAP_SUFFIXES:
            for candidate in sorted(self.disparity_path.glob(f"{source.stem}{suffix}.*")):
                if candidate.resolve() != source.resolve() and candidate.is_file():
                    return candidate
        return None

    def _map_for(self, source: Path) -> Path:
        assert self.disparity_path is not None
        if not self.disparity_path.is_dir():
            return self.disparity_path
        named = self._named_map(source)
        if named is not None:
            return named
        raise SbsError(f"{source}: no disparity map named {source.stem}.* in {self.disparity_path}")


def convert_image(
    job: Job, settings: ConvertSettings, engine: StereoEngine, disparity_for: Callable[[Path, Picture], Disparity]
) -> JobResult:
    """Run the whole still-image pipeline for one job and write its output file(s)."""
    timer = StageTimer()
    with timer("decode"):
        picture = load_picture(job.source)
        if settings.input_layout in RGBD_LAYOUTS:
            colour, depth = split_rgbd(picture.pixels, settings.input_layout)
            picture = dataclasses.replace(picture, pixels=colour, depth=depth)
        packed = settings.input_layout in PACKED_LAYOUTS
        own_eyes = (split(picture.pixels[..., :3], settings.input_layout) if packed
                    else load_stereo_eyes(job.source) if settings.input_layout == "auto" else None)
    notes = list(picture.notes)
    if own_eyes is not None:
        pair = StereoPair(*own_eyes)
        notes.append(own_eyes_note(job.source.name, settings.input_layout, "photo"))
        if not packed:  # a spatial photo written again keeps the camera it records
            settings = with_source_camera(settings, *stereo_heic_camera(job.source))
    else:
        with timer("disparity"):
            disparity = disparity_for(job.source, picture)
        with timer(engine.name):
            pair = engine.render(stereo_request(picture.pixels, disparity, settings))
        if getattr(engine, "fill", None) == PLATE_FILL:
            notes.append(f"{job.source.name}: --fill plate fills a video's holes from its other frames; "
                         "a photo's are filled with --fill background")
    with timer("write"):
        write_pair(pair, job, settings, picture)
    if picture.bit_depth > 8 and IMAGE_FORMATS.get(job.outputs[0].suffix.lower()) not in SIXTEEN_BIT_FORMATS:
        # --type cannot change the images inside an .mpo or .heic
        hint = "" if photo_container(settings.layout) else f" (--type png or tif keeps {picture.bit_depth})"
        notes.append(f"{job.source.name}: its {picture.bit_depth}-bit pixels are written with 8 bits "
                     f"in {job.outputs[0].suffix}{hint}")
    return JobResult(notes=notes, details=[f"{job.source.name}: {timer}"])


def with_source_camera(settings: ConvertSettings, baseline_mm: float | None, hfov: float | None,
                       disparity_adjustment: int | None = None) -> ConvertSettings:
    """The settings with a stereo source's own camera (baseline, field of view, disparity
    adjustment) where no option set them."""
    return dataclasses.replace(
        settings,
        baseline_mm=settings.baseline_mm if settings.baseline_mm is not None else baseline_mm,
        hfov_degrees=settings.hfov_degrees if settings.hfov_degrees is not None else hfov,
        disparity_adjustment=disparity_adjustment,
    )


def own_eyes_note(name: str, input_layout: str, kind: str) -> str:
    """The note saying a stereo input's own eyes were used (a packed frame's, or a stereo file's)."""
    if input_layout in PACKED_LAYOUTS:
        return f"{name}: each frame packs both eyes (--input-layout {input_layout}); they are laid out as they are"
    return f"{name}: a stereo {kind}; its own left and right eyes are laid out as they are (no depth or synthesis)"


def stereo_request(pixels: np.ndarray, disparity: Disparity, settings: ConvertSettings) -> StereoRequest:
    """What the engine gets for one view: the image, its nearness and the pixel shift the
    divergence and convergence settings give."""
    shift = pixel_shift(disparity, pixels.shape[1], settings.divergence, settings.convergence)
    return StereoRequest(image=pixels, nearness=disparity.values, shift=shift, eye=settings.eye)


def layout_frames(pair: StereoPair, settings: ConvertSettings) -> list[np.ndarray]:
    """The pair as the frame(s) of the chosen layout, each eye at most max_eye_width wide."""
    left = fit_width(pair.left, settings.max_eye_width)
    right = fit_width(pair.right, settings.max_eye_width)
    return compose(left, right, settings.layout)


def write_pair(pair: StereoPair, job: Job, settings: ConvertSettings, picture: Picture | None = None) -> None:
    """Lay out a stereo pair and write the job's output file(s); `picture` (the input photo, if
    any) gives the bit depth, colour profile and EXIF to keep."""
    frames = layout_frames(pair, settings)
    kept = {"icc_profile": picture.icc_profile, "exif": picture.exif} if picture else {}
    if get_layout(settings.layout).extension == MPO_EXTENSION:  # both eyes in one file
        write_mpo(frames, job.outputs[0], force=settings.force, quality=settings.quality, **kept)
        return
    if photo_container(settings.layout) == SPATIAL_EXTENSION:
        exif = picture.exif if picture else None
        cameras = photo_cameras(settings.baseline_mm, settings.hfov_degrees, exif, frames[0],
                                settings.disparity_adjustment)
        write_spatial_heic(frames, job.outputs[0], force=settings.force, quality=settings.quality, cameras=cameras,
                           **kept)
        return
    for frame, target in zip(frames, job.outputs):
        if settings.skip_existing and target.exists():
            continue  # an earlier, interrupted run finished this one of the pair
        write_image(
            frame[..., :1] if picture and picture.grey and is_grey(frame) else frame,
            target,
            force=settings.force,
            bit_depth=picture.bit_depth if picture else 8,
            quality=settings.quality,
            colour_chunks=picture.colour_chunks if picture else (),
            png_compression=settings.png_compression,
            **kept,
        )


def is_grey(frame: np.ndarray) -> bool:
    """Whether a frame's three colour channels are equal (a grey photo's eyes side by side are; its
    anaglyph is not)."""
    return frame.shape[2] == 3 and np.array_equal(frame[..., 0], frame[..., 1]) and np.array_equal(
        frame[..., 0], frame[..., 2])


class StageTimer:
    """Wall time per named stage, printed as "decode 0.01 s, warp 0.20 s, ..."."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started

    def add(self, other: StageTimer) -> None:
        for stage, seconds in other.seconds.items():
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def __str__(self) -> str:
        return ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in self.seconds.items())
