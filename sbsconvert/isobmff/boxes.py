"""ISO base media file format boxes (ISO/IEC 14496-12): read them, build them, edit a file in place.

A box is a 32-bit size (or 1 and a 64-bit size, or 0 for "to the end"), a four-character type,
then its payload; containers hold further boxes, some after fixed fields of their own (`stsd`
after an entry count, a visual sample entry after 78 bytes). Readers here work on headers only
where they can, so a file's media data is never read into memory.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

# Bytes of fixed fields between a container's header and its first child box.
VISUAL_SAMPLE_ENTRIES = frozenset({b"avc1", b"avc3", b"hvc1", b"hev1", b"mp4v", b"encv"})
CHILD_OFFSETS = {
    b"stsd": 8,  # version/flags, entry_count
    b"meta": 4,  # version/flags
    b"iref": 4,
    b"iinf": 6,  # version 0: version/flags, 16-bit entry_count
    b"dref": 8,
    **{kind: 78 for kind in VISUAL_SAMPLE_ENTRIES},
    # Apple's stereo video extension boxes are plain containers
}
CONTAINERS = frozenset({
    b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"udta", b"mvex", b"moof", b"traf",
    b"iprp", b"ipco", b"grpl", b"vexu", b"eyes", b"cams", b"proj", b"pack", b"sinf", b"schi",
    *CHILD_OFFSETS,
})


@dataclass
class Box:
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
class Node:
    """A box in a parsed tree: its payload (all bytes after the header) and its child boxes."""

    kind: bytes
    payload: bytes
    children: list[Node] = field(default_factory=list)

    def find(self, path: str) -> Node | None:
        """The first descendant along "trak/mdia/minf" (a path of box types), or None."""
        node: Node | None = self
        for kind in path.split("/"):
            node = next((child for child in node.children if child.kind == kind.encode("latin-1")), None)
            if node is None:
                return None
        return node

    def find_all(self, kind: str) -> list[Node]:
        """Every descendant of type `kind`, depth first."""
        found = []
        for child in self.children:
            if child.kind == kind.encode("latin-1"):
                found.append(child)
            found.extend(child.find_all(kind))
        return found


def read_boxes(data: bytes, start: int, end: int) -> list[Box]:
    """The boxes laid end to end in data[start:end]."""
    return list(box_headers(lambda offset: data[offset : offset + 16], start, end))


def box_headers(read_header: Callable[[int], bytes], start: int, end: int) -> Iterator[Box]:
    """Boxes laid end to end between `start` and `end`; read_header(offset) gives the (up to) 16
    bytes at offset, so a file's boxes can be listed without reading what they hold."""
    offset = start
    while offset + 8 <= end:
        raw = read_header(offset)
        size, kind = struct.unpack_from(">I4s", raw)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", raw, 8)
            header = 16
        elif size == 0:
            size = end - offset
        if size < header or offset + size > end:
            raise ValueError(f"malformed box {kind!r} at {offset}")
        yield Box(kind, offset, header, size)
        offset += size


def children(data: bytes, parent: Box) -> list[Box]:
    """The child boxes of a container, after its fixed fields."""
    return read_boxes(data, parent.payload_start + CHILD_OFFSETS.get(parent.kind, 0), parent.end)


def child(data: bytes, parent: Box, kind: bytes) -> Box | None:
    return next((box for box in children(data, parent) if box.kind == kind), None)


def parse_tree(data: bytes, start: int = 0, end: int | None = None) -> list[Node]:
    """The boxes of data[start:end] as a tree; known containers are opened recursively."""
    nodes = []
    for box in read_boxes(data, start, len(data) if end is None else end):
        node = Node(box.kind, data[box.payload_start : box.end])
        if box.kind in CONTAINERS:
            node.children = parse_tree(data, box.payload_start + CHILD_OFFSETS.get(box.kind, 0), box.end)
        nodes.append(node)
    return nodes


def top_level_boxes(handle: BinaryIO) -> list[Box]:
    """The top-level boxes of an open file, from their headers only (media data is not read)."""
    end = handle.seek(0, 2)

    def read_header(offset: int) -> bytes:
        handle.seek(offset)
        return handle.read(16)

    return list(box_headers(read_header, 0, end))


def box(kind: bytes, payload: bytes = b"", *boxes: bytes) -> bytes:
    """A box of type `kind` holding `payload` then the (already built) child `boxes`."""
    body = payload + b"".join(boxes)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full_box(kind: bytes, version: int, flags: int, payload: bytes = b"", *boxes: bytes) -> bytes:
    """A FullBox: version (8 bits) and flags (24 bits) before the payload."""
    return box(kind, struct.pack(">I", (version << 24) | flags) + payload, *boxes)


def video_sample_entry(data: bytes, moov: Box) -> list[Box] | None:
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


def add_to_video_sample_entry(path: Path, new_boxes: bytes, skip_if_present: bytes) -> bool:
    """Append `new_boxes` to the first video track's sample entry of the MP4/MOV file at `path`,
    in place; every box around it (stsd ... moov) grows by their size.

    Returns False (file untouched) when the entry already holds a `skip_if_present` box, or the
    file's layout does not allow a safe in-place edit: FFmpeg's muxer writes `moov` after `mdat`,
    so no chunk offset moves; a file with `moov` first is left as it is. Only `moov` and what
    follows it are read, so memory does not grow with the length of the video."""
    with open(path, "r+b") as handle:
        try:
            edit = _moov_with_boxes(handle, new_boxes, skip_if_present)
        except ValueError:
            return False  # malformed boxes: not a file to edit
        if edit is None:
            return False
        moov_start, moov = edit
        handle.seek(moov_start)
        handle.write(moov)
    return True


def _moov_with_boxes(handle: BinaryIO, new_boxes: bytes, skip_if_present: bytes) -> tuple[int, bytes] | None:
    top = top_level_boxes(handle)
    kinds = [item.kind for item in top]
    if b"moov" not in kinds or b"mdat" not in kinds:
        return None
    moov_start = top[kinds.index(b"moov")].start
    if any(item.kind == b"mdat" and item.start > moov_start for item in top):
        return None  # moov before media data: growing it would move chunk offsets
    handle.seek(moov_start)
    tail = handle.read()  # moov and anything after it (small: tables, not media)
    chain = video_sample_entry(tail, read_boxes(tail, 0, len(tail))[0])
    if chain is None:
        return None
    entry = chain[-1]
    if entry.kind not in CHILD_OFFSETS or any(item.kind == skip_if_present for item in children(tail, entry)):
        return None
    edited = bytearray(tail[: entry.end] + new_boxes + tail[entry.end :])
    for ancestor in chain:  # moov ... sample entry all contain the new boxes
        size_field, offset = (">Q", ancestor.start + 8) if ancestor.header == 16 else (">I", ancestor.start)
        struct.pack_into(size_field, edited, offset, ancestor.size + len(new_boxes))
    return moov_start, bytes(edited)
