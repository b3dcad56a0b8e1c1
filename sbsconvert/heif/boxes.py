"""A minimal ISO BMFF (ISO/IEC 14496-12) box tree: parse bytes into boxes, edit, write them back.

A box is a header (32-bit size and four-character type; a 64-bit size when it does not fit) and a
payload. Container boxes hold child boxes after a fixed prefix (a full box's version and flags, for
`meta`); every other box keeps its payload as bytes, to be read field by field by the code that
knows its syntax. Writing recomputes every size, so a child that grows grows its ancestors.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator


# Boxes that only hold other boxes, and how many bytes come before the first child.
CONTAINERS: dict[bytes, int] = {
    b"meta": 4,  # full box: version and flags
    b"iprp": 0,
    b"ipco": 0,
    b"grpl": 0,
    b"dinf": 0,
    b"moov": 0,
    b"trak": 0,
    b"mdia": 0,
    b"minf": 0,
    b"stbl": 0,
}


@dataclass
class Box:
    kind: bytes
    payload: bytes = b""  # leaf boxes: everything after the header; containers: the prefix
    children: list[Box] | None = None  # None for a leaf box
    start: int = field(default=-1, compare=False)  # where it was read from; -1 when built here
    source_size: int = field(default=-1, compare=False)  # its size where it was read from

    def child(self, kind: bytes) -> Box | None:
        return next((box for box in self.children or [] if box.kind == kind), None)

    def to_bytes(self) -> bytes:
        body = self.payload + b"".join(child.to_bytes() for child in self.children or [])
        return box(self.kind, body)


def box(kind: bytes, payload: bytes = b"", *boxes: bytes) -> bytes:
    """One box: header, payload, then any child boxes (whole), with a 64-bit size only when 32
    bits cannot hold it."""
    if len(kind) != 4:
        raise ValueError(f"box type must be four bytes, got {kind!r}")
    body = payload + b"".join(boxes)
    if len(body) + 8 <= 0xFFFFFFFF:
        return struct.pack(">I4s", len(body) + 8, kind) + body
    return struct.pack(">I4sQ", 1, kind, len(body) + 16) + body


def full_box(kind: bytes, version: int, flags: int, payload: bytes = b"", *boxes: bytes) -> bytes:
    """A full box: version (8 bits) and flags (24 bits) come first in the payload."""
    return box(kind, full_box_header(version, flags) + payload, *boxes)


def full_box_header(version: int, flags: int) -> bytes:
    if not 0 <= version <= 0xFF or not 0 <= flags <= 0xFFFFFF:
        raise ValueError(f"full box version {version} / flags {flags:#x} out of range")
    return struct.pack(">I", version << 24 | flags)


def split_full_box(payload: bytes) -> tuple[int, int, bytes]:
    """(version, flags, the rest) of a full box's payload."""
    if len(payload) < 4:
        raise ValueError("full box too short for its version and flags")
    (word,) = struct.unpack_from(">I", payload)
    return word >> 24, word & 0xFFFFFF, payload[4:]


@dataclass(frozen=True)
class Header:
    kind: bytes
    start: int  # offset of the size field
    header: int  # 8, or 16 with a 64-bit size
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size


def read_headers(read: Callable[[int], bytes], start: int, end: int) -> Iterator[Header]:
    """The headers of the boxes laid end to end between `start` and `end`; read(offset) gives the
    (up to) 16 bytes at offset, so a file's boxes can be listed without reading what they hold."""
    offset = start
    while offset + 8 <= end:
        raw = read(offset)
        size, kind = struct.unpack_from(">I4s", raw)
        header = 8
        if size == 1:
            if len(raw) < 16:
                raise ValueError(f"truncated box header at {offset}")
            (size,) = struct.unpack_from(">Q", raw, 8)
            header = 16
        elif size == 0:  # the last box, to the end
            size = end - offset
        if size < header or offset + size > end:
            raise ValueError(f"malformed box {kind!r} at {offset}")
        yield Header(kind, offset, header, size)
        offset += size


def top_level_headers(handle: BinaryIO) -> list[Header]:
    """The top-level boxes of an open file, from their headers only (media data is not read)."""
    end = handle.seek(0, 2)

    def read(offset: int) -> bytes:
        handle.seek(offset)
        return handle.read(16)

    return list(read_headers(read, 0, end))


def parse_boxes(data: bytes, start: int = 0, end: int | None = None) -> list[Box]:
    """The boxes laid end to end in data[start:end], containers parsed down to their leaves."""
    end = len(data) if end is None else end
    boxes = []
    for header in read_headers(lambda offset: data[offset : offset + 16], start, end):
        body_start = header.start + header.header
        prefix = CONTAINERS.get(header.kind)
        if prefix is None:
            boxes.append(Box(header.kind, data[body_start : header.end], None, header.start, header.size))
        else:
            if body_start + prefix > header.end:
                raise ValueError(f"malformed box {header.kind!r} at {header.start}")
            children = parse_boxes(data, body_start + prefix, header.end)
            boxes.append(Box(header.kind, data[body_start : body_start + prefix], children, header.start, header.size))
    return boxes
