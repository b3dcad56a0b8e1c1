"""HDR10 static metadata (SMPTE ST 2086 mastering display, CTA-861.3 content light level): read from
the side data FFmpeg attaches to a decoded frame, written as the x265 parameters that put it back
into the HEVC stream, so players tone-map the output as they would the source."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
from av.sidedata.sidedata import Type

# AVMasteringDisplayMetadata: display_primaries[3][2] (R, G, B; x then y), white_point[2],
# min_luminance, max_luminance, each an AVRational (two ints); then has_primaries, has_luminance.
_MASTERING = struct.Struct("=20i2i")
# AVContentLightMetadata: MaxCLL, MaxFALL (cd/m2).
_LIGHT_LEVEL = struct.Struct("=2I")


def mastering_display(data: bytes) -> str | None:
    """x265's master-display value, G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min) in its units (0.00002 for
    chromaticity, 0.0001 cd/m2 for luminance); None unless both primaries and luminance are given."""
    if len(data) < _MASTERING.size:
        return None
    values = _MASTERING.unpack_from(data)
    if not (values[20] and values[21]) or any(denominator == 0 for denominator in values[1:20:2]):
        return None
    (rx, ry, gx, gy, bx, by, wx, wy, low, high) = (Fraction(values[i], values[i + 1]) for i in range(0, 20, 2))

    def chroma(value: Fraction) -> int:
        return round(value * 50000)

    def luminance(value: Fraction) -> int:
        return round(value * 10000)

    return (f"G({chroma(gx)},{chroma(gy)})B({chroma(bx)},{chroma(by)})R({chroma(rx)},{chroma(ry)})"
            f"WP({chroma(wx)},{chroma(wy)})L({luminance(high)},{luminance(low)})")


def content_light_level(data: bytes) -> str | None:
    """x265's max-cll value, "MaxCLL,MaxFALL"."""
    if len(data) < _LIGHT_LEVEL.size:
        return None
    return "{},{}".format(*_LIGHT_LEVEL.unpack_from(data))


def hdr10_x265_params(source: Path) -> list[str]:
    """x265 parameters carrying the HDR10 metadata of the source's first frame (none when it has none)."""
    try:
        with av.open(str(source)) as container:
            frame = next(container.decode(video=0), None)
    except av.FFmpegError:
        return []  # the conversion's own decode reports what is wrong with the file
    params = []
    for side_data in frame.side_data if frame is not None else ():
        if side_data.type == Type.MASTERING_DISPLAY_METADATA and (value := mastering_display(bytes(side_data))):
            params.append(f"master-display={value}")
        elif side_data.type == Type.CONTENT_LIGHT_LEVEL and (value := content_light_level(bytes(side_data))):
            params.append(f"max-cll={value}")
    return params
