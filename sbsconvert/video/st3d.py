"""Stereo signalling in MP4/MOV: the `st3d` box of Google's Spherical Video V2 specification.

Players that read it (YouTube, Skybox, DeoVR, Pigasus, ...) show side-by-side or over-under video
in 3D whatever the file is called. FFmpeg writes the box only from stream side data, which PyAV
cannot attach, so it is added after muxing: a 13-byte box at the end of the video sample entry
(avc1 / hvc1), and every box around it (stsd ... moov) grows by 13 bytes. FFmpeg's mp4 muxer
writes `moov` after `mdat`, so no chunk offset moves; a file laid out otherwise is left as it is.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

# Spherical Video V2 stereo_mode: 0 mono, 1 top-bottom (left on top), 2 left-right (left first).
ST3D_MODES = {"sbs": 2, "hsbs": 2, "tb": 1, "htb": 1}
_VISUAL_SAMPLE_ENTRY_HEADER = 78  # bytes between a visual sample entry's box header and its child boxes


@dataclass
class Box:
    kind: bytes
    start: int  # offset of the size field
    header: int  # 8, or 16 with a 64-bit size
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size


def read_boxes(data: bytes, start: int, end: int) -> list[Box]:
    """The boxes laid end to end in data[start:end]."""
    return list(_box_headers(lambda offset: data[offset : offset + 16], start, end))


def _box_headers(read_header: Callable[[int], bytes], start: int, end: int) -> Iterator[Box]:
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


def add_st3d(path: Path, layout: str) -> bool:
    """Tag the video track of the MP4/MOV file at `path` with the stereo mode of `layout`, in place.

    Returns False (file untouched) when the layout has no st3d code, the file already has the
    box, or its layout does not allow a safe in-place edit. Only `moov` and what follows it are
    read, so memory does not grow with the length of the video.
    """
    mode = ST3D_MODES.get(layout)
    if mode is None:
        return False
    with open(path, "r+b") as handle:
        try:
            edit = _moov_with_st3d(handle, mode)
        except ValueError:
            return False  # malformed boxes: not a file to edit
        if edit is None:
            return False
        moov_start, moov = edit
        handle.seek(moov_start)
        handle.write(moov)
    return True


def _moov_with_st3d(handle: BinaryIO, mode: int) -> tuple[int, bytes] | None:
    """Where moov starts and the new bytes from there on (moov with the box, and what followed it);
    None when the file has the box already or cannot take it safely."""
    top = _top_level_boxes(handle)
    kinds = [box.kind for box in top]
    if b"moov" not in kinds or b"mdat" not in kinds:
        return None
    moov_start = top[kinds.index(b"moov")].start
    if any(box.kind == b"mdat" and box.start > moov_start for box in top):
        return None  # moov before media data: growing it would move chunk offsets
    handle.seek(moov_start)
    tail = handle.read()  # moov and anything after it (small: tables, not media)
    chain = _video_sample_entry(tail, read_boxes(tail, 0, len(tail))[0])
    if chain is None:
        return None
    entry = chain[-1]
    children = read_boxes(tail, entry.start + entry.header + _VISUAL_SAMPLE_ENTRY_HEADER, entry.end)
    if any(child.kind == b"st3d" for child in children):
        return None
    box = struct.pack(">I4sIB", 13, b"st3d", 0, mode)
    edited = bytearray(tail[: entry.end] + box + tail[entry.end :])
    for ancestor in chain:  # moov ... sample entry all contain the new box
        field, offset = (">Q", ancestor.start + 8) if ancestor.header == 16 else (">I", ancestor.start)
        struct.pack_into(field, edited, offset, ancestor.size + len(box))
    return moov_start, bytes(edited)


def _top_level_boxes(handle: BinaryIO) -> list[Box]:
    """The top-level boxes of an open file, from their headers only (media data is not read)."""
    end = handle.seek(0, 2)

    def read_header(offset: int) -> bytes:
        handle.seek(offset)
        return handle.read(16)

    return list(_box_headers(read_header, 0, end))


def _video_sample_entry(data: bytes, moov: Box) -> list[Box] | None:
    """[moov, trak, mdia, minf, stbl, stsd, sample entry] of the first video track, or None."""
    for trak in read_boxes(data, moov.start + moov.header, moov.end):
        if trak.kind != b"trak":
            continue
        chain = [moov, trak]
        mdia = _child(data, trak, b"mdia")
        hdlr = _child(data, mdia, b"hdlr") if mdia else None
        # hdlr: version/flags (4), pre_defined (4), handler_type (4)
        if hdlr is None or data[hdlr.start + hdlr.header + 8 : hdlr.start + hdlr.header + 12] != b"vide":
            continue
        box = mdia
        for kind in (b"minf", b"stbl", b"stsd"):
            chain.append(box)
            box = _child(data, box, kind)
            if box is None:
                return None
        chain.append(box)
        # stsd: version/flags (4), entry_count (4), then the sample entries
        entries = read_boxes(data, box.start + box.header + 8, box.end)
        return chain + [entries[0]] if entries else None
    return None


def _child(data: bytes, parent: Box, kind: bytes) -> Box | None:
    return next((box for box in read_boxes(data, parent.start + parent.header, parent.end) if box.kind == kind), None)
