"""Stereo signalling in MP4/MOV: the `st3d` box of Google's Spherical Video V2 specification.

Players that read it (YouTube, Skybox, DeoVR, Pigasus, ...) show side-by-side or over-under video
in 3D whatever the file is called. FFmpeg writes the box only from stream side data, which PyAV
cannot attach, so it is added after muxing: a 13-byte box at the end of the video sample entry
(avc1 / hvc1); see sbsconvert.formats.isobmff.boxes.add_to_video_sample_entry.
"""

from __future__ import annotations

import struct
from pathlib import Path

from sbsconvert.formats.isobmff.boxes import add_to_video_sample_entry, full_box, read_video_sample_entry

# Spherical Video V2 stereo_mode: 0 mono, 1 top-bottom (left on top), 2 left-right (left first).
ST3D_MODES = {"sbs": 2, "hsbs": 2, "tb": 1, "htb": 1}
# What a stereo_mode says of a frame, in the words FFmpeg uses for Matroska's StereoMode.
ST3D_PACKINGS = {1: "top_bottom", 2: "left_right"}


def read_st3d(path: Path) -> int | None:
    """The stereo_mode of the video track's `st3d` box, or None when the file has none."""
    entry = read_video_sample_entry(path)
    box = entry.find("st3d") if entry is not None else None
    return box.payload[4] if box is not None and len(box.payload) > 4 else None  # after version and flags


def add_st3d(path: Path, layout: str) -> bool:
    """Tag the video track of the MP4/MOV file at `path` with the stereo mode of `layout`, in place.

    Returns False (file untouched) when the layout has no st3d code, the file already has the
    box, or its layout does not allow a safe in-place edit.
    """
    mode = ST3D_MODES.get(layout)
    if mode is None:
        return False
    return add_to_video_sample_entry(path, full_box(b"st3d", 0, 0, struct.pack(">B", mode)), b"st3d")
