"""Stereo MPO files (CIPA DC-007 Multi-Picture Format): the left and right eye as two JPEGs in one file.

The file is the left JPEG followed by the right JPEG. Each carries an APP2 "MPF" segment holding a
little TIFF structure: the left one the MP Index IFD (one 16-byte MP Entry per image: flags and type,
size, offset) followed by its own MP Attribute IFD, the right one only its MP Attribute IFD. Image
offsets count from the byte-order mark of the left image's MPF header; the first image's is 0.

Pillow can write MPO too, but it types the first image "Baseline MP Primary Image" and the rest
"Undefined" and writes no attribute IFDs, so 3D viewers (Nintendo 3DS, Fujifilm, stereo photo apps)
do not take the file for a stereo pair. The few bytes of the MP extension are written here instead
(sbsconvert.output.write_mpo encodes the eyes and publishes the file).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

from PIL import Image

MPO_EXTENSION = ".mpo"

MP_TYPE_DISPARITY = 0x020002  # "Multi-Frame Image: Disparity Image", i.e. a stereo (multi-view) pair
REPRESENTATIVE_IMAGE = 1 << 29  # MP Entry flag: the image to show when only one is shown
BASE_VIEWPOINT = 1  # viewpoints are numbered from the left; the left eye is the input photo

_MPF_VERSION = b"0100"
_TIFF_HEADER = b"II*\x00" + struct.pack("<L", 8)  # little-endian, first IFD right after the header
_APP2 = b"\xff\xe2"
_MPF_ID = b"MPF\x00"
_MPF_HEADER_AT = len(_APP2) + 2 + len(_MPF_ID)  # the header follows marker, length and identifier
_ENTRY_SIZE = 16

# TIFF field types used below
_LONG, _RATIONAL, _UNDEFINED, _SRATIONAL = 4, 5, 7, 10

# MP tags (DC-007 5.2.3 and 5.2.4)
_MPF_VERSION_TAG = 0xB000
_NUMBER_OF_IMAGES = 0xB001
_MP_ENTRY = 0xB002
_INDIVIDUAL_NUM = 0xB101
_BASE_VIEWPOINT_NUM = 0xB204
_CONVERGENCE_ANGLE = 0xB205  # degrees
_BASELINE_LENGTH = 0xB206  # metres
_UNKNOWN_RATIONAL = (0xFFFFFFFF, 0xFFFFFFFF)  # DC-007's value for "unknown" in a rational attribute

Entry = tuple[int, int, int, bytes]  # tag, type, count, value bytes


def mpo_bytes(jpegs: list[bytes]) -> bytes:
    """Join JPEG files (leftmost viewpoint first) into one multi-frame disparity MPO."""
    if len(jpegs) < 2:
        raise ValueError("an MPO stereo file needs at least two images")
    others = [
        _with_segment(jpeg, _mpf_segment(_attribute_ifd(number, start=8, next_ifd=0)))
        for number, jpeg in enumerate(jpegs[1:], start=2)
    ]
    # The first image's MPF segment has the same length whatever the sizes and offsets in it,
    # so a draft fixes where the other images start.
    draft = _with_segment(jpegs[0], _first_segment(jpegs, [0] * len(jpegs), [0] * len(jpegs)))
    header_at = _segment_position(jpegs[0]) + _MPF_HEADER_AT
    sizes = [len(draft)] + [len(other) for other in others]
    offsets = [0] + [sum(sizes[:index]) - header_at for index in range(1, len(sizes))]
    first = _with_segment(jpegs[0], _first_segment(jpegs, sizes, offsets))
    assert len(first) == len(draft)
    return b"".join([first, *others])


def is_stereo_mpo(file: Path | BinaryIO) -> bool:
    """True for an MPO holding a multi-view (disparity) stereo set: already stereo, not a 2D photo."""
    try:
        with Image.open(file) as image:
            entries = (getattr(image, "mpinfo", None) or {}).get(_MP_ENTRY, [])
    except (OSError, SyntaxError, ValueError):
        return False
    # Pillow reports MP types by name only; this is its name for MP_TYPE_DISPARITY.
    return len(entries) > 1 and all(entry["Attribute"]["MPType"] == "Multi-Frame Image: (Disparity)" for entry in entries)


def _first_segment(jpegs: list[bytes], sizes: list[int], offsets: list[int]) -> bytes:
    entries = b"".join(
        struct.pack("<LLLHH", MP_TYPE_DISPARITY | (REPRESENTATIVE_IMAGE if index == 0 else 0), size, offset, 0, 0)
        for index, (size, offset) in enumerate(zip(sizes, offsets))
    )
    index_entries: list[Entry] = [
        (_MPF_VERSION_TAG, _UNDEFINED, 4, _MPF_VERSION),
        (_NUMBER_OF_IMAGES, _LONG, 1, struct.pack("<L", len(jpegs))),
        (_MP_ENTRY, _UNDEFINED, _ENTRY_SIZE * len(jpegs), entries),
    ]
    index_length = len(_ifd(index_entries, start=8, next_ifd=0))
    index_ifd = _ifd(index_entries, start=8, next_ifd=8 + index_length)
    return _mpf_segment(index_ifd + _attribute_ifd(1, start=8 + index_length, next_ifd=0))


def _attribute_ifd(number: int, start: int, next_ifd: int) -> bytes:
    """MP Attribute IFD of viewpoint `number`. The views come from horizontal shifts (parallel optical
    axes), so the convergence angle is 0; the base viewpoint is 0 m from itself, the baseline of a
    synthesised eye has no physical length, so it is recorded as unknown."""
    baseline = (0, 1) if number == BASE_VIEWPOINT else _UNKNOWN_RATIONAL
    return _ifd(
        [
            (_MPF_VERSION_TAG, _UNDEFINED, 4, _MPF_VERSION),
            (_INDIVIDUAL_NUM, _LONG, 1, struct.pack("<L", number)),
            (_BASE_VIEWPOINT_NUM, _LONG, 1, struct.pack("<L", BASE_VIEWPOINT)),
            (_CONVERGENCE_ANGLE, _SRATIONAL, 1, struct.pack("<ll", 0, 1)),
            (_BASELINE_LENGTH, _RATIONAL, 1, struct.pack("<LL", *baseline)),
        ],
        start,
        next_ifd,
    )


def _ifd(entries: list[Entry], start: int, next_ifd: int) -> bytes:
    """A little-endian TIFF IFD placed at offset `start` of the MPF header; values longer than 4 bytes
    follow the IFD (all are multiples of 4 bytes, so offsets stay word-aligned as TIFF requires)."""
    data_at = start + 2 + 12 * len(entries) + 4
    table, data = b"", b""
    for tag, kind, count, value in sorted(entries):
        if len(value) <= 4:
            table += struct.pack("<HHL", tag, kind, count) + value.ljust(4, b"\x00")
        else:
            table += struct.pack("<HHLL", tag, kind, count, data_at + len(data))
            data += value
    return struct.pack("<H", len(entries)) + table + struct.pack("<L", next_ifd) + data


def _mpf_segment(ifds: bytes) -> bytes:
    body = _MPF_ID + _TIFF_HEADER + ifds
    return _APP2 + struct.pack(">H", 2 + len(body)) + body


def _segment_position(jpeg: bytes) -> int:
    """Where the MPF segment goes: after SOI and the APP0 (JFIF) / APP1 (Exif) segments, as DC-007 asks."""
    if not jpeg.startswith(b"\xff\xd8"):
        raise ValueError("not a JPEG stream")
    position = 2
    while jpeg[position : position + 2] in (b"\xff\xe0", b"\xff\xe1"):
        (length,) = struct.unpack(">H", jpeg[position + 2 : position + 4])
        position += 2 + length
    return position


def _with_segment(jpeg: bytes, segment: bytes) -> bytes:
    position = _segment_position(jpeg)
    return jpeg[:position] + segment + jpeg[position:]

