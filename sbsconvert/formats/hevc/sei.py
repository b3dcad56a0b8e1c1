"""The SEI message naming a two-view stream's left and right views: three_dimensional_reference_
displays_info (H.265 G.14.2.3 syntax, payload type 176), as Apple's encoder writes it in the
`hvcC` of a spatial video. Decoders read the eyes from it: FFmpeg marks each decoded view left or
right (else "unspecified"), and Android's media3 takes the primary eye of MV-HEVC from it alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from sbsconvert.formats.hevc.bits import BitReader, BitstreamError, BitWriter
from sbsconvert.formats.hevc.nal import PREFIX_SEI, NalUnit

THREE_D_REFERENCE_DISPLAYS_INFO = 176
# Apple's values: the precision of the (unknown, zero) reference display width, whose mantissa
# then takes max(0, 31 - 30) = 1 bit for exponent 0 (G.14.3.3).
_DISPLAY_WIDTH_PRECISION = 31
_MANTISSA_BITS = 1


def sei_payload_types(rbsp: bytes) -> list[int]:
    """payloadType of each SEI message in an SEI RBSP (H.265 7.3.5)."""
    kinds, position = [], 0
    while position < len(rbsp) and rbsp[position:] != b"\x80":  # rbsp_trailing_bits
        values = []
        for _ in range(2):  # payloadType, then payloadSize: runs of 0xFF plus a last byte
            value = 0
            while rbsp[position] == 0xFF:
                value += 255
                position += 1
            values.append(value + rbsp[position])
            position += 1
        kinds.append(values[0])
        position += values[1]
    return kinds


@dataclass(frozen=True)
class ReferenceDisplays:
    left_view_id: int
    right_view_id: int


def reference_displays_sei(left_view_id: int = 0, right_view_id: int = 1) -> NalUnit:
    """A prefix SEI NAL unit (layer 0) with one reference display naming the left and right
    view, with no display width, viewing distance or sample shift, as Apple's encoder writes it."""
    message = BitWriter()
    message.ue(_DISPLAY_WIDTH_PRECISION)  # prec_ref_display_width
    message.flag(0)  # ref_viewing_distance_flag
    message.ue(0)  # num_ref_displays_minus1
    message.ue(left_view_id)
    message.ue(right_view_id)
    message.u(6, 0)  # exponent_ref_display_width
    message.u(_MANTISSA_BITS, 0)  # mantissa_ref_display_width
    message.flag(0)  # additional_shift_present_flag
    message.flag(0)  # three_dimensional_reference_displays_extension_flag
    message.trailing_bits()  # payload_bit_equal_to_one, payload_bit_equal_to_zero...
    payload = message.to_bytes()
    sei = BitWriter()
    sei.u(8, THREE_D_REFERENCE_DISPLAYS_INFO)  # below 255: one byte, no 0xFF prefix
    sei.u(8, len(payload))
    for byte in payload:
        sei.u(8, byte)
    sei.trailing_bits()
    return NalUnit(PREFIX_SEI, 0, 0, b"").with_rbsp(sei.to_bytes())


def parse_reference_displays(unit: NalUnit) -> ReferenceDisplays | None:
    """The first reference display's views of a prefix SEI NAL unit holding a 3D reference
    displays info message (first in the unit), else None."""
    if unit.type != PREFIX_SEI:
        return None
    rbsp = unit.rbsp
    if len(rbsp) < 3 or rbsp[0] != THREE_D_REFERENCE_DISPLAYS_INFO:
        return None
    reader = BitReader(rbsp[2 : 2 + rbsp[1]])
    try:
        reader.ue()  # prec_ref_display_width
        if reader.flag():  # ref_viewing_distance_flag
            reader.ue()  # prec_ref_viewing_dist
        reader.ue()  # num_ref_displays_minus1
        left, right = reader.ue(), reader.ue()
    except BitstreamError:
        return None
    return ReferenceDisplays(left, right)

