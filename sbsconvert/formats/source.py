"""A photo's file read once: its bytes, and its HEIF meta box parsed on first use, for every stage that
looks into the file (decoding, stereo detection, a spatial photo's camera, the embedded depth map)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from sbsconvert.formats.heif.items import meta_box_of
from sbsconvert.formats.isobmff.boxes import Box


@dataclass(frozen=True)
class SourceFile:
    path: Path
    data: bytes

    @classmethod
    def read(cls, path: Path) -> SourceFile:
        return cls(Path(path), Path(path).read_bytes())

    @classmethod
    def of(cls, source: Path | SourceFile) -> SourceFile:
        """`source` itself, or the file at that path, read."""
        return source if isinstance(source, SourceFile) else cls.read(source)

    def stream(self) -> io.BytesIO:
        """A file object of its own over the bytes, for readers that take one (Pillow, pypng)."""
        return io.BytesIO(self.data)

    @cached_property
    def meta(self) -> Box | None:
        """The HEIF meta box; None when the file has none of a sane size (not a HEIF file)."""
        try:
            return meta_box_of(self.stream())
        except ValueError:
            return None


def source_path(source: Path | SourceFile) -> Path:
    """Where `source` is (for messages, and its suffix), without reading it."""
    return source.path if isinstance(source, SourceFile) else Path(source)
