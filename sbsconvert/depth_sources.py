"""Where a file's disparity comes from: a map file or folder the user gives, per-frame maps of a
video (a folder of maps or a depth video), depth embedded in the photo, or a model. It answers for
photos and for video frames alike, so it sits above the video package (whose frame maps it opens)
and below the converter that builds it."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from sbsconvert.choices import DEPTH_SOURCES
from sbsconvert.decode import Picture
from sbsconvert.disparity import Disparity, check_map_shape, disparity_from_array, load_disparity_file, resize_disparity
from sbsconvert.errors import BatchStop, SbsError
from sbsconvert.media import is_video_path

if TYPE_CHECKING:
    from sbsconvert.video.framemaps import FrameMaps

DISPARITY_MAP_SUFFIXES = ("", "_disp", "_disparity", "_depth")


class DisparityProvider:
    """Finds the disparity for one photo: a given file/folder, depth embedded in it, or a model."""

    def __init__(
        self,
        disparity_path: Path | None,
        kind: str,
        depth_source: str,
        make_estimator: Callable[[], Callable[[np.ndarray], Disparity]],
        report: Callable[[str], None],
        frame_rate: Fraction | None = None,
    ):
        if depth_source not in DEPTH_SOURCES:
            raise SbsError(f"unknown depth source '{depth_source}' (choose from {', '.join(DEPTH_SOURCES)})")
        self.disparity_path = disparity_path
        self.kind = kind
        self.depth_source = depth_source
        self._make_estimator = make_estimator
        self._estimator: Callable[[np.ndarray], Disparity] | None = None
        self._loaded: tuple[Path, Disparity] | None = None  # last map file read (a video asks once per frame)
        self._report = report
        self.frame_rate = frame_rate  # a --sequence's rate (per-frame maps are indexed by the frames' times)
        self._frame_maps: dict[Path, FrameMaps | None] = {}

    def __call__(self, source: Path, picture: Picture) -> Disparity:
        width, height = picture.size
        return resize_disparity(self._find(source, picture), width, height)

    def many(self, source: Path, pictures: list[Picture]) -> list[Disparity]:
        """Disparity for several frames of one video (same size); a depth model sees them in one batch."""
        if (self.disparity_path is not None or self.depth_source == "embedded" or len(pictures) == 1
                or pictures[0].depth is not None):
            return [self(source, picture) for picture in pictures]
        estimator = self._model()
        batch = getattr(estimator, "batch", None)
        if batch is None:
            return [self(source, picture) for picture in pictures]
        width, height = pictures[0].size
        return [resize_disparity(disparity, width, height) for disparity in batch([p.pixels for p in pictures])]

    def video_stream(self) -> Any | None:
        """For a video depth model (one that sees a video's frames in windows): a fresh stream of
        its frames, with push(pixels) and finish() giving disparities in order, up to a window
        late. None for any other source of disparity."""
        if self.disparity_path is not None or self.depth_source == "embedded":
            return None
        stream = getattr(self._model(), "stream", None)
        return stream() if stream is not None else None

    def _model(self) -> Callable[[np.ndarray], Disparity]:
        if self._estimator is None:
            try:
                self._estimator = self._make_estimator()
            except SbsError as error:
                raise BatchStop(str(error)) from None
        return self._estimator

    def _find(self, source: Path, picture: Picture) -> Disparity:
        if picture.depth is not None:
            return disparity_from_array(picture.depth, self.kind, f"{source.name}: its depth half")
        if self.disparity_path is not None and picture.frame is not None:
            frame_maps = self._frame_maps_for(source)
            if frame_maps is not None:
                disparity = frame_maps(picture.frame)
                check_map_shape(disparity, *picture.size, f"{self.disparity_path} frame maps", str(source))
                return disparity
        if self.disparity_path is not None:
            if is_video_path(self.disparity_path):
                raise SbsError(f"{source}: a depth video ({self.disparity_path.name}) gives the maps of a video's "
                               "frames; for a photo give a map file")
            path = self._map_for(source)
            if self._loaded is None or self._loaded[0] != path:
                self._loaded = (path, load_disparity_file(path, self.kind))
            if picture.source is not None:  # (a generated image is drawn at the model's size, to fit the map to)
                check_map_shape(self._loaded[1], *picture.size, f"disparity map {path}", str(source))
            return self._loaded[1]
        if self.depth_source in ("auto", "embedded"):
            from sbsconvert.embedded_depth import read_embedded_depth

            embedded = read_embedded_depth(picture.file or source)  # the photo's bytes, when decoded from them
            if embedded is not None:
                self._report(f"{source.name}: using the depth embedded in the photo ({embedded.source})")
                return embedded.disparity
            if self.depth_source == "embedded":
                raise SbsError(f"{source}: the photo carries no embedded depth map (use `depth_source` model)")
        return self._model()(picture.pixels)

    def _frame_maps_for(self, source: Path) -> FrameMaps | None:
        """A video's per-frame maps: a depth video, or a folder of maps, one per frame (the
        folder's SOURCE_NAME/ subfolder, else the folder itself), unless the folder holds a map
        named like the video (one map for all its frames)."""
        if source not in self._frame_maps:
            from sbsconvert.video.framemaps import FrameMaps

            assert self.disparity_path is not None
            maps: Path | None = self.disparity_path
            if self.disparity_path.is_dir():
                maps = None if self._named_map(source) is not None else (
                    self.disparity_path / source.stem if (self.disparity_path / source.stem).is_dir()
                    else self.disparity_path)
            elif not is_video_path(self.disparity_path):
                maps = None
            self._frame_maps[source] = None if maps is None else FrameMaps(maps, source, self.kind, self.frame_rate)
        return self._frame_maps[source]

    def _named_map(self, source: Path) -> Path | None:
        assert self.disparity_path is not None
        for suffix in DISPARITY_MAP_SUFFIXES:
            for candidate in sorted(self.disparity_path.glob(f"{source.stem}{suffix}.*")):
                if candidate.resolve() != source.resolve() and candidate.is_file():
                    return candidate
        return None

    def _map_for(self, source: Path) -> Path:
        assert self.disparity_path is not None
        if not self.disparity_path.is_dir():
            return self.disparity_path
        named = self._named_map(source)
        if named is not None:
            return named
        raise SbsError(f"{source}: no disparity map named {source.stem}.* in {self.disparity_path}")
