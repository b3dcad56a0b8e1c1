"""Camera item properties of HEIF (ISO/IEC 23008-12, as amended for stereo and spatial photos):

- `cmin`, camera intrinsic matrix: focal length and principal point as fractions of the image width
  (focal x, principal x) and height (principal y), signed 32-bit fixed point with a power-of-two
  denominator whose exponent sits in flags bits 8-12. Flag bit 0 would add a separate vertical focal
  length and a skew; square pixels without skew leave it off.
- `cmex`, camera extrinsics: the camera position in micrometres (x, y, z each present only when its
  flag bit is set) and an orientation (absent: the identity), in a world coordinate system shared by
  the cameras of a stereo pair.

These are what Apple's Image I/O writes for the camera model and extrinsics of a spatial photo, and
what libheif reads back as an image's intrinsic and extrinsic matrices.

Spatial photos of visionOS 1 (Apple Vision Pro's first release) carry the same camera in `uuid`
item properties instead, which no specification describes; read from a Vision Pro photo: after the
16-byte extended type, one holds cmin's fields, one cmex's, and a third the stereo pair's
disparity adjustment (a signed 32-bit integer, in ten-thousandths of the image width, as Core
Media's horizontal disparity adjustment; positive moves the eyes' images apart). No standard
property holds the adjustment, so it is written back in that uuid property.
"""

from __future__ import annotations

import math
import struct
import uuid
from dataclasses import dataclass

from sbsconvert.formats.isobmff.boxes import Box, box, full_box, split_full_box

CMEX_POSITION_FLAGS = (0x01, 0x02, 0x04)  # x, y, z present
CMEX_ORIENTATION = 0x08
CMEX_LARGE_ROTATION = 0x10
CMEX_WORLD_ID = 0x20
_MAX_SHIFT = 30
# visionOS 1's uuid item properties (extended types)
APPLE_INTRINSICS = uuid.UUID("22cc04c7-d6d9-4e07-9d90-4eb6ecbaf3a3").bytes  # cmin's fields
APPLE_EXTRINSICS = uuid.UUID("4363e914-5b7d-4aab-97ae-bea69803b434").bytes  # cmex's fields
APPLE_DISPARITY_ADJUSTMENT = uuid.UUID("de225085-36cb-4365-8743-2f8705e7c78a").bytes
DISPARITY_ADJUSTMENT_UNITS = 10000  # per image width


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole camera, in fractions of the image size (focal_x of the width, principal points of
    the width and height)."""

    focal_x: float
    principal_x: float = 0.5
    principal_y: float = 0.5

    @classmethod
    def from_field_of_view(cls, hfov_degrees: float) -> Intrinsics:
        """A centred camera whose image spans `hfov_degrees` horizontally: f = (w / 2) / tan(hfov / 2)."""
        if not 0 < hfov_degrees < 180:
            raise ValueError(f"horizontal field of view must be between 0 and 180 degrees, got {hfov_degrees}")
        return cls(focal_x=0.5 / math.tan(math.radians(hfov_degrees) / 2))

    @property
    def hfov_degrees(self) -> float:
        return math.degrees(2 * math.atan(0.5 / self.focal_x))


def cmin_bytes(intrinsics: Intrinsics) -> bytes:
    values = (intrinsics.focal_x, intrinsics.principal_x, intrinsics.principal_y)
    shift = min(_fixed_point_shift(value) for value in values)
    body = struct.pack(">3i", *(round(value * (1 << shift)) for value in values))
    return full_box(b"cmin", 0, shift << 8, body)


def parse_cmin(payload: bytes) -> tuple[Intrinsics, float | None, float | None]:
    """(intrinsics, vertical focal length as a fraction of the height, skew); the last two are None
    unless flag bit 0 says the box carries them."""
    version, flags, body = split_full_box(payload)
    if version != 0:
        raise ValueError(f"cmin version {version} is not supported")
    denominator = 1 << ((flags >> 8) & 0x1F)
    count = 5 if flags & 1 else 3
    values = struct.unpack_from(f">{count}i", body)
    focal_x, principal_x, principal_y = (value / denominator for value in values[:3])
    focal_y = skew = None
    if flags & 1:
        focal_y = values[3] / denominator
        skew = values[4] / (1 << ((flags >> 16) & 0x1F))
    return Intrinsics(focal_x, principal_x, principal_y), focal_y, skew


def cmex_bytes(position_um: tuple[int, int, int], world_id: int = 0) -> bytes:
    """Extrinsics with the identity orientation: only the position's non-zero coordinates (and a
    non-zero world coordinate system id) are written, each with its flag."""
    flags, body = 0, b""
    for flag, value in zip(CMEX_POSITION_FLAGS, position_um):
        if value:
            flags |= flag
            body += struct.pack(">i", value)
    if world_id:
        flags |= CMEX_WORLD_ID
        body += struct.pack(">I", world_id)
    return full_box(b"cmex", 0, flags, body)


def parse_cmex(payload: bytes) -> tuple[tuple[int, int, int], tuple[float, float, float] | None, int]:
    """(position in micrometres, rotation quaternion (x, y, z) or None for the identity, world id)."""
    version, flags, body = split_full_box(payload)
    if version != 0:
        raise ValueError(f"cmex version {version} is not supported")
    offset = 0
    position = [0, 0, 0]
    for axis, flag in enumerate(CMEX_POSITION_FLAGS):
        if flags & flag:
            (position[axis],) = struct.unpack_from(">i", body, offset)
            offset += 4
    rotation = None
    if flags & CMEX_ORIENTATION:
        large = bool(flags & CMEX_LARGE_ROTATION)
        raw = struct.unpack_from(">3i" if large else ">3h", body, offset)
        offset += 12 if large else 6
        rotation = tuple(value / (1 << (30 if large else 14)) for value in raw)
    world_id = struct.unpack_from(">I", body, offset)[0] if flags & CMEX_WORLD_ID else 0
    return (position[0], position[1], position[2]), rotation, world_id  # type: ignore[return-value]


def disparity_adjustment_bytes(adjustment: int) -> bytes:
    """The uuid property of a disparity adjustment in ten-thousandths of the image width."""
    return box(b"uuid", APPLE_DISPARITY_ADJUSTMENT + struct.pack(">i", adjustment))


@dataclass(frozen=True)
class ItemCamera:
    """What an image item's camera properties say; None where it has none."""

    intrinsics: Intrinsics | None = None
    position_um: tuple[int, int, int] | None = None
    disparity_adjustment: int | None = None  # ten-thousandths of the image width


def item_camera(properties: list[Box]) -> ItemCamera:
    """The camera an image item's properties describe: cmin and cmex, else visionOS 1's uuid
    properties. Raises ValueError (or struct.error) for a malformed one."""
    by_kind: dict[bytes, bytes] = {}
    for prop in properties:
        kind, payload = prop.kind, prop.payload
        if kind == b"uuid" and len(payload) >= 16:
            kind, payload = payload[:16], payload[16:]
        by_kind.setdefault(kind, payload)
    cmin = by_kind.get(b"cmin", by_kind.get(APPLE_INTRINSICS))
    cmex = by_kind.get(b"cmex", by_kind.get(APPLE_EXTRINSICS))
    adjustment = by_kind.get(APPLE_DISPARITY_ADJUSTMENT)
    return ItemCamera(
        intrinsics=parse_cmin(cmin)[0] if cmin is not None else None,
        position_um=parse_cmex(cmex)[0] if cmex is not None else None,
        disparity_adjustment=struct.unpack_from(">i", adjustment)[0] if adjustment is not None else None,
    )


def _fixed_point_shift(value: float) -> int:
    """The largest denominator exponent (up to 30) that keeps round(value * 2**shift) in a signed
    32-bit field."""
    shift = _MAX_SHIFT
    while shift > 0 and abs(round(value * (1 << shift))) >= 1 << 31:
        shift -= 1
    return shift
