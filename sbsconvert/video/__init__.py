"""Video: stream frames through the still-image stages (decode -> disparity -> engine -> layout ->
encode) with temporally smoothed disparity, copying audio. Importing this package is cheap (no PyAV);
the stages live in decode.py, temporal.py, encode.py and pipeline.py."""

from __future__ import annotations

from pathlib import Path

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".webm", ".m4v", ".avi"})
VIDEO_OUTPUT_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv")
# Output container per input extension. WebM only holds VP8/VP9/AV1 and AVI is a poor home for
# H.264/HEVC, so both become Matroska, which can take their audio (Vorbis, Opus, PCM, MP3) unchanged.
OUTPUT_EXTENSIONS = {".mp4": ".mp4", ".m4v": ".m4v", ".mov": ".mov", ".mkv": ".mkv", ".webm": ".mkv", ".avi": ".mkv"}


def is_video_path(path: Path) -> bool:
    """A video by its extension, or (an extension that names no photo type either: .mpg, .ts, .m2ts,
    .MTS, .vob, none...) by its content, which FFmpeg reads as a video."""
    return path.suffix.lower() in VIDEO_EXTENSIONS or not_a_video(path) is None


def not_a_video(path: Path) -> str | None:
    """Why `path`, named as no known photo or video type is, is not a video (None: it is one)."""
    from sbsconvert.decode import IMAGE_EXTENSIONS

    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return "a photo type"
    if not path.is_file():
        return "not a file"
    from sbsconvert.video.decode import probe_video  # PyAV, only for files of other types

    return probe_video(path)


SPATIAL_OUTPUT_EXTENSIONS = (".mov", ".mp4", ".m4v")  # MV-HEVC with Apple's boxes: QuickTime/MP4 only
# The --codec choices that give libx265, whose two streams the MV-HEVC assembly merges.
SPATIAL_CODECS = ("hevc", "libx265", "auto")


def video_output_extension(source: Path, layout: str | None = None) -> str:
    extension = OUTPUT_EXTENSIONS.get(source.suffix.lower(), ".mp4")
    if layout == "spatial" and extension not in SPATIAL_OUTPUT_EXTENSIONS:
        return ".mov"
    return extension
