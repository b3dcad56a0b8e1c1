"""Per-frame disparity for a video: a folder of maps (one per frame, in natural order) or a depth
video (8/16-bit grey, one frame per frame). Maps are found by the frame's position in the source,
so a trimmed, thinned (--max-fps) or segmented run gives each frame its own map."""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path
from typing import Iterator

from sbsconvert.disparity import DISPARITY_EXTENSIONS, Disparity, disparity_from_array, load_disparity_file
from sbsconvert.errors import SbsError
from sbsconvert.jobs import natural_key
from sbsconvert.video.decode import Frame, VideoReader


class FrameMaps:
    """The disparity of each frame of `source`, from `maps` (a folder of map files, or a depth
    video); refused in one line unless there is one map per frame of the source."""

    def __init__(self, maps: Path, source: Path, kind: str, frame_rate: Fraction | None = None):
        from sbsconvert.video.segments import read_index

        self.maps, self.kind = maps, kind
        self._position = {pts: number for number, pts in enumerate(read_index(source, frame_rate).pts)}
        if maps.is_dir():
            self._files = sorted((path for path in maps.iterdir() if path.is_file() and not path.name.startswith(".")
                                  and path.suffix.lower() in DISPARITY_EXTENSIONS), key=natural_key)
            count, what = len(self._files), "maps"
        else:
            self._depth_pts = read_index(maps).pts
            count, what = len(self._depth_pts), "depth frames"
        if count != len(self._position):
            raise SbsError(f"{maps}: {count} {what} for the {len(self._position)} frames of {source.name}; "
                           "per-frame depth needs exactly one map per frame")
        self._reader: VideoReader | None = None
        self._decoded: Iterator[Frame] | None = None
        self._next = -1  # position of the depth frame the open decode gives next

    def __call__(self, pts: int) -> Disparity:
        """The map of the source frame shown at `pts`."""
        position = self._position.get(pts)
        if position is None:
            raise SbsError(f"{self.maps}: no frame of the source is shown at timestamp {pts}")
        if self.maps.is_dir():
            return load_disparity_file(self._files[position], self.kind)
        return disparity_from_array(self._depth_frame(position)[..., 0], self.kind,
                                    f"{self.maps}, frame {position + 1}")

    def _depth_frame(self, position: int):  # -> np.ndarray
        """Decode the depth video's frame at `position`: on from the last one asked for, or from a
        seek (a segment starts mid-video)."""
        if self._reader is None:
            self._reader = VideoReader(self.maps)
        if self._decoded is None or position != self._next:
            self._decoded = self._reader.frames(seek=self._depth_pts[position])
            self._next = -1
        wanted = self._depth_pts[position]
        for frame in self._decoded:
            if frame.pts == wanted:
                self._next = position + 1
                return frame.pixels
        raise SbsError(f"{self.maps}: frame {position + 1} of the depth video cannot be decoded")

    def close(self) -> None:
        if self._decoded is not None:
            with contextlib.suppress(Exception):
                self._decoded.close()  # type: ignore[attr-defined]
        if self._reader is not None:
            self._reader.close()
