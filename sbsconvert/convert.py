"""The still-image pipeline: decode -> disparity -> stereo engine -> layout -> encode."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from sbsconvert.choices import PLATE_FILL
from sbsconvert.core import Job, JobResult, StageTimer
from sbsconvert.decode import Picture, load_picture, load_stereo_eyes, read_source
from sbsconvert.disparity import Disparity, pixel_shift
from sbsconvert.engines.base import StereoEngine, StereoPair, StereoRequest
from sbsconvert.formats.mpo import MPO_EXTENSION
from sbsconvert.jobs import photo_container
from sbsconvert.layout import PACKED_LAYOUTS, RGBD_LAYOUTS, compose, fit_width, get_layout, split, split_rgbd
from sbsconvert.output import DEFAULT_PNG_COMPRESSION, IMAGE_FORMATS, SIXTEEN_BIT_FORMATS, write_image, write_mpo
from sbsconvert.spatial_photo import SPATIAL_EXTENSION, photo_cameras, stereo_heic_camera, write_spatial_heic


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
    mvhevc_structure: str = "apple"  # a spatial video's layer structure (choices.MVHEVC_STRUCTURES)
    input_layout: str = "auto"  # --input-layout: how the input already holds both eyes, if it does


def convert_image(
    job: Job, settings: ConvertSettings, engine: StereoEngine, disparity_for: Callable[[Path, Picture], Disparity]
) -> JobResult:
    """Run the whole still-image pipeline for one job and write its output file(s)."""
    timer = StageTimer()
    with timer("decode"):
        source = read_source(job.source)  # read once: decoding, its eyes, camera and embedded depth share it
        picture = load_picture(source)
        if settings.input_layout in RGBD_LAYOUTS:
            colour, depth = split_rgbd(picture.pixels, settings.input_layout)
            picture = dataclasses.replace(picture, pixels=colour, depth=depth)
        packed = settings.input_layout in PACKED_LAYOUTS
        own_eyes = (split(picture.pixels[..., :3], settings.input_layout) if packed
                    else load_stereo_eyes(source) if settings.input_layout == "auto" else None)
    notes = list(picture.notes)
    if own_eyes is not None:
        pair = StereoPair(*own_eyes)
        notes.append(own_eyes_note(job.source.name, settings.input_layout, "photo"))
        if not packed:  # a spatial photo written again keeps the camera it records
            settings = with_source_camera(settings, *stereo_heic_camera(source))
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


