"""What a path holds, told before any conversion: a video (by its extension, or by its content
when its name says nothing) and the container its stereo version is written in. Planning (jobs.py)
and the depth sources ask this without importing the video pipeline; PyAV is imported only to look
inside a file named as no known type."""

from __future__ import annotations

import functools
from pathlib import Path

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".webm", ".m4v", ".avi"})
VIDEO_OUTPUT_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv")
# Output container per input extension. WebM only holds VP8/VP9/AV1 and AVI is a poor home for
# H.264/HEVC, so both become Matroska, which can take their audio (Vorbis, Opus, PCM, MP3) unchanged.
OUTPUT_EXTENSIONS = {".mp4": ".mp4", ".m4v": ".m4v", ".mov": ".mov", ".mkv": ".mkv", ".webm": ".mkv", ".avi": ".mkv"}
SPATIAL_OUTPUT_EXTENSIONS = (".mov", ".mp4", ".m4v")  # MV-HEVC with Apple's boxes: QuickTime/MP4 only


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
    return probe_video(path)


def video_output_extension(source: Path, layout: str | None = None) -> str:
    """The container a stereo version of the video `source` is written in (a spatial video: QuickTime/MP4)."""
    extension = OUTPUT_EXTENSIONS.get(source.suffix.lower(), ".mp4")
    if layout == "spatial" and extension not in SPATIAL_OUTPUT_EXTENSIONS:
        return ".mov"
    return extension


# FFmpeg's demuxers of still images (besides its "..._pipe" ones): a picture is not a video.
STILL_IMAGE_DEMUXERS = ("image2", "gif", "apng")


def probe_video(path: Path) -> str | None:
    """Why FFmpeg, reading `path` by its content whatever its name, finds no video in it (None: it
    finds a video stream, not a still image, and decodes a frame of it). Asked again for the same
    unchanged file, it answers from memory."""
    status = path.stat()
    return _probe_video(str(path.resolve()), status.st_mtime_ns, status.st_size)


@functools.lru_cache(maxsize=1024)
def _probe_video(path: str, _modified: int, size: int) -> str | None:
    import av  # only for files named as no known type

    if size == 0:
        return "the file is empty"
    try:
        with av.open(path) as container:
            demuxer = container.format.name
            if demuxer.endswith("_pipe") or demuxer in STILL_IMAGE_DEMUXERS:
                return f"a still {demuxer.removesuffix('_pipe').upper()} image"
            if not container.streams.video:
                return "sound only, no video stream" if container.streams.audio else "no video stream"
            if container.streams.video[0].codec_context is None:
                return "its video codec cannot be decoded by this FFmpeg build"
            for _ in container.decode(container.streams.video[0]):
                return None
            return "its video stream holds no frames"
    except (av.FFmpegError, ValueError):
        return "not a media file FFmpeg reads"


def forget_probed_videos() -> None:
    """Empty probe_video's memory, so the next scan reads every file again (timing a cold scan)."""
    _probe_video.cache_clear()
