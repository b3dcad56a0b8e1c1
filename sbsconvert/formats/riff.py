"""Whether an AVI file holds its frame index, from its RIFF chunk headers alone.

An AVI's index (`idx1` after the frames; OpenDML's `indx` in the header) is written when the
recording ends, so a file cut off mid-way has none. FFmpeg reads such a file anyway and guesses its
duration from the bytes there, so only the header's frame count still tells how long it was."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

_CHUNK = struct.Struct("<4sI")  # four-character code, payload size (the payload is padded to an even size)
_INDEXES = (b"idx1", b"indx")


def avi_has_index(path: Path) -> bool | None:
    """True when the AVI holds an index and every RIFF chunk of it is whole; False when it has no
    index or is cut short; None when the file is no AVI."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        head = handle.read(12)
        if head[:4] != b"RIFF" or head[8:] != b"AVI ":
            return None
        indexed, offset = False, 0
        # An OpenDML file (over 1 GB) goes on in further RIFF 'AVIX' chunks.
        while offset + _CHUNK.size <= size:
            kind, length = _chunk_at(handle, offset)
            if kind != b"RIFF":
                break  # trailing bytes after the last RIFF chunk hold no frames
            end = offset + _CHUNK.size + length
            if end > size:
                return False
            indexed = _holds_index(handle, offset + 12, end) or indexed
            offset = end + (length & 1)
        return indexed


def _form(handle: BinaryIO, offset: int) -> bytes:
    handle.seek(offset + _CHUNK.size)
    return handle.read(4)


def _chunk_at(handle: BinaryIO, offset: int) -> tuple[bytes, int]:
    handle.seek(offset)
    return _CHUNK.unpack(handle.read(_CHUNK.size))


def _holds_index(handle: BinaryIO, start: int, end: int) -> bool:
    """Whether the chunks from `start` to `end` hold an index, within LISTs (not the frames' `movi`)."""
    offset = start
    while offset + _CHUNK.size <= end:
        kind, length = _chunk_at(handle, offset)
        if offset + _CHUNK.size + length > end:
            return False
        if kind in _INDEXES:
            return True
        if kind == b"LIST" and _form(handle, offset) != b"movi" and _holds_index(handle, offset + 12, offset + 8 + length):
            return True
        offset += _CHUNK.size + length + (length & 1)
    return False
