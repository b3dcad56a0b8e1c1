"""The folders the server shows: named roots, paths checked to stay inside them, listings with
each file's stereo layout, thumbnails, and the eyes of stereo photos a browser cannot show."""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image, ImageOps

from sbsconvert.decode import IMAGE_EXTENSIONS
from sbsconvert.errors import SbsError
from sbsconvert.media import VIDEO_EXTENSIONS

THUMB_WIDTH = 320
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
# What the file states, as a layout the viewer splits (inspect's words -> layout names).
_STATED = {"top-bottom (left on top)": "tb", "left-right (left first)": "sbs", "left_right": "sbs",
           "top_bottom": "tb", "right_left": "crosseye"}
_HALVES = {"sbs": ("hsbs",), "tb": ("htb",)}
# Browsers show these photos' first image only: the server composes both eyes side by side.
PAIR_SUFFIXES = (".mpo", ".heic", ".heif")


class Forbidden(SbsError):
    """A path that is not in a served folder (answered 404, saying no more)."""


@dataclass(frozen=True)
class Root:
    name: str
    folder: Path  # resolved
    writable: bool = False  # only the server's own folders (uploads, converted)


class Library:
    def __init__(self, folders: list[Path], state: Path):
        own: dict[str, Root] = {}  # the server's folders keep their names (served ones give way)
        for name in ("uploads", "converted", "previews"):
            (state / name).mkdir(parents=True, exist_ok=True)
            own[name] = Root(name, (state / name).resolve(), writable=True)
        served: dict[str, Root] = {}
        for folder in folders:
            name = _unique(re.sub(r"[^A-Za-z0-9_-]", "_", folder.resolve().name) or "folder", {**own, **served})
            served[name] = Root(name, folder.resolve())
        self.roots = {**served, **own}
        self.thumbs = state / "thumbs"
        self.thumbs.mkdir(exist_ok=True)

    def root(self, name: str) -> Root:
        if name not in self.roots:
            raise Forbidden(f"no folder named {name}")
        return self.roots[name]

    def resolve(self, root: str, relative: str) -> Path:
        """The real path of `relative` in `root`: relative, without '..' or hidden parts, and inside
        the root once symbolic links are followed."""
        base = self.root(root).folder
        pure = PurePosixPath(relative.replace("\\", "/"))
        if pure.is_absolute() or any(part in ("..", "") or part.startswith(".") for part in pure.parts if part != "."):
            raise Forbidden(f"{relative}: not a path inside {root}")
        path = (base / pure).resolve()
        if not path.is_relative_to(base) or not path.exists():
            raise Forbidden(f"{relative}: no such file in {root}")
        return path

    def address(self, path: Path) -> dict[str, str] | None:
        """{root, path} of a real path inside a root, or None."""
        path = path.resolve()
        for root in self.roots.values():
            if path.is_relative_to(root.folder):
                return {"root": root.name, "path": path.relative_to(root.folder).as_posix()}
        return None

    def listing(self, root: str, relative: str = "") -> dict[str, Any]:
        folder = self.resolve(root, relative) if relative else self.root(root).folder
        if not folder.is_dir():
            raise Forbidden(f"{relative}: not a folder")
        base = self.root(root).folder
        folders, files = [], []
        for entry in sorted(folder.iterdir(), key=lambda item: item.name.lower()):
            if entry.name.startswith(".") or not entry.resolve().is_relative_to(base):
                continue  # lock files, and links that lead out of the served folder
            path = entry.relative_to(base).as_posix()
            if entry.is_dir():
                folders.append({"name": entry.name, "path": path})
            elif entry.suffix.lower() in MEDIA_EXTENSIONS:
                stat = entry.stat()
                files.append({"name": entry.name, "path": path, "size": stat.st_size,
                              "kind": "video" if entry.suffix.lower() in VIDEO_EXTENSIONS else "photo",
                              **file_layout(str(entry.resolve()), stat.st_mtime_ns, stat.st_size)})
        return {"root": root, "path": relative, "folders": folders, "files": files}

    def thumbnail(self, path: Path) -> Path:
        """A JPEG at most THUMB_WIDTH wide of a photo, or of a video's first frame (cached by path,
        size and time)."""
        stat = path.stat()
        key = hashlib.sha1(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
        cached = self.thumbs / f"{key}.jpg"
        if not cached.exists():
            image = _first_frame(path) if path.suffix.lower() in VIDEO_EXTENSIONS else _open_photo(path)
            image.thumbnail((THUMB_WIDTH, THUMB_WIDTH * 4))
            partial = cached.with_suffix(".part")
            image.convert("RGB").save(partial, "JPEG", quality=80)
            partial.replace(cached)
        return cached


def eyes_side_by_side(path: Path) -> bytes:
    """A stereo MPO or spatial HEIC as one side-by-side JPEG (browsers show only its first image)."""
    import numpy as np

    from sbsconvert.decode import load_stereo_eyes

    eyes = load_stereo_eyes(path)
    if eyes is None:
        raise SbsError(f"{path.name} holds no stereo pair")
    frame = np.concatenate(eyes, axis=1)
    buffer = io.BytesIO()
    Image.fromarray((np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@lru_cache(maxsize=4096)
def file_layout(path: str, mtime_ns: int, size: int) -> dict[str, str | None]:
    """{"layout": how the viewer splits the file (sbs, hsbs, tb, htb, crosseye, anaglyph, pair: the
    server's /eyes composes both; None: 2D), "stated": what says so (the file, or its name)}.
    Cached by modification time and size."""
    from sbsconvert.info import inspect, name_layout

    file = Path(path)
    try:
        stereo = inspect(file).stereo
    except SbsError:
        stereo = {}
    named = name_layout(file)
    for key in ("st3d", "matroska_stereo_mode"):
        if stereo.get(key) in _STATED:
            stated = _STATED[stereo[key]]
            # the file says how the eyes are packed, the name also whether each is squeezed to half
            return {"layout": named if named in _HALVES.get(stated, ()) else stated, "stated": "file"}
    if "heif_stereo_group" in stereo or "mpo_stereo" in stereo:
        return {"layout": "pair", "stated": "file"}
    if stereo.get("mv_hevc_views") == 2:  # browsers decode the base view only
        return {"layout": None, "stated": "file: MV-HEVC spatial video (a browser shows the base view)"}
    if named in ("lr-pair", "mpo", "spatial"):
        return {"layout": None, "stated": "name"}
    return {"layout": named, "stated": "name" if named else None}


def _open_photo(path: Path) -> Image.Image:
    import sbsconvert.decode  # noqa: F401  (registers the HEIC reader)

    image = Image.open(path)
    image.draft("RGB", (THUMB_WIDTH * 2, THUMB_WIDTH * 2))  # JPEG: decode at a fraction of the size
    return ImageOps.exif_transpose(image)


def _first_frame(path: Path) -> Image.Image:
    import av

    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
            return frame.to_image()
    except (av.FFmpegError, StopIteration) as error:
        raise SbsError(f"{path.name}: no video frame to show ({error})") from None


def _unique(name: str, taken: dict[str, Any]) -> str:
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name}-{number}", number + 1
    return candidate
