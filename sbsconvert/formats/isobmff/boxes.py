"""ISO base media file format boxes (ISO/IEC 14496-12), for MP4/MOV and HEIF alike: read their
headers, parse them into a tree, edit it and write it back, build boxes, and add boxes to a video
track's sample entry in place.

A box is a header (32-bit size and four-character type; 1 and a 64-bit size when it does not
fit; 0 for "to the end of the file") and a payload. Container boxes hold child boxes after a fixed
prefix of their own (a full box's version and flags for `meta`, an entry count for `stsd`, 78
bytes of fields for a visual sample entry); every other box keeps its payload as bytes, to be
read field by field by the code that knows its syntax. Writing recomputes every size, so a child
that grows grows its ancestors. Header readers never read what boxes hold, so a file's media data
is not loaded into memory.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

VISUAL_SAMPLE_ENTRIES = (b"avc1", b"avc3", b"hvc1", b"hev1", b"mp4v", b"encv")
# Boxes that only hold other boxes, and how many bytes come before the first child.
CONTAINERS: dict[bytes, int] = {
    b"meta": 4,  # full box: version and flags
    b"stsd": 8,  # version and flags, entry_count
    **{kind: 0 for kind in (b"iprp", b"ipco", b"grpl", b"dinf", b"moov", b"trak", b"mdia", b"minf", b"stbl",
                            b"edts", b"udta", b"mvex", b"moof", b"traf")},
    **{kind: 78 for kind in VISUAL_SAMPLE_ENTRIES},  # the visual sample entry's own fields
    # Apple's stereo video extension (vexu) is made of plain containers.
    **{kind: 0 for kind in (b"vexu", b"eyes", b"cams", b"cmfy", b"proj", b"pack")},
}


@dataclass(frozen=True)
class Header:
    kind: bytes
    start: int  # offset of the size field
    header: int  # 8, or 16 with a 64-bit size
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size

    @property
    def payload_start(self) -> int:
        return self.start + self.header


@dataclass
class Box:
    """A box of a parsed tree, editable: a leaf's payload is everything after its header; a
    container's payload is its prefix, and its child boxes follow."""

    kind: bytes
    payload: bytes = b""
    children: list[Box] | None = None  # None for a leaf box
    start: int = field(default=-1, compare=False)  # where it was read from; -1 when built here
    source_size: int = field(default=-1, compare=False)  # its size where it was read from

    def child(self, kind: bytes) -> Box | None:
        return next((box for box in self.children or [] if box.kind == kind), None)

    def find(self, path: str) -> Box | None:
        """The first descendant along a path of box types such as "trak/mdia/minf", or None."""
        node: Box | None = self
        for kind in path.split("/"):
            node = node.child(kind.encode("latin-1")) if node is not None else None
        return node

    def find_all(self, kind: str) -> list[Box]:
        """Every descendant of type `kind`, depth first."""
        found = []
        for child in self.children or []:
            if child.kind == kind.encode("latin-1"):
                found.append(child)
            found.extend(child.find_all(kind))
        return found

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


def read_boxes(data: bytes, start: int, end: int) -> list[Header]:
    """The headers of the boxes laid end to end in data[start:end]."""
    return list(read_headers(lambda offset: data[offset : offset + 16], start, end))


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
    for header in read_boxes(data, start, end):
        body_start = header.payload_start
        prefix = CONTAINERS.get(header.kind)
        if prefix is None:
            boxes.append(Box(header.kind, data[body_start : header.end], None, header.start, header.size))
        else:
            if body_start + prefix > header.end:
                raise ValueError(f"malformed box {header.kind!r} at {header.start}")
            children = parse_boxes(data, body_start + prefix, header.end)
            boxes.append(Box(header.kind, data[body_start : body_start + prefix], children, header.start, header.size))
    return boxes


def children(data: bytes, parent: Header) -> list[Header]:
    """The headers of a container's child boxes, after its prefix."""
    return read_boxes(data, parent.payload_start + CONTAINERS.get(parent.kind, 0), parent.end)


def child(data: bytes, parent: Header, kind: bytes) -> Header | None:
    return next((header for header in children(data, parent) if header.kind == kind), None)


def video_sample_entry(data: bytes, moov: Header) -> list[Header] | None:
    """[moov, trak, mdia, minf, stbl, stsd, sample entry] of the first video track, or None."""
    for trak in children(data, moov):
        if trak.kind != b"trak":
            continue
        mdia = child(data, trak, b"mdia")
        hdlr = child(data, mdia, b"hdlr") if mdia else None
        # hdlr: version/flags (4), pre_defined (4), handler_type (4)
        if hdlr is None or data[hdlr.payload_start + 8 : hdlr.payload_start + 12] != b"vide":
            continue
        chain = [moov, trak, mdia]
        for kind in (b"minf", b"stbl", b"stsd"):
            found = child(data, chain[-1], kind)
            if found is None:
                return None
            chain.append(found)
        entries = children(data, chain[-1])
        return chain + [entries[0]] if entries else None
    return None


def read_video_sample_entry(path: Path) -> Box | None:
    """The first video track's sample entry of the MP4/MOV file at `path`, parsed (its child boxes
    too); None for a file without one or that is not ISO BMFF."""
    try:
        with path.open("rb") as handle:
            moov = next((header for header in top_level_headers(handle) if header.kind == b"moov"), None)
            if moov is None:
                return None
            # Box offsets are the file's own; mapped, only the pages read are loaded.
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                chain = video_sample_entry(data, moov)  # type: ignore[arg-type]
                if chain is None:
                    return None
                (entry,) = parse_boxes(data, chain[-1].start, chain[-1].end)  # type: ignore[arg-type]
                return entry
    except (OSError, ValueError):
        return None


def add_to_video_sample_entry(path: Path, new_boxes: bytes, skip_if_present: bytes, table_boxes: bytes = b"") -> bool:
    """Append `new_boxes` to the first video track's sample entry of the MP4/MOV file at `path`,
    and `table_boxes` (sample groups) to its sample table (`stbl`), in place; every box around
    them (stbl ... moov) grows by their size.

    Returns False (file untouched) when the entry already holds a `skip_if_present` box, or the
    file's layout does not allow a safe in-place edit: FFmpeg's muxer writes `moov` after `mdat`,
    so no chunk offset moves; a file with `moov` first is left as it is. Only `moov` and what
    follows it are read, so memory does not grow with the length of the video."""
    with open(path, "r+b") as handle:
        try:
            edit = _moov_with_boxes(handle, new_boxes, skip_if_present, table_boxes)
        except ValueError:
            return False  # malformed boxes: not a file to edit
        if edit is None:
            return False
        moov_start, moov = edit
        handle.seek(moov_start)
        handle.write(moov)
    return True


def _moov_with_boxes(handle: BinaryIO, new_boxes: bytes, skip_if_present: bytes,
                     table_boxes: bytes) -> tuple[int, bytes] | None:
    top = top_level_headers(handle)
    kinds = [header.kind for header in top]
    if b"moov" not in kinds or b"mdat" not in kinds:
        return None
    moov_start = top[kinds.index(b"moov")].start
    if any(header.kind == b"mdat" and header.start > moov_start for header in top):
        return None  # moov before media data: growing it would move chunk offsets
    handle.seek(moov_start)
    tail = handle.read()  # moov and anything after it (small: tables, not media)
    chain = video_sample_entry(tail, read_boxes(tail, 0, len(tail))[0])
    if chain is None:
        return None
    entry = chain[-1]
    if entry.kind not in VISUAL_SAMPLE_ENTRIES or any(item.kind == skip_if_present for item in children(tail, entry)):
        return None
    table = chain[-3]  # moov, trak, mdia, minf, stbl, stsd, entry
    edited = bytearray(tail[: entry.end] + new_boxes + tail[entry.end : table.end] + table_boxes + tail[table.end :])
    for depth, ancestor in enumerate(chain):  # moov ... stbl contain both; stsd and the entry, the entry's boxes
        grows = len(new_boxes) + (len(table_boxes) if depth <= len(chain) - 3 else 0)
        size_field, offset = (">Q", ancestor.start + 8) if ancestor.header == 16 else (">I", ancestor.start)
        struct.pack_into(size_field, edited, offset, ancestor.size + grows)
    return moov_start, bytes(edited)
