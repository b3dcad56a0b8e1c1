"""Apple spatial photos: one HEIC holding both eyes as a stereo pair, readable anywhere HEIC is.

The file has two HEVC image items, the left eye first and primary (what a 2D viewer shows), the
right eye second. A `ster` entity group in `grpl` names them as a stereo pair (left, then right),
and each carries the camera properties Apple's spatial photos have: `cmin` (a centred pinhole whose
focal length gives the horizontal field of view) and `cmex` (the left camera at the origin, the
right one the baseline to its right, both looking straight ahead); and, when the pair has one (a
Vision Pro photo's), the disparity adjustment in Apple's uuid property (sbsconvert.formats.heif.camera).

pillow_heif (libheif) encodes the two images, with alpha, colour profile and EXIF; it cannot write
entity groups or camera properties, so sbsconvert.formats.heif adds them to its meta box afterwards.
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image

from sbsconvert.choices import DEFAULT_BASELINE_MM, DEFAULT_HFOV
from sbsconvert.errors import SbsError
from sbsconvert.formats.heif.camera import Intrinsics, cmex_bytes, cmin_bytes, disparity_adjustment_bytes, item_camera
from sbsconvert.formats.heif.items import (
    STEREO_GROUP,
    add_entity_group,
    add_item_properties,
    edit_meta,
    entity_group_bytes,
    item_properties,
    master_images,
    primary_item,
    stereo_pair_ids,
    unused_id,
)
from sbsconvert.formats.source import SourceFile
from sbsconvert.output import atomic_path, quantize

SPATIAL_EXTENSION = ".heic"
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)  # what a "35 mm equivalent" focal length refers to
_EXIF_IFD, _FOCAL_LENGTH_35MM = 0x8769, 0xA405


@dataclass(frozen=True)
class StereoCameras:
    """The stereo camera pair the views stand for: parallel, this far apart, this wide a view, and
    the shift a viewer gives the two images (ten-thousandths of the width; 0: none)."""

    baseline_mm: float = DEFAULT_BASELINE_MM
    hfov: float = DEFAULT_HFOV
    disparity_adjustment: int = 0


def photo_cameras(baseline_mm: float | None, hfov: float | None, exif: bytes | None, view: np.ndarray,
                  disparity_adjustment: int | None = None) -> StereoCameras:
    """The cameras a spatial photo records: the given baseline, else the default; the given field
    of view, else the photo's own (from its EXIF), else the default; the given disparity adjustment."""
    if hfov is None:
        hfov = field_of_view_from_exif(exif, view.shape[1], view.shape[0]) or DEFAULT_HFOV
    return StereoCameras(DEFAULT_BASELINE_MM if baseline_mm is None else baseline_mm, hfov, disparity_adjustment or 0)


def field_of_view_from_exif(exif: bytes | None, width: int, height: int) -> float | None:
    """Horizontal field of view, in degrees, of an upright width x height photo whose EXIF gives a
    35 mm equivalent focal length (phones and most cameras write it); None without one.

    The equivalent focal length matches the diagonal of a 36 x 24 mm frame, so the photo's width
    is its share of that diagonal whatever its aspect ratio or orientation."""
    if not exif:
        return None
    try:
        tags = Image.Exif()
        tags.load(exif)
        focal = tags.get_ifd(_EXIF_IFD).get(_FOCAL_LENGTH_35MM)
    except (SyntaxError, ValueError, TypeError, OverflowError, KeyError, struct.error):  # malformed: none
        return None
    if not isinstance(focal, int) or focal <= 0:
        return None
    half_width = FULL_FRAME_DIAGONAL_MM / 2 * width / math.hypot(width, height)
    return math.degrees(2 * math.atan(half_width / focal))


def write_spatial_heic(
    views: list[np.ndarray],
    path: Path,
    *,
    force: bool,
    quality: int = 95,
    cameras: StereoCameras = StereoCameras(),
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
) -> None:
    """Write HxWxC float views (left, right) as one spatial .heic, atomically.

    EXIF goes with the left (primary) image; the colour profile with both, so both eyes are shown
    in the same colours.
    """
    data = spatial_heic_bytes(views, quality=quality, cameras=cameras, icc_profile=icc_profile, exif=exif)
    with atomic_path(Path(path), force) as temp:
        temp.write_bytes(data)


def spatial_heic_bytes(
    views: list[np.ndarray],
    *,
    quality: int = 95,
    cameras: StereoCameras = StereoCameras(),
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
) -> bytes:
    if len(views) != 2:
        raise ValueError(f"a spatial photo holds two views, got {len(views)}")
    return add_stereo_pair(encode_heif(views, quality=quality, icc_profile=icc_profile, exif=exif), cameras)


def encode_heif(
    views: list[np.ndarray], *, quality: int = 95, icc_profile: bytes | None = None, exif: bytes | None = None
) -> bytes:
    """The views as one HEIF file of HEVC images, the first one primary, as pillow_heif writes it."""
    container = pillow_heif.HeifFile()
    for view in views:
        pixels = quantize(view, 255, np.uint8)
        mode = "RGBA" if pixels.shape[2] == 4 else "RGB"
        image = container.add_frombytes(mode, (pixels.shape[1], pixels.shape[0]), pixels.tobytes())
        if icc_profile:
            image.info["icc_profile"] = icc_profile
    buffer = io.BytesIO()
    options = {"exif": exif} if exif else {}
    # x265's "fast" preset: a quarter of the time of libheif's default ("slow") for a file within
    # 2 % of its size at the same quality (bench/RESULTS.md).
    try:
        container.save(buffer, quality=quality, primary_index=0, enc_params={"preset": "fast"}, **options)
    except (RuntimeError, ValueError, OSError) as error:  # what pillow_heif raises for libheif's errors
        raise SbsError(f"the HEIC encoder (libheif) failed: {error}") from None
    return buffer.getvalue()


def add_stereo_pair(heif: bytes, cameras: StereoCameras) -> bytes:
    """Mark the two images of a HEIF file (the primary one is the left eye) as a spatial stereo
    pair: the `ster` group and each eye's camera properties."""
    # cmin is in fractions of the coded image (ispe). libheif pads an odd width or height by one
    # pixel and crops it off again (clap), which moves the centre by half a pixel: not worth a
    # per-size property.
    intrinsics = cmin_bytes(Intrinsics.from_field_of_view(cameras.hfov))
    right_position = (round(cameras.baseline_mm * 1000), 0, 0)  # micrometres, to the left camera's right

    def edit(meta) -> None:
        images = master_images(meta)
        if len(images) != 2 or primary_item(meta) != images[0]:
            raise ValueError(f"expected two images, the first one primary; found items {images}")
        left, right = images
        # The adjustment belongs to the pair; Apple gives both images the same property.
        shared = [intrinsics] + ([disparity_adjustment_bytes(cameras.disparity_adjustment)]
                                 if cameras.disparity_adjustment else [])
        add_item_properties(meta, {left: [*shared, cmex_bytes((0, 0, 0))],
                                   right: [*shared, cmex_bytes(right_position)]})
        add_entity_group(meta, entity_group_bytes(STEREO_GROUP, unused_id(meta), [left, right]))

    return edit_meta(heif, edit)


def is_stereo_heic(source: Path | SourceFile) -> bool:
    """True for a HEIF file whose meta box groups images as a stereo pair (a spatial photo, ours or
    a camera's): already stereo, not a 2D photo."""
    try:
        meta = SourceFile.of(source).meta
        return meta is not None and stereo_pair_ids(meta) is not None
    except (OSError, ValueError):
        return False


def stereo_pair_images(source: Path | SourceFile) -> list[Image.Image]:
    """The two images of a HEIF stereo pair, left eye first, decoded."""
    file = SourceFile.of(source)
    if file.meta is None or (pair := stereo_pair_ids(file.meta)) is None:
        raise ValueError("it names no stereo pair")
    shown = master_images(file.meta)
    heif = pillow_heif.open_heif(file.data)
    # libheif lists the same images, in the same order (item order, hidden ones and the thumbnails
    # and auxiliary planes of others left out)
    if len(heif) != len(shown) or not set(pair) <= set(shown):
        raise ValueError("its stereo pair does not name two of its images")
    return [heif[shown.index(item)].to_pillow() for item in pair]


def stereo_heic_camera(source: Path | SourceFile) -> tuple[float | None, float | None, int | None]:
    """(baseline in mm, horizontal field of view in degrees, disparity adjustment in ten-thousandths
    of the width) a spatial photo's camera properties record (cmin/cmex, or visionOS 1's uuid
    properties): the eyes' positions apart, the left eye's field of view, the left eye's
    adjustment; each None when not recorded."""
    try:
        meta = SourceFile.of(source).meta
        pair = None if meta is None else stereo_pair_ids(meta)
        if meta is None or pair is None:
            return None, None, None
        left, right = (item_camera(item_properties(meta, item)) for item in pair)
        hfov = left.intrinsics.hfov_degrees if left.intrinsics else None
        baseline = None
        if left.position_um and right.position_um:
            baseline = abs(right.position_um[0] - left.position_um[0]) / 1000 or None
    except (OSError, ValueError, struct.error, ZeroDivisionError):
        return None, None, None
    return baseline, hfov, left.disparity_adjustment
